//! `outbound` — a muon test fixture for outgoing HTTP requests.
//!
//! Reads `?url=<percent-encoded URL>`, makes an outgoing `GET` to it through
//! `wasi:http/outgoing-handler`, and responds `200` with the body
//! `status=<upstream status>\n` followed by (up to 64 KiB of) the upstream
//! body. If the outgoing request fails at any step with an `ErrorCode` (for
//! example because the host denies it), it responds `502` with the body
//! `error=<ErrorCode variant>\n`, e.g. `error=HttpRequestDenied`. It never
//! panics on such errors. With `&bearer_env=NAME`, the request carries
//! `Authorization: Bearer <value of the environment variable NAME>`.

use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingRequest, IncomingResponse, Method, OutgoingBody, OutgoingRequest,
    OutgoingResponse, ResponseOutparam, Scheme,
};
use wasi::io::streams::{OutputStream, StreamError};

wasi::http::proxy::export!(Outbound);

struct Outbound;

/// Most upstream body bytes copied into the response.
const MAX_UPSTREAM_BODY: usize = 64 * 1024;

impl wasi::exports::http::incoming_handler::Guest for Outbound {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        // `?hostless=/path&forge=HOST`: a request without an authority whose Host header is
        // forged (the shape of Spin's CVE-2024-32980); the host must refuse both.
        if let Some(path) = query_param(&path_with_query, "hostless").map(percent_decode) {
            let forged = query_param(&path_with_query, "forge")
                .map(percent_decode)
                .unwrap_or_default();
            let body = hostless(&path, &forged);
            respond(response_out, 502, body.as_bytes());
            return;
        }
        let url = query_param(&path_with_query, "url").map(percent_decode);

        let (status, body) = match url {
            None => (400, b"error=missing ?url= parameter\n".to_vec()),
            Some(url) => match fetch(&url, query_param(&path_with_query, "bearer_env")) {
                Ok((upstream_status, upstream_body)) => {
                    let mut body = format!("status={upstream_status}\n").into_bytes();
                    body.extend_from_slice(&upstream_body);
                    (200, body)
                }
                Err(Failure::Code(code)) => {
                    (502, format!("error={}\n", describe(&code)).into_bytes())
                }
                Err(Failure::Other(msg)) => (502, format!("error={msg}\n").into_bytes()),
            },
        };
        respond(response_out, status, &body);
    }
}

/// Why an outgoing request did not produce a response.
enum Failure {
    /// The host reported a `wasi:http` error code.
    Code(ErrorCode),
    /// Anything else (bad URL, stream closed unexpectedly, ...).
    Other(String),
}

/// Performs `GET url`; returns the upstream status and up to 64 KiB of body.
fn fetch(url: &str, bearer_env: Option<&str>) -> Result<(u16, Vec<u8>), Failure> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| Failure::Other(format!("not an absolute URL: {url}")))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_string()),
    };

    let headers = Fields::new();
    if let Some(name) = bearer_env {
        let token = std::env::var(name).unwrap_or_default();
        headers
            .append("authorization", format!("Bearer {token}").as_bytes())
            .map_err(|_| Failure::Other("invalid authorization header".into()))?;
    }
    let outgoing = OutgoingRequest::new(headers);
    let invalid = |what: &str| Failure::Other(format!("invalid {what}"));
    outgoing
        .set_method(&Method::Get)
        .map_err(|()| invalid("method"))?;
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    outgoing
        .set_authority(Some(authority))
        .map_err(|()| invalid("authority"))?;
    outgoing
        .set_path_with_query(Some(&path))
        .map_err(|()| invalid("path"))?;

    // A GET has no body, but the body must still be finished so the host
    // knows the request is complete.
    let outgoing_body = outgoing.body().map_err(|()| invalid("request body"))?;
    let future = outgoing_handler::handle(outgoing, None).map_err(Failure::Code)?;
    OutgoingBody::finish(outgoing_body, None).map_err(Failure::Code)?;

    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(Failure::Code(code)),
        Some(Err(())) => return Err(Failure::Other("response already taken".into())),
        None => return Err(Failure::Other("response not ready".into())),
    };
    let status = response.status();
    let body = read_body(&response)?;
    Ok((status, body))
}

