//! Event rules: which events of a bus go to which targets, and how.
//!
//! One model for both places rules come from: `[[rule]]` tables in `muon.toml` and the control
//! API's JSON (named like EventBridge's PutRule + PutTargets). Both are validated into the same
//! [`Rule`], with every problem reported.

use std::collections::BTreeMap;
use std::time::Duration;

use muon_types::{BusName, FunctionName, RuleName};
use serde::Deserialize;
use serde_json::{Value, json};

/// At most this many targets per rule (EventBridge's limit).
pub const MAX_TARGETS: usize = 5;
/// `InputTransformer` limits.
pub const MAX_INPUT_PATHS: usize = 100;
pub const MAX_INPUT_TEMPLATE: usize = 8192;
/// Retry policy bounds and defaults (EventBridge's).
pub const MAX_RETRY_ATTEMPTS: u32 = 185;
pub const DEFAULT_MAX_EVENT_AGE: Duration = Duration::from_secs(86_400);
pub const MIN_MAX_EVENT_AGE: Duration = Duration::from_secs(60);
/// Longest pattern accepted from the manifest and from the API.
pub const MAX_PATTERN_CHARS_API: usize = 4096;

/// A validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: RuleName,
    pub bus: BusName,
    pub description: Option<String>,
    /// The event pattern's JSON text, already validated.
    pub pattern: String,
    pub enabled: bool,
    pub targets: Vec<Target>,
}

/// Where matching events go.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Unique within the rule.
    pub id: String,
    pub kind: TargetKind,
    pub input: Input,
    pub retry: RetryPolicy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKind {
    /// Invoked as an HTTP POST with CloudEvents binary-mode headers.
    Function(FunctionName),
    /// The event is put on another bus.
    Bus(BusName),
    /// POSTed to an HTTP endpoint.
    Http(String),
    /// Starts an execution of a workflow (once workflows exist).
    Workflow(String),
}

impl TargetKind {
    /// How the target is written in messages and listings: `function:NAME`, `bus:NAME`, ...
    pub fn describe(&self) -> String {
        match self {
            TargetKind::Function(f) => format!("function:{f}"),
            TargetKind::Bus(b) => format!("bus:{b}"),
            TargetKind::Http(u) => u.clone(),
            TargetKind::Workflow(w) => format!("workflow:{w}"),
        }
    }

    /// The ARN AWS would give this target in `region` and `account`: a Lambda function's,
    /// an event bus's, a state machine's. An HTTP endpoint has no ARN of its own (AWS reaches
    /// one through an API destination, which muon does not have): it is its URL, which a
    /// target's `Arn` also accepts, so what is listed can be put back as it is.
    pub fn arn(&self, region: &str, account: &str) -> String {
        match self {
            TargetKind::Function(f) => format!("arn:aws:lambda:{region}:{account}:function:{f}"),
            TargetKind::Bus(b) => format!("arn:aws:events:{region}:{account}:event-bus/{b}"),
            TargetKind::Http(u) => u.clone(),
            TargetKind::Workflow(w) => {
                format!("arn:aws:states:{region}:{account}:stateMachine:{w}")
            }
        }
    }
}

/// What a target receives.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The whole event.
    Event,
    /// A constant JSON text (`Input`).
    Constant(String),
    /// The part of the event a JSONPath selects (`InputPath`).
    Path(JsonPath),
    /// `InputTransformer`: values picked by paths, substituted into a template.
    Transformer {
        paths: BTreeMap<String, JsonPath>,
        template: String,
    },
}

/// A path into the event: `$`, `$.detail`, `$.detail.items[0]`, `$['detail-type']`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    pub text: String,
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

