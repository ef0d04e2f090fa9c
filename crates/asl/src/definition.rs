//! Parsing and validating a state machine definition. Validation reports
//! every problem at once, each with the JSON-pointer-like path of the field,
//! and resolves state names to indices so that a dangling `Next` cannot exist
//! at run time.

use crate::Diagnostic;
use crate::choice::Condition;
use crate::path::Path;
use crate::template::{Expr, Template};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Index of a state within its [`Machine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StateId(pub usize);

/// Index of a [`Machine`] (the top level, a Parallel branch or a Map
/// processor) within its [`Definition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MachineId(pub usize);

/// A validated state machine definition.
#[derive(Debug, Clone)]
pub struct Definition {
    source: Value,
    machines: Vec<Machine>,
    /// `TimeoutSeconds` of the whole execution.
    pub timeout_seconds: Option<u64>,
}

/// A list of states with a start: the top level, a branch or a processor.
#[derive(Debug, Clone)]
pub struct Machine {
    pub start: StateId,
    pub states: Vec<State>,
}

/// Where a state goes when it is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Next(StateId),
    End,
}

/// `InputPath`, `OutputPath`, `ResultPath` and `ItemsPath`: a path, or
/// `null` (which discards).
pub type IoPath = Option<Path>;

/// One state.
#[derive(Debug, Clone)]
pub struct State {
    pub name: String,
    pub kind: Kind,
    pub input_path: IoPath,
    pub output_path: IoPath,
    pub assign: Option<Template>,
}

/// A retrier.
#[derive(Debug, Clone, PartialEq)]
pub struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: f64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<f64>,
    pub jitter_full: bool,
}

/// A catcher.
#[derive(Debug, Clone, PartialEq)]
pub struct Catcher {
    pub error_equals: Vec<String>,
    pub next: StateId,
    pub result_path: IoPath,
    pub assign: Option<Template>,
}

/// What the states that do work share: the result pipeline and error handling.
#[derive(Debug, Clone, Default)]
pub struct Work {
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    pub result_path: Option<IoPath>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
}

impl Work {
    /// `ResultPath`, `$` when absent.
    pub fn result_path(&self) -> IoPath {
        match &self.result_path {
            Some(p) => p.clone(),
            None => Some(Path::parse("$").expect("'$' is a path")),
        }
    }
}

/// A number given literally or through a path.
#[derive(Debug, Clone, PartialEq)]
pub enum Count {
    Literal(f64),
    Path(Path),
}

/// How a Wait state waits.
#[derive(Debug, Clone, PartialEq)]
pub enum WaitFor {
    Seconds(u64),
    SecondsPath(Path),
    Timestamp(String),
    TimestampPath(Path),
}

/// A choice rule with where it leads.
#[derive(Debug, Clone)]
pub struct ChoiceRule {
    pub condition: Condition,
    pub next: StateId,
    pub assign: Option<Template>,
}

/// Text given literally or computed (`Error`/`ErrorPath`).
#[derive(Debug, Clone, PartialEq)]
pub enum Text {
    Literal(String),
    Expr(Expr),
}

/// What a state does, by type.
#[derive(Debug, Clone)]
pub enum Kind {
    Pass {
        result: Option<Value>,
        parameters: Option<Template>,
        result_path: IoPath,
        next: Transition,
    },
    Task {
        resource: String,
        work: Work,
        timeout: Option<Count>,
        heartbeat: Option<Count>,
        next: Transition,
    },
    Choice {
        choices: Vec<ChoiceRule>,
        default: Option<StateId>,
    },
    Wait {
        wait: WaitFor,
        next: Transition,
    },
    Succeed,
    Fail {
        error: Option<Text>,
        cause: Option<Text>,
    },
    Parallel {
        branches: Vec<MachineId>,
        work: Work,
        next: Transition,
    },
    Map(Box<MapState>),
}

/// A Map state's settings.
#[derive(Debug, Clone)]
pub struct MapState {
    pub processor: MachineId,
    pub distributed: bool,
    pub items_path: IoPath,
    pub item_selector: Option<Template>,
    pub max_concurrency: Option<Count>,
    pub tolerated_failure_count: Option<Count>,
    pub tolerated_failure_percentage: Option<Count>,
    pub work: Work,
    pub next: Transition,
}

