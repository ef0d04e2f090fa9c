//! How the bus and the workflow engine reach what they call: the binary composes the invoker,
//! an HTTP client, the bus and the workflow engine into the bus's `Dispatch` (event targets) and
//! the engine's `Dispatch` (Task states). The bus and the engine reach each other through here
//! (a rule targets a workflow, a task puts events), never directly.

use http_body_util::BodyExt;
use muon_bus::{DeliveryError, Dispatch, Message};
use muon_flow::{Answer, DispatchError, FunctionCall, HttpCall};
use muon_manifest::TargetKind;
use muon_runtime::{Destinations, Invoker};
use muon_store::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::watch;

/// How much of a failed answer's body goes into the delivery's error message.
const ERROR_BODY_BYTES: usize = 512;

#[derive(Clone)]
pub struct Targets {
    invoker: Invoker,
    http: reqwest::Client,
    destinations: std::sync::Arc<Destinations>,
    bus: watch::Receiver<Option<muon_bus::Bus>>,
    flows: watch::Receiver<Option<muon_flow::Flows>>,
}

/// Hands the bus and the engine to [`Targets`] once they have started (each needs the other's
/// dispatch to start).
pub struct Services {
    pub bus: watch::Sender<Option<muon_bus::Bus>>,
    pub flows: watch::Sender<Option<muon_flow::Flows>>,
}

impl Targets {
    /// Targets whose HTTP requests (rule URL targets, `http:invoke` tasks) may reach only what
    /// `destinations` allows.
    pub fn new(invoker: Invoker, destinations: Destinations) -> (Self, Services) {
        let (bus_tx, bus) = watch::channel(None);
        let (flows_tx, flows) = watch::channel(None);
        let destinations = std::sync::Arc::new(destinations);
        (
            Self {
                invoker,
                http: reqwest::Client::builder()
                    .timeout(std::time::Duration::from_secs(30))
                    // A redirect could point anywhere after the destination was checked.
                    .redirect(reqwest::redirect::Policy::none())
                    .dns_resolver(std::sync::Arc::new(CheckedResolver(destinations.clone())))
                    .build()
                    .expect("an HTTP client without TLS builds"),
                destinations,
                bus,
                flows,
            },
            Services {
                bus: bus_tx,
                flows: flows_tx,
            },
        )
    }

    /// The bus, once it started; `None` when this process runs none (`muon flows exec`).
    async fn bus(&self) -> Option<muon_bus::Bus> {
        let mut rx = self.bus.clone();
        rx.wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|b| b.clone())
    }

    async fn flows(&self) -> Option<muon_flow::Flows> {
        let mut rx = self.flows.clone();
        rx.wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|f| f.clone())
    }
}

/// Resolves names for the HTTP client and refuses answers that hold an address the policy never
/// allows, so a name that resolves differently at connect time than when it was checked still
/// cannot reach an internal address.
struct CheckedResolver(std::sync::Arc<Destinations>);

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let destinations = self.0.clone();
        Box::pin(async move {
            let addrs: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            destinations.check_all(&addrs)?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Refuses `url` before anything is sent when its host is, or resolves to, an address the
/// policy refuses (muon's own sockets included: the port is known here).
async fn check_destination(destinations: &Destinations, url: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let host = url.host_str().ok_or("the URL has no host")?;
    let host = host.trim_matches(['[', ']']);
    let port = url.port_or_known_default().ok_or("the URL has no port")?;
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    destinations
        .check_all(&addrs)
        .map_err(|refused| format!("{url}: {refused}"))
}

/// Reads a function's answer to its end (the invocation is over only then), keeping its first
/// `keep` bytes; the flag says whether more came. `Err`: the answer broke off.
async fn read_answer(
    mut body: muon_runtime::Body,
    keep: usize,
) -> Result<(Vec<u8>, bool), muon_runtime::BoxError> {
    let mut kept = Vec::new();
    let mut cut = false;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            let room = keep - kept.len();
            cut |= data.len() > room;
            kept.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    Ok((kept, cut))
}

/// 4xx answers will not change on a retry, except 408 (timeout) and 429 (throttled).
fn retryable(status: u16) -> bool {
    !(400..500).contains(&status) || status == 408 || status == 429
}

fn failed(status: u16, body: &[u8], what: String) -> DeliveryError {
    let text = String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_BYTES)]);
    DeliveryError {
        code: if what.starts_with("function") {
            "FunctionError".into()
        } else {
            "HttpError".into()
        },
        message: format!("{what} answered HTTP {status}: {}", text.trim()),
        retryable: retryable(status),
    }
}

