//! `muon events ...` and `muon rules ...`: event-bus commands. `test-pattern` needs no server;
//! the others talk to a running `muon up`.

use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::Server;
use crate::client::{client, each_line, ok, read_data, send};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Does an event match an event pattern? Prints `match` or `no match` (exit 0); an invalid
    /// pattern or event prints why (exit 2). Like EventBridge's TestEventPattern.
    TestPattern {
        /// The event pattern: JSON text, `@FILE`, or `@-` for standard input.
        #[arg(long, short)]
        pattern: String,
        /// The event (EventBridge envelope): JSON text, `@FILE`, or `@-`.
        #[arg(long, short)]
        event: String,
    },
    /// Put one event on a bus (or several with --entries), like EventBridge's PutEvents.
    Put(PutArgs),
    /// Print the events buses accept from now on.
    Tail {
        /// Only this bus.
        #[arg(long)]
        bus: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
    /// Print what an event caused: matched rules, deliveries (status, attempts) and the events
    /// those deliveries published, as a tree.
    Trace {
        event_id: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
    /// The dead-letter queue: deliveries that were given up.
    #[command(subcommand)]
    Dlq(Dlq),
    /// Send a bus's (or an archive's) stored events from a time window through its rules again.
    Replay {
        /// A name for the replay: replayed events carry it as `replay-name`. Used once.
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "default", conflicts_with = "archive")]
        bus: String,
        /// Replay this archive's events (those its pattern and retention hold) to its bus.
        #[arg(long)]
        archive: Option<String>,
        /// Start of the window: RFC 3339, or a duration ago (`1h`, `30m`).
        #[arg(long)]
        from: String,
        /// End of the window (default: now): RFC 3339, or a duration ago.
        #[arg(long)]
        to: Option<String>,
        /// Only these rules (repeatable; default: all).
        #[arg(long = "rule")]
        rules: Vec<String>,
        #[command(flatten)]
        server: Server,
    },
    /// List the archives: name, bus, pattern, retention, events held, origin.
    Archives {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
}

#[derive(clap::Args)]
pub struct PutArgs {
    #[arg(long)]
    source: Option<String>,
    #[arg(long)]
    detail_type: Option<String>,
    /// The detail: a JSON object, `@FILE`, or `@-`.
    #[arg(long)]
    detail: Option<String>,
    #[arg(long)]
    bus: Option<String>,
    /// A PutEvents request body (`{"Entries": [...]}`): JSON, `@FILE` or `@-`.
    #[arg(long, conflicts_with_all = ["source", "detail_type", "detail"])]
    entries: Option<String>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: Server,
}

