//! `muon flows ...` commands that talk to a running `muon up`: state machines, executions,
//! their history, and task-token callbacks. Requests and answers have Step Functions' shapes.

use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};

use crate::Server;
use crate::client::{client, ok, read_data, send};

#[derive(clap::Args)]
pub struct CreateArgs {
    /// The state machine's name.
    name: String,
    /// The definition (Amazon States Language, JSON): a file.
    #[arg(long)]
    definition: std::path::PathBuf,
    /// `standard` (durable) or `express` (in memory).
    #[arg(long = "type", default_value = "standard")]
    kind: String,
    #[command(flatten)]
    server: Server,
}

#[derive(clap::Args)]
pub struct StartArgs {
    /// The state machine: its name or ARN.
    machine: String,
    /// The input: JSON text, `@FILE`, or `@-` for standard input.
    #[arg(long, default_value = "{}")]
    input: String,
    /// The execution's name (default: a UUID). Starting again with the name of a running
    /// execution and the same input returns that execution.
    #[arg(long)]
    name: Option<String>,
    /// Wait for the end; print status and output. Exits 1 unless it succeeded.
    #[arg(long)]
    wait: bool,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: Server,
}

#[derive(clap::Args)]
pub struct ExecutionArgs {
    /// The execution: its ARN, or `MACHINE/NAME`.
    execution: String,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: Server,
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// The state machine: its name or ARN.
    machine: String,
    /// Only executions with this status (running, succeeded, failed, timed_out, aborted).
    #[arg(long)]
    status: Option<String>,
    #[arg(long, default_value_t = 100)]
    limit: u64,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: Server,
}

#[derive(clap::Args)]
pub struct StopArgs {
    /// The execution: its ARN, or `MACHINE/NAME`.
    execution: String,
    #[arg(long)]
    error: Option<String>,
    #[arg(long)]
    cause: Option<String>,
    #[command(flatten)]
    server: Server,
}

#[derive(clap::Args)]
pub struct TaskArgs {
    /// The task token (`$$.Task.Token` of a `.waitForTaskToken` task).
    token: String,
    /// SendTaskSuccess: the task's result, JSON text, `@FILE` or `@-`.
    #[arg(long)]
    output: Option<String>,
    /// SendTaskFailure: the error name.
    #[arg(long)]
    error: Option<String>,
    /// SendTaskFailure: the cause.
    #[arg(long)]
    cause: Option<String>,
    #[command(flatten)]
    server: Server,
}

/// A path segment: the ARN's characters that a URL path cannot hold, escaped.
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn call(server: &Server, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let response = ok(send(server, request).await?).await?;
    response.json().await.context("unexpected answer")
}

fn date(seconds: &Value) -> String {
    seconds
        .as_f64()
        .and_then(|s| chrono::DateTime::from_timestamp_millis((s * 1000.0) as i64))
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_else(|| "-".into())
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("JSON serializes")
}

