//! `spin` — a muon test fixture that never finishes.
//!
//! Prints `spin: starting` to stdout and then loops forever doing pure
//! computation with no host calls, so only epoch/fuel interruption (the
//! host's timeout) can stop it. It never sets a response.

use wasi::http::types::{IncomingRequest, ResponseOutparam};

wasi::http::proxy::export!(Spin);

struct Spin;

impl wasi::exports::http::incoming_handler::Guest for Spin {
    fn handle(_request: IncomingRequest, _response_out: ResponseOutparam) {
        println!("spin: starting");
        let mut x: u64 = 1;
        loop {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            std::hint::black_box(x);
        }
    }
}
