//! Who may call the control API.
//!
//! Two kinds of credentials, both sent as `Authorization: Bearer`:
//! - API keys (`mk_...`, see [`crate::keys`]) with a scope: `read`, `invoke` or `admin`. Off
//!   loopback (or with `muon up --auth`) every request but `GET /v1/health` must carry one whose
//!   scope covers the operation; on loopback without `--auth` (dev mode) a request without
//!   credentials is served, but a presented key is still checked and held to its scope.
//! - The events token of functions with `publish_events` (`MUON_EVENTS_TOKEN`): PutEvents and
//!   CloudEvents ingest, nothing else, in any mode.
//!
//! - SigV4 signatures (the AWS SDKs and CLI), for keys made with `--aws`: the access key ID
//!   names the key, the signature is verified over the request and its body, and the key's
//!   scope applies as for a Bearer key. In dev mode a signature that names no muon key (the
//!   dummy credentials SDKs are given locally) counts as no credentials.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::keys::{self, Key};

/// How stale the cached keys may be: a key made or revoked with `muon keys` counts within this.
const KEYS_FRESH_FOR: Duration = Duration::from_secs(1);

/// The API keys, read from the store and cached.
pub(crate) struct Keys {
    store: Arc<dyn muon_store::Store>,
    /// Opens the secrets of SigV4 keys (`master.key` of the data folder), when there is one.
    master: Option<[u8; 32]>,
    cached: tokio::sync::Mutex<(Option<Instant>, Arc<Vec<Key>>)>,
}

impl Keys {
    pub(crate) fn new(store: Arc<dyn muon_store::Store>, master: Option<[u8; 32]>) -> Self {
        Self {
            store,
            master,
            cached: tokio::sync::Mutex::new((None, Arc::new(Vec::new()))),
        }
    }

    async fn current(&self) -> Result<Arc<Vec<Key>>, muon_store::Error> {
        let mut cached = self.cached.lock().await;
        if cached.0.is_none_or(|at| at.elapsed() > KEYS_FRESH_FOR) {
            let keys = self
                .store
                .keys()
                .await?
                .iter()
                .filter_map(|r| match Key::from_record(r) {
                    Ok(k) => Some(k),
                    Err(e) => {
                        tracing::error!("{e}");
                        None
                    }
                })
                .collect();
            *cached = (Some(Instant::now()), Arc::new(keys));
        }
        Ok(cached.1.clone())
    }
}

/// Checks the credentials a request presents, then serves it.
pub(crate) async fn authorize(
    State(state): State<crate::State>,
    request: Request,
    next: Next,
) -> Response {
    let config = &state.inner.config;
    if let Some(header) = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && header.starts_with("AWS4-HMAC-SHA256 ")
    {
        let header = header.to_owned();
        // Dev mode: the SDKs sign with whatever credentials they have (dummy ones, usually);
        // only a signature that names a muon key is held to it.
        if !config.require_auth && !names_a_key(&state, &header).await {
            return next.run(request).await;
        }
        return match signed(&state, &header, request).await {
            Ok((scope, request)) => within_scope(scope, request, next).await,
            Err(refusal) => refusal,
        };
    }
    let Some(presented) = bearer(&request) else {
        let open = request.uri().path() == "/v1/health" && request.method() == http::Method::GET;
        if config.require_auth && !open {
            return refuse(
                &request,
                http::StatusCode::UNAUTHORIZED,
                "MissingAuthenticationToken",
                "this control API needs an API key: send `Authorization: Bearer <key>` (make one with `muon keys create NAME --scope read|invoke|admin`; the CLI sends MUON_API_KEY), or sign with SigV4 using a key made with `--aws`.",
            );
        }
        return next.run(request).await;
    };
    if let Some(token) = config.events_token.as_deref()
        && same(presented.as_bytes(), token.as_bytes())
    {
        return if puts_events(&request) {
            next.run(request).await
        } else {
            refuse(
                &request,
                http::StatusCode::FORBIDDEN,
                "AccessDeniedException",
                "this token may only put events (PutEvents or CloudEvents)",
            )
        };
    }
    let scope = match &state.inner.keys {
        Some(keys) => match keys.current().await {
            Ok(current) => keys::check(&current, presented),
            Err(e) => {
                return refuse(
                    &request,
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    &format!("cannot read the API keys: {e}"),
                );
            }
        },
        None => None,
    };
    let Some(scope) = scope else {
        return refuse(
            &request,
            http::StatusCode::UNAUTHORIZED,
            "UnrecognizedClientException",
            "the bearer token is not a key muon issued, or it was revoked",
        );
    };
    within_scope(scope, request, next).await
}

