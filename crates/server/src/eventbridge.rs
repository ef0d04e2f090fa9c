//! EventBridge's rule and bus operations on its own protocol (awsJson1.1: `POST /` with
//! `X-Amz-Target: AWSEvents.<Operation>`), so that the AWS SDKs and CLI manage muon's rules as
//! they manage EventBridge's: PutRule, PutTargets, RemoveTargets, DeleteRule, DescribeRule,
//! ListRules, ListTargetsByRule, ListRuleNamesByTarget, EnableRule, DisableRule,
//! ListEventBuses and DescribeEventBus. (PutEvents and TestEventPattern are in `events.rs`,
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

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use muon_api::eventbridge as wire;
use muon_bus::{Bus, Edit, Origin, RuleInfo};
use muon_manifest::rule::MAX_TARGETS;
use muon_manifest::{Input, Rule, Target, TargetKind};
use muon_types::{BusName, RuleName};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::State;

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
];

/// The most targets one PutTargets request adds, and entries one list answer holds (AWS's).
const MAX_TARGETS_PER_REQUEST: usize = 10;
const MAX_IDS_PER_REQUEST: usize = 100;
const MAX_PAGE: usize = 100;

/// What the SDKs call a managed rule's manager, for rules that live in the manifest.
const MANAGED_BY: &str = "muon.toml";

/// A failed operation: its HTTP status, AWS error name and message.
struct Failure {
    status: StatusCode,
    code: &'static str,
    message: String,
}

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
    let content_type = [(http::header::CONTENT_TYPE, "application/x-amz-json-1.1")];
    match answer {
        Ok(v) => (content_type, v.to_string()).into_response(),
        Err(f) => (
            f.status,
            content_type,
            json!({ "__type": f.code, "message": f.message }).to_string(),
        )
            .into_response(),
    }
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
            .map_err(|_| invalid(format!("NextToken {t:?} is not one muon issued")))?,
    };
    let limit = limit.map_or(MAX_PAGE, |l| l.clamp(1, MAX_PAGE as i64) as usize);
    let start = start.min(len);
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
        other => Err(failure(
            "UnknownOperationException",
            format!(
                "operation {other} is not served by muon yet (it serves PutEvents, TestEventPattern, {})",
                OPERATIONS.join(", ")
            ),
        )),
    }
}
