//! The event bus in a running `muon up`: the shop example, the CLI, and `kill -9` while events
//! are put and delivered.

mod support;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::{Up, client, eventually, guest, recorder};

fn json(response: reqwest::blocking::Response) -> serde_json::Value {
    response.json().unwrap()
}

fn put_batch(http: &reqwest::blocking::Client, control: &str, n: usize) -> Option<Vec<String>> {
    let entries: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "Source": "load",
                "DetailType": "Tick",
                "Detail": format!("{{\"i\":{i}}}"),
            })
        })
        .collect();
    let response = http
        .post(format!("{control}/v1/events"))
        .json(&serde_json::json!({ "Entries": entries }))
        .send()
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let result: serde_json::Value = response.json().ok()?;
    assert_eq!(result["FailedEntryCount"], 0, "{result}");
    Some(
        result["Entries"]
            .as_array()?
            .iter()
            .map(|e| e["EventId"].as_str().unwrap().to_string())
            .collect(),
    )
}

#[test]
fn every_acknowledged_event_is_delivered_after_kill_9() {
    let (url, got) = recorder(Duration::from_millis(100));
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap().to_string();
    let manifest = format!(
        "app = \"load\"\n[[function]]\nname = \"hello\"\nruntime = \"wasm\"\nsource = {:?}\n\
         [[rule]]\nname = \"ticks\"\npattern = {{ source = [\"load\"] }}\n\
         targets = [{{ url = \"{url}\", retry = {{ max_attempts = 185 }} }}]\n",
        guest("hello").display().to_string()
    );
    let http = client();
    let mut acked: Vec<String> = Vec::new();
    {
        let mut up = Up::start(&manifest, &["--data-dir", &data_dir]);
        // Put events in batches of 10 from another thread; kill muon while it is busy.
        let control = up.control.clone();
        let putter = std::thread::spawn(move || {
            let http = client();
            let mut acked = Vec::new();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(20) {
                match put_batch(&http, &control, 10) {
                    Some(ids) => acked.extend(ids),
                    None => break,
                }
            }
            acked
        });
        // Let some be delivered and many be pending, then kill -9 mid-stream.
        eventually("some deliveries", Duration::from_secs(30), || {
            got.lock().unwrap().len() >= 20
        });
        std::thread::sleep(Duration::from_millis(300));
        up.child.kill().unwrap(); // SIGKILL
        up.child.wait().unwrap();
        acked.extend(putter.join().unwrap());
    }
    let delivered_before: HashSet<String> = got.lock().unwrap().iter().cloned().collect();
    assert!(
        acked.len() > 20,
        "only {} events were acknowledged",
        acked.len()
    );
    assert!(
        acked.iter().any(|id| !delivered_before.contains(id)),
        "every event was delivered before the kill: the test proves nothing"
    );
    // Restart on the same data: the pending deliveries resume.
    let up = Up::start(&manifest, &["--data-dir", &data_dir]);
    eventually(
        "every acknowledged event delivered",
        Duration::from_secs(120),
        || {
            let got: HashSet<String> = got.lock().unwrap().iter().cloned().collect();
            acked.iter().all(|id| got.contains(id))
        },
    );
    // The store agrees: nothing pending, nothing dead.
    let dlq = json(http.get(format!("{}/v1/dlq", up.control)).send().unwrap());
    assert_eq!(dlq["deliveries"].as_array().unwrap().len(), 0, "{dlq}");
}

fn shop() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/shop")
}