/// Serves `request` if `scope` covers its operation.
async fn within_scope(scope: keys::Scope, request: Request, next: Next) -> Response {
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok());
    let needed = keys::needed(request.method(), request.uri().path(), target);
    if scope < needed {
        let message = format!(
            "this key's scope is {}; the operation needs {}",
            scope.as_str(),
            needed.as_str()
        );
        return refuse(
            &request,
            http::StatusCode::FORBIDDEN,
            "AccessDeniedException",
            &message,
        );
    }
    next.run(request).await
}

/// Whether a SigV4 `Authorization` header names one of muon's keys (active or not).
async fn names_a_key(state: &crate::State, header: &str) -> bool {
    let Some(auth) = crate::sigv4::parse(header) else {
        return false;
    };
    let Some(id) = auth.access_key.strip_prefix("MK") else {
        return false;
    };
    let id = id.to_ascii_lowercase();
    match &state.inner.keys {
        Some(keys) => keys
            .current()
            .await
            .map(|current| current.iter().any(|k| k.id == id))
            .unwrap_or(true),
        None => false,
    }
}

/// The largest body a SigV4 request may have: it is read whole to check the signature (the
/// control API's own bound).
const MAX_SIGNED_BODY: usize = 2 << 20;

/// Verifies a SigV4-signed request: the key it names, the signature over it and its body.
/// Gives back the key's scope and the request (its body read).
async fn signed(
    state: &crate::State,
    header: &str,
    request: Request,
) -> Result<(keys::Scope, Request), Response> {
    let deny = |request: &Request, status, code: &str, message: &str| {
        Err(refuse(request, status, code, message))
    };
    let Some(auth) = crate::sigv4::parse(header) else {
        return deny(
            &request,
            http::StatusCode::BAD_REQUEST,
            "IncompleteSignature",
            "the Authorization header is not a whole SigV4 signature",
        );
    };
    let Some((keys, master)) = state.inner.keys.as_ref().and_then(|k| Some((k, k.master?))) else {
        return deny(
            &request,
            http::StatusCode::FORBIDDEN,
            "UnrecognizedClientException",
            "this muon has no SigV4 keys: make one with `muon keys create NAME --aws`",
        );
    };
    let current = match keys.current().await {
        Ok(c) => c,
        Err(e) => {
            return deny(
                &request,
                http::StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                &format!("cannot read the API keys: {e}"),
            );
        }
    };
    let Some(key) = keys::by_access_key(&current, auth.access_key) else {
        return deny(
            &request,
            http::StatusCode::FORBIDDEN,
            "UnrecognizedClientException",
            "The security token included in the request is invalid: no active key has this access key ID",
        );
    };
    let Some(secret) = key.sigv4_secret(&master) else {
        return deny(
            &request,
            http::StatusCode::FORBIDDEN,
            "UnrecognizedClientException",
            "this key was not made for SigV4 (`muon keys create NAME --aws`)",
        );
    };
    let scope = key.scope;
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_SIGNED_BODY).await {
        Ok(b) => b,
        Err(_) => {
            let request = Request::from_parts(parts, axum::body::Body::empty());
            return deny(
                &request,
                http::StatusCode::PAYLOAD_TOO_LARGE,
                "SerializationException",
                "the request body is larger than 2 MiB",
            );
        }
    };
    let signed = crate::sigv4::Signed {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        body: &body,
    };
    let now = chrono::Utc::now().timestamp();
    let verdict = crate::sigv4::verify(&auth, &secret, &signed, now);
    let request = Request::from_parts(parts, axum::body::Body::from(body));
    match verdict {
        Ok(()) => Ok((scope, request)),
        Err(why) => deny(
            &request,
            http::StatusCode::FORBIDDEN,
            if why.starts_with("Signature expired") {
                "InvalidSignatureException"
            } else {
                "SignatureDoesNotMatch"
            },
            &why,
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
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
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
