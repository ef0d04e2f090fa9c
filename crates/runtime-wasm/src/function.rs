//! One prepared function: a pre-instantiated component and the limits every isolate gets.

use std::pin::Pin;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use muon_manifest::OutboundPolicy;
use muon_runtime::{BoxError, BoxFuture, Failure, Finished, InvocationContext, Request, Response};
use muon_types::{FunctionName, Status, Stream, format_duration};
use tokio::sync::oneshot;
use wasmtime::component::{Component, ResourceTable};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView};

use crate::host::{Host, MemoryLimiter, Outbound};
use crate::logs::Capture;
use crate::{Engine, Error, Result};

type GuestResponse = http::Response<wasmtime_wasi_http::p2::body::HyperOutgoingBody>;

/// What a function's isolates are allowed.
#[derive(Debug, Clone)]
pub struct Settings {
    pub name: FunctionName,
    pub memory_bytes: usize,
    pub timeout: Duration,
    pub environment: Vec<(String, String)>,
    pub outbound: OutboundPolicy,
    /// Which resolved addresses outbound requests may reach.
    pub destinations: Arc<muon_runtime::Destinations>,
    /// The token that lets the function put events (`MUON_EVENTS_TOKEN`), if it may.
    pub events_token: Option<String>,
    /// Requests one instance may serve; 1 = a fresh isolate per request.
    pub instance_reuse: u32,
    /// The most idle instances kept for reuse.
    pub max_instances: u32,
}

/// A function ready to serve: cheap to clone, invoked concurrently.
#[derive(Clone)]
pub struct WasmFunction {
    inner: Arc<Inner>,
}

struct Inner {
    /// Keeps the engine (and its epoch ticker, which enforces timeouts) alive.
    _engine: Engine,
    pre: ProxyPre<Host>,
    settings: Settings,
    outbound: Arc<OutboundPolicy>,
    /// `Bearer <events token>`, as the outbound hook compares it.
    events_authorization: Option<Arc<str>>,
    idle: Mutex<Vec<Instance>>,
}

/// An isolate: its store, its instance once instantiated, and its captured output.
struct Instance {
    store: Store<Host>,
    proxy: Option<Proxy>,
    served: u32,
    stdout: Capture,
    stderr: Capture,
}

/// The longest failure message kept (a trap carries a wasm backtrace).
const MAX_MESSAGE: usize = 8 * 1024;

impl WasmFunction {
    pub(crate) fn new(engine: &Engine, component: &Component, settings: Settings) -> Result<Self> {
        let fail = |why: String| Error::Load {
            path: settings.name.as_str().into(),
            why,
        };
        let pre = engine
            .inner
            .linker
            .instantiate_pre(component)
            .map_err(|e| fail(format!("cannot link the component: {e:#}")))?;
        let pre = ProxyPre::new(pre).map_err(|e| {
            fail(format!(
                "the component does not export wasi:http/incoming-handler: {e:#}"
            ))
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                _engine: engine.clone(),
                pre,
                outbound: Arc::new(settings.outbound.clone()),
                events_authorization: settings
                    .events_token
                    .as_ref()
                    .map(|t| Arc::from(format!("Bearer {t}"))),
                settings,
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Instantiate `iterations` fresh isolates one after another and time each (store creation
    /// included), for benchmarks.
    pub(crate) async fn measure_instantiation(
        &self,
        iterations: usize,
    ) -> anyhow::Result<Vec<Duration>> {
        let mut times = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let start = Instant::now();
            let mut instance = self.inner.fresh();
            let proxy = self
                .inner
                .pre
                .instantiate_async(&mut instance.store)
                .await?;
            times.push(start.elapsed());
            drop((proxy, instance));
        }
        Ok(times)
    }
}

impl Inner {
    fn fresh(&self) -> Instance {
        let stdout = Capture::default();
        let stderr = Capture::default();
        let mut wasi = WasiCtx::builder();
        wasi.stdout(stdout.clone())
            .stderr(stderr.clone())
            .envs(&self.settings.environment);
        let host = Host {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: Outbound {
                policy: self.outbound.clone(),
                destinations: self.settings.destinations.clone(),
                events_authorization: self.events_authorization.clone(),
                denied: None,
            },
            limiter: MemoryLimiter {
                limit: self.settings.memory_bytes,
                exceeded: false,
            },
        };
        let mut store = Store::new(self.pre.engine(), host);
        store.limiter(|h| &mut h.limiter);
        // Yield to the scheduler every epoch tick: a guest that computes forever still lets the
        // timeout below fire, and cannot starve other requests on the same worker thread. Tokio's
        // `yield_now` runs the timer and I/O drivers before resuming the guest, so the timeout
        // fires on time and other connections keep being served.
        store.epoch_deadline_callback(|_| {
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            ))
        });
        Instance {
            store,
            proxy: None,
            served: 0,
            stdout,
            stderr,
        }
    }

    fn checkout(&self) -> Instance {
        if self.settings.instance_reuse > 1
            && let Some(instance) = self.idle.lock().expect("pool lock poisoned").pop()
        {
            return instance;
        }
        self.fresh()
    }

    fn checkin(&self, instance: Instance) {
        if instance.served >= self.settings.instance_reuse {
            return;
        }
        let mut idle = self.idle.lock().expect("pool lock poisoned");
        if idle.len() < self.settings.max_instances as usize {
            idle.push(instance);
        }
    }
}

impl muon_runtime::Function for WasmFunction {
    fn invoke(
        &self,
        cx: InvocationContext,
        request: Request,
    ) -> BoxFuture<Result<Response, Failure>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let (_id, finish) = cx.into_parts();
            let mut instance = inner.checkout();
            instance.store.set_epoch_deadline(1);
            let answered = Arc::new(AtomicU16::new(0));
            let (response_tx, response_rx) = oneshot::channel();
            let (failure_tx, failure_rx) = oneshot::channel::<Failure>();