impl JsonPath {
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let bad = |why: &str| format!("{text:?} is not a valid JSONPath: {why}");
        let mut rest = text
            .strip_prefix('$')
            .ok_or_else(|| bad("it must start with `$`"))?;
        let mut segments = Vec::new();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('.') {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                let key = &r[..end];
                if key.is_empty() || key == "*" {
                    return Err(bad("expected a field name after `.`"));
                }
                segments.push(Segment::Key(key.to_string()));
                rest = &r[end..];
            } else if let Some(r) = rest.strip_prefix("['") {
                let end = r.find("']").ok_or_else(|| bad("unclosed `['`"))?;
                segments.push(Segment::Key(r[..end].to_string()));
                rest = &r[end + 2..];
            } else if let Some(r) = rest.strip_prefix('[') {
                let end = r.find(']').ok_or_else(|| bad("unclosed `[`"))?;
                let index = r[..end]
                    .parse()
                    .map_err(|_| bad("an index must be a non-negative number"))?;
                segments.push(Segment::Index(index));
                rest = &r[end + 1..];
            } else {
                return Err(bad("expected `.`, `[` or the end"));
            }
        }
        Ok(JsonPath {
            text: text.to_string(),
            segments,
        })
    }

    /// The value this path selects in `value`, if any.
    pub fn select<'v>(&self, mut value: &'v Value) -> Option<&'v Value> {
        for segment in &self.segments {
            value = match segment {
                Segment::Key(k) => value.get(k)?,
                Segment::Index(i) => value.get(i)?,
            };
        }
        Some(value)
    }
}

/// How long and how often a failing delivery is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0-185).
    pub max_attempts: u32,
    /// How old an event may get before it is given up (60 s - 24 h).
    pub max_age: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: MAX_RETRY_ATTEMPTS,
            max_age: DEFAULT_MAX_EVENT_AGE,
        }
    }
}

/// The parts of a target both sources spell, before validation.
#[derive(Default)]
struct TargetParts {
    id: Option<String>,
    function: Option<String>,
    bus: Option<String>,
    url: Option<String>,
    workflow: Option<String>,
    arn: Option<String>,
    input: Option<String>,
    input_path: Option<String>,
    transformer: Option<(BTreeMap<String, String>, Option<String>)>,
    max_attempts: Option<i64>,
    max_age_secs: Option<i64>,
}

/// Validate a rule's parts; `problem(key, why)` hears every problem, keys relative to the rule.
#[allow(clippy::too_many_arguments)]
fn validate(
    name: Option<&str>,
    bus: Option<&str>,
    description: Option<String>,
    pattern: Option<String>,
    pattern_limit: usize,
    enabled: bool,
    targets: Vec<TargetParts>,
    keys: &Keys,
    problem: &mut dyn FnMut(String, String),
) -> Option<Rule> {
    let name = match name.map(RuleName::new) {
        Some(Ok(n)) => Some(n),
        Some(Err(e)) => {
            problem(keys.name.into(), e.to_string());
            None
        }
        None => {
            problem(keys.name.into(), "missing".into());
            None
        }
    };
    let bus = match bus.map(BusName::new) {
        None => Some(BusName::default_bus()),
        Some(Ok(b)) => Some(b),
        Some(Err(e)) => {
            problem(keys.bus.into(), e.to_string());
            None
        }
    };
    let pattern = match pattern {
        None => {
            problem(
                keys.pattern.into(),
                "missing: which events does this rule match?".into(),
            );
            None
        }
        Some(p) if p.chars().count() > pattern_limit => {
            problem(
                keys.pattern.into(),
                format!("the pattern is longer than {pattern_limit} characters"),
            );
            None
        }
        Some(p) => match muon_pattern::Pattern::parse(&p) {
            Ok(_) => Some(p),
            Err(e) => {
                problem(keys.pattern.into(), e.to_string());
                None
            }
        },
    };
    if targets.len() > MAX_TARGETS {
        problem(
            keys.targets.into(),
            format!(
                "{} targets: a rule has at most {MAX_TARGETS}",
                targets.len()
            ),
        );
    }
    let mut valid = Vec::new();
    for (i, t) in targets.into_iter().enumerate() {
        let mut p = |field: &str, why: String| problem(keys.target(i, field), why);
        if let Some(t) = validate_target(t, i, &mut p) {
            if valid.iter().any(|v: &Target| v.id == t.id) {
                p(
                    keys.id,
                    format!("target id {:?} is used twice in this rule", t.id),
                );
            }
            valid.push(t);
        }
    }
    Some(Rule {
        name: name?,
        bus: bus?,
        description,
        pattern: pattern?,
        enabled,
        targets: valid,
    })
}

