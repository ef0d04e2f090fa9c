//! muon's HTTP front: the gateway that routes app traffic to functions, and the control API.
//!
//! The gateway is a bare hyper service (HTTP/1.1 and HTTP/2) over a route table built once at
//! start: an exact-path map and a list of prefixes, longest first. It streams request and
//! response bodies, bounds request bodies (413), and touches no storage on the request path.
//! The control API (REST under `/v1`, axum) lists functions, invokes them, and reads and follows
//! their invocations and logs from the invoker's in-memory journal.

mod auth;
mod control;
mod eventbridge;
mod events;
mod flows;
mod gateway;
pub mod keys;
mod sigv4;
#[cfg(target_os = "linux")]
mod uring;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http_body_util::BodyExt;
use muon_runtime::LimitedBody;

use muon_runtime::Invoker;
use tokio::net::TcpListener;

pub use gateway::Routes;

/// The largest request body accepted unless configured otherwise: Lambda's 6 MB sync payload.
pub const DEFAULT_MAX_BODY: u64 = 6 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Config {
    pub app: String,
    /// Request bodies larger than this are refused with 413.
    pub max_body: u64,
    /// Threads serving app traffic, each with its own single-threaded runtime.
    pub workers: usize,
    /// Serve app connections through io_uring (Linux; HTTP/1.1 and h2c, no upgrades), falling
    /// back to epoll where the kernel refuses it.
    pub io_uring: bool,
    /// The token functions with `publish_events` present (`MUON_EVENTS_TOKEN`): it grants
    /// putting events and nothing else.
    pub events_token: Option<String>,
    /// Every control-API request (but `GET /v1/health`) must carry an API key: always off
    /// loopback, on loopback with `muon up --auth`.
    pub require_auth: bool,
}

impl Config {
    /// One gateway worker per available core.
    pub fn default_workers() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// What both servers share. Cheap to clone.
#[derive(Clone)]
pub struct State {
    inner: Arc<StateInner>,
}

struct StateInner {
    config: Config,
    /// Turns true at shutdown: live streams (logs, event tails) end then.
    stopping: tokio::sync::watch::Sender<bool>,
    invoker: Invoker,
    routes: Routes,
    bus: Option<muon_bus::Bus>,
    flows: Option<muon_flow::Flows>,
    keys: Option<auth::Keys>,
    /// The durable store, for `/v1/health` to say whether it writes.
    store: Option<Arc<dyn muon_store::Store>>,
}

impl State {
    pub fn new(config: Config, invoker: Invoker) -> Self {
        let routes = Routes::new(
            invoker
                .functions()
                .filter_map(|f| Some((f.route.clone()?, f.name.clone()))),
        );
        Self {
            inner: Arc::new(StateInner {
                config,
                stopping: tokio::sync::watch::Sender::new(false),
                invoker,
                routes,
                bus: None,
                flows: None,
                keys: None,
                store: None,
            }),
        }
    }

    /// The same state with an event bus whose API the control server serves.
    pub fn with_bus(self, bus: muon_bus::Bus) -> Self {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|_| {
            panic!("with_bus is called while building the state, before it is shared")
        });
        Self {
            inner: Arc::new(StateInner {
                bus: Some(bus),
                ..inner
            }),
        }
    }

    pub fn with_flows(self, flows: muon_flow::Flows) -> Self {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|_| {
            panic!("with_flows is called while building the state, before it is shared")
        });
        Self {
            inner: Arc::new(StateInner {
                flows: Some(flows),
                ..inner
            }),
        }
    }

    /// The same state with the durable store: API keys are checked against its keys (`master`
    /// opens the secrets of keys that sign with SigV4), and `/v1/health` reports whether it
    /// writes.
    pub fn with_store(self, store: Arc<dyn muon_store::Store>, master: Option<[u8; 32]>) -> Self {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|_| {
            panic!("with_store is called while building the state, before it is shared")
        });
        Self {
            inner: Arc::new(StateInner {
                keys: Some(auth::Keys::new(store.clone(), master)),
                store: Some(store),
                ..inner
            }),
        }
    }

    pub fn flows(&self) -> Option<&muon_flow::Flows> {
        self.inner.flows.as_ref()
    }

    pub fn bus(&self) -> Option<&muon_bus::Bus> {
        self.inner.bus.as_ref()
    }

    pub fn invoker(&self) -> &Invoker {
        &self.inner.invoker
    }

    pub fn routes(&self) -> &Routes {
        &self.inner.routes
    }

    /// What live streams watch to end at shutdown.
    fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.stopping.subscribe()
    }
}

