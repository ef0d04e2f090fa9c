//! `email`: sends the order confirmation when an order is placed.

use serde_json::json;
use shop_events::{Request, respond};
use wasi::http::types::{IncomingRequest, ResponseOutparam};

wasi::http::proxy::export!(Handler);

struct Handler;

impl wasi::exports::http::incoming_handler::Guest for Handler {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        // The event arrives as a POST: CloudEvents headers (`ce-id`, `ce-type`, ...) and the
        // EventBridge envelope as the body.
        let request = match Request::read(request) {
            Ok(r) => r,
            Err(why) => return respond(out, 400, &json!({ "error": why })),
        };
        let event = match request.json() {
            Ok(e) => e,
            Err(why) => return respond(out, 400, &json!({ "error": why })),
        };
        let order = &event["detail"];
        let id = order["order_id"].as_str().unwrap_or("?");
        let to = order["customer"].as_str().unwrap_or("?");
        println!("email: confirmation for {id} sent to {to}");
        respond(out, 200, &json!({ "sent_to": to }));
    }
}
