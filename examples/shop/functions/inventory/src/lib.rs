//! `inventory`: reserves the ordered items, when an order is placed (an `OrderPlaced` event)
//! or as the `order` workflow's Reserve step (a task whose input is the order).

use serde_json::json;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

wasi::http::proxy::export!(Handler);

struct Handler;

impl wasi::exports::http::incoming_handler::Guest for Handler {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        shop_events::on_order(request, out, |_, order| {
            let id = order["order_id"].as_str().unwrap_or("?");
            let count = shop_events::item_count(order);
            println!("inventory: reserved {count} item(s) for {id}");
            (200, json!({ "reserved": count }))
        });
    }
}
