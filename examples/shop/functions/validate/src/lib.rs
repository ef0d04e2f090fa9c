//! `validate`: the `order` workflow's first step. It checks an order (`{order_id, customer,
//! items: [{sku, qty}], amount, card}`) and answers it with `"validated": true`, or fails the
//! task with `InvalidOrder` saying what is wrong.

use serde_json::{Value, json};
use shop_events::task_error;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

wasi::http::proxy::export!(Handler);

struct Handler;

impl wasi::exports::http::incoming_handler::Guest for Handler {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        shop_events::on_task(request, out, |_, order| {
            let id = order["order_id"].as_str().unwrap_or("?");
            match check(order) {
                Ok(()) => {
                    let mut order = order.clone();
                    order["validated"] = json!(true);
                    println!("validate: {id} is valid");
                    (200, order)
                }
                Err(why) => {
                    println!("validate: {id} rejected: {why}");
                    task_error(400, "InvalidOrder", why)
                }
            }
        });
    }
}

/// Why `order` cannot be placed, if it cannot.
fn check(order: &Value) -> Result<(), String> {
    if !order.is_object() {
        return Err("an order is a JSON object".into());
    }
    let items = match order["items"].as_array() {
        Some(items) if !items.is_empty() => items,
        _ => return Err("the order has no items".into()),
    };
    for (i, item) in items.iter().enumerate() {
        if matches!(item["qty"].as_u64(), None | Some(0)) {
            return Err(format!(
                "items[{i}].qty must be a positive integer, not {}",
                item["qty"]
            ));
        }
    }
    match order["amount"].as_f64() {
        Some(amount) if amount > 0.0 => Ok(()),
        _ => Err(format!(
            "amount must be a positive number, not {}",
            order["amount"]
        )),
    }
}
