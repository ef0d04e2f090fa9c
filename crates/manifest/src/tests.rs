//! Unit tests of the manifest: parsing, validation and its messages.
use super::*;

fn check(text: &str) -> Result<App> {
    check_with(&[], text)
}

/// `check`, with more `(path, text)` files in the app's folder.
fn check_with(files: &[(&str, &str)], text: &str) -> Result<App> {
    let dir = tempfile::tempdir().unwrap();
    for (path, contents) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
    std::fs::write(dir.path().join("hello.wasm"), b"\0asm").unwrap();
    std::fs::create_dir(dir.path().join("guest")).unwrap();
    std::fs::write(
        dir.path().join("guest/Cargo.toml"),
        "[package]\nname = \"g\"\n",
    )
    .unwrap();
    parse(text, &dir.path().join("muon.toml"), dir.path())
}

fn errors(text: &str) -> String {
    match check(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_full_function_parses() {
    let app = check(
        r#"
        app = "demo"
        [[function]]
        name = "hello"
        runtime = "wasm"
        source = "hello.wasm"
        route = "/hello/..."
        memory_mb = 64
        timeout = "1500ms"
        environment = { GREETING = "hi" }
        allowed_outbound_hosts = ["https://api.example.com"]
        min_instances = 1
        max_instances = 4
        instance_reuse = 1000

        [[function]]
        name = "built"
        runtime = "wasm"
        source = "guest"
        "#,
    )
    .unwrap();
    assert_eq!(app.name, "demo");
    let f = &app.functions[0];
    assert_eq!(f.name.as_str(), "hello");
    assert!(matches!(&f.source, Source::Wasm(p) if p.ends_with("hello.wasm")));
    assert_eq!(f.route, Some(Route::Prefix("/hello".into())));
    assert_eq!(f.memory_mb, 64);
    assert_eq!(f.timeout, Duration::from_millis(1500));
    assert_eq!(f.environment["GREETING"], "hi");
    assert!(f.outbound.allows("https", "api.example.com", 443));
    assert_eq!(
        (f.min_instances, f.max_instances, f.instance_reuse),
        (1, 4, 1000)
    );
    let g = &app.functions[1];
    assert!(matches!(&g.source, Source::Cargo(p) if p.ends_with("guest")));
    assert_eq!(g.route, None);
    assert_eq!(g.memory_mb, DEFAULT_MEMORY_MB);
    assert_eq!(g.timeout, DEFAULT_TIMEOUT);
    assert!(!g.outbound.allows("https", "api.example.com", 443));
}

#[test]
fn unknown_keys_name_the_file_and_the_key() {
    let e = errors(
        "app = \"a\"\n[[function]]\nname = \"f\"\nruntime = \"wasm\"\nsource = \"hello.wasm\"\nmemory = 5\n",
    );
    assert!(e.contains("muon.toml"), "{e}");
    assert!(e.contains("unknown key `memory`"), "{e}");
    assert!(e.contains("line 6"), "{e}");
    assert!(e.contains("did you mean `memory_mb`?"), "{e}");
}

#[test]
fn every_unknown_key_is_reported_with_the_other_problems() {
    let e = errors(
        r#"
app = "a"
colour = "blue"
[[function]]
name = "f"
runtime = "wasm"
source = "missing.wasm"
timout = "5s"
[[rule]]
name = "r"
descripton = "orders"
pattern = { source = ["x"] }
targets = [{ function = "f" }]
"#,
    );
    let at = |needle: &str| {
        e.find(needle).unwrap_or_else(|| {
            panic!(
                "no {needle:?} in:
{e}"
            )
        })
    };
    // In file order, each with its line and the key it most likely meant.
    let colour = at("unknown key `colour` (line 3)");
    let timout = at("unknown key `timout` (line 8): did you mean `timeout`?");
    let descripton = at("unknown key `descripton` (line 11): did you mean `description`?");
    assert!(colour < timout && timout < descripton, "{e}");
    // And the rest is still validated.
    at("missing.wasm does not exist");
}

#[test]
fn every_problem_is_reported_at_once() {
    let e = errors(
        r#"
        [[function]]
        name = "bad name"
        runtime = "python"
        source = "missing.wasm"
        route = "nope"
        memory_mb = 0
        timeout = "forever"
        allowed_outbound_hosts = ["example.com"]
        min_instances = 5
        max_instances = 2
        instance_reuse = 0
        "#,
    );
    for needle in [
        "`app`: missing",
        "`function[0].name`",
        "`function[0].runtime`: unknown runtime \"python\"",
        "`function[0].source`",
        "missing.wasm does not exist",
        "`function[0].route`",
        "`function[0].memory_mb`: 0 is out of range",
        "`function[0].timeout`",
        "`function[0].allowed_outbound_hosts`",
        "`function[0].min_instances`: 5 is more than max_instances (2)",
        "`function[0].instance_reuse`",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
    }
}

#[test]
fn duplicates_and_empty_apps_are_rejected() {
    let e = errors(
        r#"
        app = "a"
        [[function]]
        name = "f"
        runtime = "wasm"
        source = "hello.wasm"
        route = "/x"
        [[function]]
        name = "f"
        runtime = "wasm"
        source = "hello.wasm"
        route = "/x"
        "#,
    );
    assert!(e.contains("already defined"), "{e}");
    assert!(e.contains("already taken by function `f`"), "{e}");
    assert!(errors("app = \"a\"\n").contains("no functions"));
    assert!(errors("app = \"a\"\nfunction = 3\n").contains("muon.toml"));
}

#[test]
fn source_must_be_a_wasm_file_or_a_cargo_project() {
    let e = errors("app = \"a\"\n[[function]]\nname = \"f\"\nruntime = \"wasm\"\nsource = \".\"\n");
    assert!(e.contains("folder without a Cargo.toml"), "{e}");
}

#[test]
fn timeouts_accept_seconds_or_text() {
    let app = check(
        "app = \"a\"\n[[function]]\nname = \"f\"\nruntime = \"wasm\"\nsource = \"hello.wasm\"\ntimeout = 2\n",
    )
    .unwrap();
    assert_eq!(app.functions[0].timeout, Duration::from_secs(2));
    assert!(errors(
        "app = \"a\"\n[[function]]\nname = \"f\"\nruntime = \"wasm\"\nsource = \"hello.wasm\"\ntimeout = \"901s\"\n"
    )
    .contains("out of range"));
}

#[test]
fn load_reads_a_folder_or_a_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.wasm"), b"\0asm").unwrap();
    std::fs::write(
        dir.path().join(FILE_NAME),
        "app = \"a\"\n[[function]]\nname = \"f\"\nruntime = \"wasm\"\nsource = \"f.wasm\"\n",
    )
    .unwrap();
    let app = load(dir.path()).unwrap();
    assert_eq!(app.functions.len(), 1);
    assert!(app.manifest_path.is_absolute());
    let e = load(&dir.path().join("nope")).unwrap_err().to_string();
    assert!(e.contains("cannot read") && e.contains("nope"), "{e}");
}

const HELLO: &str = r#"
    app = "shop"
    [[function]]
    name = "inventory"
    runtime = "wasm"
    source = "hello.wasm"
"#;

#[test]
fn rules_parse_with_every_target_form() {
    let app = check(&format!(
        r#"{HELLO}
        [[bus]]
        name = "audit"

        [[rule]]
        name = "order-placed"
        pattern = {{ source = ["shop"], detail-type = ["OrderPlaced"] }}
        targets = [
            "inventory",
            {{ id = "sub", function = "inventory", input_path = "$.detail.items[0]", retry = {{ max_attempts = 3, max_age = "2m" }} }},
            {{ bus = "audit" }},
            {{ url = "http://127.0.0.1:9/hook", input = {{ hello = "world" }} }},
            {{ arn = "arn:aws:lambda:us-east-1:1:function:inventory", id = "arn", input_transformer = {{ input_paths = {{ id = "$.id" }}, template = "order <id>" }} }},
        ]

        [[rule]]
        name = "audit-all"
        bus = "audit"
        pattern = '{{"source": [{{"prefix": ""}}]}}'
        "#
    ))
    .unwrap();
    assert_eq!(app.buses.len(), 2);
    let r = &app.rules[0];
    assert_eq!(r.bus.as_str(), "default");
    assert!(r.pattern.contains("OrderPlaced"), "{}", r.pattern);
    assert_eq!(r.targets.len(), 5);
    assert_eq!(r.targets[0].id, "inventory");
    assert_eq!(r.targets[1].retry.max_attempts, 3);
    assert_eq!(r.targets[1].retry.max_age, Duration::from_secs(120));
    assert!(matches!(&r.targets[1].input, Input::Path(p) if p.segments.len() == 3));
    assert!(matches!(&r.targets[2].kind, TargetKind::Bus(b) if b.as_str() == "audit"));
    assert!(matches!(&r.targets[3].input, Input::Constant(c) if c == r#"{"hello":"world"}"#));
    assert!(matches!(&r.targets[4].kind, TargetKind::Function(f) if f.as_str() == "inventory"));
    assert_eq!(app.rules[1].targets.len(), 0);
    // The API form reads back to the same rule.
    let again = Rule::from_api_json(&r.to_api_json().to_string()).unwrap();
    assert_eq!(&again, r);
}

#[test]
fn bad_rules_name_every_problem() {
    let e = errors(&format!(
        r#"{HELLO}
        [[rule]]
        name = "bad name"
        bus = "nowhere"
        pattern = {{ source = "shop" }}
        targets = ["inventory", {{ url = "ftp://x" }}, {{ function = "inventory", input = "{{not json" }},
                   {{ function = "inventory", retry = {{ max_attempts = 200 }} }}, "inventory", "inventory"]

        [[rule]]
        name = "no-pattern"

        [[rule]]
        name = "ok"
        pattern = '{{"source": ["shop"]}}'
        targets = ["missing"]
        "#
    ));
    for needle in [
        "rule[0].name",
        "rule[0].pattern`: Event pattern is not valid. Reason: \"source\" must be an object or an array",
        "rule[0].targets`: 6 targets",
        "rule[2].targets[0]`: no function named `missing`",
        "rule[0].targets[1].url`",
        "rule[0].targets[2].input`: not valid JSON",
        "rule[0].targets[3].retry`: maximum retry attempts 200",
        "rule[0].targets[5].id`: target id \"inventory\" is used twice",
        "rule[1].pattern`: missing",
    ] {
        assert!(e.contains(needle), "{needle:?} not in:\n{e}");
    }
}

#[test]
fn api_rules_report_aws_codes() {
    let e = Rule::from_api_json(r#"{"Name":"r","EventPattern":"{\"a\":1}"}"#).unwrap_err();
    assert_eq!(e.code, "InvalidEventPatternException");
    assert!(
        e.to_string()
            .contains("\"a\" must be an object or an array"),
        "{e}"
    );
    let e = Rule::from_api_json(r#"{"Name":"r","EventPattern":{"a":[1]},"Targets":[{"Id":"x"}]}"#)
        .unwrap_err();
    assert_eq!(e.code, "ValidationException");
    let e = Rule::from_api_json("{not json").unwrap_err();
    assert!(e.to_string().starts_with("malformed rule"), "{e}");
    let ok = Rule::from_api_json(
        r#"{"Name":"r","EventPattern":{"a":[1]},"State":"DISABLED","Targets":[{"Id":"x","Arn":"muon:function:f","RetryPolicy":{"MaximumRetryAttempts":0,"MaximumEventAgeInSeconds":60}}]}"#,
    )
    .unwrap();
    assert!(!ok.enabled);
    assert_eq!(ok.targets[0].retry.max_attempts, 0);
}

#[test]
fn targets_validate_alone_and_their_arns_read_back() {
    let t = Target::from_api_json(serde_json::json!({
        "Id": "t1",
        "Arn": "arn:aws:lambda:us-east-1:123456789012:function:inventory",
        "InputPath": "$.detail",
    }))
    .unwrap();
    assert_eq!(t.id, "t1");
    assert_eq!(Target::from_api_json(t.to_api_json()).unwrap(), t);
    let e =
        Target::from_api_json(serde_json::json!({"Id": "t2", "Arn": "arn:aws:sqs:us-east-1:1:q"}))
            .unwrap_err();
    assert_eq!(e.code, "ValidationException");
    assert!(e.to_string().starts_with("arn: "), "{e}");
    let e = Target::from_api_json(serde_json::json!({"Id": "t3", "Kinesis": {}})).unwrap_err();
    assert!(e.to_string().starts_with("malformed target"), "{e}");
    // Every kind's ARN is read back as the same kind: an HTTP endpoint's is its URL.
    for kind in [
        TargetKind::Function(muon_types::FunctionName::new("inventory").unwrap()),
        TargetKind::Bus(muon_types::BusName::new("audit").unwrap()),
        TargetKind::Workflow("order".into()),
        TargetKind::Http("https://example.com/hook?x=1".into()),
    ] {
        let arn = kind.arn("us-east-1", "123456789012");
        let t = Target::from_api_json(serde_json::json!({"Id": "x", "Arn": arn})).unwrap();
        assert_eq!(t.kind, kind, "{arn}");
    }
    assert_eq!(
        TargetKind::Workflow("order".into()).arn("local", "000000000000"),
        "arn:aws:states:local:000000000000:stateMachine:order"
    );
}

#[test]
fn schedules_parse_into_rules_of_their_own() {
    let app = check(&format!(
        r#"{HELLO}
        [[schedule]]
        name = "nightly"
        expression = "cron(0 3 * * ? *)"
        timezone = "Europe/Paris"
        targets = ["inventory", {{ url = "http://127.0.0.1:9/tick", input = {{ kind = "tick" }} }}]
        "#
    ))
    .unwrap();
    let s = &app.schedules[0];
    assert_eq!(s.rule.name.as_str(), "nightly");
    assert_eq!(s.resource(), "muon:schedule:nightly");
    assert!(
        s.rule.pattern.contains("muon:schedule:nightly"),
        "{}",
        s.rule.pattern
    );
    assert_eq!(s.rule.targets.len(), 2);
    let e = errors(&format!(
        r#"{HELLO}
        [[rule]]
        name = "nightly"
        pattern = '{{"source": ["x"]}}'

        [[schedule]]
        name = "nightly"
        expression = "cron(0 12 ? * 8 *)"
        targets = ["nope"]

        [[schedule]]
        name = "zoned"
        expression = "rate(5 minutes)"
        timezone = "Mars/Olympus"

        [[schedule]]
        name = "dup"
        expression = "rate(1 minute)"

        [[schedule]]
        name = "dup"
        expression = "rate(1 minute)"
        "#
    ));
    for needle in [
        "schedule[0].expression`: cron(0 12 ? * 8 *): day-of-week: `8` is out of range 1-7",
        "schedule[0].targets[0]`: no function named `nope`",
        "schedule[0].name`: a rule or schedule named `nightly` is already defined",
        "schedule[1].expression`",
        "Mars/Olympus",
        "schedule[3].name`: a rule or schedule named `dup` is already defined",
    ] {
        assert!(e.contains(needle), "{needle:?} not in:\n{e}");
    }
}

/// A valid definition: one Task calling `inventory`.
const ORDER_ASL: &str = r#"{
    "StartAt": "Reserve",
    "States": {"Reserve": {"Type": "Task", "Resource": "muon:function:inventory", "End": true}}
}"#;

fn workflow_errors(files: &[(&str, &str)], text: &str) -> String {
    match check_with(files, text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn workflows_read_and_validate_their_definitions() {
    let app = check_with(
        &[
            ("workflows/order.asl.json", ORDER_ASL),
            ("workflows/quick.asl.json", ORDER_ASL),
            ("workflows/loud.asl.json", ORDER_ASL),
        ],
        &format!(
            r#"{HELLO}
        [[workflow]]
        name = "order"
        definition = "workflows/order.asl.json"
        type = "standard"

        [[workflow]]
        name = "quick_2"
        definition = "workflows/quick.asl.json"
        type = "express"

        [[workflow]]
        name = "Loud-One"
        definition = "workflows/loud.asl.json"
        type = "EXPRESS"

        [[rule]]
        name = "start-order"
        pattern = {{ source = ["shop.orders"] }}
        targets = [{{ workflow = "order" }}, {{ arn = "muon:workflow:quick_2" }},
                   {{ arn = "arn:aws:states:us-east-1:123456789012:stateMachine:Loud-One" }}]

        [[schedule]]
        name = "nightly"
        expression = "rate(1 day)"
        targets = [{{ workflow = "order" }}]
        "#
        ),
    )
    .unwrap();
    let order = app.workflow("order").unwrap();
    assert_eq!(order.kind, WorkflowKind::Standard);
    assert_eq!(order.kind.as_str(), "STANDARD");
    assert!(order.definition_path.is_absolute());
    assert!(
        order.definition_path.ends_with("workflows/order.asl.json"),
        "{}",
        order.definition_path.display()
    );
    assert_eq!(order.definition, ORDER_ASL);
    let kinds: Vec<_> = app.workflows.iter().map(|w| (&*w.name, w.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("order", WorkflowKind::Standard),
            ("quick_2", WorkflowKind::Express),
            ("Loud-One", WorkflowKind::Express),
        ]
    );
    assert_eq!(WorkflowKind::Express.as_str(), "EXPRESS");
    let targets: Vec<_> = app.rules[0]
        .targets
        .iter()
        .map(|t| t.kind.describe())
        .collect();
    assert_eq!(
        targets,
        ["workflow:order", "workflow:quick_2", "workflow:Loud-One"]
    );
    // No `[[workflow]]`: none.
    assert!(check(HELLO).unwrap().workflows.is_empty());
}

#[test]
fn a_workflow_is_standard_by_default() {
    let app = check_with(
        &[("order.json", ORDER_ASL)],
        &format!("{HELLO}\n[[workflow]]\nname = \"order\"\ndefinition = \"order.json\"\n"),
    )
    .unwrap();
    assert_eq!(app.workflows[0].kind, WorkflowKind::Standard);
    assert_eq!(WorkflowKind::default(), WorkflowKind::Standard);
}

#[test]
fn bad_workflow_names_types_and_keys_are_refused() {
    let files = [("order.json", ORDER_ASL)];
    let e = workflow_errors(
        &files,
        &format!(
            r#"{HELLO}
        [[workflow]]
        name = "bad name"
        definition = "order.json"

        [[workflow]]
        name = "{long}"
        definition = "order.json"

        [[workflow]]
        name = "ok"
        definition = "order.json"
        type = "batch"

        [[workflow]]
        definition = "order.json"

        [[workflow]]
        name = "no-definition"
        "#,
            long = "x".repeat(81)
        ),
    );
    for needle in [
        "muon.toml",
        "`workflow[0].name`: \"bad name\" is not a valid workflow name: use 1-80 characters",
        "`workflow[1].name`: \"xxxx",
        "`workflow[2].type`: unknown workflow type \"batch\": expected \"standard\" or \"express\"",
        "`workflow[3].name`: missing",
        "`workflow[4].definition`: missing",
    ] {
        assert!(e.contains(needle), "{needle:?} not in:\n{e}");
    }
    // An unknown key names the file, the key and the line.
    let e = workflow_errors(
        &files,
        &format!(
            "{HELLO}\n[[workflow]]\nname = \"order\"\ndefinition = \"order.json\"\nkind = \"express\"\n"
        ),
    );
    assert!(e.contains("muon.toml"), "{e}");
    assert!(e.contains("unknown key `kind`"), "{e}");
    assert!(e.contains("expected one of name, definition, type"), "{e}");
    assert!(e.contains("line 11"), "{e}");
}

#[test]
fn a_missing_definition_file_is_named() {
    let e = workflow_errors(
        &[],
        &format!(
            "{HELLO}\n[[workflow]]\nname = \"order\"\ndefinition = \"workflows/nope.asl.json\"\n"
        ),
    );
    assert!(e.contains("muon.toml"), "{e}");
    assert!(e.contains("`workflow[0].definition`: cannot read /"), "{e}");
    assert!(e.contains("workflows/nope.asl.json"), "{e}");
}

#[test]
fn an_invalid_definition_lists_every_problem_with_its_path() {
    let broken = r#"{
        "StartAt": "Missing",
        "States": {
            "A": {"Type": "Pass", "Next": "Nowhere"},
            "B": {"Type": "Wait", "End": true}
        }
    }"#;
    let e = workflow_errors(
        &[
            ("workflows/broken.json", broken),
            ("not-json.json", "{\"StartAt\": "),
        ],
        &format!(
            r#"{HELLO}
        [[workflow]]
        name = "broken"
        definition = "workflows/broken.json"

        [[workflow]]
        name = "garbled"
        definition = "not-json.json"

        [[rule]]
        name = "start"
        pattern = {{ source = ["shop"] }}
        targets = [{{ workflow = "broken" }}]
        "#
        ),
    );
    let problems: Vec<&str> = e
        .lines()
        .filter(|l| l.contains("`workflow[0].definition`"))
        .collect();
    assert!(problems.len() >= 3, "{e}");
    for p in &problems {
        assert!(
            p.contains("workflow `broken`: /") && p.contains("workflows/broken.json: at /"),
            "{p}"
        );
    }
    for needle in [
        "at /StartAt: 'Missing' is not the name of a state",
        "at /States/A/Next: 'Nowhere' is not the name of a state",
        "at /States/B: ",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "{needle:?} not in:\n{e}"
        );
    }
    assert!(
        e.contains("`workflow[1].definition`: workflow `garbled`: /")
            && e.contains("not-json.json: at /: the definition is not valid JSON"),
        "{e}"
    );
    // The rule targets a declared workflow: the definition is the only problem reported.
    assert!(!e.contains("rule[0]"), "{e}");
}

#[test]
fn workflow_names_are_unique() {
    let e = workflow_errors(
        &[("a.json", ORDER_ASL)],
        &format!(
            "{HELLO}\n[[workflow]]\nname = \"order\"\ndefinition = \"a.json\"\n\
             [[workflow]]\nname = \"order\"\ndefinition = \"a.json\"\ntype = \"express\"\n"
        ),
    );
    assert!(
        e.contains("`workflow[1].name`: a workflow named `order` is already defined"),
        "{e}"
    );
}

#[test]
fn targets_must_name_a_declared_workflow() {
    let e = workflow_errors(
        &[("order.json", ORDER_ASL)],
        &format!(
            r#"{HELLO}
        [[workflow]]
        name = "order"
        definition = "order.json"

        [[rule]]
        name = "start"
        pattern = {{ source = ["shop"] }}
        targets = [{{ workflow = "order" }}, {{ workflow = "ordr" }},
                   {{ arn = "muon:workflow:refund" }},
                   {{ arn = "arn:aws:states:us-east-1:123456789012:stateMachine:audit" }}]

        [[schedule]]
        name = "nightly"
        expression = "rate(1 day)"
        targets = [{{ workflow = "report" }}]
        "#
        ),
    );
    for needle in [
        "`rule[0].targets[1]`: no workflow named `ordr` in this app: declare it with a `[[workflow]]` table",
        "`rule[0].targets[2]`: no workflow named `refund`",
        "`rule[0].targets[3]`: no workflow named `audit`",
        "`schedule[0].targets[0]`: no workflow named `report`",
    ] {
        assert!(e.contains(needle), "{needle:?} not in:\n{e}");
    }
    assert!(!e.contains("rule[0].targets[0]"), "{e}");
}

#[test]
fn archives_parse_with_a_table_or_json_pattern() {
    let app = check(&format!(
        r#"{HELLO}
        [[bus]]
        name = "audit"

        [[archive]]
        name = "orders"
        pattern = {{ source = ["shop.orders"] }}
        retention = "30d"
        description = "every order"

        [[archive]]
        name = "audit.all-1"
        bus = "audit"
        pattern = '{{"detail": {{"total": [{{"numeric": [">", 100]}}]}}}}'

        [[archive]]
        name = "everything"
        "#
    ))
    .unwrap();
    assert_eq!(app.archives.len(), 3);
    let a = &app.archives[0];
    assert_eq!(a.name.as_str(), "orders");
    assert_eq!(a.bus.as_str(), "default");
    assert_eq!(a.pattern.as_deref(), Some(r#"{"source":["shop.orders"]}"#));
    assert_eq!(a.retention, Some(Duration::from_secs(30 * 86_400)));
    assert_eq!(a.retention_days(), 30);
    assert_eq!(
        a.arn("us-east-1", "1"),
        "arn:aws:events:us-east-1:1:archive/orders"
    );
    assert_eq!(app.archives[1].bus.as_str(), "audit");
    assert!(
        app.archives[1]
            .pattern
            .as_deref()
            .unwrap()
            .contains("numeric")
    );
    assert_eq!(app.archives[2].pattern, None);
    assert_eq!(app.archives[2].retention_days(), 0);
    // The API form reads back to the same archive.
    let again = Archive::from_api_json(&a.to_api_json().to_string()).unwrap();
    assert_eq!(&again, a);
}

#[test]
fn bad_archives_name_every_problem() {
    let e = errors(&format!(
        r#"{HELLO}
        [[archive]]
        name = "bad name"
        pattern = {{ source = "shop" }}

        [[archive]]
        name = "orders"
        bus = "nowhere"
        retention = "forever"

        [[archive]]
        name = "orders"
        colour = "red"

        [[archive]]
        name = "ok"
        "#
    ));
    assert!(e.contains("unknown key `colour`"), "{e}");
    let e = errors(&format!(
        r#"{HELLO}
        [[archive]]
        name = "bad name"
        pattern = {{ source = "shop" }}

        [[archive]]
        name = "orders"
        bus = "nowhere"

        [[archive]]
        name = "orders"
        retention = "forever"

        [[archive]]
        name = "{long}"
        "#,
        long = "x".repeat(49)
    ));
    for needle in [
        "archive[0].name`: archive name \"bad name\" is invalid",
        "archive[0].pattern`: Event pattern is not valid. Reason: \"source\" must be an object or an array",
        "archive[1].bus`: bus `nowhere` is not defined",
        "archive[2].retention`: duration \"forever\" is invalid",
        "archive[3].name`: archive name",
    ] {
        assert!(e.contains(needle), "{needle:?} not in:\n{e}");
    }
    let e = errors(&format!(
        r#"{HELLO}
        [[archive]]
        name = "orders"

        [[archive]]
        name = "orders"
        "#
    ));
    assert!(
        e.contains("archive[1].name`: an archive named `orders` is already defined"),
        "{e}"
    );
}

#[test]
fn api_archives_read_bus_arns_and_report_aws_codes() {
    let a = Archive::from_api_json(
        r#"{"ArchiveName":"a","EventSourceArn":"arn:aws:events:eu-west-1:123:event-bus/orders","EventPattern":{"source":["x"]},"RetentionDays":7,"Description":"d"}"#,
    )
    .unwrap();
    assert_eq!(a.bus.as_str(), "orders");
    assert_eq!(a.retention, Some(Duration::from_secs(7 * 86_400)));
    let a = Archive::from_api_json(
        r#"{"ArchiveName":"a","EventSourceArn":"default","RetentionDays":0}"#,
    )
    .unwrap();
    assert_eq!((a.retention, a.pattern), (None, None));
    let e = Archive::from_api_json(
        r#"{"ArchiveName":"a","EventSourceArn":"default","EventPattern":"{\"a\":1}"}"#,
    )
    .unwrap_err();
    assert_eq!(e.code, "InvalidEventPatternException");
    let e = Archive::from_api_json(
        r#"{"ArchiveName":"a","EventSourceArn":"arn:aws:events:r:1:rule/x","RetentionDays":-1}"#,
    )
    .unwrap_err();
    assert_eq!(e.code, "ValidationException");
    assert!(e.to_string().contains("not an event bus ARN"), "{e}");
    assert!(e.to_string().contains("RetentionDays: -1"), "{e}");
    let e = Archive::from_api_json(r#"{"ArchiveName":"a"}"#).unwrap_err();
    assert!(e.to_string().contains("EventSourceArn: missing"), "{e}");
    let e = Archive::from_api_json("{not json").unwrap_err();
    assert!(e.to_string().starts_with("malformed archive"), "{e}");
}

#[test]
fn definitions_are_read_with_a_bound_and_sources_say_what_is_wrong() {
    let big = format!(
        r#"{{"Comment": "{}", "StartAt": "A", "States": {{"A": {{"Type": "Pass", "End": true}}}}}}"#,
        "x".repeat(1_100_000)
    );
    let e = workflow_errors(
        &[("big.json", &big)],
        &format!("{HELLO}\n[[workflow]]\nname = \"big\"\ndefinition = \"big.json\"\n"),
    );
    assert!(e.contains("larger than 1048576 bytes"), "{e}");
    let e = workflow_errors(
        &[],
        &format!("{HELLO}\n[[workflow]]\nname = \"zero\"\ndefinition = \"/dev/zero\"\n"),
    );
    assert!(e.contains("not a regular file"), "{e}");
    let e = errors(
        "app = \"a\"\n[[function]]\nname = \"f\"\nruntime = \"wasm\"\nsource = \"~/hello.wasm\"\n",
    );
    assert!(e.contains("does not expand"), "{e}");
    let e = errors("app = \"a\"\n[[function]]\nname = \"f\"\nruntime = \"wasm\"\nsource = \"/\"\n");
    assert!(e.contains("without a Cargo.toml"), "{e}");
    let e = errors(
        "app = \"a\"\n[[function]]\nname = \"f\"\nruntime = \"wasm\"\nsource = \"/etc/x.wasm\"\n",
    );
    assert!(e.contains("does not exist"), "{e}");
}
