//! The gateway: app routes to functions, over bare hyper.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use muon_manifest::Route;
use muon_types::FunctionName;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::{State, bounded, error_response, invocation_response};

/// How long shutdown waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(10);

/// The route table: exact paths in a map, prefixes longest first.
#[derive(Debug, Default)]
pub struct Routes {
    exact: HashMap<String, FunctionName>,
    prefixes: Vec<(Route, FunctionName)>,
    listing: Vec<(String, FunctionName)>,
}

impl Routes {
    /// Build from `(route text, function)` pairs; the texts are valid routes (`/x`, `/x/...`).
    pub fn new(routes: impl IntoIterator<Item = (String, FunctionName)>) -> Self {
        let mut table = Routes::default();
        for (route, function) in routes {
            table.listing.push((route.clone(), function.clone()));
            match Route::parse(&route).expect("routes were validated with the manifest") {
                prefix @ Route::Prefix(_) => table.prefixes.push((prefix, function)),
                Route::Exact(path) => {
                    table.exact.insert(path, function);
                }
            }
        }
        // Longer prefixes first, so the most specific route wins.
        table
            .prefixes
            .sort_by_key(|(r, _)| std::cmp::Reverse(r.to_string().len()));
        table.listing.sort();
        table
    }

    pub fn lookup(&self, path: &str) -> Option<&FunctionName> {
        if let Some(f) = self.exact.get(path) {
            return Some(f);
        }
        self.prefixes
            .iter()
            .find_map(|(route, f)| route.matches(path).then_some(f))
    }

    /// Every route and its function, sorted by route.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &FunctionName)> {
        self.listing.iter().map(|(r, f)| (r.as_str(), f))
    }
}

/// Serve app traffic until `stop` turns true, then drain requests in flight.
///
/// Connections are accepted on a thread of their own (`muon-accept`), never on the caller's
/// runtime, which also runs the control API, the bus and the workflow engine: no control-plane
/// work, however heavy, keeps app connections from being accepted. They are handed,
/// round-robin, to `workers` threads that each run their own single-threaded runtime: a
/// request, its isolate and its response body stay on one thread, with no work stealing and no
/// cross-thread wake-ups on the hot path.
pub async fn serve(
    state: State,
    listener: TcpListener,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let listener = listener.into_std()?;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("muon-accept".into())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .and_then(|runtime| {
                    runtime.block_on(async move {
                        accept_loop(state, TcpListener::from_std(listener)?, stop).await
                    })
                });
            let _ = done_tx.send(result);
        })?;
    done_rx
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("the accept thread panicked")))
}

async fn accept_loop(
    state: State,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let workers = Pool::start(&state.inner.config)?;
    let mut next = 0usize;
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        let _ = stream.set_nodelay(true);
        // Move the socket to the worker's own reactor.
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot hand a connection to a worker: {e}");
                continue;
            }
        };
        next = next.wrapping_add(1);
        workers.hand(next, stream, state.clone(), graceful.watcher());
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {DRAIN:?}; stopping anyway");
    }
    workers.stop();
    Ok(())
}

/// The worker threads connections are handed to: epoll (tokio's reactor), or io_uring when asked
/// for and the kernel allows it.
enum Pool {
    Epoll(Workers),
    #[cfg(target_os = "linux")]
    Uring(crate::uring::Workers),
}

impl Pool {
    fn start(config: &crate::Config) -> std::io::Result<Self> {
        let count = config.workers.max(1);
        if config.io_uring {
            #[cfg(target_os = "linux")]
            match crate::uring::available() {
                Ok(cooperative) => {
                    return crate::uring::Workers::start(count, cooperative).map(Self::Uring);
                }
                Err(e) => tracing::warn!("io_uring is not available ({e}); serving with epoll"),
            }
            #[cfg(not(target_os = "linux"))]
            tracing::warn!("io_uring is only on Linux; serving with epoll");
        }
        Workers::start(count).map(Self::Epoll)
    }

    fn hand(&self, n: usize, stream: std::net::TcpStream, state: State, watcher: Watcher) {
        match self {
            Self::Epoll(workers) => workers.spawn(n, serve_connection(stream, state, watcher)),
            #[cfg(target_os = "linux")]
            Self::Uring(workers) => workers.spawn(n, stream, state, watcher),
        }
    }

    /// Stop the threads (the io_uring ones stop once their connections' sender is gone).
    fn stop(self) {
        match self {
            Self::Epoll(workers) => workers.stop(),
            #[cfg(target_os = "linux")]
            Self::Uring(workers) => drop(workers),
        }
    }
}

/// Serve one connection on an epoll worker: HTTP/1.1 and HTTP/2 (prior knowledge), with upgrades.
async fn serve_connection(stream: std::net::TcpStream, state: State, watcher: Watcher) {
    let stream = match tokio::net::TcpStream::from_std(stream) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot register a connection: {e}");
            return;
        }
    };
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service(state));
    if let Err(e) = watcher.watch(connection.into_owned()).await {
        tracing::debug!("connection ended with an error: {e}");
    }
}

/// Threads running single-threaded runtimes, each until it is told to stop.
struct Workers {
    handles: Vec<tokio::runtime::Handle>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl Workers {
    fn start(count: usize) -> std::io::Result<Self> {
        let mut handles = Vec::with_capacity(count);
        let mut stops = Vec::with_capacity(count);
        for i in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(runtime.handle().clone());
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            stops.push(stop_tx);
            std::thread::Builder::new()
                .name(format!("muon-gateway-{i}"))
                .spawn(move || {
                    runtime.block_on(async {
                        let _ = stop_rx.await;
                    });
                    // Dropping the runtime cancels what is left after the drain.
                })?;
        }
        Ok(Self { handles, stops })
    }

