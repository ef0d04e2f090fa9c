//! The event bus's control API: PutEvents, CloudEvents ingest, rules, events and their traces,
//! the dead-letter queue, replays, and a live tail.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use http::{HeaderMap, StatusCode};
use muon_bus::{Bus, EntryResult, PutEntry, TraceContext, TraceNode};
use muon_types::{ArchiveName, BusName, DeliveryId, EventId, RuleName};
use serde::Deserialize;

use crate::{State, error_response};

pub fn router() -> Router<State> {
    Router::new()
        .route("/v1/events", post(put_events))
        .route("/v1/events/tail", get(tail))
        .route("/v1/events/{id}", get(event))
        .route("/v1/events/{id}/trace", get(trace))
        .route("/v1/buses", get(buses))
        .route("/v1/buses/{bus}/cloudevents", post(cloudevents))
        .route("/v1/rules", get(rules).put(put_rule))
        .route("/v1/rules/{bus}/{name}", axum::routing::delete(delete_rule))
        .route("/v1/dlq", get(dead_letters))
        .route("/v1/dlq/redrive", post(redrive))
        .route("/v1/replays", post(replay).get(replays))
        .route("/v1/archives", get(archives).put(put_archive))
        .route("/v1/archives/{name}", axum::routing::delete(delete_archive))
        .route("/", post(aws))
}

/// EventBridge's own wire protocol (awsJson1.1: `POST /` with `X-Amz-Target: AWSEvents.<Op>`),
/// so the AWS SDKs and CLI work against muon with an endpoint URL. PutEvents and
/// TestEventPattern are served here, the rule and bus operations by `crate::eventbridge`
/// (which answers `UnknownOperationException` for the rest). `AWSStepFunctions.<Op>` targets
/// go to the workflow API (`crate::flows`).
async fn aws(
    state: axum::extract::State<State>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let aws_error = |status: StatusCode, code: &str, message: String| {
        (
            status,
            [(http::header::CONTENT_TYPE, "application/x-amz-json-1.1")],
            serde_json::json!({ "__type": code, "message": message }).to_string(),
        )
            .into_response()
    };
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if let Some(operation) = target.strip_prefix("AWSStepFunctions.") {
        return crate::flows::aws(&state, operation, &body).await;
    }
    let Some(operation) = target.strip_prefix("AWSEvents.") else {
        return aws_error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            format!(
                "expected an X-Amz-Target header AWSEvents.<Operation> or AWSStepFunctions.<Operation>, got {target:?}"
            ),
        );
    };
    let mut answer = match operation {
        "PutEvents" => put_events(state, headers.clone(), body).await,
        "TestEventPattern" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "PascalCase")]
            struct Request {
                event_pattern: String,
                event: String,
            }
            let request: Request = match serde_json::from_slice(&body) {
                Ok(r) => r,
                Err(e) => {
                    return aws_error(
                        StatusCode::BAD_REQUEST,
                        "ValidationException",
                        format!("malformed request: {e}"),
                    );
                }
            };
            match muon_pattern::test_event_pattern(&request.event_pattern, &request.event) {
                Ok(result) => Json(serde_json::json!({ "Result": result })).into_response(),
                Err(e) => return aws_error(StatusCode::BAD_REQUEST, e.aws_code(), e.to_string()),
            }
        }
        other => return crate::eventbridge::aws(&state, other, &body).await,
    };
    // Errors in AWS's shape: `{"__type", "message"}`.
    if !answer.status().is_success() {
        let status = answer.status();
        let bytes = axum::body::to_bytes(std::mem::take(answer.body_mut()), 1 << 20)
            .await
            .unwrap_or_default();
        let e: muon_api::ErrorBody =
            serde_json::from_slice(&bytes).unwrap_or(muon_api::ErrorBody {
                error: "InternalException".into(),
                message: String::from_utf8_lossy(&bytes).into_owned(),
                invocation_id: None,
            });
        return aws_error(status, &e.error, e.message);
    }
    answer.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    answer
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    error_response(status, code, message, None).into_response()
}

fn bad(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "ValidationException", message)
}

fn bus_error(e: muon_bus::Error) -> Response {
    let status = match &e {
        muon_bus::Error::NoSuchBus(_)
        | muon_bus::Error::NoSuchRule(..)
        | muon_bus::Error::NoSuchArchive(_)
        | muon_bus::Error::NoSuchReplay(_) => StatusCode::NOT_FOUND,
        muon_bus::Error::ManifestRule(_)
        | muon_bus::Error::ManifestArchive(_)
        | muon_bus::Error::ArchiveExists(_)
        | muon_bus::Error::ReplayExists(_) => StatusCode::CONFLICT,
        muon_bus::Error::InvalidRule(..) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.aws_code(), e.to_string())
}