impl Kind {
    /// The type name as the definition spells it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Pass { .. } => "Pass",
            Kind::Task { .. } => "Task",
            Kind::Choice { .. } => "Choice",
            Kind::Wait { .. } => "Wait",
            Kind::Succeed => "Succeed",
            Kind::Fail { .. } => "Fail",
            Kind::Parallel { .. } => "Parallel",
            Kind::Map(_) => "Map",
        }
    }
}

impl Definition {
    /// Parses and validates a definition given as JSON text.
    pub fn parse(text: &str) -> Result<Definition, crate::Error> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            crate::Error::Invalid(vec![Diagnostic::new(
                "",
                format!("the definition is not valid JSON: {e}"),
            )])
        })?;
        Definition::from_value(value)
    }

    /// Validates a definition given as a JSON value.
    pub fn from_value(value: Value) -> Result<Definition, crate::Error> {
        let mut v = Validator {
            diags: Vec::new(),
            machines: Vec::new(),
        };
        let mut timeout_seconds = None;
        match value.as_object() {
            Some(obj) => {
                check_fields(
                    obj,
                    &[
                        "StartAt",
                        "States",
                        "Comment",
                        "Version",
                        "TimeoutSeconds",
                        "QueryLanguage",
                    ],
                    "",
                    &mut v.diags,
                );
                check_query_language(obj, "", &mut v.diags);
                if let Some(t) = obj.get("TimeoutSeconds") {
                    match t.as_u64() {
                        Some(n) if n > 0 => timeout_seconds = Some(n),
                        _ => v.diags.push(Diagnostic::new(
                            "/TimeoutSeconds",
                            "must be a positive integer",
                        )),
                    }
                }
                if let Some(ver) = obj.get("Version")
                    && ver.as_str() != Some("1.0")
                {
                    v.diags
                        .push(Diagnostic::new("/Version", "the only version is \"1.0\""));
                }
                v.machine(obj, "");
            }
            None => v
                .diags
                .push(Diagnostic::new("", "the definition must be a JSON object")),
        }
        if v.diags.is_empty() {
            Ok(Definition {
                source: value,
                machines: v.machines.into_iter().map(|m| m.expect("built")).collect(),
                timeout_seconds,
            })
        } else {
            Err(crate::Error::Invalid(v.diags))
        }
    }

    /// The definition as it was given.
    pub fn source(&self) -> &Value {
        &self.source
    }

    /// The top-level machine.
    pub fn root(&self) -> MachineId {
        MachineId(0)
    }

    /// A machine by id.
    pub fn machine(&self, id: MachineId) -> &Machine {
        &self.machines[id.0]
    }

    /// A state by machine and id.
    pub fn state(&self, machine: MachineId, state: StateId) -> &State {
        &self.machines[machine.0].states[state.0]
    }
}

struct Validator {
    diags: Vec<Diagnostic>,
    machines: Vec<Option<Machine>>,
}

const COMMON: &[&str] = &["Type", "Comment", "QueryLanguage"];

fn check_fields(obj: &Map<String, Value>, allowed: &[&str], at: &str, diags: &mut Vec<Diagnostic>) {
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) && !COMMON.contains(&k.as_str()) {
            diags.push(Diagnostic::new(
                &format!("{at}/{k}"),
                format!("field '{k}' is not supported here"),
            ));
        }
    }
}

fn check_query_language(obj: &Map<String, Value>, at: &str, diags: &mut Vec<Diagnostic>) {
    match obj.get("QueryLanguage") {
        None => {}
        Some(Value::String(s)) if s == "JSONPath" => {}
        Some(Value::String(s)) if s == "JSONata" => diags.push(Diagnostic::new(
            &format!("{at}/QueryLanguage"),
            "JSONata is not supported yet",
        )),
        Some(_) => diags.push(Diagnostic::new(
            &format!("{at}/QueryLanguage"),
            "must be \"JSONPath\" or \"JSONata\"",
        )),
    }
}

impl Validator {
    fn err(&mut self, at: &str, msg: impl Into<String>) {
        self.diags.push(Diagnostic::new(at, msg));
    }

