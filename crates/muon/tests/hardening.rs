//! What an attacker or a careless client tried against a running `muon up`: clients that hang up
//! after sending, guests reaching for the control API, internal destinations, an exposed control
//! API.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::time::{Duration, Instant};

use support::{Up, client, eventually, guest, hello_function, keys, recorder};

/// Sends `request` and resets the connection (SO_LINGER 0) at once, without reading the answer.
fn send_and_reset(addr: &str, request: &[u8]) {
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .unwrap();
    socket.connect(&addr.into()).unwrap();
    socket.set_linger(Some(Duration::ZERO)).unwrap();
    let mut stream: std::net::TcpStream = socket.into();
    stream.write_all(request).unwrap();
    // Dropping a socket with a zero linger sends RST.
}

fn post(path: &str, host: &str, body: &str, extra: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn committed_work_proceeds_when_the_client_hangs_up() {
    let (url, delivered) = recorder(Duration::ZERO);
    let manifest = format!(
        "app = \"hangup\"\n{}\
         [[rule]]\nname = \"all\"\npattern = {{ source = [\"hangup\"] }}\ntargets = [{{ url = \"{url}\" }}]\n\
         [[archive]]\nname = \"everything\"\n\
         [[workflow]]\nname = \"pause\"\ndefinition = \"pause.json\"\n",
        hello_function()
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("muon.toml"), manifest).unwrap();
    std::fs::write(
        dir.path().join("pause.json"),
        r#"{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}"#,
    )
    .unwrap();
    let up = Up::start_app(dir.path(), &[]);
    let host = up.control.trim_start_matches("http://").to_string();
    let entry = r#"{"Entries": [{"Source": "hangup", "DetailType": "T", "Detail": "{}"}]}"#;
    for i in 0..300 {
        send_and_reset(&host, &post("/v1/events", &host, entry, ""));
        let start =
            format!(r#"{{"stateMachineArn": "pause", "name": "run-{i}", "input": "{{}}"}}"#);
        send_and_reset(
            &host,
            &post(
                "/",
                &host,
                &start,
                "x-amz-target: AWSStepFunctions.StartExecution\r\n",
            ),
        );
    }
    let http = client();
    // Whatever was committed is delivered, and whatever started ends, though nobody waited.
    let committed = || -> usize {
        let list: serde_json::Value = http
            .get(format!("{}/v1/archives", up.control))
            .send()
            .unwrap()
            .json()
            .unwrap();
        list["archives"][0]["events"].as_u64().unwrap() as usize
    };
    std::thread::sleep(Duration::from_millis(500));
    eventually(
        "every committed event delivered",
        Duration::from_secs(60),
        || {
            let n = committed();
            n > 0 && delivered.lock().unwrap().len() == n
        },
    );
    let listed = |status: &str| -> usize {
        let out = up.cli(&["flows", "executions", "pause", "--status", status, "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["executions"].as_array().map_or(0, Vec::len)
    };
    eventually("no execution left running", Duration::from_secs(30), || {
        listed("RUNNING") == 0
    });
    assert!(
        listed("SUCCEEDED") > 0,
        "no execution started: the test proves nothing"
    );
}

#[test]
fn the_events_token_grants_putting_events_and_nothing_else() {
    let manifest = format!(
        "app = \"token\"\n\
         [[function]]\nname = \"publisher\"\nruntime = \"wasm\"\nsource = {:?}\npublish_events = true\n\
         [[function]]\nname = \"plain\"\nruntime = \"wasm\"\nsource = {:?}\n\
         [[function]]\nname = \"fetcher\"\nruntime = \"wasm\"\nsource = {:?}\npublish_events = true\n",
        guest("echo").display().to_string(),
        guest("echo").display().to_string(),
        guest("outbound").display().to_string(),
    );
    let up = Up::start(&manifest, &[]);
    let http = client();
    let env = |function: &str, name: &str| -> String {
        http.post(format!("{}/v1/functions/{function}/invoke", up.control))
            .header("x-echo-env", name)
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    let token = env("publisher", "MUON_EVENTS_TOKEN");
    assert!(token.starts_with("mev_") && token.len() > 60, "{token}");
    assert_eq!(env("plain", "MUON_EVENTS_TOKEN"), "<unset>");

    // With the token: PutEvents, on REST and on EventBridge's protocol.
    let bearer = format!("Bearer {token}");
    let put = http
        .post(format!("{}/v1/events", up.control))
        .header("authorization", &bearer)
        .json(&serde_json::json!({"Entries": [{"Source": "s", "DetailType": "d", "Detail": "{}"}]}))
        .send()
        .unwrap();
    assert_eq!(put.status(), 200);
    let aws = http
        .post(&up.control)
        .header("authorization", &bearer)
        .header("x-amz-target", "AWSEvents.PutEvents")
        .header("content-type", "application/x-amz-json-1.1")
        .body(r#"{"Entries": [{"Source": "s", "DetailType": "d", "Detail": "{}"}]}"#)
        .send()
        .unwrap();
    assert_eq!(aws.status(), 200);
    // Nothing else.
    for (method, path, target) in [
        ("GET", "/v1/functions", None),
        ("POST", "/v1/functions/plain/invoke", None),
        ("PUT", "/v1/rules", None),
        ("POST", "/", Some("AWSEvents.PutRule")),
        ("POST", "/", Some("AWSStepFunctions.CreateStateMachine")),
    ] {
        let mut request = http
            .request(method.parse().unwrap(), format!("{}{path}", up.control))
            .header("authorization", &bearer)
            .body("{}");
        if let Some(t) = target {
            request = request.header("x-amz-target", t);
        }
        let answer = request.send().unwrap();
        assert_eq!(answer.status(), 403, "{method} {path} {target:?}");
    }
    let forged = http
        .get(format!("{}/v1/functions", up.control))
        .header("authorization", "Bearer mev_00")
        .send()
        .unwrap();
    assert_eq!(forged.status(), 401);

    // From inside a guest: the control API's address is reached only with the token, and then
    // only for putting events.
    let control = up.control.trim_start_matches("http://");
    let fetch = |query: &str| -> String {
        let guest_path = format!("/?url=http%3A%2F%2F{control}%2Fv1%2Ffunctions{query}");
        http.post(format!("{}/v1/functions/fetcher/invoke", up.control))
            .query(&[("path", guest_path)])
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    let without = fetch("");
    assert!(without.contains("HttpRequestDenied"), "{without}");
    let with = fetch("&bearer_env=MUON_EVENTS_TOKEN");
    assert!(with.starts_with("status=403"), "{with}");
}

#[test]
fn internal_destinations_are_refused() {
    let (url, hits) = recorder(Duration::ZERO);
    let manifest = format!(
        "app = \"ssrf\"\n{}\
         [[rule]]\nname = \"metadata\"\npattern = {{ source = [\"ssrf\"] }}\n\
         targets = [{{ url = \"http://169.254.169.254/latest/meta-data/\" }}]\n\
         [[rule]]\nname = \"loopback\"\npattern = {{ source = [\"ssrf\"] }}\ntargets = [{{ url = \"{url}\" }}]\n",
        hello_function()
    );
    // Without the opt-in for private destinations: loopback is refused too.
    let up = Up::start_strict(&manifest, &[]);
    let http = client();
    let put = http
        .post(format!("{}/v1/events", up.control))
        .json(&serde_json::json!({"Entries": [{"Source": "ssrf", "DetailType": "d", "Detail": "{}"}]}))
        .send()
        .unwrap();
    assert_eq!(put.status(), 200);
    let dead = || -> serde_json::Value {
        http.get(format!("{}/v1/dlq", up.control))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    eventually(
        "both deliveries dead-lettered",
        Duration::from_secs(30),
        || dead()["deliveries"].as_array().unwrap().len() == 2,
    );
    let dlq = dead().to_string();
    assert!(dlq.contains("DestinationRefused"), "{dlq}");
    assert!(dlq.contains("metadata"), "{dlq}");
    assert!(dlq.contains("--allow-private-destinations"), "{dlq}");
    assert_eq!(hits.lock().unwrap().len(), 0);

    // With the opt-in, loopback is reached but muon's own control API is not, nor metadata.
    let control_target = format!(
        "app = \"own\"\n{}[[workflow]]\nname = \"call\"\ndefinition = \"call.json\"\n",
        hello_function()
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("muon.toml"), control_target).unwrap();
    std::fs::write(
        dir.path().join("call.json"),
        r#"{"StartAt": "Call", "States": {"Call": {"Type": "Task", "Resource": "arn:aws:states:::http:invoke",
            "Parameters": {"ApiEndpoint.$": "$.url", "Method": "GET"}, "End": true}}}"#,
    )
    .unwrap();
    let up = Up::start_app(dir.path(), &[]);
    for target in [
        format!("{}/v1/functions", up.control),
        "http://169.254.169.254/latest/meta-data/".to_string(),
    ] {
        let input = serde_json::json!({ "url": target }).to_string();
        let out = up.cli(&["flows", "start", "call", "--input", &input, "--wait"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("FAILED"), "{target}: {text}");
        assert!(text.contains("refused"), "{target}: {text}");
    }
}

#[test]
fn a_control_api_off_loopback_is_refused_without_keys() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("muon.toml"),
        format!("app = \"open\"\n{}", hello_function()),
    )
    .unwrap();
    for (flag, env) in [
        (Some("0.0.0.0:0"), None),
        (Some("[::]:0"), None),
        (None, Some("0.0.0.0:0")),
        (Some("127.0.0.1:0"), Some("--auth")),
    ] {
        let mut cmd = support::muon();
        cmd.arg("up")
            .arg(dir.path())
            .args(["--listen", "127.0.0.1:0"]);
        match (flag, env) {
            (Some(f), Some(extra)) => cmd.args(["--control", f, extra]),
            (Some(f), None) => cmd.args(["--control", f]),
            (None, Some(e)) => cmd.env("MUON_CONTROL", e),
            (None, None) => unreachable!(),
        };
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("muon keys create admin --scope admin"),
            "{err}"
        );
    }
}

#[test]
fn api_keys_are_required_and_held_to_their_scope() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("muon.toml"),
        format!("app = \"keys\"\n{}", hello_function()),
    )
    .unwrap();
    let invoker = keys(dir.path(), &["create", "ci", "--scope", "invoke"]);
    let reader = keys(dir.path(), &["create", "dash", "--scope", "read"]);
    assert!(invoker.starts_with("mk_") && reader.starts_with("mk_"));
    let up = Up::start_app(dir.path(), &["--auth"]);
    let http = client();
    let status = |method: &str, path: &str, key: Option<&str>| -> u16 {
        let mut request = http
            .request(method.parse().unwrap(), format!("{}{path}", up.control))
            .body("{}");
        if let Some(k) = key {
            request = request.bearer_auth(k);
        }
        request.send().unwrap().status().as_u16()
    };
    assert_eq!(status("GET", "/v1/functions", None), 401);
    assert_eq!(status("GET", "/v1/health", None), 200);
    assert_eq!(
        status("GET", "/v1/functions", Some("mk_0000000000000000_00")),
        401
    );
    assert_eq!(status("GET", "/v1/functions", Some(&reader)), 200);
    assert_eq!(
        status("POST", "/v1/functions/hello/invoke", Some(&reader)),
        403
    );
    assert_eq!(
        status("POST", "/v1/functions/hello/invoke", Some(&invoker)),
        200
    );
    assert_eq!(status("PUT", "/v1/rules", Some(&invoker)), 403);
    // The CLI sends MUON_API_KEY.
    let cli = |key: Option<&str>| {
        let mut cmd = support::muon();
        cmd.args(["functions"]).env("MUON_CONTROL", &up.control);
        match key {
            Some(k) => cmd.env("MUON_API_KEY", k),
            None => cmd.env_remove("MUON_API_KEY"),
        };
        cmd.output().unwrap()
    };
    assert!(cli(Some(&reader)).status.success());
    assert!(!cli(None).status.success());
    // A key revoked while muon runs is refused within a second or so.
    let listed = keys(dir.path(), &["list"]);
    assert!(listed.contains("dash") && listed.contains("ci"), "{listed}");
    let id = &reader[3..19];
    keys(dir.path(), &["revoke", id]);
    eventually("the revoked key refused", Duration::from_secs(10), || {
        status("GET", "/v1/functions", Some(&reader)) == 401
    });
    assert!(keys(dir.path(), &["list"]).contains("revoked"));
    // The stored keys hold no secret.
    let json = keys(dir.path(), &["list", "--json"]);
    assert!(!json.contains(&invoker[20..]), "{json}");
}

#[test]
fn shutdown_ends_live_streams() {
    let mut up = Up::start(&format!("app = \"follow\"\n{}", hello_function()), &[]);
    let http = reqwest::blocking::Client::new();
    // Two followers stay connected: an event tail and a log follow.
    let tail = http
        .get(format!("{}/v1/events/tail", up.control))
        .send()
        .unwrap();
    let logs = http
        .get(format!(
            "{}/v1/functions/hello/logs?follow=true",
            up.control
        ))
        .send()
        .unwrap();
    assert_eq!((tail.status().as_u16(), logs.status().as_u16()), (200, 200));
    let term = std::process::Command::new("kill")
        .args(["-TERM", &up.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = up.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "muon up is still running with followers connected"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    // The followers saw their streams end.
    assert!(tail.text().is_ok());
    assert!(logs.text().is_ok());
}

#[test]
fn output_into_a_closed_pipe_exits_quietly() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = support::muon()
        .args(["events", "test-pattern", "-p", r#"{"source": ["a"]}"#])
        .args(["-e", r#"{"id": "1", "source": "a", "detail-type": "t", "account": "1", "region": "r", "time": "2024-01-01T00:00:00Z", "resources": [], "detail": {}}"#])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.status.success(), "{:?}: {err}", out.status);
}

#[test]
fn errors_before_an_operation_runs_keep_the_api_shape() {
    let up = Up::start(&format!("app = \"shape\"\n{}", hello_function()), &[]);
    let http = client();
    let big = format!(
        r#"{{"Entries": [{{"Source": "s", "DetailType": "d", "Detail": "{{\"x\": \"{}\"}}"}}]}}"#,
        "x".repeat(3 << 20)
    );
    let aws = http
        .post(&up.control)
        .header("x-amz-target", "AWSEvents.PutEvents")
        .header("content-type", "application/x-amz-json-1.1")
        .body(big.clone())
        .send()
        .unwrap();
    assert_eq!(aws.status(), 413);
    let body: serde_json::Value = aws.json().unwrap();
    assert_eq!(body["__type"], "ValidationException", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("2097152"),
        "{body}"
    );
    let rest = http
        .post(format!("{}/v1/events", up.control))
        .body(big)
        .send()
        .unwrap();
    assert_eq!(rest.status(), 413);
    let body: serde_json::Value = rest.json().unwrap();
    assert_eq!(body["error"], "ValidationException", "{body}");
    let query = http
        .get(format!(
            "{}/v1/functions/hello/invocations?limit=many",
            up.control
        ))
        .send()
        .unwrap();
    assert_eq!(query.status(), 400);
    let body: serde_json::Value = query.json().unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("limit"),
        "{body}"
    );
}

#[test]
fn aws_parameters_are_validated_as_aws_does() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("muon.toml"),
        format!(
            "app = \"params\"\n{}[[workflow]]\nname = \"pass\"\ndefinition = \"pass.json\"\n",
            hello_function()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("pass.json"),
        r#"{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}"#,
    )
    .unwrap();
    let up = Up::start_app(dir.path(), &[]);
    let http = client();
    let call = |service: &str, op: &str, body: serde_json::Value| -> (u16, serde_json::Value) {
        let (prefix, content) = match service {
            "states" => ("AWSStepFunctions", "application/x-amz-json-1.0"),
            _ => ("AWSEvents", "application/x-amz-json-1.1"),
        };
        let answer = http
            .post(&up.control)
            .header("x-amz-target", format!("{prefix}.{op}"))
            .header("content-type", content)
            .body(body.to_string())
            .send()
            .unwrap();
        (answer.status().as_u16(), answer.json().unwrap())
    };
    let machine = "arn:aws:states:us-east-1:000000000000:stateMachine:pass";
    let (_, started) = call(
        "states",
        "StartExecution",
        serde_json::json!({"stateMachineArn": machine}),
    );
    let arn = started["executionArn"].as_str().unwrap().to_string();
    for (op, body, code) in [
        (
            "ListExecutions",
            serde_json::json!({"stateMachineArn": machine, "maxResults": -5}),
            "ValidationException",
        ),
        (
            "ListExecutions",
            serde_json::json!({"stateMachineArn": machine, "maxResults": 1001}),
            "ValidationException",
        ),
        (
            "ListExecutions",
            serde_json::json!({"stateMachineArn": machine, "statusFilter": "DONE"}),
            "ValidationException",
        ),
        (
            "GetExecutionHistory",
            serde_json::json!({"executionArn": arn, "nextToken": "99999999999"}),
            "InvalidToken",
        ),
        (
            "GetExecutionHistory",
            serde_json::json!({"executionArn": arn, "nextToken": "9".repeat(2000)}),
            "InvalidToken",
        ),
        (
            "CreateStateMachine",
            serde_json::json!({"name": "big", "roleArn": "arn:aws:iam::0:role/r",
                "definition": format!(r#"{{"Comment": "{}", "StartAt": "P", "States": {{"P": {{"Type": "Pass", "End": true}}}}}}"#, "x".repeat(1_100_000))}),
            "ValidationException",
        ),
    ] {
        let (status, answer) = call("states", op, body);
        assert_eq!(
            (status, answer["__type"].as_str()),
            (400, Some(code)),
            "{op}: {answer}"
        );
    }
    let (status, answer) = call(
        "states",
        "ListExecutions",
        serde_json::json!({"stateMachineArn": machine, "maxResults": 0}),
    );
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = call("events", "ListRules", serde_json::json!({"Limit": -1}));
    assert_eq!(
        (status, answer["__type"].as_str()),
        (400, Some("ValidationException")),
        "{answer}"
    );
    let (status, _) = call(
        "events",
        "PutRule",
        serde_json::json!({"Name": "r", "EventPattern": "{\"source\": [\"x\"]}"}),
    );
    assert_eq!(status, 200);
    let (status, answer) = call(
        "events",
        "PutTargets",
        serde_json::json!({"Rule": "r", "Targets": [{"Id": "t", "Arn": "http://[::1"}]}),
    );
    let refused = status == 400 || answer["FailedEntryCount"] == 1;
    assert!(refused, "{status} {answer}");
    let (_, targets) = call(
        "events",
        "ListTargetsByRule",
        serde_json::json!({"Rule": "r"}),
    );
    assert_eq!(targets["Targets"].as_array().unwrap().len(), 0, "{targets}");
}

#[test]
fn http_1_1_requests_need_exactly_one_host_header() {
    let up = Up::start(
        &format!(
            "app = \"hosts\"\n[[function]]\nname = \"hello\"\nruntime = \"wasm\"\nsource = {:?}\nroute = \"/hello\"\n",
            guest("hello").display().to_string()
        ),
        &[],
    );
    let status = |addr: &str, head: &str| -> String {
        let addr = addr.trim_start_matches("http://");
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.write_all(format!("GET {head}\r\nconnection: close\r\n\r\n").as_bytes())
            .unwrap();
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        answer.lines().next().unwrap_or("").to_string()
    };
    for base in [up.gateway.clone(), up.control.clone()] {
        let path = if base == up.gateway {
            "/hello"
        } else {
            "/v1/health"
        };
        assert!(
            status(&base, &format!("{path} HTTP/1.1\r\nhost: x")).contains(" 200"),
            "{base}"
        );
        assert!(
            status(&base, &format!("{path} HTTP/1.1")).contains(" 400"),
            "{base}"
        );
        assert!(
            status(&base, &format!("{path} HTTP/1.1\r\nhost: x\r\nhost: y")).contains(" 400"),
            "{base}"
        );
    }
}

#[test]
fn an_access_log_line_per_request_at_info_without_colors_into_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("muon.toml"),
        format!("app = \"log\"\n{}", hello_function()),
    )
    .unwrap();
    let mut child = support::muon()
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
            "--quiet",
        ])
        .arg(dir.path())
        .env("MUON_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let control = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(rest) = line.trim().strip_prefix("control API: ") {
            break rest
                .split_whitespace()
                .next()
                .unwrap()
                .trim_end_matches("/v1")
                .to_string();
        }
    };
    let answer = client()
        .get(format!("{control}/v1/functions"))
        .send()
        .unwrap();
    assert_eq!(answer.status(), 200);
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("control GET /v1/functions 200"), "{err}");
    assert!(!err.contains('\u{1b}'), "colors in a pipe: {err}");
}

/// A 3 MiB tmpfs for a data folder that can fill up; `None` where mounting is not allowed.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &std::path::Path) -> Option<SmallDisk> {
        let path = dir.join("disk");
        std::fs::create_dir_all(&path).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
            .arg(&path)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk(path))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_disk_degrades_health_and_deliveries_resume_once_it_frees_up() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(dir.path()) else {
        println!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let (url, delivered) = recorder(Duration::ZERO);
    let manifest = format!(
        "app = \"full\"\n{}[[rule]]\nname = \"all\"\npattern = {{ source = [\"fill\"] }}\ntargets = [{{ url = \"{url}\" }}]\n",
        hello_function()
    );
    let data = disk.0.join("data");
    let up = Up::start(&manifest, &["--data-dir", data.to_str().unwrap()]);
    let http = client();
    let health = || {
        let answer = http
            .get(format!("{}/v1/health", up.control))
            .send()
            .unwrap();
        (
            answer.status().as_u16(),
            answer.json::<serde_json::Value>().unwrap(),
        )
    };
    assert_eq!(health().0, 200);
    // Most of the disk taken by something else, then events until the store cannot write.
    std::fs::write(disk.0.join("filler"), vec![0u8; 1_500_000]).unwrap();
    let pad = "x".repeat(4000);
    let mut accepted = 0;
    let mut refused = 0;
    let mut ids: Vec<String> = Vec::new();
    for i in 0..2000 {
        let answer: serde_json::Value = http
            .post(format!("{}/v1/events", up.control))
            .json(
                &serde_json::json!({"Entries": [{"Source": "fill", "DetailType": "t",
                "Detail": serde_json::json!({"i": i, "pad": pad}).to_string()}]}),
            )
            .send()
            .unwrap()
            .json()
            .unwrap();
        if answer["FailedEntryCount"] == 0 {
            accepted += 1;
            ids.push(
                answer["Entries"][0]["EventId"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        } else {
            refused += 1;
            if refused > 20 {
                break;
            }
        }
    }
    assert!(
        refused > 0 && accepted > 0,
        "{accepted} accepted, {refused} refused"
    );
    println!("the disk filled after {accepted} events");
    eventually(
        "health says the store cannot write",
        Duration::from_secs(20),
        || {
            let (status, body) = health();
            status == 503 && body["status"] == "degraded" && body["store"].is_string()
        },
    );
    // The disk frees up: health recovers and every accepted event is delivered, no restart.
    std::fs::remove_file(disk.0.join("filler")).unwrap();
    eventually(
        "every accepted event delivered",
        Duration::from_secs(60),
        || delivered.lock().unwrap().len() >= accepted,
    );
    // And recorded as delivered in the store, not left pending until a restart.
    eventually("every delivery recorded", Duration::from_secs(60), || {
        ids.iter().all(|id| {
            let node: serde_json::Value = http
                .get(format!("{}/v1/events/{id}", up.control))
                .send()
                .unwrap()
                .json()
                .unwrap();
            node["deliveries"]
                .as_array()
                .is_some_and(|d| d.iter().all(|d| d["delivery"]["status"] == "delivered"))
        })
    });
    let answer = http
        .post(format!("{}/v1/events", up.control))
        .json(&serde_json::json!({"Entries": [{"Source": "fill", "DetailType": "t", "Detail": "{}"}]}))
        .send()
        .unwrap();
    assert_eq!(answer.status(), 200);
    eventually("health ok again", Duration::from_secs(20), || {
        health().0 == 200
    });
    drop(up);
}
