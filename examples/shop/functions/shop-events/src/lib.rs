//! What the shop's functions share: reading the incoming request (an event the bus delivers, or
//! a task of the `order` workflow), answering it, and publishing events to muon's bus (PutEvents
//! at `MUON_EVENTS_URL` with the token in `MUON_EVENTS_TOKEN`, which `publish_events = true` in
//! `muon.toml` grants).

use serde_json::{Value, json};
use wasi::http::outgoing_handler;
use wasi::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};
use wasi::io::streams::{InputStream, OutputStream, StreamError};

/// Requests larger than this are refused.
const MAX_BODY: usize = 1024 * 1024;

/// An incoming request, read whole.
pub struct Request {
    pub method: Method,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn read(request: IncomingRequest) -> Result<Request, String> {
        let headers = request
            .headers()
            .entries()
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_ascii_lowercase(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect();
        let method = request.method();
        let path = request.path_with_query().unwrap_or_else(|| "/".into());
        let incoming = request.consume().map_err(|()| "no body".to_string())?;
        let body = {
            let stream = incoming
                .stream()
                .map_err(|()| "no body stream".to_string())?;
            read_all(&stream, MAX_BODY)?
        };
        drop(incoming);
        Ok(Request {
            method,
            path,
            headers,
            body,
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("the body is not JSON: {e}"))
    }

    /// Whether the bus delivered this request as an event: it then has CloudEvents binary-mode
    /// headers (`ce-id`, `ce-type`, ...). A workflow's task has none.
    pub fn is_event(&self) -> bool {
        self.headers.iter().any(|(k, _)| k.starts_with("ce-"))
    }
}

fn read_all(stream: &InputStream, limit: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                body.extend_from_slice(&chunk);
                if body.len() > limit {
                    return Err(format!("the body is larger than {limit} bytes"));
                }
            }
            Err(StreamError::Closed) => return Ok(body),
            Err(StreamError::LastOperationFailed(e)) => return Err(e.to_debug_string()),
        }
    }
}

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

/// Handle an event the bus delivers (a POST: CloudEvents headers such as `ce-id` and `ce-type`,
/// the EventBridge envelope as the body): `f` gets the request and the parsed event and says
/// what to answer. A body that is not JSON is answered with 400.
pub fn on_event(
    request: IncomingRequest,
    out: ResponseOutparam,
    f: impl FnOnce(&Request, &Value) -> (u16, Value),
) {
    let (status, body) = match Request::read(request).and_then(|r| {
        let event = r.json()?;
        Ok((r, event))
    }) {
        Ok((request, event)) => f(&request, &event),
        Err(why) => (400, json!({ "error": why })),
    };
    respond(out, status, &body);
}

/// Handle a workflow's task (a POST whose JSON body is the task input): `f` gets the request and
/// the input and says what to answer. A 2xx answer's body is the task's result; for a failure,
/// answer with [`task_error`]. A body that is not JSON is answered with 400 `InvalidInput`.
pub fn on_task(
    request: IncomingRequest,
    out: ResponseOutparam,
    f: impl FnOnce(&Request, &Value) -> (u16, Value),
) {
    let (status, body) = match Request::read(request).and_then(|r| {
        let input = r.json()?;
        Ok((r, input))
    }) {
        Ok((request, input)) => f(&request, &input),
        Err(why) => task_error(400, "InvalidInput", why),
    };
    respond(out, status, &body);
}

/// Handle an order either way it comes: as an `OrderPlaced` event from the bus (the order is
/// the event's `detail`, see [`on_event`]) or as a task of the `order` workflow (the body is the
/// order, see [`on_task`]). `f` gets the request and the order.
pub fn on_order(
    request: IncomingRequest,
    out: ResponseOutparam,
    f: impl FnOnce(&Request, &Value) -> (u16, Value),
) {
    let (status, body) = match Request::read(request) {
        Err(why) => (400, json!({ "error": why })),
        Ok(r) => match (r.json(), r.is_event()) {
            (Ok(event), true) => f(&r, &event["detail"]),
            (Ok(order), false) => f(&r, &order),
            (Err(why), true) => (400, json!({ "error": why })),
            (Err(why), false) => task_error(400, "InvalidInput", why),
        },
    };
    respond(out, status, &body);
}