fn validate_target(
    t: TargetParts,
    index: usize,
    problem: &mut dyn FnMut(&str, String),
) -> Option<Target> {
    let mut kinds = Vec::new();
    let named = t.function.is_some()
        || t.bus.is_some()
        || t.url.is_some()
        || t.workflow.is_some()
        || t.arn.is_some();
    if let Some(f) = t.function {
        match FunctionName::new(f) {
            Ok(f) => kinds.push(TargetKind::Function(f)),
            Err(e) => problem("function", e.to_string()),
        }
    }
    if let Some(b) = t.bus {
        match BusName::new(b) {
            Ok(b) => kinds.push(TargetKind::Bus(b)),
            Err(e) => problem("bus", e.to_string()),
        }
    }
    if let Some(u) = t.url {
        match http_url(u) {
            Ok(k) => kinds.push(k),
            Err(why) => problem("url", why),
        }
    }
    if let Some(w) = t.workflow {
        if w.is_empty() || w.len() > 80 {
            problem("workflow", "a workflow name has 1-80 characters".into());
        } else {
            kinds.push(TargetKind::Workflow(w));
        }
    }
    if let Some(arn) = t.arn {
        match parse_arn(&arn) {
            Ok(k) => kinds.push(k),
            Err(why) => problem("arn", why),
        }
    }
    let kind = match kinds.len() {
        1 => kinds.pop()?,
        0 => {
            if !named {
                problem(
                    "",
                    "name what the target is: a function, a bus, a url or a workflow".into(),
                );
            }
            return None;
        }
        _ => {
            problem(
                "",
                "a target is exactly one of function, bus, url, workflow".into(),
            );
            return None;
        }
    };
    let id = match t.id {
        Some(id) if (1..=64).contains(&id.len()) => id,
        Some(id) => {
            problem("id", format!("{id:?} is invalid: use 1-64 characters"));
            return None;
        }
        None => match &kind {
            TargetKind::Function(f) => f.to_string(),
            TargetKind::Bus(b) => format!("bus-{b}"),
            TargetKind::Workflow(w) => format!("workflow-{w}"),
            TargetKind::Http(_) => format!("http-{index}"),
        },
    };
    let given = [
        t.input.is_some(),
        t.input_path.is_some(),
        t.transformer.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        problem(
            "",
            "use only one of input, input_path and input_transformer".into(),
        );
    }
    let input = if let Some(constant) = t.input {
        match serde_json::from_str::<Value>(&constant) {
            Ok(_) => Input::Constant(constant),
            Err(e) => {
                problem("input", format!("not valid JSON: {e}"));
                Input::Event
            }
        }
    } else if let Some(path) = t.input_path {
        match JsonPath::parse(&path) {
            Ok(p) => Input::Path(p),
            Err(why) => {
                problem("input_path", why);
                Input::Event
            }
        }
    } else if let Some((map, template)) = t.transformer {
        if map.len() > MAX_INPUT_PATHS {
            problem(
                "input_transformer",
                format!("{} input paths: at most {MAX_INPUT_PATHS}", map.len()),
            );
        }
        let mut paths = BTreeMap::new();
        for (var, path) in map {
            if var.starts_with("aws.events.") {
                problem(
                    "input_transformer",
                    format!("{var:?} is reserved: choose another variable name"),
                );
            }
            match JsonPath::parse(&path) {
                Ok(p) => {
                    paths.insert(var, p);
                }
                Err(why) => problem("input_transformer", why),
            }
        }
        match template {
            None => {
                problem("input_transformer", "missing its template".into());
                Input::Event
            }
            Some(t) if t.chars().count() > MAX_INPUT_TEMPLATE => {
                problem(
                    "input_transformer",
                    format!("the template is longer than {MAX_INPUT_TEMPLATE} characters"),
                );
                Input::Event
            }
            Some(template) => Input::Transformer { paths, template },
        }
    } else {
        Input::Event
    };
    let mut retry = RetryPolicy::default();
    match t.max_attempts {
        None => {}
        Some(n) if (0..=MAX_RETRY_ATTEMPTS as i64).contains(&n) => retry.max_attempts = n as u32,
        Some(n) => problem(
            "retry",
            format!("maximum retry attempts {n} is out of range: use 0 to {MAX_RETRY_ATTEMPTS}"),
        ),
    }
    match t.max_age_secs {
        None => {}
        Some(s)
            if (MIN_MAX_EVENT_AGE.as_secs() as i64..=DEFAULT_MAX_EVENT_AGE.as_secs() as i64)
                .contains(&s) =>
        {
            retry.max_age = Duration::from_secs(s as u64)
        }
        Some(s) => problem(
            "retry",
            format!("maximum event age {s}s is out of range: use 60 to 86400 seconds"),
        ),
    }
    Some(Target {
        id,
        kind,
        input,
        retry,
    })
}

