//! The `hello` function of the muon hello example.
//!
//! Answers every request with `200 text/plain` and `Hello from muon!`, and
//! logs `hello: <METHOD> <path>` to stdout (muon collects function logs).

use wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wasi::http::proxy::export!(Hello);

struct Hello;

impl wasi::exports::http::incoming_handler::Guest for Hello {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_else(|| "/".to_string());
        let path = path.split('?').next().unwrap_or("/");
        println!("hello: {} {}", method_name(&request.method()), path);

        let headers =
            Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())]).unwrap();
        let resp = OutgoingResponse::new(headers);
        let body = resp.body().unwrap();
        ResponseOutparam::set(response_out, Ok(resp));
        let out = body.write().unwrap();
        out.blocking_write_and_flush(b"Hello from muon!\n").unwrap();
        drop(out);
        OutgoingBody::finish(body, None).unwrap();
    }
}

fn method_name(method: &Method) -> &str {
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
}