/// Serve app traffic on `gateway` and the control API on `control` until `shutdown` resolves,
/// then stop accepting and wait for requests in flight.
pub async fn serve(
    state: State,
    gateway: TcpListener,
    control: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopping = state.inner.stopping.clone();
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
        // Followers of logs and event tails would keep the control API's graceful shutdown
        // waiting forever: their streams end now.
        let _ = stopping.send(true);
    });
    let control_app = control::router(state.clone());
    let mut control_stop = stop_rx.clone();
    let control_task = tokio::spawn(async move {
        axum::serve(control, control_app)
            .with_graceful_shutdown(async move {
                let _ = control_stop.wait_for(|s| *s).await;
            })
            .await
    });
    let gateway_result = gateway::serve(state, gateway, stop_rx).await;
    let control_result = control_task
        .await
        .map_err(|e| std::io::Error::other(format!("control API task failed: {e}")))?;
    gateway_result.and(control_result)
}

/// The address a listener is bound to, for messages.
pub fn local_addr(listener: &TcpListener) -> SocketAddr {
    listener
        .local_addr()
        .expect("a bound listener has an address")
}

/// A failed AWS-protocol or workflow operation: its HTTP status, AWS error name and message.
pub(crate) struct Failure {
    pub(crate) status: http::StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

/// An operation's answer on one of AWS's JSON protocols (`content_type` names which): the
/// result, or `{"__type", "message"}` with the failure's status.
pub(crate) fn aws_response(
    content_type: &'static str,
    answer: Result<serde_json::Value, Failure>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let content_type = [(http::header::CONTENT_TYPE, content_type)];
    match answer {
        Ok(v) => (content_type, v.to_string()).into_response(),
        Err(f) => (
            f.status,
            content_type,
            serde_json::json!({ "__type": f.code, "message": f.message }).to_string(),
        )
            .into_response(),
    }
}

fn error_json(error: &str, message: impl Into<String>, invocation: Option<String>) -> bytes::Bytes {
    serde_json::to_vec(&muon_api::ErrorBody {
        error: error.to_string(),
        message: message.into(),
        invocation_id: invocation,
    })
    .expect("error bodies serialize")
    .into()
}

/// What a broadcast receiver gets, as a stream that ends when `stop` turns true (shutdown);
/// items missed while lagging are skipped.
fn broadcast_stream<T: Clone + Send + 'static>(
    rx: tokio::sync::broadcast::Receiver<T>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::unfold((rx, stop), |(mut rx, mut stop)| async move {
        loop {
            let received = tokio::select! {
                r = rx.recv() => r,
                _ = stop.wait_for(|s| *s) => return None,
            };
            match received {
                Ok(item) => return Some((item, (rx, stop))),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

/// A streaming `application/x-ndjson` answer: each item as one JSON object per line.
fn ndjson<T: serde::Serialize>(
    items: impl futures::Stream<Item = T> + Send + 'static,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use futures::StreamExt;
    let lines = items.map(|item| {
        let mut json = serde_json::to_vec(&item).expect("wire types serialize");
        json.push(b'\n');
        Ok::<_, std::convert::Infallible>(bytes::Bytes::from(json))
    });
    http::Response::builder()
        .header(http::header::CONTENT_TYPE, "application/x-ndjson")
        .header(http::header::CACHE_CONTROL, "no-cache")
        .body(axum::body::Body::from_stream(lines))
        .expect("a streaming response is valid")
        .into_response()
}

/// An error answer with a JSON body, as both servers send them.
fn error_response(
    status: http::StatusCode,
    error: &str,
    message: impl Into<String>,
    invocation: Option<muon_types::InvocationId>,
) -> muon_runtime::Response {
    let mut builder = http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(muon_api::ERROR_HEADER, error);
    if let Some(id) = invocation {
        builder = builder.header(muon_api::INVOCATION_ID_HEADER, id.to_string());
    }
    builder
        .body(muon_runtime::full(error_json(
            error,
            message,
            invocation.map(|i| i.to_string()),
        )))
        .expect("a JSON error response is valid")
}

/// Answer for an invocation: the function's response, or an error that names the invocation.
fn invocation_response(
    id: muon_types::InvocationId,
    result: Result<muon_runtime::Response, muon_runtime::Failure>,
    body_too_large: bool,
    max_body: u64,
) -> muon_runtime::Response {
    if body_too_large {
        return error_response(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than the limit of {max_body} bytes"),
            Some(id),
        );
    }
    match result {
        Ok(response) => response,
        Err(failure) => error_response(
            failure.http_status(),
            failure.status.as_str(),
            format!(
                "{}; see `muon logs` or GET /v1/invocations/{id}",
                first_line(&failure.message)
            ),
            Some(id),
        ),
    }
}

/// Bound a request's body to `max_body` bytes. A declared length over the limit is answered with
/// 413 at once, and a declared body streams to the function (the flag returned says whether it
/// overran anyway). A body of undeclared length is read up to the limit first, so that one that is
/// too large is answered with 413 before any function runs.
async fn bounded<B>(
    request: http::Request<B>,
    max_body: u64,
) -> Result<(muon_runtime::Request, Arc<AtomicBool>), muon_runtime::Response>
where
    B: http_body::Body<Data = bytes::Bytes> + Unpin + Send + 'static,
    B::Error: Into<muon_runtime::BoxError>,
{
    let too_large = |detail: String| {
        error_response(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body {detail}is larger than the limit of {max_body} bytes"),
            None,
        )
    };
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(length) = declared.filter(|&l| l > max_body) {
        return Err(too_large(format!("({length} bytes) ")));
    }
    let (parts, body) = request.into_parts();
    let streams = declared.is_some() || body.is_end_stream();
    let (body, exceeded) = LimitedBody::new(body, max_body);
    if streams {
        return Ok((
            http::Request::from_parts(parts, body.boxed_unsync()),
            exceeded,
        ));
    }
    match body.collect().await {
        Ok(collected) => Ok((
            http::Request::from_parts(parts, muon_runtime::full(collected.to_bytes())),
            exceeded,
        )),
        Err(_) if exceeded.load(Ordering::Acquire) => Err(too_large(String::new())),
        Err(e) => Err(error_response(
            http::StatusCode::BAD_REQUEST,
            "bad_request",
            format!("cannot read the request body: {e}"),
            None,
        )),
    }
}

/// What is wrong with a request's `Host` headers, if anything: HTTP/1.1 asks for exactly one
/// (RFC 9112, section 3.2); HTTP/2 names the authority in `:authority` instead.
fn host_problem(version: http::Version, headers: &http::HeaderMap) -> Option<&'static str> {
    if version != http::Version::HTTP_11 {
        return None;
    }
    let mut hosts = headers.get_all(http::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), None) => None,
        (None, _) => Some("an HTTP/1.1 request needs a Host header"),
        (Some(_), Some(_)) => Some("an HTTP/1.1 request has one Host header, not several"),
    }
}

/// The answer to a request whose `Host` headers are wrong.
fn bad_host(why: &str) -> muon_runtime::Response {
    error_response(http::StatusCode::BAD_REQUEST, "bad_request", why, None)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}
