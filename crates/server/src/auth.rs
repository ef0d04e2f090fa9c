//! Who may call the control API.
//!
//! A function with `publish_events` holds a token scoped to putting events (`MUON_EVENTS_TOKEN`,
//! sent as `Authorization: Bearer`): with it, PutEvents and CloudEvents ingest are served and
//! every other operation is refused, whatever the address the control API listens on. API keys
//! for people (scopes `read`, `invoke`, `admin`) are not built yet: the control API refuses to
//! listen off loopback until they are (see `muon up`).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Checks the credentials a request presents, then serves it.
pub(crate) async fn authorize(
    State(state): State<crate::State>,
    request: Request,
    next: Next,
) -> Response {
    let Some(presented) = bearer(&request) else {
        return next.run(request).await;
    };
    match state.inner.config.events_token.as_deref() {
        Some(token) if same(presented.as_bytes(), token.as_bytes()) => {
            if puts_events(&request) {
                next.run(request).await
            } else {
                refuse(
                    &request,
                    http::StatusCode::FORBIDDEN,
                    "AccessDeniedException",
                    "this token may only put events (PutEvents or CloudEvents)",
                )
            }
        }
        _ => refuse(
            &request,
            http::StatusCode::UNAUTHORIZED,
            "UnrecognizedClientException",
            "the bearer token is not one muon issued",
        ),
    }
}

fn bearer(request: &Request) -> Option<&str> {
    let value = request.headers().get(http::header::AUTHORIZATION)?;
    value.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// Whether the request is one the events token grants: putting events, on any protocol.
fn puts_events(request: &Request) -> bool {
    if request.method() != http::Method::POST {
        return false;
    }
    let path = request.uri().path();
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok());
    path == "/v1/events"
        || (path == "/" && target == Some("AWSEvents.PutEvents"))
        || path
            .strip_prefix("/v1/buses/")
            .and_then(|rest| rest.strip_suffix("/cloudevents"))
            .is_some_and(|bus| !bus.is_empty() && !bus.contains('/'))
}

/// Compares two secrets in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn refuse(request: &Request, status: http::StatusCode, code: &str, message: &str) -> Response {
    if request.headers().contains_key("x-amz-target") {
        let body = serde_json::json!({ "__type": code, "message": message }).to_string();
        return (
            status,
            [(http::header::CONTENT_TYPE, "application/x-amz-json-1.1")],
            body,
        )
            .into_response();
    }
    crate::error_response(status, "forbidden", message, None).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, path: &str, target: Option<&str>) -> Request {
        let mut b = http::Request::builder().method(method).uri(path);
        if let Some(t) = target {
            b = b.header("x-amz-target", t);
        }
        b.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn the_events_token_grants_putting_events_only() {
        assert!(puts_events(&request("POST", "/v1/events", None)));
        assert!(puts_events(&request(
            "POST",
            "/",
            Some("AWSEvents.PutEvents")
        )));
        assert!(puts_events(&request(
            "POST",
            "/v1/buses/orders/cloudevents",
            None
        )));
        assert!(!puts_events(&request("GET", "/v1/events", None)));
        assert!(!puts_events(&request(
            "POST",
            "/",
            Some("AWSEvents.PutRule")
        )));
        assert!(!puts_events(&request(
            "POST",
            "/",
            Some("AWSStepFunctions.StartExecution")
        )));
        assert!(!puts_events(&request(
            "POST",
            "/v1/functions/x/invoke",
            None
        )));
        assert!(!puts_events(&request(
            "POST",
            "/v1/buses//cloudevents",
            None
        )));
        assert!(!puts_events(&request("POST", "/v1/dlq/redrive", None)));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