    /// Validates a `{StartAt, States}` object; returns its id.
    fn machine(&mut self, obj: &Map<String, Value>, at: &str) -> MachineId {
        let id = MachineId(self.machines.len());
        self.machines.push(None);
        let Some(states) = obj.get("States").and_then(Value::as_object) else {
            self.err(&format!("{at}/States"), "must be an object of states");
            self.machines[id.0] = Some(Machine {
                start: StateId(0),
                states: Vec::new(),
            });
            return id;
        };
        if states.is_empty() {
            self.err(&format!("{at}/States"), "must have at least one state");
        }
        let names: HashMap<&str, StateId> = states
            .keys()
            .enumerate()
            .map(|(i, k)| (k.as_str(), StateId(i)))
            .collect();
        let start = match obj.get("StartAt") {
            Some(Value::String(s)) => match names.get(s.as_str()) {
                Some(id) => *id,
                None => {
                    self.err(
                        &format!("{at}/StartAt"),
                        format!("'{s}' is not the name of a state"),
                    );
                    StateId(0)
                }
            },
            _ => {
                self.err(&format!("{at}/StartAt"), "is required and must be a string");
                StateId(0)
            }
        };
        let mut built = Vec::with_capacity(states.len());
        for (name, body) in states {
            let here = format!("{at}/States/{name}");
            if name.is_empty() || name.chars().count() > 80 {
                self.err(&here, "a state name must be 1 to 80 characters long");
            }
            built.push(self.state(name, body, &here, &names));
        }
        self.machines[id.0] = Some(Machine {
            start,
            states: built,
        });
        id
    }

    fn target(&mut self, v: Option<&Value>, at: &str, names: &HashMap<&str, StateId>) -> StateId {
        match v {
            Some(Value::String(s)) => match names.get(s.as_str()) {
                Some(id) => *id,
                None => {
                    self.err(at, format!("'{s}' is not the name of a state"));
                    StateId(0)
                }
            },
            _ => {
                self.err(at, "must be the name of a state");
                StateId(0)
            }
        }
    }

    fn transition(
        &mut self,
        obj: &Map<String, Value>,
        at: &str,
        names: &HashMap<&str, StateId>,
    ) -> Transition {
        match (obj.get("Next"), obj.get("End")) {
            (Some(_), Some(_)) => {
                self.err(at, "a state cannot have both 'Next' and 'End'");
                Transition::End
            }
            (Some(n), None) => Transition::Next(self.target(Some(n), &format!("{at}/Next"), names)),
            (None, Some(Value::Bool(true))) => Transition::End,
            (None, Some(_)) => {
                self.err(&format!("{at}/End"), "must be true");
                Transition::End
            }
            (None, None) => {
                self.err(at, "the state needs 'Next' or 'End': true");
                Transition::End
            }
        }
    }

    fn io_path(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        at: &str,
        reference: bool,
    ) -> Option<IoPath> {
        match obj.get(key)? {
            Value::Null => Some(None),
            Value::String(s) => match Path::parse(s) {
                Ok(p) if reference && !p.is_reference() => {
                    self.err(
                        &format!("{at}/{key}"),
                        format!("'{s}' must be a reference path (only '.name' and '[n]')"),
                    );
                    Some(None)
                }
                Ok(p) => Some(Some(p)),
                Err(why) => {
                    self.err(&format!("{at}/{key}"), format!("invalid JSONPath: {why}"));
                    Some(None)
                }
            },
            _ => {
                self.err(&format!("{at}/{key}"), "must be a JSONPath string or null");
                Some(None)
            }
        }
    }

    fn path_field(&mut self, obj: &Map<String, Value>, key: &str, at: &str) -> Option<Path> {
        let v = obj.get(key)?;
        match v.as_str().map(Path::parse) {
            Some(Ok(p)) => Some(p),
            Some(Err(why)) => {
                self.err(&format!("{at}/{key}"), format!("invalid JSONPath: {why}"));
                None
            }
            None => {
                self.err(&format!("{at}/{key}"), "must be a JSONPath string");
                None
            }
        }
    }

    fn template(&mut self, obj: &Map<String, Value>, key: &str, at: &str) -> Option<Template> {
        obj.get(key)
            .map(|v| Template::parse(v, &format!("{at}/{key}"), &mut self.diags))
    }