/// An HTTP endpoint target: an `http://` or `https://` URL with a host.
fn http_url(u: String) -> Result<TargetKind, String> {
    let host = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
        .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or(""));
    // Bracketed IPv6 hosts must be closed and hold an address; a name must be a valid host.
    let valid = host.is_some_and(|h| match h.strip_prefix('[') {
        Some(v6) => v6.split_once(']').is_some_and(|(addr, port)| {
            addr.parse::<std::net::Ipv6Addr>().is_ok()
                && (port.is_empty()
                    || port
                        .strip_prefix(':')
                        .is_some_and(|p| p.parse::<u16>().is_ok()))
        }),
        None => {
            let (name, port) = match h.rsplit_once(':') {
                Some((n, p)) => (n, Some(p)),
                None => (h, None),
            };
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b))
                && port.is_none_or(|p| p.parse::<u16>().is_ok())
        }
    });
    if valid {
        Ok(TargetKind::Http(u))
    } else {
        Err(format!("{u:?} is not an http:// or https:// URL"))
    }
}

/// Lambda, EventBridge and Step Functions ARNs, muon's own `muon:function:NAME` forms, and
/// HTTP endpoints as their URL (what [`TargetKind::arn`] gives them).
fn parse_arn(arn: &str) -> Result<TargetKind, String> {
    if arn.starts_with("http://") || arn.starts_with("https://") {
        return http_url(arn.to_string());
    }
    let bad = || {
        format!(
            "{arn:?} is not a target muon knows: use a Lambda function, event bus or state machine ARN, muon:function:NAME, or an http(s):// URL"
        )
    };
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["muon", "function", name] => FunctionName::new(*name)
            .map(TargetKind::Function)
            .map_err(|e| e.to_string()),
        ["muon", "bus", name] => BusName::new(*name)
            .map(TargetKind::Bus)
            .map_err(|e| e.to_string()),
        ["muon", "workflow", name] => Ok(TargetKind::Workflow(name.to_string())),
        ["arn", _, "lambda", _, _, "function", name, ..] => FunctionName::new(*name)
            .map(TargetKind::Function)
            .map_err(|e| e.to_string()),
        ["arn", _, "events", _, _, resource] => resource
            .strip_prefix("event-bus/")
            .ok_or_else(bad)
            .and_then(|b| BusName::new(b).map_err(|e| e.to_string()))
            .map(TargetKind::Bus),
        ["arn", _, "states", _, _, "stateMachine", name] => {
            Ok(TargetKind::Workflow(name.to_string()))
        }
        _ => Err(bad()),
    }
}

/// How the keys of a rule's fields are named in messages (TOML and API spell them apart).
pub(crate) struct Keys {
    prefix: String,
    name: &'static str,
    bus: &'static str,
    pattern: &'static str,
    targets: &'static str,
    id: &'static str,
}

impl Keys {
    fn target(&self, i: usize, field: &str) -> String {
        let base = format!("{}{}[{i}]", self.prefix, self.targets);
        if field.is_empty() {
            base
        } else {
            format!("{base}.{field}")
        }
    }
}

