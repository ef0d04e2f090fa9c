//! `email`: sends the order confirmation, when an order is placed (an `OrderPlaced` event) or
//! as a step of the `order` workflow (a task whose input is the order).

use serde_json::json;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

wasi::http::proxy::export!(Handler);

struct Handler;

impl wasi::exports::http::incoming_handler::Guest for Handler {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        shop_events::on_order(request, out, |_, order| {
            let id = order["order_id"].as_str().unwrap_or("?");
            let to = order["customer"].as_str().unwrap_or("?");
            println!("email: confirmation for {id} sent to {to}");
            (200, json!({ "sent_to": to }))
        });
    }
}
