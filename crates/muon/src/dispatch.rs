//! How the bus reaches functions and HTTP endpoints: the binary composes the invoker and an
//! HTTP client into the bus's `Dispatch`.

use http_body_util::BodyExt;
use muon_bus::{DeliveryError, Dispatch, Message};
use muon_manifest::TargetKind;
use muon_runtime::Invoker;
use muon_store::BoxFuture;

/// How much of a failed answer's body goes into the delivery's error message.
const ERROR_BODY_BYTES: usize = 512;

pub struct Targets {
    invoker: Invoker,
    http: reqwest::Client,
}

impl Targets {
    pub fn new(invoker: Invoker) -> Self {
        Self {
            invoker,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .expect("an HTTP client without TLS builds"),
        }
    }
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
                    // Read the answer to its end: the invocation is over only then.
                    let mut body = response.into_body();
                    let mut kept = Vec::new();
                    while let Some(frame) = body.frame().await {
                        match frame {
                            Ok(frame) => {
                                if let Ok(data) = frame.into_data()
                                    && kept.len() < ERROR_BODY_BYTES
                                {
                                    kept.extend_from_slice(&data);
                                }
                            }
                            Err(e) => {
                                return Err(DeliveryError {
                                    code: "FunctionError".into(),
                                    message: format!(
                                        "function {name} (invocation {id}) failed while answering: {e}"
                                    ),
                                    retryable: true,
                                });
                            }
                        }
                    }
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
                Box::pin(async move {
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
                Box::pin(async move {
                    Err(DeliveryError {
                        code: "NotSupported".into(),
                        message: format!(
                            "workflow {name}: workflows are not available in this version of muon yet"
                        ),
                        retryable: false,
                    })
                })
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
