//! `membomb` — a muon test fixture that allocates without bound.
//!
//! Keeps pushing filled 1 MiB chunks into a vector until the host's memory
//! limit makes an allocation fail (which traps the guest). It reports progress
//! as `membomb: allocated N MiB` on stderr every 16 MiB and never responds.

use wasi::http::types::{IncomingRequest, ResponseOutparam};

wasi::http::proxy::export!(MemBomb);

struct MemBomb;

const MIB: usize = 1024 * 1024;

impl wasi::exports::http::incoming_handler::Guest for MemBomb {
    fn handle(_request: IncomingRequest, _response_out: ResponseOutparam) {
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        loop {
            // Fill the chunk so the pages are really touched.
            let chunk = std::hint::black_box(vec![0xA5u8; MIB]);
            chunks.push(chunk);
            std::hint::black_box(&chunks);
            if chunks.len().is_multiple_of(16) {
                eprintln!("membomb: allocated {} MiB", chunks.len());
            }
        }
    }
}