pub async fn create(args: CreateArgs) -> anyhow::Result<ExitCode> {
    let definition = std::fs::read_to_string(&args.definition)
        .with_context(|| format!("cannot read the definition {}", args.definition.display()))?;
    let answer = call(
        &args.server,
        client()
            .post(args.server.url("/v1/state-machines"))
            .json(&json!({
                "name": args.name,
                "definition": definition,
                "type": args.kind.to_ascii_uppercase(),
            })),
    )
    .await?;
    println!("{}", answer["stateMachineArn"].as_str().unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}

pub async fn delete(name: String, server: Server) -> anyhow::Result<ExitCode> {
    call(
        &server,
        client().delete(server.url(&format!("/v1/state-machines/{}", segment(&name)))),
    )
    .await?;
    println!("deleted {name}");
    Ok(ExitCode::SUCCESS)
}

pub async fn machines(json: bool, server: Server) -> anyhow::Result<ExitCode> {
    let answer = call(&server, client().get(server.url("/v1/state-machines"))).await?;
    if json {
        println!("{}", pretty(&answer));
        return Ok(ExitCode::SUCCESS);
    }
    let list = answer["stateMachines"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if list.is_empty() {
        println!("no state machines: add [[workflow]] tables to muon.toml, or `muon flows create`");
    }
    for m in list {
        println!(
            "{}  ({}, {})  {}",
            m["name"].as_str().unwrap_or("?"),
            m["type"].as_str().unwrap_or("?").to_lowercase(),
            m["origin"].as_str().unwrap_or("?"),
            m["stateMachineArn"].as_str().unwrap_or("?"),
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn start(args: StartArgs) -> anyhow::Result<ExitCode> {
    let input = String::from_utf8(read_data(&args.input)?).context("the input is not UTF-8")?;
    let mut body = json!({ "input": input });
    if let Some(name) = &args.name {
        body["name"] = json!(name);
    }
    let mut url = args.server.url(&format!(
        "/v1/state-machines/{}/executions",
        segment(&args.machine)
    ));
    if args.wait {
        url.push_str("?wait=true");
    }
    let answer = call(&args.server, client().post(url).json(&body)).await?;
    if !args.wait {
        if args.json {
            println!("{answer}");
        } else {
            println!("{}", answer["executionArn"].as_str().unwrap_or_default());
        }
        return Ok(ExitCode::SUCCESS);
    }
    print_execution(&answer, args.json);
    Ok(exit_code(&answer))
}

fn exit_code(execution: &Value) -> ExitCode {
    match execution["status"].as_str() {
        Some("SUCCEEDED") | Some("RUNNING") => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

fn print_execution(d: &Value, json: bool) {
    if json {
        println!("{d}");
        return;
    }
    println!("execution: {}", d["executionArn"].as_str().unwrap_or("?"));
    println!("status: {}", d["status"].as_str().unwrap_or("?"));
    println!("started: {}", date(&d["startDate"]));
    if !d["stopDate"].is_null() {
        println!("stopped: {}", date(&d["stopDate"]));
    }
    if let Some(input) = d["input"].as_str() {
        println!("input: {input}");
    }
    for key in ["output", "error", "cause"] {
        if let Some(v) = d[key].as_str() {
            println!("{key}: {v}");
        }
    }
}

pub async fn describe(args: ExecutionArgs) -> anyhow::Result<ExitCode> {
    let answer = call(
        &args.server,
        client().get(
            args.server
                .url(&format!("/v1/executions/{}", segment(&args.execution))),
        ),
    )
    .await?;
    print_execution(&answer, args.json);
    Ok(ExitCode::SUCCESS)
}

pub async fn executions(args: ListArgs) -> anyhow::Result<ExitCode> {
    let mut url = args.server.url(&format!(
        "/v1/state-machines/{}/executions?limit={}",
        segment(&args.machine),
        args.limit
    ));
    if let Some(s) = &args.status {
        url.push_str(&format!("&status={}", segment(s)));
    }
    let answer = call(&args.server, client().get(url)).await?;
    if args.json {
        println!("{}", pretty(&answer));
        return Ok(ExitCode::SUCCESS);
    }
    let list = answer["executions"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no executions");
    }
    for e in list {
        println!(
            "{:<10} {}  {}  {}",
            e["status"].as_str().unwrap_or("?"),
            date(&e["startDate"]),
            e["name"].as_str().unwrap_or("?"),
            e["executionArn"].as_str().unwrap_or("?"),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The whole history, page by page.
pub async fn history(args: ExecutionArgs) -> anyhow::Result<ExitCode> {
    let mut events = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = args.server.url(&format!(
            "/v1/executions/{}/history",
            segment(&args.execution)
        ));
        if let Some(a) = &after {
            url.push_str(&format!("?after={a}"));
        }
        let mut page = call(&args.server, client().get(url)).await?;
        if let Some(Value::Array(list)) = page.get_mut("events").map(Value::take) {
            events.extend(list);
        }
        match page["nextToken"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    if args.json {
        println!("{}", pretty(&json!({ "events": events })));
        return Ok(ExitCode::SUCCESS);
    }
    for e in &events {
        let details = e
            .as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.ends_with("EventDetails")))
            .map(|(_, v)| v);
        let summary = details
            .map(|d| {
                ["name", "resource", "error", "cause", "output", "input"]
                    .iter()
                    .filter_map(|k| d[*k].as_str().map(|v| format!("{k}={}", short(v))))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        println!(
            "{:>4}  {}  {:<28} {summary}",
            e["id"].as_u64().unwrap_or(0),
            date(&e["timestamp"]),
            e["type"].as_str().unwrap_or("?"),
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn short(text: &str) -> String {
    let flat: String = text.chars().filter(|c| *c != '\n').collect();
    if flat.chars().count() > 80 {
        format!("{}...", flat.chars().take(77).collect::<String>())
    } else {
        flat
    }
}

pub async fn stop(args: StopArgs) -> anyhow::Result<ExitCode> {
    let answer = call(
        &args.server,
        client()
            .post(
                args.server
                    .url(&format!("/v1/executions/{}/stop", segment(&args.execution))),
            )
            .json(&json!({ "error": args.error, "cause": args.cause })),
    )
    .await?;
    println!("stopped at {}", date(&answer["stopDate"]));
    Ok(ExitCode::SUCCESS)
}

/// `success`, `failure` or `heartbeat`.
pub async fn task(outcome: &str, args: TaskArgs) -> anyhow::Result<ExitCode> {
    let mut body = json!({ "taskToken": args.token });
    match outcome {
        "success" => {
            let output = args.output.as_deref().unwrap_or("{}");
            body["output"] =
                json!(String::from_utf8(read_data(output)?).context("the output is not UTF-8")?);
        }
        "failure" => {
            body["error"] = json!(args.error);
            body["cause"] = json!(args.cause);
        }
        _ => {}
    }
    call(
        &args.server,
        client()
            .post(args.server.url(&format!("/v1/tasks/{outcome}")))
            .json(&body),
    )
    .await?;
    println!("ok");
    Ok(ExitCode::SUCCESS)
}