fn the_bus(state: &State) -> Result<&Bus, Response> {
    state.bus().ok_or_else(|| {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "this server runs without an event bus",
        )
    })
}

fn trace_of(headers: &HeaderMap) -> Option<TraceContext> {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::parse)
}

/// A JSON body, or a clear 400.
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8], shape: &str) -> Result<T, Response> {
    serde_json::from_slice(body)
        .map_err(|e| bad(format!("malformed request: {e}; expected {shape}")))
}

/// `Time` as SDKs send it: RFC 3339 text or epoch seconds.
pub(crate) fn time_text(v: serde_json::Value) -> Result<String, String> {
    match v {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => {
            let secs = n.as_f64().ok_or("Time is not a number")?;
            chrono::DateTime::from_timestamp_millis((secs * 1000.0) as i64)
                .map(|t| t.to_rfc3339())
                .ok_or_else(|| "Time is out of range".to_string())
        }
        _ => Err("Time must be an RFC 3339 string or epoch seconds".into()),
    }
}

async fn put(bus: &Bus, entries: Vec<PutEntry>, trace: Option<TraceContext>) -> Response {
    match bus.put_events(entries, trace).await {
        Ok(results) => Json(put_result(results)).into_response(),
        Err(e @ muon_bus::PutError::Validation(_)) => bad(e.to_string()),
        Err(e @ muon_bus::PutError::Throttled(_)) => {
            error(StatusCode::TOO_MANY_REQUESTS, e.aws_code(), e.to_string())
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.aws_code(),
            e.to_string(),
        ),
    }
}

fn put_result(results: Vec<EntryResult>) -> muon_api::PutEventsResult {
    let mut out = muon_api::PutEventsResult::default();
    for r in results {
        out.entries.push(match r {
            EntryResult::Accepted(id) => muon_api::PutEventsResultEntry {
                event_id: Some(id.to_string()),
                ..Default::default()
            },
            EntryResult::Failed { code, message } => {
                out.failed_entry_count += 1;
                muon_api::PutEventsResultEntry {
                    error_code: Some(code),
                    error_message: Some(message),
                    ..Default::default()
                }
            }
        });
    }
    out
}

