//! `inventory`: reserves the ordered items when an order is placed.

use serde_json::json;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

wasi::http::proxy::export!(Handler);

struct Handler;

impl wasi::exports::http::incoming_handler::Guest for Handler {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        shop_events::on_event(request, out, |_, event| {
            let order = &event["detail"];
            let id = order["order_id"].as_str().unwrap_or("?");
            let count: u64 = order["items"]
                .as_array()
                .map(|items| items.iter().filter_map(|i| i["qty"].as_u64()).sum())
                .unwrap_or(0);
            println!("inventory: reserved {count} item(s) for {id}");
            (200, json!({ "reserved": count }))
        });
    }
}