// ---- muon.toml ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    name: Option<String>,
    bus: Option<String>,
    description: Option<String>,
    pattern: Option<toml::Value>,
    enabled: Option<bool>,
    #[serde(default)]
    targets: Vec<RawTarget>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawTarget {
    Function(String),
    Table(Box<RawTargetTable>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTargetTable {
    id: Option<String>,
    function: Option<String>,
    bus: Option<String>,
    url: Option<String>,
    workflow: Option<String>,
    arn: Option<String>,
    input: Option<toml::Value>,
    input_path: Option<String>,
    input_transformer: Option<RawTransformer>,
    retry: Option<RawRetry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransformer {
    #[serde(default)]
    input_paths: BTreeMap<String, String>,
    template: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    max_attempts: Option<i64>,
    max_age: Option<String>,
}

/// A TOML value as JSON text (a string is taken as JSON text already).
pub(crate) fn toml_to_json(value: toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s),
        other => serde_json::to_string(&other).map_err(|e| e.to_string()),
    }
}

impl RawRule {
    pub(crate) fn validate(
        self,
        index: usize,
        problem: &mut dyn FnMut(String, String),
    ) -> Option<Rule> {
        let keys = Keys {
            prefix: format!("rule[{index}]."),
            name: "name",
            bus: "bus",
            pattern: "pattern",
            targets: "targets",
            id: "id",
        };
        let mut scoped = |key: String, why: String| {
            let key = if key.starts_with("rule[") {
                key
            } else {
                format!("rule[{index}].{key}")
            };
            problem(key, why)
        };
        let pattern = match self.pattern.map(toml_to_json) {
            None => None,
            Some(Ok(p)) => Some(p),
            Some(Err(why)) => {
                scoped("pattern".into(), why);
                return None;
            }
        };
        let mut targets = Vec::new();
        for (i, t) in self.targets.into_iter().enumerate() {
            match t {
                RawTarget::Function(f) => targets.push(TargetParts {
                    function: Some(f),
                    ..Default::default()
                }),
                RawTarget::Table(t) => {
                    let t = *t;
                    let max_age_secs = match t.retry.as_ref().and_then(|r| r.max_age.as_deref()) {
                        None => None,
                        Some(text) => match muon_types::parse_duration(text) {
                            Ok(d) => Some(d.as_secs() as i64),
                            Err(e) => {
                                scoped(keys.target(i, "retry.max_age"), e.to_string());
                                None
                            }
                        },
                    };
                    let input = match t.input.map(toml_to_json) {
                        None => None,
                        Some(Ok(j)) => Some(j),
                        Some(Err(why)) => {
                            scoped(keys.target(i, "input"), why);
                            None
                        }
                    };
                    targets.push(TargetParts {
                        id: t.id,
                        function: t.function,
                        bus: t.bus,
                        url: t.url,
                        workflow: t.workflow,
                        arn: t.arn,
                        input,
                        input_path: t.input_path,
                        transformer: t.input_transformer.map(|x| (x.input_paths, x.template)),
                        max_attempts: t.retry.as_ref().and_then(|r| r.max_attempts),
                        max_age_secs,
                    });
                }
            }
        }
        validate(
            self.name.as_deref(),
            self.bus.as_deref(),
            self.description,
            pattern,
            muon_pattern::MAX_PATTERN_CHARS,
            self.enabled.unwrap_or(true),
            targets,
            &keys,
            &mut scoped,
        )
    }
}

// ---- schedules ----

/// The source and detail-type of the events schedules put on their bus.
pub const SCHEDULE_SOURCE: &str = "muon.scheduler";
pub const SCHEDULE_DETAIL_TYPE: &str = "Scheduled Event";

/// A validated schedule: when it fires, an event goes on its bus, and its rule (named like the
/// schedule, matching only this schedule's events) delivers it to the targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub expression: String,
    pub timezone: Option<String>,
    /// The rule that carries the schedule's targets.
    pub rule: Rule,
}

impl Schedule {
    /// The resource the schedule's events name (their `resources[0]`).
    pub fn resource(&self) -> String {
        format!("muon:schedule:{}", self.rule.name)
    }