    fn count(&mut self, obj: &Map<String, Value>, key: &str, at: &str, min: f64) -> Option<Count> {
        let path_key = format!("{key}Path");
        if obj.contains_key(key) && obj.contains_key(&path_key) {
            self.err(at, format!("'{key}' and '{path_key}' cannot both be set"));
        }
        if let Some(p) = self.path_field(obj, &path_key, at) {
            return Some(Count::Path(p));
        }
        let v = obj.get(key)?;
        match v.as_f64() {
            Some(n) if n >= min => Some(Count::Literal(n)),
            _ => {
                self.err(
                    &format!("{at}/{key}"),
                    format!("must be a number of at least {min}"),
                );
                None
            }
        }
    }

    fn error_list(&mut self, v: Option<&Value>, at: &str) -> Vec<String> {
        let Some(Value::Array(items)) = v else {
            self.err(at, "must be an array of error names");
            return Vec::new();
        };
        let names: Vec<String> = items
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match e.as_str() {
                Some(s) => Some(s.to_owned()),
                None => {
                    self.err(&format!("{at}/{i}"), "must be a string");
                    None
                }
            })
            .collect();
        if names.iter().any(|n| n == "States.ALL") && names.len() > 1 {
            self.err(at, "'States.ALL' must appear alone");
        }
        names
    }

    fn work(&mut self, obj: &Map<String, Value>, at: &str, names: &HashMap<&str, StateId>) -> Work {
        let mut work = Work {
            parameters: self.template(obj, "Parameters", at),
            result_selector: self.template(obj, "ResultSelector", at),
            result_path: self.io_path(obj, "ResultPath", at, true),
            ..Work::default()
        };
        if let Some(retry) = obj.get("Retry") {
            let Some(list) = retry.as_array() else {
                self.err(&format!("{at}/Retry"), "must be an array of retriers");
                return work;
            };
            for (i, r) in list.iter().enumerate() {
                let here = format!("{at}/Retry/{i}");
                let Some(r) = r.as_object() else {
                    self.err(&here, "must be an object");
                    continue;
                };
                check_fields(
                    r,
                    &[
                        "ErrorEquals",
                        "IntervalSeconds",
                        "MaxAttempts",
                        "BackoffRate",
                        "MaxDelaySeconds",
                        "JitterStrategy",
                    ],
                    &here,
                    &mut self.diags,
                );
                let error_equals =
                    self.error_list(r.get("ErrorEquals"), &format!("{here}/ErrorEquals"));
                if error_equals.iter().any(|e| e == "States.ALL") && i + 1 != list.len() {
                    self.err(
                        &format!("{here}/ErrorEquals"),
                        "a retrier with 'States.ALL' must be the last one",
                    );
                }
                let mut num = |key: &str, default: f64, min: f64, int: bool| -> f64 {
                    match r.get(key) {
                        None => default,
                        Some(v) => match v.as_f64() {
                            Some(n) if n >= min && (!int || n.fract() == 0.0) => n,
                            _ => {
                                self.diags.push(Diagnostic::new(
                                    &format!("{here}/{key}"),
                                    format!(
                                        "must be {} of at least {min}",
                                        if int { "an integer" } else { "a number" }
                                    ),
                                ));
                                default
                            }
                        },
                    }
                };
                let interval_seconds = num("IntervalSeconds", 1.0, 1.0, true);
                let max_attempts = num("MaxAttempts", 3.0, 0.0, true) as u32;
                let backoff_rate = num("BackoffRate", 2.0, 1.0, false);
                let max_delay_seconds = r
                    .contains_key("MaxDelaySeconds")
                    .then(|| num("MaxDelaySeconds", 0.0, 1.0, true));
                let jitter_full = match r.get("JitterStrategy") {
                    None => false,
                    Some(Value::String(s)) if s == "FULL" => true,
                    Some(Value::String(s)) if s == "NONE" => false,
                    Some(_) => {
                        self.err(
                            &format!("{here}/JitterStrategy"),
                            "must be \"FULL\" or \"NONE\"",
                        );
                        false
                    }
                };
                work.retry.push(Retrier {
                    error_equals,
                    interval_seconds,
                    max_attempts,
                    backoff_rate,
                    max_delay_seconds,
                    jitter_full,
                });
            }
        }
        if let Some(catch) = obj.get("Catch") {
            let Some(list) = catch.as_array() else {
                self.err(&format!("{at}/Catch"), "must be an array of catchers");
                return work;
            };
            for (i, c) in list.iter().enumerate() {
                let here = format!("{at}/Catch/{i}");
                let Some(c) = c.as_object() else {
                    self.err(&here, "must be an object");
                    continue;
                };
                check_fields(
                    c,
                    &["ErrorEquals", "Next", "ResultPath", "Assign"],
                    &here,
                    &mut self.diags,
                );
                let error_equals =
                    self.error_list(c.get("ErrorEquals"), &format!("{here}/ErrorEquals"));
                if error_equals.iter().any(|e| e == "States.ALL") && i + 1 != list.len() {
                    self.err(
                        &format!("{here}/ErrorEquals"),
                        "a catcher with 'States.ALL' must be the last one",
                    );
                }
                let next = self.target(c.get("Next"), &format!("{here}/Next"), names);
                let result_path = self
                    .io_path(c, "ResultPath", &here, true)
                    .unwrap_or_else(|| Some(Path::parse("$").expect("'$' is a path")));
                let assign = self.template(c, "Assign", &here);
                work.catch.push(Catcher {
                    error_equals,
                    next,
                    result_path,
                    assign,
                });
            }
        }
        work
    }

    fn text(&mut self, obj: &Map<String, Value>, key: &str, at: &str) -> Option<Text> {
        let path_key = format!("{key}Path");
        match (obj.get(key), obj.get(&path_key)) {
            (Some(_), Some(_)) => {
                self.err(at, format!("'{key}' and '{path_key}' cannot both be set"));
                None
            }
            (Some(Value::String(s)), None) => Some(Text::Literal(s.clone())),
            (Some(_), None) => {
                self.err(&format!("{at}/{key}"), "must be a string");
                None
            }
            (None, Some(Value::String(s))) => match Expr::parse(s) {
                Ok(e) => Some(Text::Expr(e)),
                Err(why) => {
                    self.err(&format!("{at}/{path_key}"), why);
                    None
                }
            },
            (None, Some(_)) => {
                self.err(&format!("{at}/{path_key}"), "must be a string");
                None
            }
            (None, None) => None,
        }
    }

    fn state(
        &mut self,
        name: &str,
        body: &Value,
        at: &str,
        names: &HashMap<&str, StateId>,
    ) -> State {
        let placeholder = State {
            name: name.to_owned(),
            kind: Kind::Succeed,
            input_path: None,
            output_path: None,
            assign: None,
        };
        let Some(obj) = body.as_object() else {
            self.err(at, "a state must be an object");
            return placeholder;
        };
        check_query_language(obj, at, &mut self.diags);
        let Some(ty) = obj.get("Type").and_then(Value::as_str) else {
            self.err(&format!("{at}/Type"), "is required and must be a string");
            return placeholder;
        };
        const IO: &[&str] = &["InputPath", "OutputPath", "Assign"];
        const FLOW: &[&str] = &["Next", "End"];
        const WORK: &[&str] = &[
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "Retry",
            "Catch",
        ];
        let allowed: Vec<&str> = match ty {
            "Pass" => [IO, FLOW, &["Result", "ResultPath", "Parameters"]].concat(),
            "Task" => [
                IO,
                FLOW,
                WORK,
                &[
                    "Resource",
                    "TimeoutSeconds",
                    "TimeoutSecondsPath",
                    "HeartbeatSeconds",
                    "HeartbeatSecondsPath",
                    "Credentials",
                ],
            ]
            .concat(),
            "Choice" => [IO, &["Choices", "Default"]].concat(),
            "Wait" => [
                IO,
                FLOW,
                &["Seconds", "SecondsPath", "Timestamp", "TimestampPath"],
            ]
            .concat(),
            "Succeed" => IO.to_vec(),
            "Fail" => vec!["Error", "ErrorPath", "Cause", "CausePath"],
            "Parallel" => [IO, FLOW, WORK, &["Branches"]].concat(),
            "Map" => [
                IO,
                FLOW,
                WORK,
                &[
                    "ItemProcessor",
                    "Iterator",
                    "ItemsPath",
                    "ItemSelector",
                    "MaxConcurrency",
                    "MaxConcurrencyPath",
                    "ToleratedFailureCount",
                    "ToleratedFailureCountPath",
                    "ToleratedFailurePercentage",
                    "ToleratedFailurePercentagePath",
                    "ItemReader",
                    "ItemBatcher",
                    "ResultWriter",
                    "Label",
                ],
            ]
            .concat(),
            other => {
                self.err(
                    &format!("{at}/Type"),
                    format!("'{other}' is not a state type"),
                );
                return placeholder;
            }
        };
        check_fields(obj, &allowed, at, &mut self.diags);
        let input_path = self
            .io_path(obj, "InputPath", at, false)
            .unwrap_or_else(|| Some(Path::parse("$").expect("'$' is a path")));
        let output_path = self
            .io_path(obj, "OutputPath", at, false)
            .unwrap_or_else(|| Some(Path::parse("$").expect("'$' is a path")));
        let assign = self.template(obj, "Assign", at);
        let kind = match ty {
            "Pass" => Kind::Pass {
                result: obj.get("Result").cloned(),
                parameters: self.template(obj, "Parameters", at),
                result_path: self
                    .io_path(obj, "ResultPath", at, true)
                    .unwrap_or_else(|| Some(Path::parse("$").expect("'$' is a path"))),
                next: self.transition(obj, at, names),
            },
            "Task" => {
                let resource = match obj.get("Resource") {
                    Some(Value::String(s)) => s.clone(),
                    _ => {
                        self.err(
                            &format!("{at}/Resource"),
                            "is required and must be a string",
                        );
                        String::new()
                    }
                };
                let timeout = self.count(obj, "TimeoutSeconds", at, 1.0);
                let heartbeat = self.count(obj, "HeartbeatSeconds", at, 1.0);
                if let (Some(Count::Literal(t)), Some(Count::Literal(h))) = (&timeout, &heartbeat)
                    && h >= t
                {
                    self.err(
                        &format!("{at}/HeartbeatSeconds"),
                        "must be smaller than TimeoutSeconds",
                    );
                }
                Kind::Task {
                    resource,
                    work: self.work(obj, at, names),
                    timeout,
                    heartbeat,
                    next: self.transition(obj, at, names),
                }
            }
            "Choice" => {
                if obj.contains_key("Next") || obj.contains_key("End") {
                    self.err(at, "a Choice state cannot have 'Next' or 'End'");
                }
                let mut choices = Vec::new();
                match obj.get("Choices").and_then(Value::as_array) {
                    Some(list) if !list.is_empty() => {
                        for (i, rule) in list.iter().enumerate() {
                            let here = format!("{at}/Choices/{i}");
                            let condition = Condition::parse(rule, &here, true, &mut self.diags);
                            let rule_obj = rule.as_object();
                            let next = self.target(
                                rule_obj.and_then(|o| o.get("Next")),
                                &format!("{here}/Next"),
                                names,
                            );
                            let assign = rule_obj.and_then(|o| self.template(o, "Assign", &here));
                            choices.push(ChoiceRule {
                                condition,
                                next,
                                assign,
                            });
                        }
                    }
                    _ => self.err(&format!("{at}/Choices"), "must be a non-empty array"),
                }
                let default = obj
                    .get("Default")
                    .map(|d| self.target(Some(d), &format!("{at}/Default"), names));
                Kind::Choice { choices, default }
            }
            "Wait" => {
                let given: Vec<&str> = ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"]
                    .into_iter()
                    .filter(|k| obj.contains_key(*k))
                    .collect();
                if given.len() != 1 {
                    self.err(
                        at,
                        "a Wait state needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath",
                    );
                }
                let wait = match given.first().copied() {
                    Some("Seconds") => match obj["Seconds"].as_u64() {
                        Some(n) => WaitFor::Seconds(n),
                        None => {
                            self.err(&format!("{at}/Seconds"), "must be a non-negative integer");
                            WaitFor::Seconds(0)
                        }
                    },
                    Some("Timestamp") => match obj["Timestamp"].as_str() {
                        Some(s) if crate::time::parse_timestamp(s).is_some() => {
                            WaitFor::Timestamp(s.to_owned())
                        }
                        _ => {
                            self.err(&format!("{at}/Timestamp"), "must be an RFC 3339 timestamp");
                            WaitFor::Seconds(0)
                        }
                    },
                    Some(k @ ("SecondsPath" | "TimestampPath")) => {
                        match self.path_field(obj, k, at) {
                            Some(p) if k == "SecondsPath" => WaitFor::SecondsPath(p),
                            Some(p) => WaitFor::TimestampPath(p),
                            None => WaitFor::Seconds(0),
                        }
                    }
                    _ => WaitFor::Seconds(0),
                };
                Kind::Wait {
                    wait,
                    next: self.transition(obj, at, names),
                }
            }
            "Succeed" => Kind::Succeed,
            "Fail" => Kind::Fail {
                error: self.text(obj, "Error", at),
                cause: self.text(obj, "Cause", at),
            },
            "Parallel" => {
                let mut branches = Vec::new();
                match obj.get("Branches").and_then(Value::as_array) {
                    Some(list) if !list.is_empty() => {
                        for (i, b) in list.iter().enumerate() {
                            let here = format!("{at}/Branches/{i}");
                            match b.as_object() {
                                Some(b) => {
                                    check_fields(b, &["StartAt", "States"], &here, &mut self.diags);
                                    branches.push(self.machine(b, &here));
                                }
                                None => self.err(&here, "a branch must be an object"),
                            }
                        }
                    }
                    _ => self.err(&format!("{at}/Branches"), "must be a non-empty array"),
                }
                Kind::Parallel {
                    branches,
                    work: self.work(obj, at, names),
                    next: self.transition(obj, at, names),
                }
            }
            _ => {
                // Map
                let (proc_key, proc) = match (obj.get("ItemProcessor"), obj.get("Iterator")) {
                    (Some(p), None) => ("ItemProcessor", p),
                    (None, Some(p)) => ("Iterator", p),
                    (Some(_), Some(_)) => {
                        self.err(at, "'ItemProcessor' and 'Iterator' cannot both be set");
                        ("ItemProcessor", &obj["ItemProcessor"])
                    }
                    (None, None) => {
                        self.err(at, "a Map state needs 'ItemProcessor'");
                        ("ItemProcessor", &Value::Null)
                    }
                };
                let here = format!("{at}/{proc_key}");
                let mut distributed = false;
                let processor = match proc.as_object() {
                    Some(p) => {
                        check_fields(
                            p,
                            &["StartAt", "States", "ProcessorConfig"],
                            &here,
                            &mut self.diags,
                        );
                        if let Some(cfg) = p.get("ProcessorConfig") {
                            match cfg.get("Mode").and_then(Value::as_str) {
                                None | Some("INLINE") => {}
                                Some("DISTRIBUTED") => distributed = true,
                                Some(m) => self.err(
                                    &format!("{here}/ProcessorConfig/Mode"),
                                    format!("'{m}' is not INLINE or DISTRIBUTED"),
                                ),
                            }
                        }
                        self.machine(p, &here)
                    }
                    None => {
                        self.err(&here, "must be an object");
                        MachineId(0)
                    }
                };
                if obj.contains_key("ItemReader") {
                    self.err(
                        &format!("{at}/ItemReader"),
                        "ItemReader is not supported yet",
                    );
                }
                if obj.contains_key("ResultWriter") {
                    self.err(
                        &format!("{at}/ResultWriter"),
                        "ResultWriter is not supported yet",
                    );
                }
                if obj.contains_key("ItemBatcher") {
                    self.err(
                        &format!("{at}/ItemBatcher"),
                        "ItemBatcher is not supported yet",
                    );
                }
                let item_selector = match (obj.get("ItemSelector"), obj.get("Parameters")) {
                    (Some(_), Some(_)) => {
                        self.err(at, "'ItemSelector' and 'Parameters' cannot both be set");
                        None
                    }
                    (Some(_), None) => self.template(obj, "ItemSelector", at),
                    (None, Some(_)) => self.template(obj, "Parameters", at),
                    (None, None) => None,
                };
                let mut work = self.work(obj, at, names);
                work.parameters = None;
                Kind::Map(Box::new(MapState {
                    processor,
                    distributed,
                    items_path: self
                        .io_path(obj, "ItemsPath", at, false)
                        .unwrap_or_else(|| Some(Path::parse("$").expect("'$' is a path"))),
                    item_selector,
                    max_concurrency: self.count(obj, "MaxConcurrency", at, 0.0),
                    tolerated_failure_count: self.count(obj, "ToleratedFailureCount", at, 0.0),
                    tolerated_failure_percentage: self.count(
                        obj,
                        "ToleratedFailurePercentage",
                        at,
                        0.0,
                    ),
                    work,
                    next: self.transition(obj, at, names),
                }))
            }
        };
        State {
            name: name.to_owned(),
            kind,
            input_path,
            output_path,
            assign,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(def: Value) -> Vec<String> {
        match Definition::from_value(def) {
            Ok(_) => Vec::new(),
            Err(crate::Error::Invalid(d)) => d.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn reports_every_problem_with_its_path() {
        let got = problems(json!({
            "StartAt": "Nope",
            "States": {
                "A": {"Type": "Pass", "Next": "Missing"},
                "B": {"Type": "Task", "End": true},
                "C": {"Type": "Choice", "Choices": []},
                "D": {"Type": "Wait", "Seconds": 1, "Timestamp": "x", "End": true},
                "E": {"Type": "Pass", "End": true, "Retry": []},
                "F": {"Type": "Bogus"},
                "G": {"Type": "Task", "Resource": "r", "End": true,
                      "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]},
                "H": {"Type": "Pass", "Parameters": {"a.$": "nope"}, "End": true},
                "I": {"Type": "Pass"}
            }
        }));
        let want = [
            "/StartAt: 'Nope' is not the name of a state",
            "/States/A/Next: 'Missing' is not the name of a state",
            "/States/B/Resource: is required and must be a string",
            "/States/C/Choices: must be a non-empty array",
            "/States/D: a Wait state needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath",
            "/States/E/Retry: field 'Retry' is not supported here",
            "/States/F/Type: 'Bogus' is not a state type",
            "/States/G/Retry/0/ErrorEquals: a retrier with 'States.ALL' must be the last one",
            "/States/I: the state needs 'Next' or 'End': true",
        ];
        for w in want {
            assert!(got.iter().any(|g| g == w), "missing {w:?} in {got:#?}");
        }
        assert!(
            got.iter()
                .any(|g| g.starts_with("/States/H/Parameters/a.$:"))
        );
    }

    #[test]
    fn rejects_jsonata_clearly() {
        let got = problems(json!({
            "QueryLanguage": "JSONata",
            "StartAt": "A",
            "States": {"A": {"Type": "Pass", "End": true}}
        }));
        assert_eq!(got, ["/QueryLanguage: JSONata is not supported yet"]);
        let got = problems(json!({
            "StartAt": "A",
            "States": {"A": {"Type": "Pass", "QueryLanguage": "JSONata", "End": true}}
        }));
        assert_eq!(
            got,
            ["/States/A/QueryLanguage: JSONata is not supported yet"]
        );
    }

    #[test]
    fn nested_paths_name_the_branch() {
        let got = problems(json!({
            "StartAt": "P",
            "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
                {"StartAt": "X", "States": {"X": {"Type": "Pass", "Next": "Y"}}}
            ]}}
        }));
        assert_eq!(
            got,
            ["/States/P/Branches/0/States/X/Next: 'Y' is not the name of a state"]
        );
    }

    #[test]
    fn resolves_names_to_indices() {
        let def = Definition::from_value(json!({
            "StartAt": "B",
            "States": {"A": {"Type": "Succeed"}, "B": {"Type": "Pass", "Next": "A"}}
        }))
        .unwrap();
        let m = def.machine(def.root());
        assert_eq!(m.start, StateId(1));
        assert!(matches!(
            m.states[1].kind,
            Kind::Pass {
                next: Transition::Next(StateId(0)),
                ..
            }
        ));
    }
}
