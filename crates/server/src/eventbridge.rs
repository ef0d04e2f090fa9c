//! EventBridge's rule and bus operations on its own protocol (awsJson1.1: `POST /` with
//! `X-Amz-Target: AWSEvents.<Operation>`), so that the AWS SDKs and CLI manage muon's rules as
//! they manage EventBridge's: PutRule, PutTargets, RemoveTargets, DeleteRule, DescribeRule,
//! ListRules, ListTargetsByRule, ListRuleNamesByTarget, EnableRule, DisableRule,
//! ListEventBuses and DescribeEventBus; archives and replays: CreateArchive, DescribeArchive,
//! ListArchives, UpdateArchive, DeleteArchive, StartReplay, DescribeReplay and ListReplays
//! (a replay runs to its end before StartReplay answers, and is remembered in memory). (PutEvents and TestEventPattern are in `events.rs`,
//! which dispatches the other `AWSEvents.*` operations here.)
//!
//! Requests and answers have AWS's shapes (`muon_api::eventbridge`), errors AWS's names in
//! `{"__type", "message"}` with status 400 (500 for muon's own failures). Rules are read and
//! changed through `muon_bus::Bus`; read-modify-writes (adding a target, enabling) go through
//! `Bus::edit_rule`, so concurrent ones never lose each other's changes. Rules from muon.toml
//! (and `[[schedule]]`s) are listed with `ManagedBy: "muon.toml"` and cannot be changed here
//! (`ManagedRuleException`).
//!
//! ARNs use the bus's region and account: rules `arn:aws:events:R:A:rule/NAME` (on another bus
//! than `default`, `rule/BUS/NAME`), buses `arn:aws:events:R:A:event-bus/NAME`; targets as
//! `TargetKind::arn` gives them (an HTTP endpoint's is its URL, which PutTargets takes back).

use axum::response::Response;
use http::StatusCode;
use muon_api::eventbridge as wire;
use muon_bus::{Bus, Edit, Origin, RuleInfo};
use muon_manifest::rule::MAX_TARGETS;
use muon_manifest::{Input, Rule, Target, TargetKind};
use muon_types::{BusName, RuleName};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::{Failure, State, aws_response};

/// The operations served here.
pub(crate) const OPERATIONS: &[&str] = &[
    "PutRule",
    "PutTargets",
    "RemoveTargets",
    "DeleteRule",
    "DescribeRule",
    "ListRules",
    "ListTargetsByRule",
    "ListRuleNamesByTarget",
    "EnableRule",
    "DisableRule",
    "ListEventBuses",
    "DescribeEventBus",
    "CreateArchive",
    "DescribeArchive",
    "ListArchives",
    "UpdateArchive",
    "DeleteArchive",
    "StartReplay",
    "DescribeReplay",
    "ListReplays",
];

/// The most targets one PutTargets request adds, and entries one list answer holds (AWS's).
const MAX_TARGETS_PER_REQUEST: usize = 10;
const MAX_IDS_PER_REQUEST: usize = 100;
const MAX_PAGE: usize = 100;

/// What the SDKs call a managed rule's manager, for rules that live in the manifest.
const MANAGED_BY: &str = "muon.toml";

/// A failure AWS reports with 400.
fn failure(code: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        status: StatusCode::BAD_REQUEST,
        code,
        message: message.into(),
    }
}

fn invalid(message: impl Into<String>) -> Failure {
    failure("ValidationException", message)
}

impl From<muon_bus::Error> for Failure {
    fn from(e: muon_bus::Error) -> Failure {
        let status = match &e {
            muon_bus::Error::Store(_) | muon_bus::Error::BadStoredRule(..) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            _ => StatusCode::BAD_REQUEST,
        };
        Failure {
            status,
            code: e.aws_code(),
            message: e.to_string(),
        }
    }
}

/// EventBridge's protocol for one operation of this module (or `UnknownOperationException`).
pub(crate) async fn aws(state: &State, op: &str, body: &[u8]) -> Response {
    let answer = match state.bus() {
        Some(bus) => operation(state, bus, op, body).await,
        None => Err(Failure {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "ServiceUnavailable",
            message: "this server runs without an event bus".into(),
        }),
    };
    aws_response("application/x-amz-json-1.1", answer)
}