    /// The pattern of the schedule's rule: exactly its own events.
    pub fn pattern(name: &RuleName) -> String {
        json!({
            "source": [SCHEDULE_SOURCE],
            "detail-type": [SCHEDULE_DETAIL_TYPE],
            "resources": [format!("muon:schedule:{name}")],
        })
        .to_string()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSchedule {
    name: Option<String>,
    expression: Option<String>,
    timezone: Option<String>,
    bus: Option<String>,
    description: Option<String>,
    enabled: Option<bool>,
    #[serde(default)]
    targets: Vec<RawTarget>,
}

impl RawSchedule {
    pub(crate) fn validate(
        self,
        index: usize,
        problem: &mut dyn FnMut(String, String),
    ) -> Option<Schedule> {
        let key = |field: &str| format!("schedule[{index}].{field}");
        let expression = match self.expression {
            None => {
                problem(
                    key("expression"),
                    "missing: e.g. \"rate(5 minutes)\", \"cron(0 9 ? * MON-FRI *)\" or \"at(2030-01-01T00:00:00)\"".into(),
                );
                None
            }
            Some(e) => match muon_schedule::Schedule::parse(&e, self.timezone.as_deref()) {
                Ok(_) => Some(e),
                Err(why) => {
                    problem(key("expression"), why.to_string());
                    None
                }
            },
        };
        let name = self.name.clone();
        let pattern = name
            .as_deref()
            .and_then(|n| RuleName::new(n).ok())
            .map(|n| toml::Value::String(Schedule::pattern(&n)));
        let raw = RawRule {
            name: self.name,
            bus: self.bus,
            description: self.description,
            pattern,
            enabled: self.enabled,
            targets: self.targets,
        };
        let mut renamed = |k: String, why: String| {
            problem(
                k.replacen(&format!("rule[{index}]"), &format!("schedule[{index}]"), 1),
                why,
            )
        };
        let rule = raw.validate(index, &mut renamed)?;
        // A bad expression was reported (so the app is refused); the rest is still checked.
        Some(Schedule {
            expression: expression.unwrap_or_default(),
            timezone: self.timezone,
            rule,
        })
    }
}

// ---- the control API (EventBridge's names) ----

/// A problem with a rule sent to the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("; "))]
pub struct RuleError {
    /// `InvalidEventPatternException` when only the pattern is wrong, else `ValidationException`.
    pub code: &'static str,
    pub problems: Vec<String>,
}

/// The problems found in an API body (a rule's or an archive's), and the AWS error they are
/// reported as: `InvalidEventPatternException` when only the pattern is wrong, else
/// `ValidationException`.
#[derive(Default)]
pub(crate) struct ApiProblems {
    pub(crate) list: Vec<String>,
    /// Some problem is not about the pattern.
    other: bool,
}

impl ApiProblems {
    /// A problem with the field `key` (the pattern's reason stands alone, as AWS words it).
    pub(crate) fn field(&mut self, key: &str, why: String) {
        if key == "EventPattern" {
            self.list.push(why);
        } else {
            self.other(format!("{key}: {why}"));
        }
    }

    /// A problem that is not about the pattern.
    pub(crate) fn other(&mut self, why: String) {
        self.other = true;
        self.list.push(why);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(crate) fn code(&self) -> &'static str {
        if self.other || self.list.is_empty() {
            "ValidationException"
        } else {
            "InvalidEventPatternException"
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct ApiRule {
    name: Option<String>,
    event_bus_name: Option<String>,
    description: Option<String>,
    event_pattern: Option<Value>,
    state: Option<String>,
    #[serde(default)]
    targets: Vec<ApiTarget>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct ApiTarget {
    id: Option<String>,
    arn: Option<String>,
    function: Option<String>,
    bus: Option<String>,
    url: Option<String>,
    workflow: Option<String>,
    input: Option<Value>,
    input_path: Option<String>,
    input_transformer: Option<ApiTransformer>,
    retry_policy: Option<ApiRetry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct ApiTransformer {
    #[serde(default)]
    input_paths_map: BTreeMap<String, String>,
    input_template: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct ApiRetry {
    maximum_retry_attempts: Option<i64>,
    maximum_event_age_in_seconds: Option<i64>,
}

impl ApiTarget {
    fn parts(self) -> TargetParts {
        TargetParts {
            id: self.id,
            function: self.function,
            bus: self.bus,
            url: self.url,
            workflow: self.workflow,
            arn: self.arn,
            input: self.input.map(json_text),
            input_path: self.input_path,
            transformer: self
                .input_transformer
                .map(|x| (x.input_paths_map, x.input_template)),
            max_attempts: self
                .retry_policy
                .as_ref()
                .and_then(|r| r.maximum_retry_attempts),
            max_age_secs: self
                .retry_policy
                .as_ref()
                .and_then(|r| r.maximum_event_age_in_seconds),
        }
    }
}

/// A JSON value as JSON text (a string is taken as JSON text already, as AWS's API sends it).
fn json_text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

impl Rule {
    /// A rule from the control API's JSON: `{"Name", "EventBusName", "EventPattern", "State",
    /// "Description", "Targets": [{"Id", "Function"|"Bus"|"Url"|"Workflow"|"Arn", "Input",
    /// "InputPath", "InputTransformer", "RetryPolicy"}]}`.
    pub fn from_api_json(text: &str) -> Result<Rule, RuleError> {
        let invalid = |problems| RuleError {
            code: "ValidationException",
            problems,
        };
        let raw: ApiRule = serde_json::from_str(text)
            .map_err(|e| invalid(vec![format!("malformed rule: {e}")]))?;
        let enabled = match raw.state.as_deref() {
            None | Some("ENABLED") => true,
            Some("DISABLED") => false,
            Some(other) => {
                return Err(invalid(vec![format!(
                    "State {other:?} is invalid: use ENABLED or DISABLED"
                )]));
            }
        };
        let targets = raw.targets.into_iter().map(ApiTarget::parts).collect();
        let keys = Keys {
            prefix: String::new(),
            name: "Name",
            bus: "EventBusName",
            pattern: "EventPattern",
            targets: "Targets",
            id: "Id",
        };
        let mut problems = ApiProblems::default();
        let rule = validate(
            raw.name.as_deref(),
            raw.event_bus_name.as_deref(),
            raw.description,
            raw.event_pattern.map(json_text),
            MAX_PATTERN_CHARS_API,
            enabled,
            targets,
            &keys,
            &mut |key, why| problems.field(&key, why),
        );
        match rule {
            Some(rule) if problems.is_empty() => Ok(rule),
            _ => Err(RuleError {
                code: problems.code(),
                problems: problems.list,
            }),
        }
    }

    /// The rule in the API's JSON form (what [`Rule::from_api_json`] reads back).
    pub fn to_api_json(&self) -> Value {
        let targets: Vec<Value> = self.targets.iter().map(Target::to_api_json).collect();
        let mut v = json!({
            "Name": self.name,
            "EventBusName": self.bus,
            "EventPattern": self.pattern,
            "State": if self.enabled { "ENABLED" } else { "DISABLED" },
            "Targets": targets,
        });
        if let Some(d) = &self.description {
            v["Description"] = json!(d);
        }
        v
    }
}

impl Target {
    /// One target in the control API's JSON form (an element of [`Rule::from_api_json`]'s
    /// `Targets`), validated alone: EventBridge's PutTargets adds targets one by one.
    pub fn from_api_json(value: Value) -> Result<Target, RuleError> {
        let invalid = |problems| RuleError {
            code: "ValidationException",
            problems,
        };
        let raw: ApiTarget = serde_json::from_value(value)
            .map_err(|e| invalid(vec![format!("malformed target: {e}")]))?;
        let mut problems = Vec::new();
        let target = validate_target(raw.parts(), 0, &mut |field, why| {
            problems.push(if field.is_empty() {
                why
            } else {
                format!("{field}: {why}")
            })
        });
        match target {
            Some(t) if problems.is_empty() => Ok(t),
            _ => Err(invalid(problems)),
        }
    }

    /// The target in the API's JSON form (what [`Target::from_api_json`] reads back): `Id`,
    /// one of `Function`, `Bus`, `Url`, `Workflow`, then `Input`, `InputPath` or
    /// `InputTransformer`, and `RetryPolicy`.
    pub fn to_api_json(&self) -> Value {
        let mut v = json!({ "Id": self.id });
        let (key, value) = match &self.kind {
            TargetKind::Function(f) => ("Function", f.to_string()),
            TargetKind::Bus(b) => ("Bus", b.to_string()),
            TargetKind::Http(u) => ("Url", u.clone()),
            TargetKind::Workflow(w) => ("Workflow", w.clone()),
        };
        v[key] = json!(value);
        match &self.input {
            Input::Event => {}
            Input::Constant(c) => v["Input"] = json!(c),
            Input::Path(p) => v["InputPath"] = json!(p.text),
            Input::Transformer { paths, template } => {
                v["InputTransformer"] = json!({
                    "InputPathsMap": paths.iter().map(|(k, p)| (k.clone(), json!(p.text))).collect::<serde_json::Map<_, _>>(),
                    "InputTemplate": template,
                })
            }
        }
        v["RetryPolicy"] = json!({
            "MaximumRetryAttempts": self.retry.max_attempts,
            "MaximumEventAgeInSeconds": self.retry.max_age.as_secs(),
        });
        v
    }
}

#[cfg(test)]
mod tests {
    use super::http_url;

    #[test]
    fn http_targets_need_a_whole_url() {
        for good in [
            "http://127.0.0.1:9000/hook",
            "https://api.example.com",
            "http://[::1]:8080/x",
            "http://[2001:db8::1]/",
            "https://svc:443/a?b=c",
        ] {
            assert!(http_url(good.into()).is_ok(), "{good}");
        }
        for bad in [
            "http://[::1",
            "http://[::1]x/",
            "http://[nope]/",
            "http://",
            "http://host:/",
            "http://host:99999/",
            "http://us er@host/",
            "http://a@b/",
            "ftp://host/",
            "http:// host/",
        ] {
            assert!(http_url(bad.into()).is_err(), "{bad}");
        }
    }
}
