//! The CLI commands that talk to a running `muon up` through its control API.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use futures::StreamExt;

use crate::Server;

#[derive(clap::Args)]
pub struct InvokeArgs {
    /// The function to invoke.
    function: String,
    /// The request body: JSON (or any text), `@FILE` to read a file, `@-` for standard input.
    #[arg(long, short)]
    data: Option<String>,
    /// The path the function sees.
    #[arg(long, default_value = "/")]
    path: String,
    /// The method the function sees (default POST with --data, GET without).
    #[arg(long, short = 'X')]
    method: Option<String>,
    /// Print the invocation as one JSON object: id, status, headers, body.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: Server,
}

#[derive(clap::Args)]
pub struct LogsArgs {
    /// The function whose logs to print.
    function: String,
    /// Keep printing new lines as they come.
    #[arg(long, short)]
    follow: bool,
    /// How many recent lines to print first.
    #[arg(long, short = 'n', default_value_t = 100)]
    limit: usize,
    /// Print one JSON object per line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: Server,
}

#[derive(clap::Args)]
pub struct FunctionsArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: Server,
}

/// The HTTP client every CLI command talks to the control API with. With `MUON_API_KEY` set
/// (a key from `muon keys create`), each request carries it as `Authorization: Bearer`.
pub(crate) fn client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(key) = std::env::var("MUON_API_KEY")
        && let Ok(mut value) =
            reqwest::header::HeaderValue::from_str(&format!("Bearer {}", key.trim()))
    {
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("an HTTP client without TLS builds")
}

pub(crate) async fn send(
    server: &Server,
    request: reqwest::RequestBuilder,
) -> anyhow::Result<reqwest::Response> {
    request.send().await.with_context(|| {
        format!(
            "cannot reach the control API at {} (is `muon up` running? set --control or MUON_CONTROL)",
            server.url("")
        )
    })
}

/// Turn an error answer of the API into a message.
pub(crate) async fn api_error(response: reqwest::Response) -> anyhow::Error {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    match serde_json::from_str::<muon_api::ErrorBody>(&text) {
        Ok(e) => match e.invocation_id {
            Some(id) => anyhow::anyhow!("{} ({status}): {} [invocation {id}]", e.error, e.message),
            None => anyhow::anyhow!("{} ({status}): {}", e.error, e.message),
        },
        Err(_) => anyhow::anyhow!("{status}: {text}"),
    }
}

/// The answer if it is a success, else the API's error as a message.
pub(crate) async fn ok(response: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(api_error(response).await)
    }
}

/// A command-line value: the text itself, `@FILE` for a file, `@-` for standard input.
pub fn read_data(data: &str) -> anyhow::Result<Vec<u8>> {
    match data.strip_prefix('@') {
        Some("-") => {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
                .context("cannot read standard input")?;
            Ok(buf)
        }
        Some(file) => std::fs::read(file).with_context(|| format!("cannot read {file}")),
        None => Ok(data.as_bytes().to_vec()),
    }
}

pub async fn invoke(args: InvokeArgs) -> anyhow::Result<ExitCode> {
    let body = args.data.as_deref().map(read_data).transpose()?;
    let method = args
        .method
        .clone()
        .unwrap_or_else(|| if body.is_some() { "POST" } else { "GET" }.into());
    let url = args
        .server
        .url(&format!("/v1/functions/{}/invoke", args.function));
    let mut request = client()
        .post(url)
        .query(&[("path", args.path.as_str()), ("method", method.as_str())]);
    if let Some(body) = body {
        let is_json = serde_json::from_slice::<serde_json::Value>(&body).is_ok();
        request = request
            .header(
                "content-type",
                if is_json {
                    "application/json"
                } else {
                    "application/octet-stream"
                },
            )
            .body(body);
    }
    let response = send(&args.server, request).await?;
    let status = response.status();
    let id = response
        .headers()
        .get(muon_api::INVOCATION_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if args.json {
        let headers: serde_json::Map<String, serde_json::Value> = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
            .collect();
        let bytes = response.bytes().await.context("the answer was cut off")?;
        let body = match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(json) => json,
            Err(_) => String::from_utf8_lossy(&bytes).into_owned().into(),
        };
        let out = serde_json::json!({
            "invocation_id": id,
            "status": status.as_u16(),
            "headers": headers,
            "body": body,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(if status.is_success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    if response.headers().contains_key(muon_api::ERROR_HEADER) {
        bail!(api_error(response).await);
    }
    let mut stream = response.bytes_stream();
    let mut stdout = std::io::stdout().lock();
    while let Some(chunk) = stream.next().await {
        stdout.write_all(&chunk.context("the answer was cut off")?)?;
    }
    stdout.flush()?;
    drop(stdout);
    if !status.is_success() {
        eprintln!("muon: the function answered {status}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_line(line: &muon_api::LogLine, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, line)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "{} {} {:<6} {}",
            muon_api::rfc3339(line.time_ms),
            line.invocation_id,
            line.stream,
            line.text
        )?;
    }
    Ok(())
}

pub async fn logs(args: LogsArgs) -> anyhow::Result<ExitCode> {
    let url = args
        .server
        .url(&format!("/v1/functions/{}/logs", args.function));
    let request = client().get(url).query(&[
        ("limit", args.limit.to_string()),
        ("follow", args.follow.to_string()),
    ]);
    let response = send(&args.server, request).await?;
    if !response.status().is_success() {
        return Err(api_error(response).await);
    }
    if !args.follow {
        let list: muon_api::LogList = response.json().await.context("unexpected answer")?;
        for line in &list.logs {
            print_line(line, args.json)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    each_line(response, |line: muon_api::LogLine| {
        print_line(&line, args.json)
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// Read a stream of JSON objects, one per line, handing each to `f` as it arrives.
pub(crate) async fn each_line<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    mut f: impl FnMut(T) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut stream = response.bytes_stream();
    let mut pending = Vec::new();
    while let Some(chunk) = stream.next().await {
        pending.extend_from_slice(&chunk.context("the server went away")?);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            f(serde_json::from_slice(&line).context("unexpected line from the server")?)?;
        }
    }
    Ok(())
}

pub async fn functions(args: FunctionsArgs) -> anyhow::Result<ExitCode> {
    let response = send(&args.server, client().get(args.server.url("/v1/functions"))).await?;
    if !response.status().is_success() {
        return Err(api_error(response).await);
    }
    let list: muon_api::FunctionList = response.json().await.context("unexpected answer")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<20} {:<8} {:<24} {:>8} {:>9} {:>11} {:>7}",
        "NAME", "RUNTIME", "ROUTE", "MEMORY", "TIMEOUT", "INVOCATIONS", "FAILED"
    );
    for f in &list.functions {
        println!(
            "{:<20} {:<8} {:<24} {:>6}MB {:>8}s {:>11} {:>7}",
            f.name,
            f.runtime,
            f.route.as_deref().unwrap_or("-"),
            f.memory_mb,
            f.timeout_ms as f64 / 1000.0,
            f.invocations,
            f.failed
        );
    }
    Ok(ExitCode::SUCCESS)
}