/// The request body as `T` (an empty body is `{}`).
fn request<T: DeserializeOwned>(body: &[u8]) -> Result<T, Failure> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| invalid(format!("malformed request: {e}")))
}

fn answer<T: serde::Serialize>(value: T) -> Result<Value, Failure> {
    Ok(serde_json::to_value(value).expect("wire types serialize"))
}

/// A bus named by its name or ARN (`default` when absent); it must exist.
fn bus_name(bus: &Bus, given: Option<&str>) -> Result<BusName, Failure> {
    let name = match given {
        None => return Ok(BusName::default_bus()),
        Some(arn) if arn.starts_with("arn:") => arn
            .split_once(":event-bus/")
            .map(|(_, name)| name)
            .ok_or_else(|| invalid(format!("{arn:?} is not an event bus ARN")))?,
        Some(name) => name,
    };
    let name = BusName::new(name).map_err(|e| invalid(e.to_string()))?;
    if !bus.buses().contains(&name) {
        return Err(muon_bus::Error::NoSuchBus(name).into());
    }
    Ok(name)
}

fn rule_name(name: &str) -> Result<RuleName, Failure> {
    RuleName::new(name).map_err(|e| invalid(e.to_string()))
}

fn rule_arn(bus: &Bus, bus_name: &BusName, name: &RuleName) -> String {
    let config = bus.config();
    let path = if *bus_name == BusName::default_bus() {
        name.to_string()
    } else {
        format!("{bus_name}/{name}")
    };
    format!(
        "arn:aws:events:{}:{}:rule/{path}",
        config.region, config.account
    )
}

fn bus_arn(bus: &Bus, name: &BusName) -> String {
    TargetKind::Bus(name.clone()).arn(&bus.config().region, &bus.config().account)
}

/// One page of `len` items: the range to answer and the token of the next page. Tokens are
/// offsets, so a page may shift when rules are added or deleted between calls.
fn page(
    len: usize,
    next_token: Option<&str>,
    limit: Option<i64>,
) -> Result<(std::ops::Range<usize>, Option<String>), Failure> {
    let start = match next_token {
        None => 0,
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|&n| t.len() <= 2048 && n <= len)
            .ok_or_else(|| invalid(format!("NextToken {t:?} is not one muon issued")))?,
    };
    let limit = match limit {
        None => MAX_PAGE,
        Some(l) if (1..=MAX_PAGE as i64).contains(&l) => l as usize,
        Some(l) => {
            return Err(invalid(format!(
                "1 validation error detected: Value '{l}' at 'limit' failed to satisfy constraint: Member must have value between 1 and {MAX_PAGE}"
            )));
        }
    };
    let end = (start + limit).min(len);
    Ok((start..end, (end < len).then(|| end.to_string())))
}

/// A rule as DescribeRule gives it; ListRules leaves out `CreatedBy`.
fn describe(bus: &Bus, info: &RuleInfo, created_by: bool) -> wire::DescribedRule {
    let rule = &info.rule;
    let schedule = (info.origin == Origin::Schedule)
        .then(|| {
            bus.config()
                .schedules
                .iter()
                .find(|s| s.rule.name == rule.name && s.rule.bus == rule.bus)
        })
        .flatten();
    wire::DescribedRule {
        name: rule.name.to_string(),
        arn: rule_arn(bus, &rule.bus, &rule.name),
        // A schedule's rule matches its own events by a pattern of muon's making: AWS shows a
        // scheduled rule's expression and no pattern.
        event_pattern: schedule.is_none().then(|| rule.pattern.clone()),
        schedule_expression: schedule.map(|s| s.expression.clone()),
        state: if rule.enabled { "ENABLED" } else { "DISABLED" }.into(),
        description: rule.description.clone(),
        managed_by: (info.origin != Origin::Api).then(|| MANAGED_BY.into()),
        event_bus_name: rule.bus.to_string(),
        created_by: created_by.then(|| bus.config().account.clone()),
    }
}