/// A failed task's answer, as a Lambda function reports errors: the workflow sees `error_type`
/// as the error's name (what `Retry` and `Catch` match) and the body as its cause.
pub fn task_error(status: u16, error_type: &str, message: impl Into<String>) -> (u16, Value) {
    let message = message.into();
    (
        status,
        json!({ "errorType": error_type, "errorMessage": message }),
    )
}

/// How many items an order holds: the sum of its items' `qty`.
pub fn item_count(order: &Value) -> u64 {
    order["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|i| i["qty"].as_u64()).sum())
        .unwrap_or(0)
}

/// Answer with `status` and a JSON body.
pub fn respond(out: ResponseOutparam, status: u16, body: &Value) {
    let headers =
        Fields::from_list(&[("content-type".into(), b"application/json".to_vec())]).unwrap();
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let outgoing = response.body().unwrap();
    ResponseOutparam::set(out, Ok(response));
    let stream = outgoing.write().unwrap();
    let mut text = body.to_string();
    text.push('\n');
    if write_all(&stream, text.as_bytes()).is_ok() {
        drop(stream);
        let _ = OutgoingBody::finish(outgoing, None);
    }
}

/// Publish one event on the default bus. `traceparent` (the one this function received with
/// the event it handles) links the new event to that delivery in `muon events trace`.
/// Returns the new event's ID.
pub fn publish(
    source: &str,
    detail_type: &str,
    detail: &Value,
    traceparent: Option<&str>,
) -> Result<String, String> {
    let url = std::env::var("MUON_EVENTS_URL").map_err(|_| {
        "MUON_EVENTS_URL is not set: add `publish_events = true` to this function in muon.toml"
            .to_string()
    })?;
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("MUON_EVENTS_URL is not a URL")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let token = std::env::var("MUON_EVENTS_TOKEN")
        .map_err(|_| "MUON_EVENTS_TOKEN is not set: muon gives it with MUON_EVENTS_URL")?;
    let mut headers = vec![
        ("content-type".to_string(), b"application/json".to_vec()),
        ("authorization".to_string(), format!("Bearer {token}").into_bytes()),
    ];
    if let Some(t) = traceparent {
        headers.push(("traceparent".into(), t.as_bytes().to_vec()));
    }
    let request = OutgoingRequest::new(Fields::from_list(&headers).map_err(|e| format!("{e:?}"))?);
    request.set_method(&Method::Post).map_err(|()| "method")?;
    request
        .set_scheme(Some(&if scheme == "https" {
            Scheme::Https
        } else {
            Scheme::Http
        }))
        .map_err(|()| "scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| "authority")?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| "path")?;
    let body = json!({"Entries": [{
        "Source": source,
        "DetailType": detail_type,
        "Detail": detail.to_string(),
    }]})
    .to_string();
    let outgoing = request.body().map_err(|()| "request body")?;
    let future = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    {
        let stream = outgoing.write().map_err(|()| "request stream")?;
        write_all(&stream, body.as_bytes()).map_err(|e| format!("{e:?}"))?;
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| format!("{e:?}"))?;
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(r))) => r,
        Some(Ok(Err(code))) => return Err(format!("publishing failed: {code:?}")),
        _ => return Err("publishing failed: no response".into()),
    };
    let status = response.status();
    let incoming = response.consume().map_err(|()| "response body")?;
    let text = {
        let stream = incoming.stream().map_err(|()| "response stream")?;
        read_all(&stream, MAX_BODY)?
    };
    drop(incoming);
    let answer: Value = serde_json::from_slice(&text).map_err(|e| e.to_string())?;
    match answer["Entries"][0]["EventId"].as_str() {
        Some(id) if status == 200 => Ok(id.to_string()),
        _ => Err(format!("the bus refused the event ({status}): {answer}")),
    }
}