/// EventBridge PutEvents. A `traceparent` header links the events to the delivery that is
/// publishing them (a function handling an event passes on the one it received).
async fn put_events(
    state: axum::extract::State<State>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let bus = match the_bus(&state) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let request: muon_api::PutEvents = match json_body(&body, "{\"Entries\": [...]}") {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mut entries = Vec::with_capacity(request.entries.len());
    for e in request.entries {
        let time = match e.time.map(time_text).transpose() {
            Ok(t) => t,
            Err(why) => return bad(why),
        };
        entries.push(PutEntry {
            source: e.source,
            detail_type: e.detail_type,
            detail: e.detail,
            event_bus_name: e.event_bus_name,
            resources: e.resources,
            time,
            trace_header: e.trace_header,
        });
    }
    put(bus, entries, trace_of(&headers)).await
}

/// CloudEvents 1.0 over HTTP into a bus: binary mode (`ce-*` headers, the body is `data`),
/// structured mode (`application/cloudevents+json`) and batch mode
/// (`application/cloudevents-batch+json`). `type` becomes `detail-type`, `data` the `detail`.
async fn cloudevents(
    state: axum::extract::State<State>,
    Path(bus_name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let bus = match the_bus(&state) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let events: Vec<serde_json::Value> = match content_type.as_str() {
        "application/cloudevents+json" => match json_body(&body, "a CloudEvent") {
            Ok(v) => vec![v],
            Err(r) => return r,
        },
        "application/cloudevents-batch+json" => {
            match json_body(&body, "a JSON array of CloudEvents") {
                Ok(v) => v,
                Err(r) => return r,
            }
        }
        _ => {
            // Binary mode: the attributes are headers.
            let mut event = serde_json::Map::new();
            for (name, value) in &headers {
                if let Some(attr) = name.as_str().strip_prefix("ce-") {
                    let Some(v) = muon_bus::cloudevents::decode_header(value.as_bytes()) else {
                        return bad(format!(
                            "the header {name} is not UTF-8, percent-encoded or raw"
                        ));
                    };
                    event.insert(attr.to_string(), serde_json::Value::String(v));
                }
            }
            if !event.contains_key("specversion") {
                return bad(
                    "not a CloudEvent: send ce-specversion, ce-id, ce-source and ce-type headers (binary mode), or use content type application/cloudevents+json or application/cloudevents-batch+json",
                );
            }
            if !body.is_empty() {
                let json = content_type.is_empty()
                    || content_type == "application/json"
                    || content_type.ends_with("+json");
                if !json {
                    return bad(format!(
                        "data of content type {content_type:?} cannot be an event's detail: send JSON"
                    ));
                }
                match serde_json::from_slice::<serde_json::Value>(&body) {
                    Ok(data) => {
                        event.insert("data".into(), data);
                    }
                    Err(e) => return bad(format!("data is not valid JSON: {e}")),
                }
            }
            vec![serde_json::Value::Object(event)]
        }
    };
    if events.is_empty() || events.len() > muon_bus::MAX_ENTRIES {
        return bad(format!(
            "a batch holds 1 to {} CloudEvents, not {}",
            muon_bus::MAX_ENTRIES,
            events.len()
        ));
    }
    let mut entries = Vec::with_capacity(events.len());
    for (i, ce) in events.into_iter().enumerate() {
        let attr = |name: &str| ce.get(name).and_then(|v| v.as_str()).map(str::to_string);
        let at = |why: String| bad(format!("CloudEvent {i}: {why}"));
        match attr("specversion").as_deref() {
            Some("1.0") => {}
            Some(v) => return at(format!("specversion {v:?} is not supported: use 1.0")),
            None => return at("specversion is required".into()),
        }
        for required in ["id", "source", "type"] {
            if attr(required).is_none_or(|v| v.is_empty()) {
                return at(format!("{required} is required"));
            }
        }
        if ce.get("data_base64").is_some() {
            return at("data_base64 cannot be an event's detail: send JSON data".into());
        }
        let detail = match ce.get("data") {
            None | Some(serde_json::Value::Null) => "{}".to_string(),
            Some(d) => d.to_string(),
        };
        entries.push(PutEntry {
            source: attr("source"),
            detail_type: attr("type"),
            detail: Some(detail),
            event_bus_name: Some(bus_name.clone()),
            resources: attr("subject").into_iter().collect(),
            time: attr("time"),
            trace_header: attr("traceparent"),
        });
    }
    put(bus, entries, trace_of(&headers)).await
}

pub(crate) fn event_wire(e: &muon_bus::EventRecord) -> muon_api::Event {
    let mut de = serde_json::Deserializer::from_str(&e.json);
    de.disable_recursion_limit();
    muon_api::Event {
        id: e.id.to_string(),
        bus: e.bus.to_string(),
        ingested_ms: e.ingested_ms,
        trace_id: e.trace_id.clone(),
        parent_span: e.parent_span.clone(),
        replay: e.replay.clone(),
        event: serde::Deserialize::deserialize(&mut de).unwrap_or(serde_json::Value::Null),
    }
}

fn delivery_wire(d: &muon_bus::Delivery) -> muon_api::Delivery {
    muon_api::Delivery {
        id: d.id.to_string(),
        event_id: d.event.to_string(),
        bus: d.bus.to_string(),
        rule: d.rule.to_string(),
        target: d.target.clone(),
        status: d.status.as_str().into(),
        attempts: d.attempts,
        created_ms: d.created_ms,
        due_ms: d.due_ms,
        error_code: d.error.as_ref().map(|e| e.0.clone()),
        error_message: d.error.as_ref().map(|e| e.1.clone()),
        exhausted: d.exhausted.clone(),
        span_id: d.id.span_id(),
    }
}

fn trace_wire(node: &TraceNode) -> muon_api::TraceNode {
    muon_api::TraceNode {
        event: event_wire(&node.event),
        deliveries: node
            .deliveries
            .iter()
            .map(|(d, children)| muon_api::TraceDelivery {
                delivery: delivery_wire(d),
                emitted: children.iter().map(trace_wire).collect(),
            })
            .collect(),
        cut: node.cut,
    }
}

fn event_id(id: &str) -> Result<EventId, Response> {
    id.parse()
        .map_err(|e: muon_types::Error| bad(e.to_string()))
}

async fn event(state: axum::extract::State<State>, Path(id): Path<String>) -> Response {
    let result = async {
        let bus = the_bus(&state)?;
        let id = event_id(&id)?;
        let trace = bus.trace(id).await.map_err(bus_error)?;
        let node = trace.ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                format!("no event {id}"),
            )
        })?;
        Ok::<_, Response>(Json(muon_api::TraceNode {
            event: event_wire(&node.event),
            deliveries: node
                .deliveries
                .iter()
                .map(|(d, _)| muon_api::TraceDelivery {
                    delivery: delivery_wire(d),
                    emitted: Vec::new(),
                })
                .collect(),
            cut: false,
        }))
    };
    result.await.into_response()
}

