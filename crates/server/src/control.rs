//! The control API: REST under `/v1`.

use std::sync::atomic::Ordering;
use std::time::UNIX_EPOCH;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use futures::StreamExt;
use muon_runtime::{InvocationRecord, LogLine};
use muon_types::{FunctionName, InvocationId};
use serde::Deserialize;

use crate::{State, bounded, error_response, invocation_response};

pub fn router(state: State) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/functions", get(functions))
        .route("/v1/functions/{name}", get(function))
        .route("/v1/functions/{name}/invoke", any(invoke))
        .route("/v1/functions/{name}/invocations", get(invocations))
        .route("/v1/functions/{name}/logs", get(logs))
        .route("/v1/invocations/{id}", get(invocation))
        .route("/v1/events/test-pattern", axum::routing::post(test_pattern))
        .merge(crate::events::router())
        .merge(crate::flows::router())
        .fallback(|request: Request| async move {
            not_found(format!(
                "no API operation at {} {}",
                request.method(),
                request.uri().path()
            ))
        })
        .layer(axum::middleware::from_fn(to_completion))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(json_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::authorize,
        ))
        .with_state(state)
}

/// The largest control-API request body (the app gateway's bound is `--max-body`).
pub const MAX_BODY: usize = 2 << 20;

/// Errors answered before an operation ran (a body over [`MAX_BODY`], a malformed query string,
/// a wrong method) come from axum as plain text: they are answered in the API's own shape
/// instead, AWS's (`{"__type", "message"}`) on the AWS protocols, muon's JSON elsewhere.
async fn json_errors(request: Request, next: axum::middleware::Next) -> Response {
    if let Some(why) = crate::host_problem(request.version(), request.headers()) {
        return crate::bad_host(why).into_response();
    }
    let aws = request.headers().contains_key("x-amz-target");
    let logged = tracing::enabled!(target: "muon::access", tracing::Level::INFO).then(|| {
        let target = request
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .map(|t| format!(" {t}"))
            .unwrap_or_default();
        (
            std::time::Instant::now(),
            format!(
                "control {} {}{target}",
                request.method(),
                request.uri().path()
            ),
        )
    });
    let response = next.run(request).await;
    if let Some((started, what)) = logged {
        tracing::info!(
            target: "muon::access",
            "{what} {} {:.2}ms",
            response.status().as_u16(),
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
    let status = response.status();
    let plain = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return response;
    }
    let text = axum::body::to_bytes(response.into_body(), 64 << 10)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let (code, message) = match status {
        http::StatusCode::PAYLOAD_TOO_LARGE => (
            "ValidationException",
            format!("the request body is larger than {MAX_BODY} bytes, the control API's limit"),
        ),
        http::StatusCode::METHOD_NOT_ALLOWED => ("UnknownOperationException", text),
        http::StatusCode::UNSUPPORTED_MEDIA_TYPE => ("SerializationException", text),
        s if s.is_server_error() => ("InternalFailure", text),
        _ => ("ValidationException", text),
    };
    if aws {
        crate::aws_response(
            "application/x-amz-json-1.1",
            Err(crate::Failure {
                status,
                code,
                message,
            }),
        )
    } else {
        error_response(status, code, message, None).into_response()
    }
}

/// Runs each request's handler in a task of its own, to its end: an operation whose client
/// hangs up after sending it still commits and then acts on what it committed (schedules the
/// deliveries, starts the execution, updates the tables), instead of stopping in between.
async fn to_completion(request: Request, next: axum::middleware::Next) -> Response {
    match tokio::spawn(next.run(request)).await {
        Ok(response) => response,
        Err(e) => error_response(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the operation failed: {e}"),
            None,
        )
        .into_response(),
    }
}

type ApiResult<T> = Result<Json<T>, Response>;

fn not_found(message: String) -> Response {
    error_response(http::StatusCode::NOT_FOUND, "not_found", message, None).into_response()
}

fn bad_request(message: String) -> Response {
    error_response(http::StatusCode::BAD_REQUEST, "bad_request", message, None).into_response()
}

fn known(state: &State, name: &str) -> Result<FunctionName, Response> {
    state
        .invoker()
        .function(name)
        .map(|f| f.name.clone())
        .ok_or_else(|| not_found(format!("no function named {name:?}")))
}

/// `ok`, or 503 `degraded` with why while the store cannot write (what a load balancer asks).
async fn health(state: axum::extract::State<State>) -> Response {
    let store = state.inner.store.as_ref().and_then(|s| s.write_error());
    let health = muon_api::Health {
        status: if store.is_some() { "degraded" } else { "ok" }.into(),
        app: state.inner.config.app.clone(),
        functions: state.invoker().functions().count(),
        version: env!("CARGO_PKG_VERSION").into(),
        store,
    };
    let status = if health.store.is_some() {
        http::StatusCode::SERVICE_UNAVAILABLE
    } else {
        http::StatusCode::OK
    };
    (status, Json(health)).into_response()
}

fn function_info(state: &State, meta: &muon_runtime::FunctionMeta) -> muon_api::Function {
    let counts = state.invoker().journal().counts(&meta.name);
    muon_api::Function {
        name: meta.name.to_string(),
        runtime: meta.runtime.to_string(),
        route: meta.route.clone(),
        source: meta.source.clone(),
        memory_mb: meta.memory_mb,
        timeout_ms: meta.timeout.as_millis() as u64,
        min_instances: meta.min_instances,
        max_instances: meta.max_instances,
        instance_reuse: meta.instance_reuse,
        invocations: counts.invocations,
        failed: counts.failed,
    }
}

async fn functions(state: axum::extract::State<State>) -> Json<muon_api::FunctionList> {
    Json(muon_api::FunctionList {
        functions: state
            .invoker()
            .functions()
            .map(|f| function_info(&state, f))
            .collect(),
    })
}

async fn function(
    state: axum::extract::State<State>,
    Path(name): Path<String>,
) -> ApiResult<muon_api::Function> {
    let meta = state
        .invoker()
        .function(&name)
        .ok_or_else(|| not_found(format!("no function named {name:?}")))?;
    Ok(Json(function_info(&state, meta)))
}

#[derive(Deserialize)]
struct InvokeQuery {
    /// The path the function sees (default `/`).
    path: Option<String>,
    /// The method the function sees (default: the method of this request).
    method: Option<String>,
}

/// Invoke a function directly: the request body, headers and method are handed to it, at the
/// path `?path=` names; its response comes back as it is.
async fn invoke(
    state: axum::extract::State<State>,
    Path(name): Path<String>,
    Query(query): Query<InvokeQuery>,
    request: Request,
) -> Response {
    let function = match known(&state, &name) {
        Ok(f) => f,
        Err(response) => return response,
    };
    let max_body = state.inner.config.max_body;
    let path = query.path.unwrap_or_else(|| "/".into());
    if !path.starts_with('/') {
        return bad_request(format!("path {path:?} must start with '/'"));
    }
    let (mut parts, body) = request.into_parts();
    parts.uri = match http::Uri::try_from(path.as_str()) {
        Ok(uri) => uri,
        Err(e) => return bad_request(format!("path {path:?} is not a valid URI path: {e}")),
    };
    if let Some(method) = query.method {
        parts.method = match http::Method::from_bytes(method.to_ascii_uppercase().as_bytes()) {
            Ok(m) => m,
            Err(_) => return bad_request(format!("{method:?} is not an HTTP method")),
        };
    }
    parts.extensions = http::Extensions::new();
    let (request, exceeded) = match bounded(http::Request::from_parts(parts, body), max_body).await
    {
        Ok(r) => r,
        Err(answer) => return answer.into_response(),
    };
    match state.invoker().invoke(&function, request).await {
        Some((id, result)) => {
            invocation_response(id, result, exceeded.load(Ordering::Acquire), max_body)
                .into_response()
        }
        None => not_found(format!("no function named {name:?}")),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<usize>,
    #[serde(default)]
    follow: bool,
}

async fn invocations(
    state: axum::extract::State<State>,
    Path(name): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<muon_api::InvocationList> {
    let function = known(&state, &name)?;
    let limit = query.limit.unwrap_or(50).min(1000);
    Ok(Json(muon_api::InvocationList {
        invocations: state
            .invoker()
            .journal()
            .invocations(&function, limit)
            .into_iter()
            .map(|r| invocation_wire(r, None))
            .collect(),
    }))
}

async fn invocation(
    state: axum::extract::State<State>,
    Path(id): Path<String>,
) -> ApiResult<muon_api::Invocation> {
    let id: InvocationId = id
        .parse()
        .map_err(|e: muon_types::Error| bad_request(e.to_string()))?;
    let (record, logs) = state.invoker().journal().invocation(id).ok_or_else(|| {
        not_found(format!(
            "no invocation {id} (only recent invocations are kept)"
        ))
    })?;
    Ok(Json(invocation_wire(
        record,
        Some(logs.iter().map(|l| log_wire(l)).collect()),
    )))
}

async fn logs(
    state: axum::extract::State<State>,
    Path(name): Path<String>,
    Query(query): Query<ListQuery>,
) -> Response {
    let function = match known(&state, &name) {
        Ok(f) => f,
        Err(response) => return response,
    };
    let limit = query.limit.unwrap_or(100).min(10_000);
    let journal = state.invoker().journal();
    if !query.follow {
        let logs = journal
            .logs(&function, limit)
            .iter()
            .map(|l| log_wire(l))
            .collect();
        return Json(muon_api::LogList { logs }).into_response();
    }
    // Subscribe before reading the backlog so nothing falls between the two.
    let live = journal.follow();
    let backlog: Vec<_> = journal.logs(&function, limit);
    let backlog = futures::stream::iter(backlog);
    let live = crate::broadcast_stream(live, state.stopping());
    crate::ndjson(
        backlog
            .chain(live.filter(move |l| std::future::ready(l.function == function)))
            .map(|line| log_wire(&line)),
    )
}

/// EventBridge's TestEventPattern. Errors keep AWS's names: `InvalidEventPatternException` for
/// the pattern, `ValidationException` for the event.
async fn test_pattern(body: axum::body::Bytes) -> Response {
    let request: muon_api::TestEventPattern = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return bad_request(format!(
                "expected {{\"event_pattern\": \"<JSON text>\", \"event\": \"<JSON text>\"}}: {e}"
            ));
        }
    };
    match muon_pattern::test_event_pattern(&request.event_pattern, &request.event) {
        Ok(result) => Json(muon_api::TestEventPatternResult { result }).into_response(),
        Err(e) => error_response(
            http::StatusCode::BAD_REQUEST,
            e.aws_code(),
            e.to_string(),
            None,
        )
        .into_response(),
    }
}

fn millis(t: std::time::SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn log_wire(line: &LogLine) -> muon_api::LogLine {
    muon_api::LogLine {
        time_ms: millis(line.time),
        function: line.function.to_string(),
        invocation_id: line.invocation.to_string(),
        stream: match line.stream {
            muon_types::Stream::Stdout => "stdout",
            muon_types::Stream::Stderr => "stderr",
            muon_types::Stream::Platform => "platform",
        }
        .into(),
        text: line.text.clone(),
    }
}

fn invocation_wire(
    record: InvocationRecord,
    logs: Option<Vec<muon_api::LogLine>>,
) -> muon_api::Invocation {
    muon_api::Invocation {
        id: record.id.to_string(),
        function: record.function.to_string(),
        started_ms: millis(record.started_at),
        duration_ms: record.duration.as_secs_f64() * 1000.0,
        status: record.status.to_string(),
        http_status: record.http_status,
        message: record.message,
        logs,
    }
}
