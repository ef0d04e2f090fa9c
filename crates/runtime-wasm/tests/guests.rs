//! The wasm runtime against real guest components from `guests/` (built on first use).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use muon_manifest::OutboundPolicy;
use muon_runtime::{Finished, Function, InvocationContext, Response, full};
use muon_runtime_wasm::{Config, Engine, Settings, WasmFunction};
use muon_types::{FunctionName, InvocationId, Status, Stream};
use tokio::sync::oneshot;

fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<Vec<(String, PathBuf)>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../guests");
        muon_manifest::build::build_project(&dir).expect("the guest fixtures build")
    });
    built
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| p.clone())
        .unwrap_or_else(|| panic!("no guest named {name}"))
}

fn engine() -> Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let cache = std::env::temp_dir().join("muon-test-cache");
            Engine::new(&Config {
                cache_dir: Some(cache),
                max_instances: 64,
                max_memory_mb: 256,
                ..Config::default()
            })
            .expect("engine starts")
        })
        .clone()
}

fn settings(name: &str) -> Settings {
    Settings {
        name: FunctionName::new(name).unwrap(),
        memory_bytes: 32 << 20,
        timeout: Duration::from_secs(5),
        environment: vec![("GREETING".into(), "hej".into())],
        outbound: OutboundPolicy::deny_all(),
        destinations: Arc::new(muon_runtime::Destinations::new(Vec::new(), true)),
        events_token: None,
        instance_reuse: 1,
        max_instances: 8,
    }
}

fn function(guest_name: &str, settings: Settings) -> WasmFunction {
    let engine = engine();
    let loaded = engine.load(&guest(guest_name)).unwrap();
    engine.prepare(&loaded.component, settings).unwrap()
}

struct Outcome {
    response: Result<Response, muon_runtime::Failure>,
    finished: oneshot::Receiver<Finished>,
}

/// A context for one invocation of `f`, and where its end is heard.
fn context(f: &WasmFunction) -> (InvocationContext, oneshot::Receiver<Finished>) {
    let (tx, finished) = oneshot::channel();
    let cx = InvocationContext::new(
        InvocationId::random(),
        f.settings().name.clone(),
        move |done| {
            let _ = tx.send(done);
        },
    );
    (cx, finished)
}

async fn call(f: &WasmFunction, request: http::Request<muon_runtime::Body>) -> Outcome {
    let (cx, finished) = context(f);
    let response = f.invoke(cx, request).await;
    Outcome { response, finished }
}

fn get(uri: &str) -> http::Request<muon_runtime::Body> {
    http::Request::get(uri)
        .header("host", "test")
        .body(muon_runtime::empty())
        .unwrap()
}

async fn text(response: Response) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn hello_answers_and_logs() {
    let f = function("hello", settings("hello"));
    let out = call(&f, get("/hello")).await;
    let response = out.response.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(text(response).await, "Hello, world!\n");
    let finished = out.finished.await.unwrap();
    assert_eq!(finished.status, Status::Ok);
    assert_eq!(finished.http_status, Some(200));
    assert_eq!(
        finished.logs,
        vec![(Stream::Stdout, "hello: handled GET /hello".to_string())]
    );
}

#[tokio::test]
async fn echo_streams_bodies_and_sees_its_environment() {
    let f = function("echo", settings("echo"));
    let body = vec![7u8; 3 << 20];
    let request = http::Request::post("/echo?x=1")
        .header("host", "test")
        .header("content-type", "application/octet-stream")
        .body(full(body.clone()))
        .unwrap();
    let response = call(&f, request).await.response.unwrap();
    assert_eq!(response.headers()["x-echo-path"], "/echo?x=1");
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    let echoed = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(echoed.len(), body.len());
    assert!(echoed.iter().all(|&b| b == 7));

    let request = http::Request::get("/")
        .header("host", "test")
        .header("x-echo-env", "GREETING")
        .body(muon_runtime::empty())
        .unwrap();
    assert_eq!(text(call(&f, request).await.response.unwrap()).await, "hej");
    let request = http::Request::get("/")
        .header("host", "test")
        .header("x-echo-env", "PATH")
        .body(muon_runtime::empty())
        .unwrap();
    assert_eq!(
        text(call(&f, request).await.response.unwrap()).await,
        "<unset>",
        "guests see only the environment the manifest grants"
    );
}

