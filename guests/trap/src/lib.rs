//! `trap` — a muon test fixture that traps.
//!
//! Prints `trap: about to panic` to stderr and then panics before setting any
//! response, so the host sees a guest trap (and should answer 500 itself).

use wasi::http::types::{IncomingRequest, ResponseOutparam};

wasi::http::proxy::export!(Trap);

struct Trap;

impl wasi::exports::http::incoming_handler::Guest for Trap {
    fn handle(_request: IncomingRequest, _response_out: ResponseOutparam) {
        eprintln!("trap: about to panic");
        panic!("intentional trap from guest");
    }
}