    fn spawn(&self, n: usize, task: impl Future<Output = ()> + Send + 'static) {
        self.handles[n % self.handles.len()].spawn(task);
    }

    fn stop(self) {
        for stop in self.stops {
            let _ = stop.send(());
        }
    }
}

/// The app service, whatever serves the connection: every request goes to [`handle`].
pub(crate) fn service(
    state: State,
) -> impl hyper::service::Service<
    http::Request<Incoming>,
    Response = muon_runtime::Response,
    Error = Infallible,
    Future: Send,
> {
    hyper::service::service_fn(move |request| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(state, request).await) }
    })
}

async fn handle(state: State, request: http::Request<Incoming>) -> muon_runtime::Response {
    // An access log line per request at MUON_LOG=info (target `muon::access`); nothing is
    // measured when it is off.
    if tracing::enabled!(target: "muon::access", tracing::Level::INFO) {
        let started = std::time::Instant::now();
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let response = route(state, request).await;
        tracing::info!(
            target: "muon::access",
            "app {method} {path} {} {:.2}ms {}",
            response.status().as_u16(),
            started.elapsed().as_secs_f64() * 1000.0,
            response
                .headers()
                .get(muon_api::INVOCATION_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
        );
        return response;
    }
    route(state, request).await
}

async fn route(state: State, request: http::Request<Incoming>) -> muon_runtime::Response {
    if let Some(why) = crate::host_problem(request.version(), request.headers()) {
        return crate::bad_host(why);
    }
    let Some(function) = state.inner.routes.lookup(request.uri().path()).cloned() else {
        return error_response(
            http::StatusCode::NOT_FOUND,
            "not_found",
            format!("no route matches {}", request.uri().path()),
            None,
        );
    };
    let max_body = state.inner.config.max_body;
    let (request, exceeded) = match bounded(request, max_body).await {
        Ok(r) => r,
        Err(answer) => return answer,
    };
    match state.inner.invoker.invoke(&function, request).await {
        Some((id, result)) => {
            invocation_response(id, result, exceeded.load(Ordering::Acquire), max_body)
        }
        None => error_response(
            http::StatusCode::NOT_FOUND,
            "not_found",
            format!("function {function} is not loaded"),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    /// Answers every request with `ok`.
    struct Ok200;

    impl muon_runtime::Function for Ok200 {
        fn invoke(
            &self,
            cx: muon_runtime::InvocationContext,
            _request: muon_runtime::Request,
        ) -> muon_runtime::BoxFuture<Result<muon_runtime::Response, muon_runtime::Failure>>
        {
            Box::pin(async move {
                let (_id, finish) = cx.into_parts();
                finish(muon_runtime::Finished {
                    status: muon_types::Status::Ok,
                    http_status: Some(200),
                    message: None,
                    logs: Vec::new(),
                });
                Ok(http::Response::new(muon_runtime::full("ok")))
            })
        }
    }

    #[test]
    fn a_busy_control_runtime_does_not_stall_app_traffic() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let invoker = muon_runtime::Invoker::builder()
                .function(
                    muon_runtime::FunctionMeta {
                        name: name("ok"),
                        runtime: "test",
                        route: Some("/ok".into()),
                        memory_mb: 128,
                        timeout: Duration::from_secs(5),
                        min_instances: 0,
                        max_instances: 1,
                        instance_reuse: 1,
                        source: String::new(),
                    },
                    Arc::new(Ok200),
                )
                .build();
            let config = crate::Config {
                app: "t".into(),
                max_body: 1024,
                workers: 1,
                io_uring: false,
                events_token: None,
                require_auth: false,
            };
            let state = State::new(config, invoker);
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (stop_tx, stop_rx) = watch::channel(false);
            let server = tokio::spawn(serve(state, listener, stop_rx));
            tokio::task::yield_now().await;
            // The caller's (single) thread is now busy, as a CPU-heavy control request would
            // keep it, until the app request is answered or 20 s pass.
            let busy = Arc::new(AtomicBool::new(true));
            let client = {
                let busy = busy.clone();
                std::thread::spawn(move || {
                    let mut c = std::net::TcpStream::connect(addr).unwrap();
                    c.write_all(b"GET /ok HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                        .unwrap();
                    let mut answer = String::new();
                    c.read_to_string(&mut answer).unwrap();
                    (answer, busy.load(Ordering::SeqCst))
                })
            };
            let until = std::time::Instant::now() + Duration::from_secs(20);
            while !client.is_finished() && std::time::Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
            busy.store(false, Ordering::SeqCst);
            let (answer, while_busy) = client.join().unwrap();
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            assert!(while_busy, "the app request waited for the busy runtime");
            stop_tx.send(true).unwrap();
            server.await.unwrap().unwrap();
        });
    }

    fn name(n: &str) -> FunctionName {
        FunctionName::new(n).unwrap()
    }

    #[test]
    fn exact_routes_win_and_longer_prefixes_win() {
        let routes = Routes::new([
            ("/...".to_string(), name("root")),
            ("/api/...".to_string(), name("api")),
            ("/api/users/...".to_string(), name("users")),
            ("/api/health".to_string(), name("health")),
        ]);
        assert_eq!(routes.lookup("/api/health"), Some(&name("health")));
        assert_eq!(routes.lookup("/api/users/7"), Some(&name("users")));
        assert_eq!(routes.lookup("/api/usersx"), Some(&name("api")));
        assert_eq!(routes.lookup("/api"), Some(&name("api")));
        assert_eq!(routes.lookup("/other"), Some(&name("root")));
        assert_eq!(routes.iter().count(), 4);
        let none = Routes::new([("/a".to_string(), name("a"))]);
        assert_eq!(none.lookup("/b"), None);
        assert_eq!(none.lookup("/a/"), None);
    }
}