#[tokio::test]
async fn a_trap_is_a_failure_with_the_reason_in_the_logs() {
    let f = function("trap", settings("trap"));
    let out = call(&f, get("/")).await;
    let failure = out.response.unwrap_err();
    assert_eq!(failure.status, Status::Trap);
    assert_eq!(failure.http_status(), 500);
    let finished = out.finished.await.unwrap();
    assert_eq!(finished.status, Status::Trap);
    let stderr: Vec<_> = finished
        .logs
        .iter()
        .filter(|(s, _)| *s == Stream::Stderr)
        .map(|(_, l)| l.as_str())
        .collect();
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("intentional trap from guest")),
        "{stderr:?}"
    );
    // The function keeps serving after a trap.
    assert!(call(&f, get("/")).await.response.is_err());
}

#[tokio::test]
async fn a_guest_that_loops_forever_is_stopped_at_its_timeout() {
    let f = function(
        "spin",
        Settings {
            timeout: Duration::from_millis(300),
            ..settings("spin")
        },
    );
    let start = Instant::now();
    let out = call(&f, get("/")).await;
    let elapsed = start.elapsed();
    let failure = out.response.unwrap_err();
    assert_eq!(failure.status, Status::Timeout);
    assert_eq!(failure.http_status(), 504);
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    let finished = out.finished.await.unwrap();
    assert!(
        finished
            .logs
            .contains(&(Stream::Stdout, "spin: starting".to_string()))
    );
}

#[tokio::test]
async fn a_memory_bomb_is_stopped_at_its_limit() {
    let f = function(
        "membomb",
        Settings {
            memory_bytes: 24 << 20,
            ..settings("membomb")
        },
    );
    for _ in 0..3 {
        let out = call(&f, get("/")).await;
        let failure = out.response.unwrap_err();
        assert_eq!(failure.status, Status::MemoryLimit, "{}", failure.message);
        assert!(
            failure.message.contains("memory limit exceeded"),
            "{}",
            failure.message
        );
    }
}

#[tokio::test]
async fn large_streamed_bodies_arrive_whole() {
    let f = function("bigbody", settings("bigbody"));
    let size = 20 << 20;
    let response = call(&f, get(&format!("/?bytes={size}")))
        .await
        .response
        .unwrap();
    let mut body = response.into_body();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        if let Some(data) = frame.data_ref() {
            for (i, b) in data.iter().enumerate() {
                assert_eq!(*b, ((seen + i) % 251) as u8);
            }
            seen += data.len();
        }
    }
    assert_eq!(seen, size);
}

#[tokio::test]
async fn outbound_requests_need_an_allowlist_entry() {
    // A real upstream on loopback: the guest may reach it only when allowed.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nupstream")
                    .await;
            });
        }
    });
    let url = format!("/?url=http%3A%2F%2F127.0.0.1%3A{port}%2F");

    let denied = function("outbound", settings("outbound"));
    let out = call(&denied, get(&url)).await;
    let response = out.response.unwrap();
    assert_eq!(response.status(), 502);
    assert!(text(response).await.contains("HttpRequestDenied"));
    let finished = out.finished.await.unwrap();
    assert!(
        finished
            .logs
            .iter()
            .any(|(s, l)| *s == Stream::Platform && l.contains("denied")),
        "{:?}",
        finished.logs
    );
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing left the guest"
    );

    let allowed = function(
        "outbound",
        Settings {
            outbound: OutboundPolicy::parse(&[format!("http://127.0.0.1:{port}")]).unwrap(),
            ..settings("outbound")
        },
    );
    let response = call(&allowed, get(&url)).await.response.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(text(response).await, "status=200\nupstream");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);

    // Spin's CVE-2024-32980: a request with no host and a forged Host header must not reach
    // anything, even with an allowed host to aim the header at.
    let forged = format!("/?hostless=%2Fsecret&forge=127.0.0.1%3A{port}");
    let response = call(&allowed, get(&forged)).await.response.unwrap();
    let answer = text(response).await;
    assert!(answer.contains("host-header=refused"), "{answer}");
    assert!(answer.contains("error="), "{answer}");
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "{answer}"
    );

    // Allowed by name, refused by address: loopback without the opt-in for private
    // destinations, and muon's own sockets whatever the opt-in.
    let upstream: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for destinations in [
        muon_runtime::Destinations::new(Vec::new(), false),
        muon_runtime::Destinations::new(vec![upstream], true),
    ] {
        let refused = function(
            "outbound",
            Settings {
                outbound: OutboundPolicy::parse(&[format!("http://localhost:{port}")]).unwrap(),
                destinations: Arc::new(destinations),
                ..settings("outbound")
            },
        );
        let named = format!("/?url=http%3A%2F%2Flocalhost%3A{port}%2F");
        let out = call(&refused, get(&named)).await;
        let answer = text(out.response.unwrap()).await;
        assert!(answer.contains("HttpRequestDenied"), "{answer}");
        let finished = out.finished.await.unwrap();
        assert!(
            finished
                .logs
                .iter()
                .any(|(s, l)| *s == Stream::Platform && l.contains("denied: it is")),
            "{:?}",
            finished.logs
        );
    }
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_caller_that_goes_away_still_gets_its_invocation_ended() {
    // The guest runs in its caller's task until it answers; when the caller gives up first (a
    // client that disconnects), the guest must still run to its end and be reported.
    let f = function(
        "spin",
        Settings {
            timeout: Duration::from_millis(300),
            ..settings("spin")
        },
    );
    let (cx, finished) = context(&f);
    let gave_up = tokio::time::timeout(Duration::from_millis(50), f.invoke(cx, get("/"))).await;
    assert!(gave_up.is_err(), "the spinning guest cannot have answered");
    let finished = tokio::time::timeout(Duration::from_secs(5), finished)
        .await
        .expect("the abandoned guest ends at its timeout")
        .expect("its end is reported");
    assert_eq!(finished.status, Status::Timeout);
    assert!(
        finished
            .logs
            .contains(&(Stream::Stdout, "spin: starting".to_string()))
    );
}