async fn trace(state: axum::extract::State<State>, Path(id): Path<String>) -> Response {
    let result = async {
        let bus = the_bus(&state)?;
        let id = event_id(&id)?;
        let node = bus.trace(id).await.map_err(bus_error)?.ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                format!("no event {id}"),
            )
        })?;
        Ok::<_, Response>(Json(trace_wire(&node)))
    };
    result.await.into_response()
}

#[derive(Deserialize)]
struct TailQuery {
    bus: Option<String>,
}

/// Every event accepted from now on, one JSON object per line.
async fn tail(state: axum::extract::State<State>, Query(q): Query<TailQuery>) -> Response {
    let bus = match the_bus(&state) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let only = q.bus;
    crate::ndjson(
        crate::broadcast_stream(bus.tail(), state.stopping())
            .filter(move |e| {
                std::future::ready(only.as_deref().is_none_or(|b| e.bus.as_str() == b))
            })
            .map(|e| event_wire(&e)),
    )
}

async fn buses(state: axum::extract::State<State>) -> Response {
    match the_bus(&state) {
        Ok(bus) => Json(serde_json::json!({
            "buses": bus.buses().iter().map(|b| b.to_string()).collect::<Vec<_>>()
        }))
        .into_response(),
        Err(r) => r,
    }
}

async fn rules(state: axum::extract::State<State>) -> Response {
    match the_bus(&state) {
        Ok(bus) => Json(muon_api::RuleList {
            rules: bus
                .rules()
                .into_iter()
                .map(|info| muon_api::Rule {
                    origin: info.origin.as_str().into(),
                    rule: info.rule.to_api_json(),
                })
                .collect(),
        })
        .into_response(),
        Err(r) => r,
    }
}

/// Create or replace a rule (EventBridge's PutRule and PutTargets in one body).
async fn put_rule(state: axum::extract::State<State>, body: axum::body::Bytes) -> Response {
    let bus = match the_bus(&state) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return bad("the rule is not UTF-8");
    };
    let rule = match muon_manifest::Rule::from_api_json(text) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.code, e.to_string()),
    };
    for target in &rule.targets {
        if let muon_manifest::TargetKind::Function(f) = &target.kind
            && state.invoker().function(f.as_str()).is_none()
        {
            return bad(format!(
                "target {}: no function named `{f}` in this app",
                target.id
            ));
        }
        if let muon_manifest::TargetKind::Workflow(w) = &target.kind
            && let Some(flows) = state.flows()
            && flows.machine(w).is_err()
        {
            return bad(format!(
                "target {}: no state machine named `{w}` (declare a [[workflow]] or create it first)",
                target.id
            ));
        }
    }
    let json = rule.to_api_json();
    match bus.put_rule(rule).await {
        Ok(()) => Json(muon_api::Rule {
            origin: "api".into(),
            rule: json,
        })
        .into_response(),
        Err(e) => bus_error(e),
    }
}

async fn delete_rule(
    state: axum::extract::State<State>,
    Path((bus_name, name)): Path<(String, String)>,
) -> Response {
    let result = async {
        let bus = the_bus(&state)?;
        let bus_name = BusName::new(bus_name).map_err(|e| bad(e.to_string()))?;
        let name = RuleName::new(name).map_err(|e| bad(e.to_string()))?;
        bus.delete_rule(&bus_name, &name).await.map_err(bus_error)?;
        Ok::<_, Response>(StatusCode::NO_CONTENT)
    };
    result.await.into_response()
}

#[derive(Deserialize)]
struct LimitQuery {
    limit: Option<usize>,
}

async fn dead_letters(state: axum::extract::State<State>, Query(q): Query<LimitQuery>) -> Response {
    let result = async {
        let bus = the_bus(&state)?;
        let dead = bus
            .dead_letters(q.limit.unwrap_or(100).min(10_000))
            .await
            .map_err(bus_error)?;
        Ok::<_, Response>(Json(muon_api::DeliveryList {
            deliveries: dead.iter().map(delivery_wire).collect(),
        }))
    };
    result.await.into_response()
}