/// A target in AWS's shape.
fn target_out(bus: &Bus, t: &Target) -> wire::Target {
    let config = bus.config();
    let mut out = wire::Target {
        id: t.id.clone(),
        arn: t.kind.arn(&config.region, &config.account),
        retry_policy: Some(wire::RetryPolicy {
            maximum_retry_attempts: Some(t.retry.max_attempts.into()),
            maximum_event_age_in_seconds: Some(t.retry.max_age.as_secs() as i64),
        }),
        ..Default::default()
    };
    match &t.input {
        Input::Event => {}
        Input::Constant(c) => out.input = Some(c.clone()),
        Input::Path(p) => out.input_path = Some(p.text.clone()),
        Input::Transformer { paths, template } => {
            out.input_transformer = Some(wire::InputTransformer {
                input_paths_map: Some(
                    paths
                        .iter()
                        .map(|(k, p)| (k.clone(), p.text.clone()))
                        .collect(),
                ),
                input_template: template.clone(),
            })
        }
    }
    out
}

/// A target from PutTargets, validated, with what it names found; or why it failed.
/// `RoleArn` and `DeadLetterConfig` are accepted and ignored: muon needs no role, and its dead
/// letters go to its own queue (`muon events dlq`).
fn target_in(state: &State, bus: &Bus, t: wire::Target) -> Result<Target, wire::FailedTarget> {
    let fail = |code: &str, message: String| wire::FailedTarget {
        target_id: t.id.clone(),
        error_code: code.into(),
        error_message: message,
    };
    if !t.other.is_empty() {
        let keys: Vec<&str> = t.other.keys().map(String::as_str).collect();
        return Err(fail(
            "ValidationException",
            format!(
                "{} not supported: muon's targets are functions, event buses, state machines and HTTP endpoints",
                keys.join(", ")
            ),
        ));
    }
    let mut v = json!({ "Id": t.id, "Arn": t.arn });
    if let Some(input) = &t.input {
        v["Input"] = json!(input);
    }
    if let Some(path) = &t.input_path {
        v["InputPath"] = json!(path);
    }
    if let Some(x) = &t.input_transformer {
        v["InputTransformer"] = json!({
            "InputPathsMap": x.input_paths_map.clone().unwrap_or_default(),
            "InputTemplate": x.input_template,
        });
    }
    if let Some(r) = &t.retry_policy {
        v["RetryPolicy"] = json!({
            "MaximumRetryAttempts": r.maximum_retry_attempts,
            "MaximumEventAgeInSeconds": r.maximum_event_age_in_seconds,
        });
    }
    let target = Target::from_api_json(v).map_err(|e| fail(e.code, e.to_string()))?;
    let missing = match &target.kind {
        TargetKind::Function(f) if state.invoker().function(f.as_str()).is_none() => {
            Some(format!("no function named `{f}` in this app"))
        }
        TargetKind::Workflow(w) if state.flows().and_then(|f| f.machine(w).ok()).is_none() => Some(
            format!("no state machine named `{w}` (declare a [[workflow]] or create it first)"),
        ),
        TargetKind::Bus(b) if !bus.buses().contains(b) => {
            Some(format!("Event bus {b} does not exist."))
        }
        _ => None,
    };
    match missing {
        Some(why) => Err(fail("ResourceNotFoundException", why)),
        None => Ok(target),
    }
}