#[test]
fn the_shop_example_fans_one_order_out_to_four_functions() {
    let data = tempfile::tempdir().unwrap();
    let up = Up::start_app(&shop(), &["--data-dir", data.path().to_str().unwrap()]);
    let http = client();
    let order = serde_json::json!({
        "customer": "ada@example.com",
        "items": [{"sku": "book-1", "qty": 2}],
        "total": 42.5
    });
    let placed = http
        .post(format!("{}/orders", up.gateway))
        .json(&order)
        .send()
        .unwrap();
    assert_eq!(placed.status(), 202);
    let placed = json(placed);
    let event_id = placed["event_id"].as_str().unwrap().to_string();
    // The trace: one event, four deliveries, and the event fraud published under its own.
    let trace_url = format!("{}/v1/events/{event_id}/trace", up.control);
    eventually("four deliveries", Duration::from_secs(60), || {
        let trace = json(http.get(&trace_url).send().unwrap());
        let deliveries = trace["deliveries"].as_array().unwrap();
        deliveries.len() == 4
            && deliveries
                .iter()
                .all(|d| d["delivery"]["status"] == "delivered")
    });
    let trace = json(http.get(&trace_url).send().unwrap());
    let fraud = trace["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["delivery"]["target"] == "fraud")
        .unwrap();
    let emitted = fraud["emitted"].as_array().unwrap();
    assert_eq!(emitted.len(), 1, "{trace:#}");
    assert_eq!(
        emitted[0]["event"]["event"]["detail-type"],
        "FraudCheckCompleted"
    );
    assert_eq!(emitted[0]["event"]["trace_id"], trace["event"]["trace_id"]);
    for f in ["inventory", "email", "fraud", "warehouse"] {
        let info = json(
            http.get(format!("{}/v1/functions/{f}", up.control))
                .send()
                .unwrap(),
        );
        assert_eq!(info["invocations"], 1, "{f}: {info}");
    }
    // The CLI prints the same tree.
    let out = up.cli(&["events", "trace", &event_id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for needle in [
        "OrderPlaced",
        "rule order-placed -> inventory: delivered after 1 attempt(s)",
        "FraudCheckCompleted",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
    // A bad order is refused by the function, and nothing is published.
    let bad = http
        .post(format!("{}/orders", up.gateway))
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[test]
fn events_cli_puts_lists_rules_and_redrives_dead_letters() {
    let manifest = format!(
        "app = \"cli\"\n\
         [[function]]\nname = \"echo\"\nruntime = \"wasm\"\nsource = {echo:?}\n\
         [[function]]\nname = \"trap\"\nruntime = \"wasm\"\nsource = {trap:?}\n\
         [[rule]]\nname = \"to-echo\"\npattern = {{ source = [\"cli\"] }}\ntargets = [\"echo\"]\n\
         [[rule]]\nname = \"to-trap\"\npattern = {{ source = [\"cli\"], detail-type = [\"Crash\"] }}\n\
         targets = [{{ function = \"trap\", retry = {{ max_attempts = 1 }} }}]\n",
        echo = guest("echo").display().to_string(),
        trap = guest("trap").display().to_string(),
    );
    let up = Up::start(&manifest, &[]);
    let out = up.cli(&[
        "events",
        "put",
        "--source",
        "cli",
        "--detail-type",
        "Crash",
        "--detail",
        "{\"n\":1}",
    ]);
    assert!(out.status.success(), "{out:?}");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(id.len(), 36, "{id}");
    // A bad detail is reported per entry, with exit 1.
    let out = up.cli(&[
        "events",
        "put",
        "--source",
        "cli",
        "--detail-type",
        "X",
        "--detail",
        "[1]",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("MalformedDetail"),
        "{out:?}"
    );
    let out = up.cli(&["rules", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("default/to-echo") && text.contains("function trap"),
        "{text}"
    );
    // The trap target fails twice (1 attempt + 1 retry) and is dead-lettered.
    let http = client();
    eventually("a dead letter", Duration::from_secs(60), || {
        let dlq = json(http.get(format!("{}/v1/dlq", up.control)).send().unwrap());
        dlq["deliveries"].as_array().unwrap().len() == 1
    });
    let out = up.cli(&["events", "dlq", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("MaximumRetryAttempts") && text.contains("to-trap") && text.contains(&id),
        "{text}"
    );
    let out = up.cli(&["events", "dlq", "redrive"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 deliveries sent again"),
        "{out:?}"
    );
    // The echo target got it once, with CloudEvents headers in the invocation.
    let trace = up.cli(&["events", "trace", &id]);
    let text = String::from_utf8_lossy(&trace.stdout);
    assert!(text.contains("rule to-echo -> echo: delivered"), "{text}");
    // CloudEvents structured and binary ingest.
    let structured = http
        .post(format!("{}/v1/buses/default/cloudevents", up.control))
        .header("content-type", "application/cloudevents+json")
        .body(r#"{"specversion":"1.0","id":"x1","source":"cli","type":"Hello","data":{"a":1}}"#)
        .send()
        .unwrap();
    assert_eq!(structured.status(), 200);
    assert_eq!(json(structured)["FailedEntryCount"], 0);
    let binary = http
        .post(format!("{}/v1/buses/default/cloudevents", up.control))
        .header("ce-specversion", "1.0")
        .header("ce-id", "x2")
        .header("ce-source", "cli")
        .header("content-type", "application/json")
        .body(r#"{"a":2}"#)
        .send()
        .unwrap();
    assert_eq!(binary.status(), 400, "ce-type is missing");
    // Non-ASCII attributes, percent-encoded as CloudEvents asks or raw UTF-8, are taken.
    for (n, source) in [
        http::HeaderValue::from_static("sh%C3%B6p%20eu"),
        http::HeaderValue::from_bytes("shöp eu".as_bytes()).unwrap(),
    ]
    .into_iter()
    .enumerate()
    {
        let binary = http
            .post(format!("{}/v1/buses/default/cloudevents", up.control))
            .header("ce-specversion", "1.0")
            .header("ce-id", format!("x3-{n}"))
            .header("ce-source", source)
            .header("ce-type", "Hello")
            .header("content-type", "application/json")
            .body(r#"{"a":3}"#)
            .send()
            .unwrap();
        assert_eq!(binary.status(), 200);
        let id = json(binary)["Entries"][0]["EventId"]
            .as_str()
            .unwrap()
            .to_string();
        let stored = json(
            http.get(format!("{}/v1/events/{id}", up.control))
                .send()
                .unwrap(),
        );
        assert_eq!(stored["event"]["event"]["source"], "shöp eu", "{stored}");
    }
    let batch = http
        .post(format!("{}/v1/buses/default/cloudevents", up.control))
        .header("content-type", "application/cloudevents-batch+json")
        .body(r#"[{"specversion":"1.0","id":"1","source":"cli","type":"A"},{"specversion":"1.0","id":"2","source":"cli","type":"B","data":[1]}]"#)
        .send()
        .unwrap();
    let batch = json(batch);
    assert_eq!(batch["FailedEntryCount"], 1, "{batch}");
    assert_eq!(batch["Entries"][1]["ErrorCode"], "MalformedDetail");
    // Rules through the API: a bad pattern is refused with AWS's name.
    let bad = http
        .put(format!("{}/v1/rules", up.control))
        .body(r#"{"Name":"r","EventPattern":"{\"source\":\"cli\"}"}"#)
        .send()
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(json(bad)["error"], "InvalidEventPatternException");
    // EventBridge's own protocol, as the AWS SDKs send it.
    let aws = http
        .post(format!("{}/", up.control))
        .header("x-amz-target", "AWSEvents.PutEvents")
        .header("content-type", "application/x-amz-json-1.1")
        .body(r#"{"Entries":[{"Source":"cli","DetailType":"Sdk","Detail":"{\"sdk\":true}","Time":1795651200}]}"#)
        .send()
        .unwrap();
    assert_eq!(aws.status(), 200);
    let aws = json(aws);
    assert_eq!(aws["FailedEntryCount"], 0, "{aws}");
    let id = aws["Entries"][0]["EventId"].as_str().unwrap();
    let stored = json(
        http.get(format!("{}/v1/events/{id}", up.control))
            .send()
            .unwrap(),
    );
    assert_eq!(
        stored["event"]["event"]["time"], "2026-11-26T00:00:00Z",
        "{stored}"
    );
    let unknown = http
        .post(format!("{}/", up.control))
        .header("x-amz-target", "AWSEvents.CreateEventBus")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(unknown.status(), 400);
    assert_eq!(json(unknown)["__type"], "UnknownOperationException");
    let invalid = http
        .post(format!("{}/", up.control))
        .header("x-amz-target", "AWSEvents.PutEvents")
        .body(r#"{"Entries":[]}"#)
        .send()
        .unwrap();
    assert_eq!(invalid.status(), 400);
    assert_eq!(json(invalid)["__type"], "ValidationException");
    let bad_pattern = http
        .post(format!("{}/", up.control))
        .header("x-amz-target", "AWSEvents.TestEventPattern")
        .body(r#"{"EventPattern":"{\"source\":\"x\"}","Event":"{}"}"#)
        .send()
        .unwrap();
    assert_eq!(bad_pattern.status(), 400);
    assert_eq!(json(bad_pattern)["__type"], "InvalidEventPatternException");
    let malformed = http
        .post(format!("{}/v1/events", up.control))
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(malformed.status(), 400);
}