async fn redrive(state: axum::extract::State<State>, body: axum::body::Bytes) -> Response {
    let result = async {
        let bus = the_bus(&state)?;
        let request: muon_api::Redrive = if body.is_empty() {
            muon_api::Redrive::default()
        } else {
            json_body(&body, "{\"ids\": [...]} or nothing")?
        };
        let ids = request
            .ids
            .map(|ids| {
                ids.iter()
                    .map(|i| i.parse::<DeliveryId>())
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
            .map_err(|e| bad(e.to_string()))?;
        let count = bus.redrive(ids.as_deref()).await.map_err(bus_error)?;
        Ok::<_, Response>(Json(muon_api::Count { count }))
    };
    result.await.into_response()
}

async fn replay(state: axum::extract::State<State>, body: axum::body::Bytes) -> Response {
    let result = async {
        let bus = the_bus(&state)?;
        let r: muon_api::Replay = json_body(
            &body,
            "{\"name\", \"bus\", \"from_ms\", \"to_ms\", \"rules\"}",
        )?;
        if r.name.is_empty() || r.name.len() > 64 {
            return Err(bad("a replay's name has 1-64 characters"));
        }
        if r.from_ms >= r.to_ms {
            return Err(bad("from_ms must be before to_ms"));
        }
        let rules = r
            .rules
            .map(|rules| {
                rules
                    .into_iter()
                    .map(RuleName::new)
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
            .map_err(|e| bad(e.to_string()))?;
        let count = match r.archive {
            Some(archive) => {
                let archive = ArchiveName::new(archive).map_err(|e| bad(e.to_string()))?;
                bus.replay_archive(&r.name, &archive, r.from_ms, r.to_ms, rules)
                    .await
                    .map_err(bus_error)?
                    .events
            }
            None => {
                let bus_name = BusName::new(r.bus).map_err(|e| bad(e.to_string()))?;
                bus.replay(&r.name, &bus_name, r.from_ms, r.to_ms, rules)
                    .await
                    .map_err(bus_error)?
            }
        };
        Ok(Json(muon_api::Count { count }))
    };
    result.await.into_response()
}

async fn replays(state: axum::extract::State<State>) -> Response {
    let result = async {
        let bus = the_bus(&state)?;
        let replays = bus
            .replays()
            .into_iter()
            .map(|r| muon_api::ReplayRecord {
                archive: match &r.source {
                    muon_bus::ReplaySource::Archive(a) => Some(a.to_string()),
                    muon_bus::ReplaySource::Bus(_) => None,
                },
                name: r.name,
                bus: r.bus.to_string(),
                from_ms: r.from_ms,
                to_ms: r.to_ms,
                state: r.state.as_str().into(),
                reason: r.reason,
                events: r.events,
                started_ms: r.started_ms,
                ended_ms: r.ended_ms,
            })
            .collect();
        Ok::<_, Response>(Json(muon_api::ReplayList { replays }))
    };
    result.await.into_response()
}

async fn archives(state: axum::extract::State<State>) -> Response {
    let result = async {
        let bus = the_bus(&state)?;
        let mut archives = Vec::new();
        for info in bus.archives() {
            let (events, size_bytes) = bus
                .archive_stats(&info.archive.name)
                .await
                .map_err(bus_error)?;
            archives.push(muon_api::Archive {
                origin: info.origin.as_str().into(),
                archive: info.archive.to_api_json(),
                events,
                size_bytes,
                created_ms: info.created_ms,
            });
        }
        Ok::<_, Response>(Json(muon_api::ArchiveList { archives }))
    };
    result.await.into_response()
}

/// Create or replace an API archive (EventBridge's CreateArchive body).
async fn put_archive(state: axum::extract::State<State>, body: axum::body::Bytes) -> Response {
    let result = async {
        let bus = the_bus(&state)?;
        let text = std::str::from_utf8(&body).map_err(|_| bad("the archive is not UTF-8"))?;
        let archive = muon_manifest::Archive::from_api_json(text)
            .map_err(|e| error(StatusCode::BAD_REQUEST, e.code, e.to_string()))?;
        let info = bus
            .put_archive(archive, muon_bus::Write::Put)
            .await
            .map_err(bus_error)?;
        Ok::<_, Response>(Json(muon_api::Archive {
            origin: info.origin.as_str().into(),
            archive: info.archive.to_api_json(),
            events: 0,
            size_bytes: 0,
            created_ms: info.created_ms,
        }))
    };
    result.await.into_response()
}

async fn delete_archive(state: axum::extract::State<State>, Path(name): Path<String>) -> Response {
    let result = async {
        let bus = the_bus(&state)?;
        let name = ArchiveName::new(name).map_err(|e| bad(e.to_string()))?;
        bus.delete_archive(&name).await.map_err(bus_error)?;
        Ok::<_, Response>(StatusCode::NO_CONTENT)
    };
    result.await.into_response()
}