/// Runs one operation.
async fn operation(state: &State, bus: &Bus, op: &str, body: &[u8]) -> Result<Value, Failure> {
    match op {
        "PutRule" => {
            let r: wire::PutRule = request(body)?;
            if r.schedule_expression.is_some() {
                return Err(invalid(
                    "ScheduleExpression is not taken through the API: schedules are declared in muon.toml as [[schedule]] (see docs/manifest.md#schedule)",
                ));
            }
            let Some(pattern) = r.event_pattern else {
                return Err(invalid(
                    "Parameter(s) EventPattern or ScheduleExpression must be specified.",
                ));
            };
            let bus_name = bus_name(bus, r.event_bus_name.as_deref())?;
            let name = rule_name(&r.name)?;
            // As AWS does, the rule is replaced by what the request says (an absent
            // description is no description); only its targets are kept.
            let mut json =
                json!({ "Name": name, "EventBusName": bus_name, "EventPattern": pattern });
            if let Some(s) = r.state {
                json["State"] = json!(s);
            }
            if let Some(d) = r.description {
                json["Description"] = json!(d);
            }
            let rule = Rule::from_api_json(&json.to_string())
                .map_err(|e| failure(e.code, e.to_string()))?;
            bus.edit_rule(&bus_name, &name, |old| {
                let targets = old.map(|o| o.targets.clone()).unwrap_or_default();
                (Edit::Put(Rule { targets, ..rule }), ())
            })
            .await?;
            answer(wire::PutRuleResult {
                rule_arn: rule_arn(bus, &bus_name, &name),
            })
        }
        "PutTargets" => {
            let r: wire::PutTargets = request(body)?;
            let bus_name = bus_name(bus, r.event_bus_name.as_deref())?;
            let name = rule_name(&r.rule)?;
            if r.targets.is_empty() || r.targets.len() > MAX_TARGETS_PER_REQUEST {
                return Err(invalid(format!(
                    "Targets holds 1 to {MAX_TARGETS_PER_REQUEST} targets, not {}",
                    r.targets.len()
                )));
            }
            let checked: Vec<_> = r
                .targets
                .into_iter()
                .map(|t| target_in(state, bus, t))
                .collect();
            let failed = bus
                .edit_rule(&bus_name, &name, |rule| {
                    let Some(rule) = rule else {
                        let e = muon_bus::Error::NoSuchRule(name.clone(), bus_name.clone());
                        return (Edit::Keep, Err(Failure::from(e)));
                    };
                    let mut rule = rule.clone();
                    let mut failed = Vec::new();
                    for t in checked {
                        match t {
                            Err(f) => failed.push(f),
                            Ok(t) => {
                                if let Some(same) = rule.targets.iter_mut().find(|x| x.id == t.id) {
                                    *same = t;
                                } else if rule.targets.len() < MAX_TARGETS {
                                    rule.targets.push(t);
                                } else {
                                    failed.push(wire::FailedTarget {
                                        target_id: t.id,
                                        error_code: "LimitExceededException".into(),
                                        error_message: format!(
                                            "The requested resource exceeds the maximum number allowed: rule {name} has {MAX_TARGETS} targets already"
                                        ),
                                    });
                                }
                            }
                        }
                    }
                    (Edit::Put(rule), Ok(failed))
                })
                .await??;
            answer(wire::TargetsResult {
                failed_entry_count: failed.len(),
                failed_entries: failed,
            })
        }
        "RemoveTargets" => {
            let r: wire::RemoveTargets = request(body)?;
            let bus_name = bus_name(bus, r.event_bus_name.as_deref())?;
            let name = rule_name(&r.rule)?;
            if r.ids.is_empty() || r.ids.len() > MAX_IDS_PER_REQUEST {
                return Err(invalid(format!(
                    "Ids holds 1 to {MAX_IDS_PER_REQUEST} IDs, not {}",
                    r.ids.len()
                )));
            }
            // Removing an ID the rule does not have is no failure: the target is not there.
            bus.edit_rule(&bus_name, &name, |rule| match rule {
                None => {
                    let e = muon_bus::Error::NoSuchRule(name.clone(), bus_name.clone());
                    (Edit::Keep, Err(Failure::from(e)))
                }
                Some(rule) => {
                    let mut rule = rule.clone();
                    rule.targets.retain(|t| !r.ids.contains(&t.id));
                    (Edit::Put(rule), Ok(()))
                }
            })
            .await??;
            answer(wire::TargetsResult::default())
        }
        "DeleteRule" => {
            let r: wire::RuleRef = request(body)?;
            let bus_name = bus_name(bus, r.event_bus_name.as_deref())?;
            let name = rule_name(&r.name)?;
            let force = r.force.unwrap_or(false);
            // Deleting a rule that is not there succeeds, as in AWS.
            bus.edit_rule(&bus_name, &name, |rule| match rule {
                Some(rule) if !rule.targets.is_empty() && !force => (
                    Edit::Keep,
                    Err(invalid(
                        "Rule can't be deleted since it has targets: remove them first (RemoveTargets), or pass Force=true",
                    )),
                ),
                Some(_) => (Edit::Delete, Ok(())),
                None => (Edit::Keep, Ok(())),
            })
            .await??;
            Ok(json!({}))
        }
        "EnableRule" | "DisableRule" => {
            let r: wire::RuleRef = request(body)?;
            let bus_name = bus_name(bus, r.event_bus_name.as_deref())?;
            let name = rule_name(&r.name)?;
            bus.edit_rule(&bus_name, &name, |rule| match rule {
                None => {
                    let e = muon_bus::Error::NoSuchRule(name.clone(), bus_name.clone());
                    (Edit::Keep, Err(Failure::from(e)))
                }
                Some(rule) => (
                    Edit::Put(Rule {
                        enabled: op == "EnableRule",
                        ..rule.clone()
                    }),
                    Ok(()),
                ),
            })
            .await??;
            Ok(json!({}))
        }
        "DescribeRule" => {
            let r: wire::RuleRef = request(body)?;
            let bus_name = bus_name(bus, r.event_bus_name.as_deref())?;
            let info = bus.rule(&bus_name, &rule_name(&r.name)?)?;
            answer(describe(bus, &info, true))
        }
        "ListRules" => {
            let r: wire::ListRules = request(body)?;
            let bus_name = bus_name(bus, r.event_bus_name.as_deref())?;
            let prefix = r.name_prefix.unwrap_or_default();
            let rules: Vec<RuleInfo> = bus
                .rules()
                .into_iter()
                .filter(|i| i.rule.bus == bus_name && i.rule.name.as_str().starts_with(&prefix))
                .collect();
            let (range, next_token) = page(rules.len(), r.next_token.as_deref(), r.limit)?;
            answer(wire::ListRulesResult {
                rules: rules[range]
                    .iter()
                    .map(|i| describe(bus, i, false))
                    .collect(),
                next_token,
            })
        }
        "ListTargetsByRule" => {
            let r: wire::ListTargetsByRule = request(body)?;
            let bus_name = bus_name(bus, r.event_bus_name.as_deref())?;
            let info = bus.rule(&bus_name, &rule_name(&r.rule)?)?;
            let targets = &info.rule.targets;
            let (range, next_token) = page(targets.len(), r.next_token.as_deref(), r.limit)?;
            answer(wire::ListTargetsByRuleResult {
                targets: targets[range].iter().map(|t| target_out(bus, t)).collect(),
                next_token,
            })
        }
        "ListRuleNamesByTarget" => {
            let r: Value = request(body)?;
            let Some(arn) = r["TargetArn"].as_str() else {
                return Err(invalid("the request needs a string field \"TargetArn\""));
            };
            let kind = Target::from_api_json(json!({ "Id": "target", "Arn": arn }))
                .map_err(|e| invalid(e.to_string()))?
                .kind;
            let bus_name = bus_name(bus, r["EventBusName"].as_str())?;
            let names: Vec<String> = bus
                .rules()
                .into_iter()
                .filter(|i| i.rule.bus == bus_name && i.rule.targets.iter().any(|t| t.kind == kind))
                .map(|i| i.rule.name.to_string())
                .collect();
            let (range, next_token) =
                page(names.len(), r["NextToken"].as_str(), r["Limit"].as_i64())?;
            let mut v = json!({ "RuleNames": names[range] });
            if let Some(t) = next_token {
                v["NextToken"] = json!(t);
            }
            Ok(v)
        }
        "ListEventBuses" => {
            let r: wire::ListEventBuses = request(body)?;
            let prefix = r.name_prefix.unwrap_or_default();
            let buses: Vec<&BusName> = bus
                .buses()
                .iter()
                .filter(|b| b.as_str().starts_with(&prefix))
                .collect();
            let (range, next_token) = page(buses.len(), r.next_token.as_deref(), r.limit)?;
            answer(wire::ListEventBusesResult {
                event_buses: buses[range]
                    .iter()
                    .map(|b| wire::EventBus {
                        name: b.to_string(),
                        arn: bus_arn(bus, b),
                    })
                    .collect(),
                next_token,
            })
        }
        "DescribeEventBus" => {
            let r: wire::DescribeEventBus = request(body)?;
            let name = bus_name(bus, r.name.as_deref())?;
            answer(wire::EventBus {
                arn: bus_arn(bus, &name),
                name: name.to_string(),
            })
        }
        "CreateArchive" | "DescribeArchive" | "ListArchives" | "UpdateArchive"
        | "DeleteArchive" | "StartReplay" | "DescribeReplay" | "ListReplays" => {
            archive_operation(bus, op, body).await
        }
        other => Err(failure(
            "UnknownOperationException",
            format!(
                "operation {other} is not served by muon yet (it serves PutEvents, TestEventPattern, {})",
                OPERATIONS.join(", ")
            ),
        )),
    }
}