#[tokio::test]
async fn instance_reuse_serves_many_requests_from_one_isolate() {
    let f = function(
        "hello",
        Settings {
            instance_reuse: 1000,
            ..settings("hello")
        },
    );
    for _ in 0..50 {
        let out = call(&f, get("/hello")).await;
        assert_eq!(text(out.response.unwrap()).await, "Hello, world!\n");
        let finished = out.finished.await.unwrap();
        assert_eq!(
            finished.logs.len(),
            1,
            "each invocation sees only its own output"
        );
    }
}

#[test]
fn core_modules_and_garbage_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"hello").unwrap();
    let engine = engine();
    let e = engine.load(&core).err().unwrap().to_string();
    assert!(
        e.contains("core WebAssembly module, not a component"),
        "{e}"
    );
    let e = engine.load(&junk).err().unwrap().to_string();
    assert!(e.contains("not a WebAssembly component"), "{e}");
    let e = engine
        .load(&dir.path().join("missing.wasm"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("cannot read"), "{e}");
}

#[test]
fn compiled_components_are_cached_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(&Config {
        cache_dir: Some(dir.path().to_path_buf()),
        max_instances: 4,
        max_memory_mb: 64,
        ..Config::default()
    })
    .unwrap();
    assert!(!engine.load(&guest("hello")).unwrap().cached);
    assert!(engine.load(&guest("hello")).unwrap().cached);
    // A corrupt entry is recompiled, not trusted.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    assert!(!engine.load(&guest("hello")).unwrap().cached);
}

#[tokio::test]
async fn isolates_beyond_the_pool_are_refused_not_queued_forever() {
    let engine = Engine::new(&Config {
        cache_dir: None,
        pooling: muon_runtime_wasm::Pooling::Always,
        max_instances: 2,
        max_memory_mb: 64,
    })
    .unwrap();
    let loaded = engine.load(&guest("spin")).unwrap();
    let f = engine
        .prepare(
            &loaded.component,
            Settings {
                timeout: Duration::from_millis(400),
                ..settings("spin")
            },
        )
        .unwrap();
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let f = f.clone();
            tokio::spawn(async move { call(&f, get("/")).await.response.unwrap_err() })
        })
        .collect();
    let mut statuses = Vec::new();
    for c in calls {
        statuses.push(c.await.unwrap());
    }
    let refused: Vec<_> = statuses
        .iter()
        .filter(|f| f.status == Status::StartFailed)
        .collect();
    assert_eq!(refused.len(), 1, "{statuses:?}");
    assert_eq!(refused[0].http_status(), 503);
    assert_eq!(
        statuses
            .iter()
            .filter(|f| f.status == Status::Timeout)
            .count(),
        2
    );
}
