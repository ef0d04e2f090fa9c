//! `email`: sends the order confirmation when an order is placed.

use serde_json::json;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

wasi::http::proxy::export!(Handler);

struct Handler;

impl wasi::exports::http::incoming_handler::Guest for Handler {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        shop_events::on_event(request, out, |_, event| {
            let order = &event["detail"];
            let id = order["order_id"].as_str().unwrap_or("?");
            let to = order["customer"].as_str().unwrap_or("?");
            println!("email: confirmation for {id} sent to {to}");
            (200, json!({ "sent_to": to }))
        });
    }
}