// ---- archives and replays ----

/// Epoch seconds, as the AWS protocol sends timestamps.
fn seconds(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

/// A timestamp as SDKs send it (epoch seconds or RFC 3339) in epoch ms.
fn time_ms(field: &str, v: Option<Value>) -> Result<i64, Failure> {
    let v = v.ok_or_else(|| invalid(format!("{field} is required")))?;
    let text = crate::events::time_text(v).map_err(|why| invalid(format!("{field}: {why}")))?;
    chrono::DateTime::parse_from_rfc3339(&text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| invalid(format!("{field} {text:?} is not a timestamp")))
}

fn archive_name(name: &str) -> Result<muon_types::ArchiveName, Failure> {
    muon_types::ArchiveName::new(name).map_err(|e| invalid(e.to_string()))
}

/// An archive named by its ARN (`arn:aws:events:R:A:archive/NAME`) or its name.
fn archive_of_arn(arn: &str) -> Result<muon_types::ArchiveName, Failure> {
    if arn.starts_with("arn:") {
        let name = arn
            .split_once(":archive/")
            .map(|(_, n)| n)
            .ok_or_else(|| invalid(format!("{arn:?} is not an archive ARN")))?;
        archive_name(name)
    } else {
        archive_name(arn)
    }
}

fn archive_arn(bus: &Bus, name: &muon_types::ArchiveName) -> String {
    format!(
        "arn:aws:events:{}:{}:archive/{name}",
        bus.config().region,
        bus.config().account
    )
}

fn replay_arn(bus: &Bus, name: &str) -> String {
    format!(
        "arn:aws:events:{}:{}:replay/{name}",
        bus.config().region,
        bus.config().account
    )
}

/// An archive as DescribeArchive gives it (ListArchives leaves out the pattern, ARN and
/// description, as AWS does).
async fn describe_archive(
    bus: &Bus,
    info: &muon_bus::ArchiveInfo,
    full: bool,
) -> Result<Value, Failure> {
    let a = &info.archive;
    let (count, size) = bus.archive_stats(&a.name).await?;
    let mut v = json!({
        "ArchiveName": a.name,
        "EventSourceArn": bus_arn(bus, &a.bus),
        "State": "ENABLED",
        "RetentionDays": a.retention_days(),
        "EventCount": count,
        "SizeBytes": size,
        "CreationTime": seconds(info.created_ms),
    });
    if full {
        v["ArchiveArn"] = json!(archive_arn(bus, &a.name));
        if let Some(p) = &a.pattern {
            v["EventPattern"] = json!(p);
        }
        if let Some(d) = &a.description {
            v["Description"] = json!(d);
        }
    }
    if info.origin != Origin::Api {
        v["StateReason"] = json!("defined in muon.toml: change it there");
    }
    Ok(v)
}

/// A replay as DescribeReplay gives it (ListReplays leaves out its ARN and destination).
fn describe_replay(bus: &Bus, r: &muon_bus::ReplayInfo, full: bool) -> Value {
    let source = match &r.source {
        muon_bus::ReplaySource::Archive(a) => archive_arn(bus, a),
        muon_bus::ReplaySource::Bus(b) => bus_arn(bus, b),
    };
    let mut v = json!({
        "ReplayName": r.name,
        "EventSourceArn": source,
        "State": r.state.as_str(),
        "EventStartTime": seconds(r.from_ms),
        "EventEndTime": seconds(r.to_ms),
        "ReplayStartTime": seconds(r.started_ms),
        "ReplayEndTime": seconds(r.ended_ms),
    });
    if let Some(reason) = &r.reason {
        v["StateReason"] = json!(reason);
    }
    if let Some(last) = r.last_replayed_ms {
        v["EventLastReplayedTime"] = seconds(last);
    }
    if full {
        v["ReplayArn"] = json!(replay_arn(bus, &r.name));
        let mut destination = json!({ "Arn": bus_arn(bus, &r.bus) });
        if let Some(rules) = &r.rules {
            destination["FilterArns"] = json!(
                rules
                    .iter()
                    .map(|n| rule_arn(bus, &r.bus, n))
                    .collect::<Vec<_>>()
            );
        }
        v["Destination"] = destination;
    }
    v
}

/// The string field `key` of a request, if given.
fn text<'v>(r: &'v Value, key: &str) -> Result<Option<&'v str>, Failure> {
    match r.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("{key} must be a string"))),
    }
}

