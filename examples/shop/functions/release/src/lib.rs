//! `release`: the `order` workflow's compensation. When the payment failed, it releases the
//! items the inventory step reserved.

use serde_json::json;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

wasi::http::proxy::export!(Handler);

struct Handler;

impl wasi::exports::http::incoming_handler::Guest for Handler {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        shop_events::on_task(request, out, |_, order| {
            let id = order["order_id"].as_str().unwrap_or("?");
            let count = shop_events::item_count(order);
            let why = order["error"]["Error"].as_str().unwrap_or("unknown error");
            println!("release: released {count} item(s) for {id} ({why})");
            (200, json!({ "released": count }))
        });
    }
}