impl Dispatch for Targets {
    fn deliver(
        &self,
        target: &TargetKind,
        message: Message,
    ) -> BoxFuture<'static, Result<(), DeliveryError>> {
        match target {
            TargetKind::Function(name) => {
                let invoker = self.invoker.clone();
                let name = name.clone();
                Box::pin(async move {
                    let mut request = http::Request::builder()
                        .method(http::Method::POST)
                        .uri("/")
                        .header(http::header::CONTENT_TYPE, message.content_type);
                    for (k, v) in &message.headers {
                        request = request.header(*k, v);
                    }
                    let request = request
                        .body(muon_runtime::full(bytes::Bytes::from(message.body)))
                        .map_err(|e| DeliveryError {
                            code: "InvalidInput".into(),
                            message: e.to_string(),
                            retryable: false,
                        })?;
                    let Some((id, result)) = invoker.invoke(&name, request).await else {
                        return Err(DeliveryError {
                            code: "ResourceNotFoundException".into(),
                            message: format!("no function named {name}"),
                            retryable: false,
                        });
                    };
                    let response = result.map_err(|f| DeliveryError {
                        code: match f.status {
                            muon_types::Status::Timeout => "Timeout".into(),
                            other => format!("Function.{}", other.as_str()),
                        },
                        message: format!("function {name} (invocation {id}): {}", f.message),
                        retryable: true,
                    })?;
                    let status = response.status().as_u16();
                    let (kept, _) = read_answer(response.into_body(), ERROR_BODY_BYTES)
                        .await
                        .map_err(|e| DeliveryError {
                            code: "FunctionError".into(),
                            message: format!(
                                "function {name} (invocation {id}) failed while answering: {e}"
                            ),
                            retryable: true,
                        })?;
                    if (200..300).contains(&status) {
                        Ok(())
                    } else {
                        Err(failed(
                            status,
                            &kept,
                            format!("function {name} (invocation {id})"),
                        ))
                    }
                })
            }
            TargetKind::Http(url) => {
                let mut request = self
                    .http
                    .post(url)
                    .header(http::header::CONTENT_TYPE, message.content_type)
                    .body(message.body);
                for (k, v) in &message.headers {
                    request = request.header(*k, v);
                }
                let url = url.clone();
                let destinations = self.destinations.clone();
                Box::pin(async move {
                    check_destination(&destinations, url.as_str())
                        .await
                        .map_err(|message| DeliveryError {
                            code: "DestinationRefused".into(),
                            message,
                            retryable: false,
                        })?;
                    let response = request.send().await.map_err(|e| DeliveryError {
                        code: "HttpError".into(),
                        message: format!("{url}: {e}"),
                        retryable: true,
                    })?;
                    let status = response.status().as_u16();
                    if (200..300).contains(&status) {
                        return Ok(());
                    }
                    let body = response.bytes().await.unwrap_or_default();
                    Err(failed(status, &body, url))
                })
            }
            TargetKind::Workflow(name) => {
                let name = name.clone();
                let me = self.clone();
                Box::pin(async move { me.start_workflow(name, message).await })
            }
            TargetKind::Bus(bus) => {
                let bus = bus.clone();
                Box::pin(async move {
                    Err(DeliveryError {
                        code: "InternalFailure".into(),
                        message: format!("bus {bus} targets are delivered by the bus itself"),
                        retryable: false,
                    })
                })
            }
        }
    }
}

impl Targets {
    /// A rule's workflow target: start an execution with the event as input. The execution is
    /// named after the delivery, so a delivery attempted again starts nothing new.
    async fn start_workflow(&self, machine: String, message: Message) -> Result<(), DeliveryError> {
        let Some(flows) = self.flows().await else {
            return Err(DeliveryError {
                code: "ServiceUnavailable".into(),
                message: "this server runs no workflows".into(),
                retryable: true,
            });
        };
        let delivery = message
            .headers
            .iter()
            .find(|(k, _)| *k == "x-muon-delivery")
            .map(|(_, v)| v.clone());
        // A transformed input that is not JSON is passed on as a JSON string.
        let input = match serde_json::from_str::<Value>(&message.body) {
            Ok(_) => message.body,
            Err(_) => Value::String(message.body).to_string(),
        };
        let started = flows
            .start_execution(muon_flow::StartRequest {
                machine: machine.clone(),
                name: delivery,
                input: Some(input),
            })
            .await;
        match started {
            Ok(_) | Err(muon_flow::Error::ExecutionExists(_)) => Ok(()),
            Err(e) => Err(DeliveryError {
                code: e.aws_code().into(),
                message: format!("workflow {machine}: {e}"),
                retryable: !e.is_client_error(),
            }),
        }
    }

