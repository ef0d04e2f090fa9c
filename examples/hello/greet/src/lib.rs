//! The `greet` function of the muon hello example.
//!
//! `GET /greet/<name>` answers `200 application/json` with
//! `{"message":"<GREETING>, <name>!"}`, where `GREETING` comes from the
//! function's environment (set in `muon.toml`; `Hi` if unset) and `<name>`
//! is the last path segment (`world` if empty). Logs `greet: <name>`.

use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wasi::http::proxy::export!(Greet);

struct Greet;

impl wasi::exports::http::incoming_handler::Guest for Greet {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let name = match path.rsplit('/').next() {
            Some(segment) if !segment.is_empty() => segment,
            _ => "world",
        };
        println!("greet: {name}");

        let greeting = std::env::var("GREETING").unwrap_or_else(|_| "Hi".to_string());
        let body = format!(
            "{{\"message\":\"{}, {}!\"}}\n",
            json_escape(&greeting),
            json_escape(name)
        );

        let headers =
            Fields::from_list(&[("content-type".to_string(), b"application/json".to_vec())])
                .unwrap();
        let resp = OutgoingResponse::new(headers);
        let out_body = resp.body().unwrap();
        ResponseOutparam::set(response_out, Ok(resp));
        let out = out_body.write().unwrap();
        // Greetings are short; one call takes up to 4096 bytes.
        for chunk in body.as_bytes().chunks(4096) {
            out.blocking_write_and_flush(chunk).unwrap();
        }
        drop(out);
        OutgoingBody::finish(out_body, None).unwrap();
    }
}

/// Escapes `s` for use inside a JSON string literal.
fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}
