//! `orders`: `POST /orders` places an order. It checks the order, publishes one `OrderPlaced`
//! event and answers `202` with the order's ID. It knows nothing of who reacts to the event.

use serde_json::{Value, json};
use shop_events::{Request, publish, respond};
use wasi::http::types::{IncomingRequest, Method, ResponseOutparam};

wasi::http::proxy::export!(Orders);

struct Orders;

impl wasi::exports::http::incoming_handler::Guest for Orders {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let request = match Request::read(request) {
            Ok(r) => r,
            Err(why) => return respond(out, 400, &json!({ "error": why })),
        };
        if !matches!(request.method, Method::Post) {
            return respond(out, 405, &json!({ "error": "POST an order to /orders" }));
        }
        let order = match request.json().and_then(|o| check(&o).map(|()| o)) {
            Ok(o) => o,
            Err(why) => return respond(out, 400, &json!({ "error": why })),
        };
        let id = format!("ord_{:016x}", wasi::random::random::get_random_u64());
        let detail = json!({
            "order_id": id,
            "customer": order["customer"],
            "items": order["items"],
            "total": order["total"],
        });
        match publish("shop.orders", "OrderPlaced", &detail, None) {
            Ok(event_id) => {
                println!("orders: placed {id} (event {event_id})");
                respond(out, 202, &json!({ "order_id": id, "event_id": event_id }));
            }
            Err(why) => {
                eprintln!("orders: cannot publish OrderPlaced: {why}");
                respond(out, 502, &json!({ "error": why }));
            }
        }
    }
}

/// An order names a customer (an email address), at least one item and a total.
fn check(order: &Value) -> Result<(), String> {
    let customer = order["customer"].as_str().unwrap_or_default();
    if !customer.contains('@') {
        return Err("`customer` must be an email address".into());
    }
    let items = order["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if items.is_empty() {
        return Err("`items` must list at least one {\"sku\", \"qty\"}".into());
    }
    for item in items {
        if item["sku"].as_str().is_none() || item["qty"].as_u64().is_none_or(|q| q == 0) {
            return Err(format!("item {item} needs a `sku` and a positive `qty`"));
        }
    }
    if order["total"].as_f64().is_none_or(|t| t < 0.0) {
        return Err("`total` must be a non-negative number".into());
    }
    Ok(())
}
