//! `fraud`: checks an order for fraud when it is placed, and publishes the verdict as a
//! `FraudCheckCompleted` event, passing on the `traceparent` it received so that
//! `muon events trace` shows the new event under this delivery.

use serde_json::json;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

wasi::http::proxy::export!(Handler);

struct Handler;

impl wasi::exports::http::incoming_handler::Guest for Handler {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        shop_events::on_event(request, out, |request, event| {
            let order = &event["detail"];
            let id = order["order_id"].as_str().unwrap_or("?");
            let total = order["total"].as_f64().unwrap_or(0.0);
            let verdict = if total > 1000.0 { "review" } else { "ok" };
            println!("fraud: {id} scored {verdict} (total {total})");
            let detail = json!({ "order_id": id, "verdict": verdict });
            match shop_events::publish(
                "shop.fraud",
                "FraudCheckCompleted",
                &detail,
                request.header("traceparent"),
            ) {
                Ok(event) => (200, json!({ "verdict": verdict, "event_id": event })),
                // Failing the delivery makes the bus retry it.
                Err(why) => (503, json!({ "error": why })),
            }
        });
    }
}