            let resources = {
                let answered = answered.clone();
                let http = instance.store.data_mut();
                let request = incoming(request);
                http.http()
                    .new_incoming_request(Scheme::Http, request)
                    .and_then(|req| {
                        let out = http.http().new_response_outparam_from_callback(
                            move |result: Result<GuestResponse, ErrorCode>| {
                                let status = match &result {
                                    Ok(r) => r.status().as_u16(),
                                    Err(_) => 500,
                                };
                                answered.store(status, Ordering::Release);
                                // The caller may have gone away; then nobody needs the answer.
                                let _ = response_tx.send(result);
                            },
                        )?;
                        Ok((req, out))
                    })
            };
            let (req, out) = match resources {
                Ok(r) => r,
                Err(e) => {
                    let failure = Failure::new(Status::StartFailed, format!("{e:#}"));
                    finish(finished(
                        &mut instance,
                        failure.status,
                        None,
                        Some(failure.message.clone()),
                    ));
                    return Err(failure);
                }
            };

            let run: BoxFuture<()> = Box::pin(async move {
                let timeout = inner.settings.timeout;
                let outcome = tokio::time::timeout(timeout, async {
                    let proxy = match instance.proxy.take() {
                        Some(p) => p,
                        None => inner
                            .pre
                            .instantiate_async(&mut instance.store)
                            .await
                            .map_err(|e| (Status::StartFailed, e))?,
                    };
                    proxy
                        .wasi_http_incoming_handler()
                        .call_handle(&mut instance.store, req, out)
                        .await
                        .map_err(|e| (Status::Trap, e))?;
                    Ok::<_, (Status, wasmtime::Error)>(proxy)
                })
                .await;
                let answered = match answered.load(Ordering::Acquire) {
                    0 => None,
                    s => Some(s),
                };
                let failure = match outcome {
                    Ok(Ok(proxy)) => {
                        instance.proxy = Some(proxy);
                        instance.served += 1;
                        if answered.is_none() {
                            Some(Failure::new(
                                Status::Trap,
                                "the function returned without setting a response",
                            ))
                        } else {
                            None
                        }
                    }
                    Ok(Err((status, error))) => {
                        let status = if instance.store.data().limiter.exceeded {
                            Status::MemoryLimit
                        } else {
                            status
                        };
                        // First the cause (what the gateway's answer says), then the whole
                        // chain with the wasm backtrace (what the invocation's record keeps).
                        let message = format!("{}\n{error:#}", error.root_cause());
                        Some(Failure::new(status, clip(message)))
                    }
                    Err(_elapsed) => Some(Failure::new(
                        Status::Timeout,
                        format!(
                            "the function ran past its timeout of {}",
                            format_duration(timeout)
                        ),
                    )),
                };
                match failure {
                    None => {
                        finish(finished(&mut instance, Status::Ok, answered, None));
                        inner.checkin(instance);
                    }
                    Some(failure) => {
                        let report = finished(
                            &mut instance,
                            failure.status,
                            answered,
                            Some(failure.message.clone()),
                        );
                        // Tell the waiting caller why before the isolate (and with it the
                        // response sender) is dropped.
                        let _ = failure_tx.send(failure);
                        drop(instance);
                        finish(report);
                    }
                }
            });