/// Tries a request with no authority and a forged Host header; says what the host did.
fn hostless(path: &str, forged_host: &str) -> String {
    let headers = Fields::new();
    let host_header = match headers.append("host", forged_host.as_bytes()) {
        Ok(()) => "accepted",
        Err(_) => "refused",
    };
    let outgoing = OutgoingRequest::new(headers);
    if outgoing.set_path_with_query(Some(path)).is_err() {
        return format!("host-header={host_header}\nerror=invalid path\n");
    }
    let Ok(body) = outgoing.body() else {
        return format!("host-header={host_header}\nerror=no body\n");
    };
    let outcome = match outgoing_handler::handle(outgoing, None) {
        Err(code) => format!("error={}", describe(&code)),
        Ok(future) => {
            let _ = OutgoingBody::finish(body, None);
            future.subscribe().block();
            match future.get() {
                Some(Ok(Ok(response))) => format!("status={}", response.status()),
                Some(Ok(Err(code))) => format!("error={}", describe(&code)),
                _ => "error=no response".to_string(),
            }
        }
    };
    format!("host-header={host_header}\n{outcome}\n")
}

/// Reads up to `MAX_UPSTREAM_BODY` bytes of `response`'s body.
fn read_body(response: &IncomingResponse) -> Result<Vec<u8>, Failure> {
    let incoming = response
        .consume()
        .map_err(|()| Failure::Other("upstream body already consumed".into()))?;
    let mut body = Vec::new();
    {
        let stream = incoming
            .stream()
            .map_err(|()| Failure::Other("upstream body stream unavailable".into()))?;
        while body.len() < MAX_UPSTREAM_BODY {
            let want = (MAX_UPSTREAM_BODY - body.len()) as u64;
            match stream.blocking_read(want) {
                Ok(chunk) => body.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(err)) => {
                    return Err(match wasi::http::types::http_error_code(&err) {
                        Some(code) => Failure::Code(code),
                        None => Failure::Other(err.to_debug_string()),
                    });
                }
            }
        }
    } // the stream must be dropped before its parent body
    drop(incoming);
    Ok(body)
}

/// `ErrorCode`'s variant, without the `ErrorCode::` prefix its `Debug` adds.
fn describe(code: &ErrorCode) -> String {
    let debug = format!("{code:?}");
    match debug.strip_prefix("ErrorCode::") {
        Some(rest) => rest.to_string(),
        None => debug,
    }
}

fn respond(response_out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers =
        Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())]).unwrap();
    let resp = OutgoingResponse::new(headers);
    // 200, 400 and 502 are all valid status codes, so this cannot fail.
    let _ = resp.set_status_code(status);
    let out_body = resp.body().unwrap();
    ResponseOutparam::set(response_out, Ok(resp));
    let out = out_body.write().unwrap();
    if let Err(err) = write_all(&out, body) {
        eprintln!("outbound: writing the response failed: {err:?}");
        return;
    }
    drop(out);
    if let Err(err) = OutgoingBody::finish(out_body, None) {
        eprintln!("outbound: finishing the response failed: {err:?}");
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
        let n = data.len().min(permitted as usize);
        out.write(&data[..n])?;
        data = &data[n..];
    }
    out.blocking_flush()
}

/// The raw value of `key` in the query part of `path_with_query`.
fn query_param<'a>(path_with_query: &'a str, key: &str) -> Option<&'a str> {
    let (_, query) = path_with_query.split_once('?')?;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// Decodes `%XX` escapes; a malformed escape is kept as it is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes[i] {
            b'%' => bytes
                .get(i + 1)
                .and_then(|&h| hex(h))
                .zip(bytes.get(i + 2).and_then(|&l| hex(l))),
            _ => None,
        };
        match escaped {
            Some((high, low)) => {
                out.push(high << 4 | low);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}