#[derive(clap::Subcommand)]
pub enum Dlq {
    /// List dead-lettered deliveries with why they were given up.
    List {
        #[arg(long, short = 'n', default_value_t = 100)]
        limit: usize,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
    /// Deliver dead letters again (these IDs, or all of them).
    Redrive {
        ids: Vec<String>,
        #[command(flatten)]
        server: Server,
    },
}

#[derive(clap::Subcommand)]
pub enum Rules {
    /// List every rule of every bus with its pattern and targets.
    List {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: Server,
    },
}

fn text(arg: &str, what: &str) -> anyhow::Result<String> {
    String::from_utf8(read_data(arg)?).with_context(|| format!("the {what} is not UTF-8"))
}

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::TestPattern { pattern, event } => {
            let pattern = text(&pattern, "pattern")?;
            let event = text(&event, "event")?;
            match muon_pattern::test_event_pattern(&pattern, &event) {
                Ok(true) => println!("match"),
                Ok(false) => println!("no match"),
                Err(e) => {
                    eprintln!("{}: {e}", e.aws_code());
                    return Ok(ExitCode::from(2));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Put(args) => put(args).await,
        Command::Tail { bus, json, server } => {
            let mut request = client().get(server.url("/v1/events/tail"));
            if let Some(bus) = &bus {
                request = request.query(&[("bus", bus)]);
            }
            let response = ok(send(&server, request).await?).await?;
            eprintln!("muon: following events (Ctrl-C stops)");
            each_line(response, |e: muon_api::Event| {
                if json {
                    println!("{}", serde_json::to_string(&e)?);
                } else {
                    println!(
                        "{} {} {:<10} {} / {}  {}",
                        muon_api::rfc3339(e.ingested_ms.max(0) as u64),
                        e.id,
                        e.bus,
                        e.event["source"].as_str().unwrap_or("?"),
                        e.event["detail-type"].as_str().unwrap_or("?"),
                        e.event["detail"]
                    );
                }
                Ok(())
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Trace {
            event_id,
            json,
            server,
        } => {
            let event_id: muon_types::EventId = event_id.parse().map_err(|_| {
                let shown: String = event_id.chars().take(60).collect();
                anyhow::anyhow!(
                    "{shown:?}{} is not an event ID: IDs are UUIDs, as PutEvents answers them",
                    if event_id.chars().count() > 60 {
                        "..."
                    } else {
                        ""
                    }
                )
            })?;
            let url = server.url(&format!("/v1/events/{event_id}/trace"));
            let response = ok(send(&server, client().get(url)).await?).await?;
            let tree: muon_api::TraceNode = response.json().await.context("unexpected answer")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tree)?);
            } else {
                println!("trace {}", tree.event.trace_id);
                print_tree(&tree, "");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Dlq(Dlq::List {
            limit,
            json,
            server,
        }) => {
            let url = server.url("/v1/dlq");
            let request = client().get(url).query(&[("limit", limit)]);
            let response = ok(send(&server, request).await?).await?;
            let list: muon_api::DeliveryList =
                response.json().await.context("unexpected answer")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(ExitCode::SUCCESS);
            }
            if list.deliveries.is_empty() {
                println!("the dead-letter queue is empty");
            }
            for d in &list.deliveries {
                println!(
                    "{}  event {}  rule {}/{} -> {}  attempts {}  {}: {}: {}",
                    d.id,
                    d.event_id,
                    d.bus,
                    d.rule,
                    d.target,
                    d.attempts,
                    d.exhausted.as_deref().unwrap_or("-"),
                    d.error_code.as_deref().unwrap_or("-"),
                    d.error_message.as_deref().unwrap_or("")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Dlq(Dlq::Redrive { ids, server }) => {
            let body = muon_api::Redrive {
                ids: (!ids.is_empty()).then_some(ids),
            };
            let request = client().post(server.url("/v1/dlq/redrive")).json(&body);
            let response = ok(send(&server, request).await?).await?;
            let count: muon_api::Count = response.json().await.context("unexpected answer")?;
            println!("{} deliveries sent again", count.count);
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            name,
            bus,
            archive,
            from,
            to,
            rules,
            server,
        } => {
            let body = muon_api::Replay {
                name,
                bus,
                archive,
                from_ms: time_arg(&from)?,
                to_ms: to
                    .as_deref()
                    .map(time_arg)
                    .transpose()?
                    .unwrap_or_else(now_ms),
                rules: (!rules.is_empty()).then_some(rules),
            };
            let request = client().post(server.url("/v1/replays")).json(&body);
            let response = ok(send(&server, request).await?).await?;
            let count: muon_api::Count = response.json().await.context("unexpected answer")?;
            println!("{} events replayed", count.count);
            Ok(ExitCode::SUCCESS)
        }
        Command::Archives { json, server } => {
            let response =
                ok(send(&server, client().get(server.url("/v1/archives"))).await?).await?;
            let list: muon_api::ArchiveList = response.json().await.context("unexpected answer")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(ExitCode::SUCCESS);
            }
            if list.archives.is_empty() {
                println!("no archives: add [[archive]] tables to muon.toml, or PUT /v1/archives");
            }
            for a in &list.archives {
                let archive = &a.archive;
                let retention = match archive["RetentionDays"].as_u64() {
                    None | Some(0) => "kept indefinitely".to_string(),
                    Some(d) => format!("kept {d}d"),
                };
                println!(
                    "{}  (bus {}, {}, {} events, {} bytes, {})",
                    archive["ArchiveName"].as_str().unwrap_or("?"),
                    archive["EventSourceArn"].as_str().unwrap_or("?"),
                    retention,
                    a.events,
                    a.size_bytes,
                    a.origin
                );
                println!(
                    "  pattern {}",
                    archive["EventPattern"].as_str().unwrap_or("(every event)")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn rules(command: Rules) -> anyhow::Result<ExitCode> {
    let Rules::List { json, server } = command;
    let response = ok(send(&server, client().get(server.url("/v1/rules"))).await?).await?;
    let list: muon_api::RuleList = response.json().await.context("unexpected answer")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    if list.rules.is_empty() {
        println!("no rules: add [[rule]] tables to muon.toml, or PUT /v1/rules");
    }
    for r in &list.rules {
        let rule = &r.rule;
        println!(
            "{}/{}  ({}, {})",
            rule["EventBusName"].as_str().unwrap_or("?"),
            rule["Name"].as_str().unwrap_or("?"),
            rule["State"].as_str().unwrap_or("?").to_lowercase(),
            r.origin
        );
        println!("  pattern {}", rule["EventPattern"].as_str().unwrap_or("?"));
        for t in rule["Targets"].as_array().into_iter().flatten() {
            let kind = ["Function", "Bus", "Url", "Workflow"]
                .iter()
                .find_map(|k| t[*k].as_str().map(|v| format!("{} {v}", k.to_lowercase())))
                .unwrap_or_default();
            println!("  -> {} ({})", kind, t["Id"].as_str().unwrap_or("?"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn put(args: PutArgs) -> anyhow::Result<ExitCode> {
    let body: muon_api::PutEvents = match &args.entries {
        Some(entries) => serde_json::from_str(&text(entries, "entries")?)
            .context("--entries is not a PutEvents body ({\"Entries\": [...]})")?,
        None => {
            let (Some(source), Some(detail_type)) = (&args.source, &args.detail_type) else {
                bail!("name the event: --source and --detail-type (and --detail), or --entries");
            };
            let detail = match &args.detail {
                Some(d) => text(d, "detail")?,
                None => "{}".into(),
            };
            muon_api::PutEvents {
                entries: vec![muon_api::PutEventsEntry {
                    source: Some(source.clone()),
                    detail_type: Some(detail_type.clone()),
                    detail: Some(detail),
                    event_bus_name: args.bus.clone(),
                    ..Default::default()
                }],
            }
        }
    };
    let request = client().post(args.server.url("/v1/events")).json(&body);
    let response = ok(send(&args.server, request).await?).await?;
    let result: muon_api::PutEventsResult = response.json().await.context("unexpected answer")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        for e in &result.entries {
            match (&e.event_id, &e.error_code) {
                (Some(id), _) => println!("{id}"),
                (None, code) => eprintln!(
                    "failed: {}: {}",
                    code.as_deref().unwrap_or("?"),
                    e.error_message.as_deref().unwrap_or("")
                ),
            }
        }
    }
    Ok(if result.failed_entry_count == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_tree(node: &muon_api::TraceNode, indent: &str) {
    let e = &node.event;
    println!(
        "{indent}event {} on {}: {} / {}{}",
        e.id,
        e.bus,
        e.event["source"].as_str().unwrap_or("?"),
        e.event["detail-type"].as_str().unwrap_or("?"),
        e.replay
            .as_deref()
            .map(|r| format!(" (replay {r})"))
            .unwrap_or_default()
    );
    for d in &node.deliveries {
        let d_ = &d.delivery;
        let error = match (&d_.error_code, &d_.error_message) {
            (Some(c), Some(m)) => format!(" — {c}: {m}"),
            _ => String::new(),
        };
        println!(
            "{indent}  rule {} -> {}: {} after {} attempt(s){error}",
            d_.rule, d_.target, d_.status, d_.attempts
        );
        for child in &d.emitted {
            print_tree(child, &format!("{indent}    "));
        }
    }
    if node.cut {
        println!("{indent}  ... (cut here: a trace shows at most 1000 events)");
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// RFC 3339, or a duration ago.
fn time_arg(text: &str) -> anyhow::Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    let ago = muon_types::parse_duration(text).map_err(|_| {
        anyhow::anyhow!("{text:?} is neither an RFC 3339 time nor a duration ago (e.g. 1h)")
    })?;
    Ok(now_ms() - ago.as_millis() as i64)
}