            // Drive the guest from this task until it answers. A guest that answers and ends in
            // the same poll (most do) costs no task of its own; one that keeps running after it
            // answers, to stream its body, goes on in a task of its own.
            let mut run = Detached(Some(run));
            let mut response_rx = response_rx;
            let answer = std::future::poll_fn(|cx| {
                let guest = run.0.as_mut().expect("the guest runs until it ends");
                if guest.as_mut().poll(cx).is_ready() {
                    run.0 = None;
                    return Poll::Ready(response_rx.try_recv().ok());
                }
                Pin::new(&mut response_rx).poll(cx).map(Result::ok)
            })
            .await;
            drop(run);
            // Answer after one turn of the scheduler: the other connections this worker has
            // requests for run their guests first, and the answers leave together. Written one by
            // one, each answer woke the client on its own: under load on 2 cores that cost a third
            // of the throughput (bench/RESULTS.md, "Requests/s under load").
            tokio::task::yield_now().await;

            match answer {
                Some(Ok(response)) => {
                    Ok(response.map(|body| body.map_err(BoxError::from).boxed_unsync()))
                }
                Some(Err(code)) => Ok(http::Response::builder()
                    .status(http::StatusCode::INTERNAL_SERVER_ERROR)
                    .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
                    .body(muon_runtime::full(format!("function error: {code:?}\n")))
                    .expect("a static response is valid")),
                None => Err(failure_rx.await.unwrap_or_else(|_| {
                    Failure::new(Status::Trap, "the function stopped without an answer")
                })),
            }
        })
    }
}

/// The rest of a guest's run once nobody waits on it here: it goes on in a task of its own,
/// so that it still ends, reports its logs and returns its instance when the caller goes away.
struct Detached(Option<BoxFuture<()>>);

impl Drop for Detached {
    fn drop(&mut self) {
        if let Some(run) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(run);
        }
    }
}

/// Adapt a request for wasi-http: bodies fail with its error type and a host is always known.
fn incoming(
    request: Request,
) -> http::Request<
    impl http_body::Body<Data = bytes::Bytes, Error = wasmtime_wasi_http::Error> + Send + 'static,
> {
    let (mut parts, body) = request.into_parts();
    if parts.uri.authority().is_none() && !parts.headers.contains_key(http::header::HOST) {
        parts.headers.insert(
            http::header::HOST,
            http::HeaderValue::from_static("localhost"),
        );
    }
    let body = body.map_err(|e: BoxError| {
        if let Some(too_large) = e.downcast_ref::<muon_runtime::TooLarge>() {
            wasmtime_wasi_http::Error::HttpRequestBodySize(Some(too_large.0))
        } else {
            wasmtime_wasi_http::Error::InternalError(Some(e.to_string()))
        }
    });
    http::Request::from_parts(parts, body)
}

fn finished(
    instance: &mut Instance,
    status: Status,
    http_status: Option<u16>,
    message: Option<String>,
) -> Finished {
    let mut logs: Vec<(Stream, String)> = Vec::new();
    logs.extend(
        instance
            .stdout
            .take_lines()
            .into_iter()
            .map(|l| (Stream::Stdout, l)),
    );
    logs.extend(
        instance
            .stderr
            .take_lines()
            .into_iter()
            .map(|l| (Stream::Stderr, l)),
    );
    let host = instance.store.data_mut();
    if let Some(denied) = &host.hooks.denied {
        logs.extend(
            std::mem::take(&mut *denied.lock().expect("no panics under the lock"))
                .into_iter()
                .map(|l| (Stream::Platform, l)),
        );
    }
    host.limiter.exceeded = false;
    Finished {
        status,
        http_status,
        message,
        logs,
    }
}

fn clip(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str(" [truncated]");
    }
    message
}
