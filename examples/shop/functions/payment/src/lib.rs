//! `payment`: the `order` workflow's charge step. Test cards: `"declined"` fails the task with
//! `PaymentDeclined`; `"flaky"` fails the first attempt with `PaymentUnavailable` (the
//! workflow's Retry then succeeds); any other card is charged.

use serde_json::json;
use shop_events::task_error;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

wasi::http::proxy::export!(Handler);

struct Handler;

impl wasi::exports::http::incoming_handler::Guest for Handler {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        shop_events::on_task(request, out, |request, charge| {
            let id = charge["order_id"].as_str().unwrap_or("?");
            let amount = &charge["amount"];
            // Which attempt this is: the input's `attempt` (the workflow passes
            // `$$.State.RetryCount`), else the `x-muon-attempt` header muon sends with tasks.
            let attempt = charge["attempt"]
                .as_u64()
                .or_else(|| request.header("x-muon-attempt")?.parse().ok())
                .unwrap_or(0);
            match charge["card"].as_str() {
                Some("declined") => {
                    println!("payment: card declined for {id}");
                    task_error(
                        402,
                        "PaymentDeclined",
                        format!("the card for {id} was declined"),
                    )
                }
                Some("flaky") if attempt == 0 => {
                    println!("payment: processor unavailable for {id} (attempt {attempt})");
                    task_error(
                        503,
                        "PaymentUnavailable",
                        "the payment processor is unavailable: try again",
                    )
                }
                _ => {
                    println!("payment: charged {amount} for {id} (attempt {attempt})");
                    (
                        200,
                        json!({ "charge_id": format!("ch_{id}"), "amount": amount }),
                    )
                }
            }
        });
    }
}
