//! `muon events test-pattern`, as a user runs it: no server, exit codes that scripts can use;
//! and EventBridge's own protocol (awsJson1.1) for rules and buses against a running `muon up`,
//! sent as the AWS SDKs send it: `POST /` with `X-Amz-Target: AWSEvents.<Operation>`.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Up, client, guest};

fn test_pattern(pattern: &str, event: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_muon"))
        .args([
            "events",
            "test-pattern",
            "--pattern",
            pattern,
            "--event",
            event,
        ])
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const ORDER: &str = r#"{"id": "1", "source": "shop", "detail-type": "OrderPlaced", "account": "123456789012",
  "region": "us-east-1", "time": "2026-11-26T10:00:00Z", "resources": [],
  "detail": {"total": 300.0, "customer": {"tier": "gold"}}}"#;

#[test]
fn match_and_no_match_exit_zero() {
    let (code, out, _) = test_pattern(
        r#"{"source": ["shop"], "detail": {"customer": {"tier": [{"prefix": "go"}]}}}"#,
        ORDER,
    );
    assert_eq!((code, out.trim()), (0, "match"));
    // Exact matching compares numbers as written; `numeric` compares values.
    let (code, out, _) = test_pattern(r#"{"detail": {"total": [300]}}"#, ORDER);
    assert_eq!(
        (code, out.trim()),
        (0, "match"),
        "300 and 300.0 are equal doubles"
    );
    let (code, out, _) = test_pattern(r#"{"detail": {"total": [{"numeric": [">", 500]}]}}"#, ORDER);
    assert_eq!((code, out.trim()), (0, "no match"));
}

#[test]
fn invalid_patterns_and_events_exit_two_with_the_reason() {
    let (code, out, err) = test_pattern(r#"{"source": "shop"}"#, ORDER);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(err.contains("InvalidEventPatternException"), "{err}");
    assert!(err.contains("Event pattern is not valid. Reason:"), "{err}");
    let (code, _, err) = test_pattern(r#"{"source": ["shop"]}"#, "{not json");
    assert_eq!(code, 2);
    assert!(err.contains("Event"), "{err}");
}

#[test]
fn files_are_read_with_at() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = dir.path().join("p.json");
    let event = dir.path().join("e.json");
    std::fs::write(&pattern, r#"{"detail-type": ["OrderPlaced"]}"#).unwrap();
    std::fs::write(&event, ORDER).unwrap();
    let (code, out, _) = test_pattern(
        &format!("@{}", pattern.display()),
        &format!("@{}", event.display()),
    );
    assert_eq!((code, out.trim()), (0, "match"));
    let (code, _, err) = test_pattern("@/no/such/file", ORDER);
    assert_ne!(code, 0);
    assert!(err.contains("cannot read"), "{err}");
}

/// One EventBridge operation: the HTTP status and the JSON answer.
fn aws(up: &Up, op: &str, body: Value) -> (u16, Value) {
    let response = client()
        .post(format!("{}/", up.control))
        .header("x-amz-target", format!("AWSEvents.{op}"))
        .header("content-type", "application/x-amz-json-1.1")
        .body(body.to_string())
        .send()
        .unwrap();
    let status = response.status().as_u16();
    assert_eq!(
        response.headers()["content-type"],
        "application/x-amz-json-1.1",
        "{op}"
    );
    (status, response.json().unwrap())
}

/// An operation that must succeed.
fn ok(up: &Up, op: &str, body: Value) -> Value {
    let (status, answer) = aws(up, op, body);
    assert_eq!(status, 200, "{op}: {answer}");
    answer
}

/// An operation that must fail with AWS's error `code` (status 400).
fn fails(up: &Up, op: &str, body: Value, code: &str) -> String {
    let (status, answer) = aws(up, op, body);
    assert_eq!(
        (status, answer["__type"].as_str()),
        (400, Some(code)),
        "{op}: {answer}"
    );
    answer["message"].as_str().unwrap().to_string()
}

fn app() -> String {
    format!(
        "app = \"eb\"\n\
         [[bus]]\nname = \"audit\"\n\
         [[function]]\nname = \"echo\"\nruntime = \"wasm\"\nsource = {echo:?}\n\
         [[function]]\nname = \"hello\"\nruntime = \"wasm\"\nsource = {hello:?}\n\
         [[rule]]\nname = \"from-manifest\"\npattern = {{ source = [\"manifest\"] }}\ntargets = [\"hello\"]\n",
        echo = guest("echo").display().to_string(),
        hello = guest("hello").display().to_string(),
    )
}

/// The region and account of muon's ARNs (the defaults).
const REGION_ACCOUNT: &str = "us-east-1:000000000000";

#[test]
fn rules_and_buses_through_eventbridge_s_protocol() {
    let up = Up::start(&app(), &[]);
    let http = client();
    // A state machine for a target to start.
    let created = http
        .post(format!("{}/v1/state-machines", up.control))
        .json(&json!({
            "name": "flow",
            "definition": r#"{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}"#,
        }))
        .send()
        .unwrap();
    assert!(created.status().is_success(), "{:?}", created.text());

    // Buses.
    let buses = ok(&up, "ListEventBuses", json!({}));
    assert_eq!(
        buses,
        json!({"EventBuses": [
            {"Name": "default", "Arn": format!("arn:aws:events:{REGION_ACCOUNT}:event-bus/default")},
            {"Name": "audit", "Arn": format!("arn:aws:events:{REGION_ACCOUNT}:event-bus/audit")},
        ]})
    );
    let audit = ok(&up, "ListEventBuses", json!({"NamePrefix": "au"}));
    assert_eq!(audit["EventBuses"].as_array().unwrap().len(), 1, "{audit}");
    let paged = ok(&up, "ListEventBuses", json!({"Limit": 1}));
    assert_eq!(paged["NextToken"], "1", "{paged}");
    let rest = ok(&up, "ListEventBuses", json!({"Limit": 1, "NextToken": "1"}));
    assert_eq!(rest["EventBuses"][0]["Name"], "audit", "{rest}");
    assert!(rest.get("NextToken").is_none(), "{rest}");
    assert_eq!(ok(&up, "DescribeEventBus", json!({}))["Name"], "default");
    let by_arn = json!({"Name": format!("arn:aws:events:{REGION_ACCOUNT}:event-bus/audit")});
    assert_eq!(ok(&up, "DescribeEventBus", by_arn)["Name"], "audit");
    fails(
        &up,
        "DescribeEventBus",
        json!({"Name": "nope"}),
        "ResourceNotFoundException",
    );

    // PutRule creates a rule with no targets; its ARN names the bus unless it is `default`.
    let put = ok(
        &up,
        "PutRule",
        json!({"Name": "api-rule", "EventPattern": "{\"source\":[\"api\"]}", "Description": "d",
               "Tags": [{"Key": "team", "Value": "shop"}], "RoleArn": "arn:aws:iam::1:role/r"}),
    );
    assert_eq!(
        put,
        json!({"RuleArn": format!("arn:aws:events:{REGION_ACCOUNT}:rule/api-rule")})
    );
    let on_audit = ok(
        &up,
        "PutRule",
        json!({"Name": "audit-rule", "EventBusName": "audit", "EventPattern": "{\"source\":[\"api\"]}"}),
    );
    assert_eq!(
        on_audit["RuleArn"],
        format!("arn:aws:events:{REGION_ACCOUNT}:rule/audit/audit-rule")
    );
    let why = fails(
        &up,
        "PutRule",
        json!({"Name": "bad", "EventPattern": "{\"source\":\"api\"}"}),
        "InvalidEventPatternException",
    );
    assert!(why.contains("Event pattern is not valid"), "{why}");
    let why = fails(
        &up,
        "PutRule",
        json!({"Name": "tick", "ScheduleExpression": "rate(5 minutes)"}),
        "ValidationException",
    );
    assert!(why.contains("[[schedule]]"), "{why}");
    fails(
        &up,
        "PutRule",
        json!({"Name": "none"}),
        "ValidationException",
    );
    fails(
        &up,
        "PutRule",
        json!({"Name": "from-manifest", "EventPattern": "{\"source\":[\"x\"]}"}),
        "ManagedRuleException",
    );
    fails(
        &up,
        "PutRule",
        json!({"Name": "r", "EventBusName": "nope", "EventPattern": "{\"source\":[\"x\"]}"}),
        "ResourceNotFoundException",
    );

    // PutTargets: every kind of ARN; an unknown function or state machine is a failed entry.
    let added = ok(
        &up,
        "PutTargets",
        json!({"Rule": "api-rule", "Targets": [
            {"Id": "fn", "Arn": "arn:aws:lambda:us-east-1:123456789012:function:echo", "InputPath": "$.detail"},
            {"Id": "bus", "Arn": format!("arn:aws:events:{REGION_ACCOUNT}:event-bus/audit")},
            {"Id": "flow", "Arn": "arn:aws:states:us-east-1:123456789012:stateMachine:flow",
             "RetryPolicy": {"MaximumRetryAttempts": 3}, "RoleArn": "arn:aws:iam::1:role/r"},
            {"Id": "hook", "Arn": "http://127.0.0.1:9/hook", "Input": "{\"fixed\":true}"},
            {"Id": "ghost", "Arn": "muon:function:ghost"},
            {"Id": "no-flow", "Arn": "arn:aws:states:us-east-1:123456789012:stateMachine:nope"},
            {"Id": "queue", "Arn": "arn:aws:sqs:us-east-1:1:q", "SqsParameters": {"MessageGroupId": "g"}},
        ]}),
    );
    assert_eq!(added["FailedEntryCount"], 3, "{added}");
    let failed: Vec<(&str, &str)> = added["FailedEntries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["TargetId"].as_str().unwrap(),
                f["ErrorCode"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        failed,
        [
            ("ghost", "ResourceNotFoundException"),
            ("no-flow", "ResourceNotFoundException"),
            ("queue", "ValidationException")
        ]
    );
    // A fifth target fits, a sixth does not; replacing one by its Id does not count.
    let more = ok(
        &up,
        "PutTargets",
        json!({"Rule": "api-rule", "Targets": [
            {"Id": "m1", "Arn": "muon:function:hello"},
            {"Id": "m2", "Arn": "muon:function:hello"},
            {"Id": "fn", "Arn": "arn:aws:lambda:us-east-1:123456789012:function:echo",
             "InputTransformer": {"InputPathsMap": {"src": "$.source"}, "InputTemplate": "{\"from\": <src>}"}},
        ]}),
    );
    assert_eq!(more["FailedEntryCount"], 1, "{more}");
    assert_eq!(more["FailedEntries"][0]["TargetId"], "m2");
    assert_eq!(
        more["FailedEntries"][0]["ErrorCode"],
        "LimitExceededException"
    );
    fails(
        &up,
        "PutTargets",
        json!({"Rule": "missing", "Targets": [{"Id": "a", "Arn": "muon:function:echo"}]}),
        "ResourceNotFoundException",
    );
    fails(
        &up,
        "PutTargets",
        json!({"Rule": "from-manifest", "Targets": [{"Id": "a", "Arn": "muon:function:echo"}]}),
        "ManagedRuleException",
    );

    // ListTargetsByRule gives AWS's ARNs (in muon's region and account), in pages.
    let targets = ok(&up, "ListTargetsByRule", json!({"Rule": "api-rule"}));
    let targets = targets["Targets"].as_array().unwrap().clone();
    let arns: Vec<&str> = targets.iter().map(|t| t["Arn"].as_str().unwrap()).collect();
    assert_eq!(
        arns,
        [
            format!("arn:aws:lambda:{REGION_ACCOUNT}:function:echo"),
            format!("arn:aws:events:{REGION_ACCOUNT}:event-bus/audit"),
            format!("arn:aws:states:{REGION_ACCOUNT}:stateMachine:flow"),
            "http://127.0.0.1:9/hook".to_string(),
            format!("arn:aws:lambda:{REGION_ACCOUNT}:function:hello"),
        ]
    );
    assert_eq!(
        targets[0]["InputTransformer"],
        json!({"InputPathsMap": {"src": "$.source"}, "InputTemplate": "{\"from\": <src>}"})
    );
    assert_eq!(targets[2]["RetryPolicy"]["MaximumRetryAttempts"], 3);
    assert_eq!(targets[3]["Input"], "{\"fixed\":true}");
    // What is listed can be put back as it is.
    let again = ok(
        &up,
        "PutTargets",
        json!({"Rule": "api-rule", "Targets": targets}),
    );
    assert_eq!(again["FailedEntryCount"], 0, "{again}");
    let page = ok(
        &up,
        "ListTargetsByRule",
        json!({"Rule": "api-rule", "Limit": 2, "NextToken": "2"}),
    );
    assert_eq!(page["Targets"][0]["Id"], "flow", "{page}");
    assert_eq!(page["NextToken"], "4", "{page}");
    let names = ok(
        &up,
        "ListRuleNamesByTarget",
        json!({"TargetArn": "muon:function:hello"}),
    );
    assert_eq!(names, json!({"RuleNames": ["api-rule", "from-manifest"]}));

    // PutRule on an existing rule replaces its pattern, state and description, not its targets.
    ok(
        &up,
        "PutRule",
        json!({"Name": "api-rule", "EventPattern": "{\"source\":[\"api\",\"more\"]}", "State": "DISABLED"}),
    );
    let described = ok(&up, "DescribeRule", json!({"Name": "api-rule"}));
    assert_eq!(
        described,
        json!({
            "Name": "api-rule",
            "Arn": format!("arn:aws:events:{REGION_ACCOUNT}:rule/api-rule"),
            "EventPattern": "{\"source\":[\"api\",\"more\"]}",
            "State": "DISABLED",
            "EventBusName": "default",
            "CreatedBy": "000000000000",
        })
    );
    let targets = ok(&up, "ListTargetsByRule", json!({"Rule": "api-rule"}));
    assert_eq!(targets["Targets"].as_array().unwrap().len(), 5);
    assert_eq!(
        ok(&up, "EnableRule", json!({"Name": "api-rule"})),
        json!({})
    );
    assert_eq!(
        ok(&up, "DescribeRule", json!({"Name": "api-rule"}))["State"],
        "ENABLED"
    );
    fails(
        &up,
        "DisableRule",
        json!({"Name": "from-manifest"}),
        "ManagedRuleException",
    );
    fails(
        &up,
        "EnableRule",
        json!({"Name": "missing"}),
        "ResourceNotFoundException",
    );
    let manifest = ok(&up, "DescribeRule", json!({"Name": "from-manifest"}));
    assert_eq!(manifest["ManagedBy"], "muon.toml", "{manifest}");
    fails(
        &up,
        "DescribeRule",
        json!({"Name": "missing"}),
        "ResourceNotFoundException",
    );

    // ListRules: by bus, by prefix, in pages; the REST API sees the same rules.
    let rules = ok(&up, "ListRules", json!({}));
    let names: Vec<&str> = rules["Rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api-rule", "from-manifest"]);
    assert!(rules["Rules"][0].get("CreatedBy").is_none(), "{rules}");
    let audit = ok(&up, "ListRules", json!({"EventBusName": "audit"}));
    assert_eq!(audit["Rules"][0]["Name"], "audit-rule", "{audit}");
    let prefixed = ok(&up, "ListRules", json!({"NamePrefix": "from"}));
    assert_eq!(prefixed["Rules"].as_array().unwrap().len(), 1);
    let first = ok(&up, "ListRules", json!({"Limit": 1}));
    assert_eq!(first["NextToken"], "1");
    fails(
        &up,
        "ListRules",
        json!({"NextToken": "not-mine"}),
        "ValidationException",
    );
    let listed: Value = http
        .get(format!("{}/v1/rules", up.control))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        listed["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["origin"] == "api" && r["rule"]["Name"] == "api-rule"),
        "{listed}"
    );

    // DeleteRule refuses while targets remain, unless forced; RemoveTargets takes them away.
    let why = fails(
        &up,
        "DeleteRule",
        json!({"Name": "api-rule"}),
        "ValidationException",
    );
    assert!(why.contains("has targets"), "{why}");
    let removed = ok(
        &up,
        "RemoveTargets",
        json!({"Rule": "api-rule", "Ids": ["fn", "m1", "not-there"]}),
    );
    assert_eq!(removed, json!({"FailedEntryCount": 0, "FailedEntries": []}));
    let targets = ok(&up, "ListTargetsByRule", json!({"Rule": "api-rule"}));
    assert_eq!(targets["Targets"].as_array().unwrap().len(), 3);
    fails(
        &up,
        "RemoveTargets",
        json!({"Rule": "from-manifest", "Ids": ["hello"]}),
        "ManagedRuleException",
    );
    ok(
        &up,
        "DeleteRule",
        json!({"Name": "api-rule", "Force": true}),
    );
    fails(
        &up,
        "DescribeRule",
        json!({"Name": "api-rule"}),
        "ResourceNotFoundException",
    );
    // Deleting what is not there succeeds, as in AWS; a manifest rule stays.
    ok(&up, "DeleteRule", json!({"Name": "api-rule"}));
    ok(
        &up,
        "DeleteRule",
        json!({"Name": "audit-rule", "EventBusName": "audit"}),
    );
    fails(
        &up,
        "DeleteRule",
        json!({"Name": "from-manifest", "Force": true}),
        "ManagedRuleException",
    );
    fails(
        &up,
        "CreateConnection",
        json!({}),
        "UnknownOperationException",
    );
    fails(
        &up,
        "DescribeRule",
        json!({"Name": 7}),
        "ValidationException",
    );
}

#[test]
fn a_rule_put_through_eventbridge_s_protocol_delivers_to_its_function() {
    let up = Up::start(&app(), &[]);
    let http = client();
    let invocations = || -> u64 {
        let info: Value = http
            .get(format!("{}/v1/functions/echo", up.control))
            .send()
            .unwrap()
            .json()
            .unwrap();
        info["invocations"].as_u64().unwrap()
    };
    assert_eq!(invocations(), 0);
    ok(
        &up,
        "PutRule",
        json!({"Name": "orders", "EventPattern": "{\"source\":[\"shop\"]}"}),
    );
    let put = ok(
        &up,
        "PutTargets",
        json!({"Rule": "orders", "Targets": [
            {"Id": "echo", "Arn": "arn:aws:lambda:us-east-1:123456789012:function:echo"}
        ]}),
    );
    assert_eq!(put["FailedEntryCount"], 0, "{put}");
    let event = json!({"Entries": [{"Source": "shop", "DetailType": "OrderPlaced", "Detail": "{\"total\":1}"}]});
    let sent = ok(&up, "PutEvents", event.clone());
    assert_eq!(sent["FailedEntryCount"], 0, "{sent}");
    let start = Instant::now();
    while invocations() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the target function was not invoked"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A disabled rule matches nothing: the next event has no delivery.
    ok(&up, "DisableRule", json!({"Name": "orders"}));
    let sent = ok(&up, "PutEvents", event);
    let id = sent["Entries"][0]["EventId"].as_str().unwrap();
    let stored: Value = http
        .get(format!("{}/v1/events/{id}", up.control))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(stored["deliveries"], json!([]), "{stored}");
}

/// `app()` with an archive of the big orders and a rule sending every order to `echo`.
fn archived_app() -> String {
    format!(
        "{}\
         [[rule]]\nname = \"orders\"\npattern = {{ source = [\"shop\"] }}\ntargets = [\"echo\"]\n\
         [[archive]]\nname = \"big\"\npattern = {{ source = [\"shop\"], detail = {{ total = [{{ numeric = [\">\", 100] }}] }} }}\nretention = \"30d\"\n",
        app()
    )
}

fn echo_invocations(up: &Up) -> u64 {
    let info: Value = client()
        .get(format!("{}/v1/functions/echo", up.control))
        .send()
        .unwrap()
        .json()
        .unwrap();
    info["invocations"].as_u64().unwrap()
}

fn wait_for_invocations(up: &Up, n: u64) {
    let start = Instant::now();
    while echo_invocations(up) < n {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "echo was invoked {} times, not {n}",
            echo_invocations(up)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_replay_from_an_archive_replays_only_the_events_it_holds() {
    let up = Up::start(&archived_app(), &[]);
    let entries: Vec<Value> = [500, 5, 101]
        .iter()
        .map(|t| json!({"Source": "shop", "DetailType": "Order", "Detail": format!("{{\"total\":{t}}}")}))
        .collect();
    let sent = ok(&up, "PutEvents", json!({ "Entries": entries }));
    assert_eq!(sent["FailedEntryCount"], 0, "{sent}");
    wait_for_invocations(&up, 3);
    let bus = format!("arn:aws:events:{REGION_ACCOUNT}:event-bus/default");
    let archive_arn = format!("arn:aws:events:{REGION_ACCOUNT}:archive/big");
    let described = ok(&up, "DescribeArchive", json!({"ArchiveName": "big"}));
    assert_eq!(described["ArchiveArn"], archive_arn, "{described}");
    assert_eq!(described["EventSourceArn"], bus, "{described}");
    assert_eq!(described["EventCount"], 2, "{described}");
    assert_eq!(described["RetentionDays"], 30, "{described}");
    assert_eq!(described["State"], "ENABLED", "{described}");
    // The CLI lists it with what it holds.
    let out = up.cli(&["events", "archives"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("big  (bus default, kept 30d, 2 events"),
        "{listed}"
    );
    assert!(listed.contains("manifest"), "{listed}");
    // A replay of the archive sends only its two events to the rule again.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let replay = json!({
        "ReplayName": "again",
        "EventSourceArn": archive_arn,
        "EventStartTime": now - 3600,
        "EventEndTime": now + 60,
        "Destination": {"Arn": bus, "FilterArns": [format!("arn:aws:events:{REGION_ACCOUNT}:rule/orders")]},
    });
    let started = ok(&up, "StartReplay", replay.clone());
    assert_eq!(started["State"], "COMPLETED", "{started}");
    assert_eq!(
        started["ReplayArn"],
        format!("arn:aws:events:{REGION_ACCOUNT}:replay/again")
    );
    wait_for_invocations(&up, 5);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(echo_invocations(&up), 5);
    let described = ok(&up, "DescribeReplay", json!({"ReplayName": "again"}));
    assert_eq!(described["EventSourceArn"], archive_arn, "{described}");
    assert_eq!(described["Destination"]["Arn"], bus, "{described}");
    assert!(
        described["EventLastReplayedTime"].is_number(),
        "{described}"
    );
    let listed = ok(&up, "ListReplays", json!({"NamePrefix": "ag"}));
    assert_eq!(listed["Replays"].as_array().unwrap().len(), 1, "{listed}");
    // The CLI replays the archive too, and the REST list remembers both replays.
    let out = up.cli(&[
        "events",
        "replay",
        "--name",
        "cli",
        "--archive",
        "big",
        "--from",
        "1h",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "2 events replayed"
    );
    wait_for_invocations(&up, 7);
    let replays: Value = client()
        .get(format!("{}/v1/replays", up.control))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(replays["replays"][1]["archive"], "big", "{replays}");
    assert_eq!(replays["replays"][1]["events"], 2, "{replays}");
    // Errors, with AWS's names.
    fails(
        &up,
        "StartReplay",
        replay.clone(),
        "ResourceAlreadyExistsException",
    );
    let mut elsewhere = replay.clone();
    elsewhere["ReplayName"] = json!("elsewhere");
    elsewhere["Destination"] =
        json!({"Arn": format!("arn:aws:events:{REGION_ACCOUNT}:event-bus/audit")});
    let why = fails(&up, "StartReplay", elsewhere, "ValidationException");
    assert!(why.contains("archive's event bus"), "{why}");
    let mut missing = replay.clone();
    missing["ReplayName"] = json!("missing");
    missing["EventSourceArn"] = json!(format!("arn:aws:events:{REGION_ACCOUNT}:archive/nope"));
    fails(&up, "StartReplay", missing, "ResourceNotFoundException");
    fails(
        &up,
        "DescribeReplay",
        json!({"ReplayName": "nope"}),
        "ResourceNotFoundException",
    );
    fails(
        &up,
        "DescribeArchive",
        json!({"ArchiveName": "nope"}),
        "ResourceNotFoundException",
    );
    let why = fails(
        &up,
        "DeleteArchive",
        json!({"ArchiveName": "big"}),
        "ValidationException",
    );
    assert!(why.contains("muon.toml"), "{why}");
    fails(
        &up,
        "CreateArchive",
        json!({"ArchiveName": "bad", "EventSourceArn": bus, "EventPattern": "{\"source\": \"x\"}"}),
        "InvalidEventPatternException",
    );
    fails(
        &up,
        "CreateArchive",
        json!({"ArchiveName": "lost", "EventSourceArn": format!("arn:aws:events:{REGION_ACCOUNT}:event-bus/nowhere")}),
        "ResourceNotFoundException",
    );
}

#[test]
fn an_api_archive_survives_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap().to_string();
    let audit = format!("arn:aws:events:{REGION_ACCOUNT}:event-bus/audit");
    {
        let up = Up::start(&archived_app(), &["--data-dir", &data_dir]);
        let created = ok(
            &up,
            "CreateArchive",
            json!({"ArchiveName": "kept", "EventSourceArn": audit, "EventPattern": "{\"source\":[\"x\"]}", "RetentionDays": 7, "Description": "d"}),
        );
        assert_eq!(
            created["ArchiveArn"],
            format!("arn:aws:events:{REGION_ACCOUNT}:archive/kept")
        );
        fails(
            &up,
            "CreateArchive",
            json!({"ArchiveName": "kept", "EventSourceArn": audit}),
            "ResourceAlreadyExistsException",
        );
        ok(
            &up,
            "UpdateArchive",
            json!({"ArchiveName": "kept", "RetentionDays": 9}),
        );
        ok(
            &up,
            "CreateArchive",
            json!({"ArchiveName": "gone", "EventSourceArn": "default"}),
        );
        ok(&up, "DeleteArchive", json!({"ArchiveName": "gone"}));
    }
    let up = Up::start(&archived_app(), &["--data-dir", &data_dir]);
    let kept = ok(&up, "DescribeArchive", json!({"ArchiveName": "kept"}));
    assert_eq!(kept["EventSourceArn"], audit, "{kept}");
    assert_eq!(kept["RetentionDays"], 9, "{kept}");
    assert_eq!(kept["Description"], "d", "{kept}");
    assert_eq!(kept["EventPattern"], "{\"source\":[\"x\"]}", "{kept}");
    let listed = ok(&up, "ListArchives", json!({}));
    let names: Vec<&str> = listed["Archives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["ArchiveName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["big", "kept"], "{listed}");
    let on_audit = ok(&up, "ListArchives", json!({"EventSourceArn": audit}));
    assert_eq!(
        on_audit["Archives"].as_array().unwrap().len(),
        1,
        "{on_audit}"
    );
    // The control API lists them with their origin.
    let rest: Value = client()
        .get(format!("{}/v1/archives", up.control))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(rest["archives"][1]["origin"], "api", "{rest}");
    let deleted = client()
        .delete(format!("{}/v1/archives/kept", up.control))
        .send()
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 204);
}