    /// Invoke a function and read its whole answer (at most `limit` bytes).
    async fn call(&self, call: FunctionCall, limit: usize) -> Result<Answer, DispatchError> {
        let not_found = || {
            DispatchError::new(
                "Lambda.ResourceNotFoundException",
                format!(
                    "Function not found: {} (the app defines: {})",
                    call.function,
                    self.invoker
                        .functions()
                        .map(|f| f.name.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        };
        let Ok(name) = muon_types::FunctionName::new(&call.function) else {
            return Err(not_found());
        };
        let mut request = http::Request::builder().method(http::Method::POST).uri("/");
        for (k, v) in &call.headers {
            request = request.header(*k, v);
        }
        let request = request
            .body(muon_runtime::full(bytes::Bytes::from(call.body.clone())))
            .map_err(|e| DispatchError::new(muon_asl::errors::RUNTIME, e.to_string()))?;
        let Some((id, result)) = self.invoker.invoke(&name, request).await else {
            return Err(not_found());
        };
        let response = result.map_err(|f| {
            if f.status == muon_types::Status::Timeout {
                DispatchError::new(
                    muon_asl::errors::TIMEOUT,
                    format!("function {name} (invocation {id}) timed out"),
                )
            } else {
                DispatchError::new(
                    muon_asl::errors::TASK_FAILED,
                    format!(
                        "function {name} (invocation {id}) failed: {} ({})",
                        f.message,
                        f.status.as_str()
                    ),
                )
            }
        })?;
        let status = response.status().as_u16();
        let (kept, cut) = read_answer(response.into_body(), limit)
            .await
            .map_err(|e| {
                DispatchError::new(
                    muon_asl::errors::TASK_FAILED,
                    format!("function {name} (invocation {id}) failed while answering: {e}"),
                )
            })?;
        if cut {
            return Err(DispatchError::new(
                muon_asl::errors::DATA_LIMIT_EXCEEDED,
                format!("function {name} (invocation {id}) answered more than {limit} bytes"),
            ));
        }
        Ok(Answer {
            status,
            headers: Vec::new(),
            body: kept,
            invocation: Some(id.to_string()),
        })
    }
}

/// One Step Functions putEvents entry as the bus takes it (`Detail` may be an object).
fn put_entry(entry: &Value) -> Result<muon_bus::PutEntry, String> {
    let text = |key: &str| -> Result<Option<String>, String> {
        match &entry[key] {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            other if key == "Detail" => Ok(Some(other.to_string())),
            _ => Err(format!("{key} must be a string")),
        }
    };
    if !entry.is_object() {
        return Err("each entry must be an object".into());
    }
    Ok(muon_bus::PutEntry {
        source: text("Source")?,
        detail_type: text("DetailType")?,
        detail: text("Detail")?,
        event_bus_name: text("EventBusName")?,
        resources: entry["Resources"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        time: text("Time")?,
        trace_header: text("TraceHeader")?,
    })
}

impl muon_flow::Dispatch for Targets {
    fn function(&self, call: FunctionCall) -> BoxFuture<'static, Result<Answer, DispatchError>> {
        let me = self.clone();
        Box::pin(async move { me.call(call, muon_flow::task::MAX_ANSWER_BYTES).await })
    }

    fn put_events(&self, entries: Value) -> BoxFuture<'static, Result<Value, DispatchError>> {
        let me = self.clone();
        Box::pin(async move {
            let invalid = |why: String| DispatchError::new("EventBridge.ValidationException", why);
            let entries: Vec<muon_bus::PutEntry> = entries
                .as_array()
                .map(|a| a.iter().map(put_entry).collect::<Result<_, _>>())
                .unwrap_or_else(|| Err("Entries must be an array".into()))
                .map_err(invalid)?;
            let Some(bus) = me.bus().await else {
                return Err(DispatchError::new(
                    muon_asl::errors::RUNTIME,
                    "events:putEvents tasks run only under `muon up` (this run has no event bus)",
                ));
            };
            let results = bus
                .put_events(entries, None)
                .await
                .map_err(|e| invalid(e.to_string()))?;
            let mut failed = 0;
            let out: Vec<Value> = results
                .into_iter()
                .map(|r| match r {
                    muon_bus::EntryResult::Accepted(id) => json!({ "EventId": id.to_string() }),
                    muon_bus::EntryResult::Failed { code, message } => {
                        failed += 1;
                        json!({ "ErrorCode": code, "ErrorMessage": message })
                    }
                })
                .collect();
            Ok(json!({ "Entries": out, "FailedEntryCount": failed }))
        })
    }

    fn http(&self, call: HttpCall) -> BoxFuture<'static, Result<Answer, DispatchError>> {
        let client = self.http.clone();
        let destinations = self.destinations.clone();
        Box::pin(async move {
            let failed = |why: String| DispatchError::new("States.Http.Socket", why);
            check_destination(&destinations, &call.url)
                .await
                .map_err(failed)?;
            let method = http::Method::from_bytes(call.method.as_bytes())
                .map_err(|e| failed(e.to_string()))?;
            let mut request = client.request(method, &call.url);
            for (k, v) in &call.headers {
                request = request.header(k, v);
            }
            if let Some(body) = call.body {
                request = request.body(body);
            }
            let response = request
                .send()
                .await
                .map_err(|e| failed(format!("{}: {e}", call.url)))?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_owned())))
                .collect();
            let body = response
                .bytes()
                .await
                .map_err(|e| failed(format!("{}: {e}", call.url)))?;
            Ok(Answer {
                status,
                headers,
                body: body.to_vec(),
                invocation: None,
            })
        })
    }
}
