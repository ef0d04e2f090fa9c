//! `bigbody` — a muon test fixture that streams a large response.
//!
//! Responds `200 application/octet-stream` with a body of `N` bytes, where `N`
//! comes from the query string `?bytes=N` (default 10 MiB). Byte `i` of the
//! body is `(i % 251) as u8`, so clients can verify the content. The body is
//! produced and written in chunks of at most 64 KiB, never built in memory.

use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasi::io::streams::{OutputStream, StreamError};

wasi::http::proxy::export!(BigBody);

struct BigBody;

const DEFAULT_BYTES: u64 = 10 * 1024 * 1024;
const CHUNK: u64 = 64 * 1024;

impl wasi::exports::http::incoming_handler::Guest for BigBody {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let total = request
            .path_with_query()
            .and_then(|p| query_param(&p, "bytes").and_then(|v| v.parse().ok()))
            .unwrap_or(DEFAULT_BYTES);

        let headers = Fields::from_list(&[(
            "content-type".to_string(),
            b"application/octet-stream".to_vec(),
        )])
        .unwrap();
        let resp = OutgoingResponse::new(headers);
        let body = resp.body().unwrap();
        ResponseOutparam::set(response_out, Ok(resp));
        let out = body.write().unwrap();

        if let Err(err) = stream_pattern(&out, total) {
            eprintln!("bigbody: stream error: {err:?}");
            return;
        }
        drop(out);
        if let Err(err) = OutgoingBody::finish(body, None) {
            eprintln!("bigbody: finishing the body failed: {err:?}");
        }
    }
}

/// Writes `total` bytes of the `i % 251` pattern, honouring `check_write`.
fn stream_pattern(out: &OutputStream, total: u64) -> Result<(), StreamError> {
    let mut offset = 0u64;
    let mut buf = Vec::with_capacity(CHUNK as usize);
    while offset < total {
        let permitted = out.check_write()?;
        if permitted == 0 {
            out.subscribe().block();
            continue;
        }
        let n = permitted.min(CHUNK).min(total - offset);
        buf.clear();
        buf.extend((offset..offset + n).map(|i| (i % 251) as u8));
        out.write(&buf)?;
        offset += n;
    }
    out.blocking_flush()
}

/// The value of `key` in the query part of `path_with_query`, if present.
fn query_param<'a>(path_with_query: &'a str, key: &str) -> Option<&'a str> {
    let (_, query) = path_with_query.split_once('?')?;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}
