//! `echo` — a muon test fixture that streams the request body back.
//!
//! * Responds `200`, copying the request's `content-type` (if any), and adds
//!   `x-echo-method: <METHOD>` and `x-echo-path: <path with query>`.
//! * Every request header named `x-muon-*` or `traceparent` is mirrored as a
//!   response header `x-echo-<name>` with the same value.
//! * The body is streamed back chunk by chunk (never fully buffered), so
//!   multi-megabyte bodies are fine.
//! * If the request carries `x-echo-env: NAME`, the body is instead the value
//!   of the environment variable `NAME`, or `<unset>`.
//! * At the end it prints `echo: <n> bytes` (bytes written) to stderr.

use wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasi::io::streams::{InputStream, OutputStream, StreamError};

wasi::http::proxy::export!(Echo);

struct Echo;

/// Largest chunk read from the request or written to the response at once.
const CHUNK: u64 = 64 * 1024;

impl wasi::exports::http::incoming_handler::Guest for Echo {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let method = method_name(&request.method());
        let path = request.path_with_query().unwrap_or_else(|| "/".to_string());

        let mut headers: Vec<(String, Vec<u8>)> = vec![
            ("x-echo-method".to_string(), method.into_bytes()),
            ("x-echo-path".to_string(), path.into_bytes()),
        ];
        let mut env_name = None;
        for (name, value) in request.headers().entries() {
            let lower = name.to_ascii_lowercase();
            if lower == "content-type" {
                headers.push((lower, value));
            } else if lower.starts_with("x-muon-") || lower == "traceparent" {
                headers.push((format!("x-echo-{lower}"), value));
            } else if lower == "x-echo-env" {
                env_name = Some(String::from_utf8_lossy(&value).into_owned());
            }
        }

        let resp = OutgoingResponse::new(Fields::from_list(&headers).unwrap());
        let body = resp.body().unwrap();
        ResponseOutparam::set(response_out, Ok(resp));
        let out = body.write().unwrap();

        let written = match env_name {
            Some(name) => {
                let value = std::env::var(&name).unwrap_or_else(|_| "<unset>".to_string());
                write_all(&out, value.as_bytes()).map(|()| value.len() as u64)
            }
            None => match request.consume() {
                Ok(incoming) => {
                    let result = match incoming.stream() {
                        Ok(input) => copy(&input, &out),
                        Err(()) => Ok(0),
                    };
                    // The stream (a child of `incoming`) is dropped above; now
                    // the body itself can go.
                    drop(incoming);
                    result
                }
                Err(()) => Ok(0),
            },
        };

        let written = match written.and_then(|n| out.blocking_flush().map(|()| n)) {
            Ok(n) => n,
            Err(err) => {
                eprintln!("echo: stream error: {err:?}");
                return;
            }
        };
        drop(out);
        // Log before finishing: once the body is finished the host may
        // consider the request done.
        eprintln!("echo: {written} bytes");
        if let Err(err) = OutgoingBody::finish(body, None) {
            eprintln!("echo: finishing the body failed: {err:?}");
        }
    }
}

/// Copies `input` to `output` chunk by chunk until the input is closed.
fn copy(input: &InputStream, output: &OutputStream) -> Result<u64, StreamError> {
    let mut total = 0;
    loop {
        match input.blocking_read(CHUNK) {
            Ok(chunk) => {
                write_all(output, &chunk)?;
                total += chunk.len() as u64;
            }
            Err(StreamError::Closed) => return Ok(total),
            Err(err) => return Err(err),
        }
    }
}

/// Writes all of `data`, waiting for the stream to accept more as needed.
fn write_all(out: &OutputStream, mut data: &[u8]) -> Result<(), StreamError> {
    while !data.is_empty() {
        let permitted = out.check_write()?;
        if permitted == 0 {
            out.subscribe().block();
            continue;
        }
        let n = data.len().min(permitted.min(CHUNK) as usize);
        out.write(&data[..n])?;
        data = &data[n..];
    }
    Ok(())
}

fn method_name(method: &Method) -> String {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(other) => other,
    }
    .to_string()
}