fn required<'v>(r: &'v Value, key: &str) -> Result<&'v str, Failure> {
    text(r, key)?.ok_or_else(|| invalid(format!("{key} is required")))
}

/// CreateArchive, DescribeArchive, ListArchives, UpdateArchive, DeleteArchive, StartReplay,
/// DescribeReplay and ListReplays. Replays run to their end before StartReplay answers.
async fn archive_operation(bus: &Bus, op: &str, body: &[u8]) -> Result<Value, Failure> {
    let r: Value = request(body)?;
    if !r.is_object() {
        return Err(invalid("the request must be a JSON object"));
    }
    let from_json = |v: &Value| {
        muon_manifest::Archive::from_api_json(&v.to_string())
            .map_err(|e| failure(e.code, e.to_string()))
    };
    match op {
        "CreateArchive" => {
            let archive = from_json(&r)?;
            let info = bus.put_archive(archive, muon_bus::Write::Create).await?;
            Ok(json!({
                "ArchiveArn": archive_arn(bus, &info.archive.name),
                "State": "ENABLED",
                "CreationTime": seconds(info.created_ms),
            }))
        }
        "UpdateArchive" => {
            let name = archive_name(required(&r, "ArchiveName")?)?;
            let current = bus.archive(&name)?;
            // What the request leaves out stays as it was.
            let mut merged = current.archive.to_api_json();
            for key in ["EventPattern", "RetentionDays", "Description"] {
                if let Some(v) = r.get(key).filter(|v| !v.is_null()) {
                    merged[key] = v.clone();
                }
            }
            let info = bus
                .put_archive(from_json(&merged)?, muon_bus::Write::Update)
                .await?;
            Ok(json!({
                "ArchiveArn": archive_arn(bus, &info.archive.name),
                "State": "ENABLED",
                "CreationTime": seconds(info.created_ms),
            }))
        }
        "DeleteArchive" => {
            let name = archive_name(required(&r, "ArchiveName")?)?;
            bus.delete_archive(&name).await?;
            Ok(json!({}))
        }
        "DescribeArchive" => {
            let name = archive_name(required(&r, "ArchiveName")?)?;
            describe_archive(bus, &bus.archive(&name)?, true).await
        }
        "ListArchives" => {
            let prefix = text(&r, "NamePrefix")?.unwrap_or_default();
            let source = text(&r, "EventSourceArn")?
                .map(|arn| bus_name(bus, Some(arn)))
                .transpose()?;
            if let Some(state) = text(&r, "State")?
                && state != "ENABLED"
            {
                return Ok(json!({ "Archives": [] }));
            }
            let chosen: Vec<_> = bus
                .archives()
                .into_iter()
                .filter(|a| a.archive.name.as_str().starts_with(prefix))
                .filter(|a| source.as_ref().is_none_or(|b| *b == a.archive.bus))
                .collect();
            let limit = r.get("Limit").and_then(Value::as_i64);
            let (range, next_token) = page(chosen.len(), text(&r, "NextToken")?, limit)?;
            let mut archives = Vec::new();
            for info in &chosen[range] {
                archives.push(describe_archive(bus, info, false).await?);
            }
            let mut v = json!({ "Archives": archives });
            if let Some(t) = next_token {
                v["NextToken"] = json!(t);
            }
            Ok(v)
        }
        "StartReplay" => {
            let name = required(&r, "ReplayName")?;
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                return Err(invalid(format!(
                    "ReplayName {name:?} is invalid: use 1-64 characters from a-z, A-Z, 0-9, '.', '-' and '_'"
                )));
            }
            let archive = archive_of_arn(required(&r, "EventSourceArn")?)?;
            let from_ms = time_ms("EventStartTime", r.get("EventStartTime").cloned())?;
            let to_ms = time_ms("EventEndTime", r.get("EventEndTime").cloned())?;
            if from_ms >= to_ms {
                return Err(invalid("EventStartTime must be before EventEndTime"));
            }
            let info = bus.archive(&archive)?;
            let destination = r
                .get("Destination")
                .ok_or_else(|| invalid("Destination is required"))?;
            let to_bus = bus_name(bus, Some(required(destination, "Arn")?))?;
            if to_bus != info.archive.bus {
                return Err(invalid(format!(
                    "Destination {to_bus} is not the archive's event bus {}: a replay goes back to the bus it was archived from",
                    info.archive.bus
                )));
            }
            let rules = match destination.get("FilterArns") {
                None | Some(Value::Null) => None,
                Some(Value::Array(arns)) => {
                    let mut names = Vec::new();
                    for arn in arns {
                        let arn = arn
                            .as_str()
                            .ok_or_else(|| invalid("FilterArns holds rule ARNs"))?;
                        let name = arn.rsplit('/').next().unwrap_or(arn);
                        let name = rule_name(name)?;
                        bus.rule(&to_bus, &name)?;
                        names.push(name);
                    }
                    Some(names)
                }
                Some(_) => return Err(invalid("FilterArns must be a list of rule ARNs")),
            };
            let replay = bus
                .replay_archive(name, &archive, from_ms, to_ms, rules)
                .await;
            let replay = match replay {
                Ok(r) => r,
                Err(e @ muon_bus::Error::ReplayExists(_)) => return Err(e.into()),
                Err(_) => bus.replay_info(name)?,
            };
            let mut v = json!({
                "ReplayArn": replay_arn(bus, name),
                "State": replay.state.as_str(),
                "ReplayStartTime": seconds(replay.started_ms),
            });
            if let Some(reason) = &replay.reason {
                v["StateReason"] = json!(reason);
            }
            Ok(v)
        }
        "DescribeReplay" => {
            let name = required(&r, "ReplayName")?;
            Ok(describe_replay(bus, &bus.replay_info(name)?, true))
        }
        "ListReplays" => {
            let prefix = text(&r, "NamePrefix")?.unwrap_or_default();
            let state = text(&r, "State")?;
            let source = text(&r, "EventSourceArn")?
                .map(archive_of_arn)
                .transpose()?;
            let chosen: Vec<_> = bus
                .replays()
                .into_iter()
                .filter(|x| x.name.starts_with(prefix))
                .filter(|x| state.is_none_or(|s| s == x.state.as_str()))
                .filter(|x| {
                    source
                        .as_ref()
                        .is_none_or(|a| x.source == muon_bus::ReplaySource::Archive(a.clone()))
                })
                .collect();
            let limit = r.get("Limit").and_then(Value::as_i64);
            let (range, next_token) = page(chosen.len(), text(&r, "NextToken")?, limit)?;
            let mut v = json!({
                "Replays": chosen[range]
                    .iter()
                    .map(|x| describe_replay(bus, x, false))
                    .collect::<Vec<_>>()
            });
            if let Some(t) = next_token {
                v["NextToken"] = json!(t);
            }
            Ok(v)
        }
        other => unreachable!("{other} is not an archive operation"),
    }
}
