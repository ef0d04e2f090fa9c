//! `warehouse`: tells the warehouse what to pick, when an order is placed (an `OrderPlaced`
//! event) or as a step of the `order` workflow (a task whose input is the order).

use serde_json::json;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

wasi::http::proxy::export!(Handler);

struct Handler;

impl wasi::exports::http::incoming_handler::Guest for Handler {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        shop_events::on_order(request, out, |_, order| {
            let id = order["order_id"].as_str().unwrap_or("?");
            let lines: Vec<String> = order["items"]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .map(|i| format!("{} x{}", i["sku"].as_str().unwrap_or("?"), i["qty"]))
                        .collect()
                })
                .unwrap_or_default();
            println!("warehouse: pick list for {id}: {}", lines.join(", "));
            (200, json!({ "lines": lines.len() }))
        });
    }
}
