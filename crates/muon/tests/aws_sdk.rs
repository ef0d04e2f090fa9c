//! The real AWS SDK for Python (boto3) against `muon up`: SigV4-signed requests with keys from
//! `muon keys create --aws`, held to their scopes. `scripts/test` provides the Python
//! (`MUON_TEST_PYTHON`); without it the test says it is skipped, and fails under CI.

mod support;

use std::path::Path;
use std::process::Command;

use support::{Up, hello_function, keys};

fn python() -> Option<String> {
    match std::env::var("MUON_TEST_PYTHON") {
        Ok(p) => Some(p),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("MUON_TEST_PYTHON is not set: run the tests through scripts/test")
        }
        Err(_) => {
            eprintln!("skipped: MUON_TEST_PYTHON is not set (scripts/test sets it)");
            None
        }
    }
}

/// `muon keys create NAME --scope SCOPE --aws` in `dir`: the access key ID and secret.
fn aws_key(dir: &Path, name: &str, scope: &str) -> (String, String) {
    let text = keys(dir, &["create", name, "--scope", scope, "--aws"]);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .to_string()
    };
    (field("AWS_ACCESS_KEY_ID="), field("AWS_SECRET_ACCESS_KEY="))
}

const SCRIPT: &str = r#"
import json, os, sys
import boto3, botocore
endpoint = os.environ["ENDPOINT"]
def client(service, key, secret):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret)
def code(call):
    try:
        call()
        return "ok"
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
admin, reader = os.environ["ADMIN"].split(":"), os.environ["READER"].split(":")
events = client("events", *admin)
states = client("stepfunctions", *admin)
put = events.put_events(Entries=[{"Source": "sdk", "DetailType": "Hello", "Detail": "{}"}])
print("put", put["FailedEntryCount"], len(put["Entries"][0]["EventId"]))
events.put_rule(Name="from-sdk", EventPattern=json.dumps({"source": ["sdk"]}))
print("rules", sorted(r["Name"] for r in events.list_rules()["Rules"]))
machine = states.create_state_machine(name="sdk", roleArn="arn:aws:iam::000000000000:role/x",
    definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}))
print("machine", machine["stateMachineArn"].endswith(":sdk"))
ro_events = client("events", *reader)
print("reader list", code(lambda: ro_events.list_rules()))
print("reader put", code(lambda: ro_events.put_events(Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}"}])))
print("reader put_rule", code(lambda: ro_events.put_rule(Name="nope", EventPattern="{}")))
wrong = client("events", admin[0], "0" * 64)
print("wrong secret", code(lambda: wrong.list_rules()))
unknown = client("events", "MK0000000000000000", admin[1])
print("unknown key", code(lambda: unknown.list_rules()))
"#;

#[test]
fn boto3_signs_with_muon_keys_and_is_held_to_their_scope() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("muon.toml"),
        format!("app = \"sdk\"\n{}", hello_function()),
    )
    .unwrap();
    let admin = aws_key(dir.path(), "admin", "admin");
    let reader = aws_key(dir.path(), "reader", "read");
    let up = Up::start_app(dir.path(), &["--auth"]);
    let out = Command::new(python)
        .args(["-c", SCRIPT])
        .env("ENDPOINT", &up.control)
        .env("ADMIN", format!("{}:{}", admin.0, admin.1))
        .env("READER", format!("{}:{}", reader.0, reader.1))
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = [
        "put 0 36",
        "rules ['from-sdk']",
        "machine True",
        "reader list ok",
        "reader put AccessDeniedException",
        "reader put_rule AccessDeniedException",
        "wrong secret SignatureDoesNotMatch",
        "unknown key UnrecognizedClientException",
    ];
    assert_eq!(text.lines().collect::<Vec<_>>(), expected, "{text}");
}

#[test]
fn boto3_with_dummy_credentials_works_on_loopback_without_auth() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("muon.toml"),
        format!("app = \"dev\"\n{}", hello_function()),
    )
    .unwrap();
    // A muon key still holds its owner to its scope, even in dev mode.
    let reader = aws_key(dir.path(), "reader", "read");
    let up = Up::start_app(dir.path(), &[]);
    let script = r#"
import os, boto3, botocore
def client(key, secret):
    return boto3.client("events", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret)
def code(call):
    try:
        call()
        return "ok"
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
dummy = client("local", "local")
print("dummy put", code(lambda: dummy.put_events(Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}"}])))
key, secret = os.environ["READER"].split(":")
reader = client(key, secret)
print("reader list", code(lambda: reader.list_rules()))
print("reader put", code(lambda: reader.put_events(Entries=[{"Source": "s", "DetailType": "d", "Detail": "{}"}])))
"#;
    let out = Command::new(python)
        .args(["-c", script])
        .env("ENDPOINT", &up.control)
        .env("READER", format!("{}:{}", reader.0, reader.1))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            "dummy put ok",
            "reader list ok",
            "reader put AccessDeniedException"
        ],
        "{text}"
    );
}

#[test]
fn the_aws_cli_signs_with_muon_keys_and_works_with_dummy_credentials_in_dev_mode() {
    let Some(python) = python() else { return };
    let aws = std::path::Path::new(&python).with_file_name("aws");
    assert!(
        aws.is_file(),
        "no aws CLI beside {python} (scripts/test installs it)"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("muon.toml"),
        format!("app = \"cli\"\n{}", hello_function()),
    )
    .unwrap();
    let admin = aws_key(dir.path(), "admin", "admin");
    let run = |up: &Up, key: (&str, &str), args: &[&str]| {
        let out = Command::new(&aws)
            .args([
                "--endpoint-url",
                &up.control,
                "--region",
                "us-east-1",
                "--output",
                "json",
            ])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", key.0)
            .env("AWS_SECRET_ACCESS_KEY", key.1)
            .env("AWS_DISABLE_HOST_PREFIX_INJECTION", "true")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env_remove("AWS_PROFILE")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let entries = r#"[{"Source": "cli", "DetailType": "Hello", "Detail": "{}"}]"#;
    {
        // Keys required: the CLI signs with a muon key pair.
        let up = Up::start_app(dir.path(), &["--auth"]);
        let (ok, text) = run(
            &up,
            (&admin.0, &admin.1),
            &["events", "put-events", "--entries", entries],
        );
        assert!(ok && text.contains("\"FailedEntryCount\": 0"), "{text}");
        let (ok, text) = run(
            &up,
            (&admin.0, &admin.1),
            &["stepfunctions", "list-state-machines"],
        );
        assert!(ok && text.contains("stateMachines"), "{text}");
        let (ok, text) = run(&up, ("local", "local"), &["events", "list-rules"]);
        assert!(!ok, "{text}");
    }
    // Dev mode: dummy credentials, as a local setup gives the CLI.
    let up = Up::start_app(dir.path(), &[]);
    let (ok, text) = run(&up, ("local", "local"), &["events", "list-rules"]);
    assert!(ok && text.contains("Rules"), "{text}");
}
