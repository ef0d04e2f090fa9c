//! `muon up` as a user runs it: a real process, real sockets, real guest components.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Up, client, guest, muon};

fn function(name: &str, guest_name: &str, extra: &str) -> String {
    format!(
        "[[function]]\nname = \"{name}\"\nruntime = \"wasm\"\nsource = {:?}\n{extra}\n",
        guest(guest_name).display().to_string()
    )
}

fn app() -> String {
    [
        "app = \"test\"\n".to_string(),
        function("hello", "hello", "route = \"/hello\""),
        function(
            "echo",
            "echo",
            "route = \"/echo/...\"\nenvironment = { GREETING = \"hej\" }",
        ),
        function("trap", "trap", "route = \"/trap\""),
        function("spin", "spin", "route = \"/spin\"\ntimeout = \"500ms\""),
        function("membomb", "membomb", "route = \"/bomb\"\nmemory_mb = 32"),
        function("quiet", "hello", ""),
    ]
    .concat()
}

fn json(response: reqwest::blocking::Response) -> serde_json::Value {
    response.json().unwrap()
}

#[test]
fn routes_control_api_and_cli() {
    let up = Up::start(&app(), &["--max-body", "65536"]);
    let http = client();

    let response = http.get(format!("{}/hello", up.gateway)).send().unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["x-muon-invocation-id"]
            .to_str()
            .unwrap()
            .starts_with("inv_")
    );
    assert_eq!(response.text().unwrap(), "Hello, world!\n");

    let response = http
        .post(format!("{}/echo/a/b?q=1", up.gateway))
        .body("ping")
        .send()
        .unwrap();
    assert_eq!(response.headers()["x-echo-path"], "/echo/a/b?q=1");
    assert_eq!(response.text().unwrap(), "ping");

    let response = http.get(format!("{}/nowhere", up.gateway)).send().unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(json(response)["error"], "not_found");

    // Oversized bodies: declared, and streamed without a length.
    let response = http
        .post(format!("{}/echo/", up.gateway))
        .body(vec![0u8; 65537])
        .send()
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(chunked_post_status(&up.gateway, "/echo/", 40, 4096), 413);
    assert_eq!(chunked_post_status(&up.gateway, "/echo/", 4, 4096), 200);

    let health = json(
        http.get(format!("{}/v1/health", up.control))
            .send()
            .unwrap(),
    );
    assert_eq!(health["status"], "ok");
    assert_eq!(health["functions"], 6);
    let functions = json(
        http.get(format!("{}/v1/functions", up.control))
            .send()
            .unwrap(),
    );
    let hello = functions["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "hello")
        .unwrap()
        .clone();
    assert_eq!(hello["invocations"], 1);
    assert_eq!(hello["route"], "/hello");

    // A function without a route is invoked through the control API.
    let response = http
        .post(format!("{}/v1/functions/quiet/invoke?path=/x", up.control))
        .send()
        .unwrap();
    assert_eq!(response.text().unwrap(), "Hello, world!\n");
    let response = http
        .post(format!("{}/v1/functions/nope/invoke", up.control))
        .send()
        .unwrap();
    assert_eq!(response.status(), 404);
    let response = http
        .get(format!("{}/v1/nothing", up.control))
        .send()
        .unwrap();
    assert_eq!(response.status(), 404);

    // EventBridge's TestEventPattern.
    let event = r#"{"id":"1","source":"shop","detail-type":"OrderPlaced","account":"1","region":"r","time":"2026-11-26T00:00:00Z","resources":[],"detail":{}}"#;
    let answer = http
        .post(format!("{}/v1/events/test-pattern", up.control))
        .json(&serde_json::json!({"event_pattern": r#"{"source":["shop"]}"#, "event": event}))
        .send()
        .unwrap();
    assert_eq!(json(answer)["result"], true);
    let answer = http
        .post(format!("{}/v1/events/test-pattern", up.control))
        .json(&serde_json::json!({"event_pattern": r#"{"source":"shop"}"#, "event": event}))
        .send()
        .unwrap();
    assert_eq!(answer.status(), 400);
    assert_eq!(json(answer)["error"], "InvalidEventPatternException");
    let answer = http
        .post(format!("{}/v1/events/test-pattern", up.control))
        .body("{")
        .send()
        .unwrap();
    assert_eq!(answer.status(), 400);

    // The CLI.
    let out = up.cli(&[
        "invoke",
        "echo",
        "--data",
        "{\"order\": 7}",
        "--path",
        "/echo/x",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "{\"order\": 7}");
    let out = up.cli(&["invoke", "echo", "--json", "-d", "[1,2]"]);
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(parsed["status"], 200);
    assert_eq!(parsed["body"], serde_json::json!([1, 2]));
    let out = up.cli(&["functions"]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("hello") && listing.contains("/echo/..."),
        "{listing}"
    );
    let out = up.cli(&["functions", "--json"]);
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(parsed["functions"].as_array().unwrap().len(), 6);
    let out = up.cli(&["logs", "hello"]);
    let logs = String::from_utf8_lossy(&out.stdout);
    assert!(logs.contains("stdout hello: handled GET /hello"), "{logs}");
    let out = up.cli(&["invoke", "missing"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no function named"));
}

#[test]
fn logs_follow_streams_new_lines() {
    let up = Up::start(&app(), &[]);
    let mut follow = muon()
        .args(["logs", "hello", "--follow", "--limit", "0"])
        .env("MUON_CONTROL", &up.control)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    // Invoke until the follower has connected and seen a line.
    let http = client();
    let seen = std::thread::spawn(move || lines.next().unwrap().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.is_finished() && Instant::now() < deadline {
        http.get(format!("{}/hello", up.gateway)).send().unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let line = seen.join().unwrap();
    assert!(line.contains("hello: handled GET /hello"), "{line}");
    let _ = follow.kill();
    let _ = follow.wait();
}

#[test]
fn traps_timeouts_and_memory_bombs_fail_cleanly() {
    let up = Up::start(&app(), &[]);
    let http = client();

    let response = http.get(format!("{}/trap", up.gateway)).send().unwrap();
    assert_eq!(response.status(), 500);
    let id = response.headers()["x-muon-invocation-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body = json(response);
    assert_eq!(body["error"], "trap");
    assert_eq!(body["invocation_id"], id.as_str());
    let record = json(
        http.get(format!("{}/v1/invocations/{id}", up.control))
            .send()
            .unwrap(),
    );
    assert_eq!(record["status"], "trap");
    let logs = record["logs"].as_array().unwrap();
    assert!(
        logs.iter().any(|l| l["text"]
            .as_str()
            .unwrap()
            .contains("intentional trap from guest")),
        "{logs:?}"
    );
    assert!(logs.iter().any(|l| l["stream"] == "platform"));
    let out = up.cli(&["logs", "trap"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("intentional trap"));
    let out = up.cli(&["invoke", "trap"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("trap"),
        "{out:?}"
    );

    // The timeout is 500 ms; the answer must be a 504 soon after it, never a hang.
    let start = Instant::now();
    let response = http.get(format!("{}/spin", up.gateway)).send().unwrap();
    let elapsed = start.elapsed();
    assert_eq!(response.status(), 504);
    assert_eq!(json(response)["error"], "timeout");
    assert!(elapsed >= Duration::from_millis(500), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(5),
        "a timed-out guest was not stopped: {elapsed:?}"
    );

    // Memory bombs stop at the limit, and the host does not grow with them.
    let response = http.get(format!("{}/bomb", up.gateway)).send().unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(json(response)["error"], "memory_limit");
    let before = up.rss_kb();
    for _ in 0..20 {
        let response = http.get(format!("{}/bomb", up.gateway)).send().unwrap();
        assert_eq!(response.status(), 500);
        let response = http.get(format!("{}/trap", up.gateway)).send().unwrap();
        assert_eq!(response.status(), 500);
    }
    let after = up.rss_kb();
    assert!(
        after < before + 16 * 1024,
        "host memory grew from {before} kB to {after} kB over 20 memory bombs and traps"
    );

    // And the app still serves.
    let response = http.get(format!("{}/hello", up.gateway)).send().unwrap();
    assert_eq!(response.status(), 200);
}

fn up_fails(manifest_dir: &Path) -> String {
    let out = muon()
        .arg("up")
        .arg(manifest_dir)
        .args(["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "muon up started with a bad app");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_apps_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junk.wasm"), b"not wasm at all").unwrap();
    std::fs::write(
        dir.path().join("muon.toml"),
        "app = \"bad\"\n[[function]]\nname = \"broken\"\nruntime = \"wasm\"\nsource = \"junk.wasm\"\nroute = \"/\"\n",
    )
    .unwrap();
    let e = up_fails(dir.path());
    assert!(
        e.contains("function `broken`") && e.contains("not a WebAssembly component"),
        "{e}"
    );

    std::fs::write(
        dir.path().join("muon.toml"),
        "app = \"bad\"\n[[function]]\nname = \"gone\"\nruntime = \"wasm\"\nsource = \"gone.wasm\"\ntimeout = \"soon\"\n",
    )
    .unwrap();
    let e = up_fails(dir.path());
    assert!(e.contains("muon.toml"), "{e}");
    assert!(
        e.contains("function[0].source") && e.contains("gone.wasm does not exist"),
        "{e}"
    );
    assert!(e.contains("function[0].timeout"), "{e}");

    let e = up_fails(&dir.path().join("no-such-app"));
    assert!(e.contains("cannot read"), "{e}");
}

#[test]
fn without_room_for_the_pool_isolates_are_allocated_on_demand() {
    // 8 GiB of address space cannot hold the pooling allocator's reservation.
    let up = Up::start_limited(8 << 20, &app(), &[]);
    let gateway = up.gateway.clone();
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let gateway = gateway.clone();
            std::thread::spawn(move || {
                let http = client();
                (0..10)
                    .map(|_| {
                        http.get(format!("{gateway}/hello"))
                            .send()
                            .unwrap()
                            .status()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for w in workers {
        assert!(w.join().unwrap().iter().all(|s| *s == 200));
    }
}

#[test]
fn ctrl_c_stops_cleanly() {
    let mut up = Up::start(&app(), &[]);
    let status = Command::new("kill")
        .args(["-INT", &up.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = up.child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "muon up did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn io_uring_serves_the_same_app() {
    // `--io-uring` changes how connections are read and written, nothing else: the same answers,
    // streamed bodies, limits and failures. (Where the kernel refuses io_uring, muon falls back to
    // epoll and this still holds.)
    let up = Up::start(&app(), &["--io-uring", "--max-body", "65536"]);
    let http = client();
    for _ in 0..50 {
        let response = http.get(format!("{}/hello", up.gateway)).send().unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers().contains_key("x-muon-invocation-id"));
        assert_eq!(response.text().unwrap(), "Hello, world!\n");
    }
    let body: Vec<u8> = (0..60_000u32).map(|i| (i % 251) as u8).collect();
    let response = http
        .post(format!("{}/echo/big", up.gateway))
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().unwrap().as_ref(), body.as_slice());
    assert_eq!(chunked_post_status(&up.gateway, "/echo/", 40, 4096), 413);
    assert_eq!(chunked_post_status(&up.gateway, "/echo/", 4, 4096), 200);
    let response = http.get(format!("{}/nowhere", up.gateway)).send().unwrap();
    assert_eq!(response.status(), 404);
    let response = http.get(format!("{}/trap", up.gateway)).send().unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(json(response)["error"], "trap");
    let response = http.get(format!("{}/spin", up.gateway)).send().unwrap();
    assert_eq!(response.status(), 504);
    assert_serves_h2c(&up.gateway);
    // Many connections at once, each with several requests.
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let gateway = up.gateway.clone();
            std::thread::spawn(move || {
                let http = client();
                for _ in 0..20 {
                    let response = http.get(format!("{gateway}/hello")).send().unwrap();
                    assert_eq!(response.text().unwrap(), "Hello, world!\n");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn http2_with_prior_knowledge_is_served() {
    let up = Up::start(&app(), &[]);
    assert_serves_h2c(&up.gateway);
}

/// HTTP/2 without TLS (prior knowledge): requests on one connection, streamed bodies included,
/// and the same failures as over HTTP/1.1.
fn assert_serves_h2c(gateway: &str) {
    let http = reqwest::blocking::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    for _ in 0..5 {
        let response = http.get(format!("{gateway}/hello")).send().unwrap();
        assert_eq!(response.version(), reqwest::Version::HTTP_2);
        assert_eq!(response.status(), 200);
        assert!(response.headers().contains_key("x-muon-invocation-id"));
        assert_eq!(response.text().unwrap(), "Hello, world!\n");
    }
    let body: Vec<u8> = (0..40_000u32).map(|i| (i % 249) as u8).collect();
    let response = http
        .post(format!("{gateway}/echo/h2"))
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().unwrap().as_ref(), body.as_slice());
    let response = http.get(format!("{gateway}/trap")).send().unwrap();
    assert_eq!(response.status(), 500);
    let response = http.get(format!("{gateway}/nowhere")).send().unwrap();
    assert_eq!(response.status(), 404);
}

/// POST `chunks` chunks of `size` bytes with no declared length, over a raw socket (the server
/// may answer before it has read them all), and return the status code.
fn chunked_post_status(gateway: &str, path: &str, chunks: usize, size: usize) -> u16 {
    use std::io::{Read, Write};
    let addr = gateway.trim_start_matches("http://");
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: test\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).unwrap();
    for _ in 0..chunks {
        let mut chunk = format!("{size:x}\r\n").into_bytes();
        chunk.extend(std::iter::repeat_n(b'a', size));
        chunk.extend_from_slice(b"\r\n");
        // The server may stop reading once the limit is passed.
        if socket.write_all(&chunk).is_err() {
            break;
        }
    }
    let _ = socket.write_all(b"0\r\n\r\n");
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"))
}
