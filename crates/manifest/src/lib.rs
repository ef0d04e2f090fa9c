//! `muon.toml` -> a validated, resolved [`App`].
//!
//! Staged like Spin: the text is parsed into raw serde structs that reject unknown keys, then
//! validated into an [`App`] whose every value is in range and whose sources are resolved to
//! absolute paths. Validation reports every problem at once, each naming the file, the key and
//! why. [`build`] is the one stage that runs a tool: it compiles guest Cargo projects. Besides
//! the manifest itself, validation reads the files it names: `[[workflow]]` definitions are read
//! and checked with `muon_asl` then.
//!
//! This crate never touches the network and never starts functions; it only describes them.

pub mod archive;
pub mod build;
mod outbound;
mod route;
pub mod rule;
mod workflow;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use muon_types::{BusName, FunctionName, parse_duration};
use serde::Deserialize;

pub use archive::{Archive, ArchiveError};
pub use outbound::{AllowedHost, OutboundPolicy};
pub use route::Route;
pub use rule::{Input, JsonPath, RetryPolicy, Rule, Schedule, Target, TargetKind};
pub use workflow::{Workflow, WorkflowKind};

/// The file name `muon up DIR` looks for.
pub const FILE_NAME: &str = "muon.toml";

pub const DEFAULT_MEMORY_MB: u32 = 128;
pub const MAX_MEMORY_MB: u32 = 4096;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(900);
pub const DEFAULT_MAX_INSTANCES: u32 = 100;
pub const MAX_INSTANCES_LIMIT: u32 = 1000;

/// One problem found in a manifest, with the key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where in the file: `function[1].memory_mb`, or `` for the whole file.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "`{}`: {}", self.key, self.message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {}", path.display(), render(diagnostics))]
    Invalid {
        path: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },
    #[error("{}: function `{function}`: {message}", path.display())]
    Build {
        path: PathBuf,
        function: FunctionName,
        message: String,
    },
}

fn render(diagnostics: &[Diagnostic]) -> String {
    match diagnostics {
        [one] => one.to_string(),
        many => {
            let mut out = format!("{} problems:", many.len());
            for d in many {
                out.push_str("\n  - ");
                out.push_str(&d.to_string());
            }
            out
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A validated app: what `muon up` runs.
#[derive(Debug, Clone)]
pub struct App {
    pub name: String,
    /// The manifest file this app came from.
    pub manifest_path: PathBuf,
    /// The folder relative paths in the manifest are resolved against.
    pub root: PathBuf,
    pub functions: Vec<Function>,
    /// Every bus of the app: `default` first, then the `[[bus]]` tables.
    pub buses: Vec<BusName>,
    pub rules: Vec<Rule>,
    pub schedules: Vec<Schedule>,
    /// The `[[archive]]` tables: named views of a bus's stored events.
    pub archives: Vec<Archive>,
    /// The `[[workflow]]` tables, their definitions read and validated.
    pub workflows: Vec<Workflow>,
}

impl App {
    pub fn function(&self, name: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.name.as_str() == name)
    }

    pub fn workflow(&self, name: &str) -> Option<&Workflow> {
        self.workflows.iter().find(|w| w.name == name)
    }
}

/// Which runtime runs a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// A WebAssembly component exporting `wasi:http/incoming-handler`.
    Wasm,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Wasm => "wasm",
        }
    }
}

/// Where a function's code comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A compiled `.wasm` component.
    Wasm(PathBuf),
    /// A Cargo project folder built with `cargo build --target wasm32-wasip2 --release`.
    Cargo(PathBuf),
}

impl Source {
    pub fn path(&self) -> &Path {
        match self {
            Source::Wasm(p) | Source::Cargo(p) => p,
        }
    }
}

/// A validated function.
#[derive(Debug, Clone)]
pub struct Function {
    pub name: FunctionName,
    pub runtime: Runtime,
    pub source: Source,
    pub route: Option<Route>,
    pub memory_mb: u32,
    pub timeout: Duration,
    pub environment: BTreeMap<String, String>,
    pub outbound: OutboundPolicy,
    pub min_instances: u32,
    pub max_instances: u32,
    /// How many requests one instance may serve before it is dropped. 1 (the default) gives every
    /// request a fresh isolate; more reuses instances like Workers' isolates do.
    pub instance_reuse: u32,
    /// Whether the function may publish events: `muon up` then gives it `MUON_EVENTS_URL`
    /// (the control API's PutEvents) and allows outbound HTTP to the control API.
    pub publish_events: bool,
}

impl Function {
    pub fn memory_bytes(&self) -> usize {
        self.memory_mb as usize * 1024 * 1024
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    app: Option<String>,
    #[serde(default, rename = "function")]
    functions: Vec<RawFunction>,
    #[serde(default, rename = "bus")]
    buses: Vec<RawBus>,
    #[serde(default, rename = "rule")]
    rules: Vec<rule::RawRule>,
    #[serde(default, rename = "schedule")]
    schedules: Vec<rule::RawSchedule>,
    #[serde(default, rename = "workflow")]
    workflows: Vec<workflow::RawWorkflow>,
    #[serde(default, rename = "archive")]
    archives: Vec<archive::RawArchive>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBus {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFunction {
    name: Option<String>,
    runtime: Option<String>,
    source: Option<String>,
    route: Option<String>,
    memory_mb: Option<i64>,
    timeout: Option<RawDuration>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    min_instances: Option<i64>,
    max_instances: Option<i64>,
    instance_reuse: Option<i64>,
    publish_events: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawDuration {
    Seconds(i64),
    Text(String),
}

/// Read and validate the manifest at `path`: a `muon.toml` file, or a folder that holds one.
pub fn load(path: &Path) -> Result<App> {
    let file = if path.is_dir() {
        path.join(FILE_NAME)
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file).map_err(|source| Error::Read {
        path: file.clone(),
        source,
    })?;
    let file = std::path::absolute(&file).unwrap_or(file);
    let root = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    parse(&text, &file, &root)
}

/// Validate manifest `text`; `file` names it in messages and `root` anchors relative paths.
pub fn parse(text: &str, file: &Path, root: &Path) -> Result<App> {
    let invalid = |diagnostics| Error::Invalid {
        path: file.to_path_buf(),
        diagnostics,
    };
    let (raw, unknown) = match toml::from_str::<RawManifest>(text) {
        Ok(raw) => (raw, Vec::new()),
        Err(e) => match without_unknown_keys(text) {
            // Unknown keys: each is reported, and the rest is validated as if they were not there.
            Some((raw, unknown)) if !unknown.is_empty() => (raw, unknown),
            _ => {
                return Err(invalid(vec![Diagnostic {
                    key: String::new(),
                    message: e.to_string().trim_end().replace('\n', "\n    "),
                }]));
            }
        },
    };
    let mut problems = unknown;
    let mut problem = |key: String, message: String| problems.push(Diagnostic { key, message });

    let name = match raw.app {
        Some(app) if valid_app_name(&app) => app,
        Some(app) => {
            problem(
                "app".into(),
                format!(
                    "{app:?} is not a valid app name: use 1-64 characters from a-z, A-Z, 0-9, '-' and '_'"
                ),
            );
            String::new()
        }
        None => {
            problem(
                "app".into(),
                "missing: name the app, e.g. `app = \"hello\"`".into(),
            );
            String::new()
        }
    };
    if raw.functions.is_empty() {
        problem(
            "function".into(),
            "the app has no functions: add a `[[function]]` table".into(),
        );
    }

    let mut functions = Vec::new();
    for (i, f) in raw.functions.into_iter().enumerate() {
        let key = |field: &str| format!("function[{i}].{field}");
        let name = match f.name.as_deref().map(FunctionName::new) {
            Some(Ok(n)) => Some(n),
            Some(Err(e)) => {
                problem(key("name"), e.to_string());
                None
            }
            None => {
                problem(key("name"), "missing".into());
                None
            }
        };
        if let Some(n) = &name
            && functions.iter().any(|g: &Function| &g.name == n)
        {
            problem(
                key("name"),
                format!("a function named `{n}` is already defined"),
            );
        }
        match f.runtime.as_deref() {
            Some("wasm") => {}
            Some(other @ ("process" | "lambda" | "model")) => problem(
                key("runtime"),
                format!(
                    "runtime {other:?} is not available yet in this version of muon; use \"wasm\""
                ),
            ),
            Some(other) => problem(
                key("runtime"),
                format!("unknown runtime {other:?}: expected \"wasm\""),
            ),
            None => problem(key("runtime"), "missing: set `runtime = \"wasm\"`".into()),
        }
        let source = match f.source.as_deref() {
            None | Some("") => {
                problem(
                    key("source"),
                    "missing: a `.wasm` file or a guest Cargo project folder".into(),
                );
                None
            }
            Some(s) => match resolve_source(root, s) {
                Ok(source) => Some(source),
                Err(why) => {
                    problem(key("source"), why);
                    None
                }
            },
        };
        let route = match f.route.as_deref().map(Route::parse) {
            None => None,
            Some(Ok(r)) => {
                if let Some(other) = functions
                    .iter()
                    .find(|g: &&Function| g.route.as_ref() == Some(&r))
                {
                    problem(
                        key("route"),
                        format!("route `{r}` is already taken by function `{}`", other.name),
                    );
                }
                Some(r)
            }
            Some(Err(why)) => {
                problem(key("route"), why);
                None
            }
        };
        let memory_mb = match f.memory_mb {
            None => DEFAULT_MEMORY_MB,
            Some(m) if (1..=MAX_MEMORY_MB as i64).contains(&m) => m as u32,
            Some(m) => {
                problem(
                    key("memory_mb"),
                    format!("{m} is out of range: use 1 to {MAX_MEMORY_MB}"),
                );
                DEFAULT_MEMORY_MB
            }
        };
        let timeout = match f.timeout {
            None => DEFAULT_TIMEOUT,
            Some(raw) => {
                let parsed = match raw {
                    RawDuration::Seconds(s) if s >= 0 => Ok(Duration::from_secs(s as u64)),
                    RawDuration::Seconds(s) => Err(format!("{s} is negative")),
                    RawDuration::Text(t) => parse_duration(&t).map_err(|e| e.to_string()),
                };
                match parsed {
                    Ok(d) if d >= Duration::from_millis(1) && d <= MAX_TIMEOUT => d,
                    Ok(_) => {
                        problem(key("timeout"), "out of range: use 1ms to 900s".to_string());
                        DEFAULT_TIMEOUT
                    }
                    Err(why) => {
                        problem(key("timeout"), why);
                        DEFAULT_TIMEOUT
                    }
                }
            }
        };
        for var in f.environment.keys() {
            if var.is_empty() || var.contains('=') || var.contains('\0') {
                problem(
                    key("environment"),
                    format!("{var:?} is not a valid variable name"),
                );
            }
        }
        let outbound = match OutboundPolicy::parse(&f.allowed_outbound_hosts) {
            Ok(p) => p,
            Err(whys) => {
                for why in whys {
                    problem(key("allowed_outbound_hosts"), why);
                }
                OutboundPolicy::deny_all()
            }
        };
        let mut count = |field: &str, value: Option<i64>, default: u32, min: u32| match value {
            None => default,
            Some(v) if (min as i64..=MAX_INSTANCES_LIMIT as i64).contains(&v) => v as u32,
            Some(v) => {
                problem(
                    key(field),
                    format!("{v} is out of range: use {min} to {MAX_INSTANCES_LIMIT}"),
                );
                default
            }
        };
        let min_instances = count("min_instances", f.min_instances, 0, 0);
        let max_instances = count("max_instances", f.max_instances, DEFAULT_MAX_INSTANCES, 1);
        let instance_reuse = match f.instance_reuse {
            None => 1,
            Some(v) if v >= 1 && v <= u32::MAX as i64 => v as u32,
            Some(v) => {
                problem(
                    key("instance_reuse"),
                    format!("{v} is out of range: use 1 (a fresh isolate per request) or more"),
                );
                1
            }
        };
        if min_instances > max_instances {
            problem(
                key("min_instances"),
                format!("{min_instances} is more than max_instances ({max_instances})"),
            );
        }
        if let (Some(name), Some(source)) = (name, source) {
            functions.push(Function {
                name,
                runtime: Runtime::Wasm,
                source,
                route,
                memory_mb,
                timeout,
                environment: f.environment,
                outbound,
                min_instances,
                max_instances,
                instance_reuse,
                publish_events: f.publish_events.unwrap_or(false),
            });
        }
    }
    let mut buses = vec![BusName::default_bus()];
    for (i, b) in raw.buses.into_iter().enumerate() {
        match b.name.as_deref().map(BusName::new) {
            Some(Ok(b)) if buses.contains(&b) => problem(
                format!("bus[{i}].name"),
                format!("bus `{b}` is already defined (the `default` bus always exists)"),
            ),
            Some(Ok(b)) => buses.push(b),
            Some(Err(e)) => problem(format!("bus[{i}].name"), e.to_string()),
            None => problem(format!("bus[{i}].name"), "missing".into()),
        }
    }
    // Workflows come before rules, whose targets may name them. `declared` holds every name
    // given, so that a workflow with a broken definition is reported once, not again by the
    // rules that target it.
    let mut workflows: Vec<Workflow> = Vec::new();
    let mut declared: Vec<String> = Vec::new();
    for (i, raw) in raw.workflows.into_iter().enumerate() {
        if let Some(name) = raw.name() {
            if declared.iter().any(|d| d == name) {
                problem(
                    format!("workflow[{i}].name"),
                    format!("a workflow named `{name}` is already defined"),
                );
            }
            declared.push(name.to_owned());
        }
        if let Some(w) = raw.validate(i, root, &mut problem) {
            workflows.push(w);
        }
    }
    let mut rules: Vec<Rule> = Vec::new();
    for (i, raw) in raw.rules.into_iter().enumerate() {
        let Some(rule) = raw.validate(i, &mut problem) else {
            continue;
        };
        let key = |field: &str| format!("rule[{i}].{field}");
        if !buses.contains(&rule.bus) {
            problem(
                key("bus"),
                format!(
                    "bus `{}` is not defined: add a `[[bus]]` table with `name = \"{}\"`",
                    rule.bus, rule.bus
                ),
            );
        }
        if rules
            .iter()
            .any(|r| r.bus == rule.bus && r.name == rule.name)
        {
            problem(
                key("name"),
                format!(
                    "rule `{}` is already defined on bus `{}`",
                    rule.name, rule.bus
                ),
            );
        }
        for (t, target) in rule.targets.iter().enumerate() {
            match &target.kind {
                TargetKind::Function(f) if !functions.iter().any(|g| &g.name == f) => problem(
                    format!("rule[{i}].targets[{t}]"),
                    format!("no function named `{f}` in this app"),
                ),
                TargetKind::Bus(b) if !buses.contains(b) => problem(
                    format!("rule[{i}].targets[{t}]"),
                    format!("bus `{b}` is not defined"),
                ),
                TargetKind::Workflow(w) if !declared.contains(w) => {
                    problem(format!("rule[{i}].targets[{t}]"), no_workflow(w))
                }
                _ => {}
            }
        }
        rules.push(rule);
    }
    let mut schedules: Vec<Schedule> = Vec::new();
    for (i, raw) in raw.schedules.into_iter().enumerate() {
        let Some(schedule) = raw.validate(i, &mut problem) else {
            continue;
        };
        let rule = &schedule.rule;
        let key = |field: &str| format!("schedule[{i}].{field}");
        if !buses.contains(&rule.bus) {
            problem(key("bus"), format!("bus `{}` is not defined", rule.bus));
        }
        if rules
            .iter()
            .chain(schedules.iter().map(|s| &s.rule))
            .any(|r| r.bus == rule.bus && r.name == rule.name)
        {
            problem(
                key("name"),
                format!(
                    "a rule or schedule named `{}` is already defined on bus `{}`",
                    rule.name, rule.bus
                ),
            );
        }
        for (t, target) in rule.targets.iter().enumerate() {
            match &target.kind {
                TargetKind::Function(f) if !functions.iter().any(|g| &g.name == f) => problem(
                    format!("schedule[{i}].targets[{t}]"),
                    format!("no function named `{f}` in this app"),
                ),
                TargetKind::Bus(b) if !buses.contains(b) => problem(
                    format!("schedule[{i}].targets[{t}]"),
                    format!("bus `{b}` is not defined"),
                ),
                TargetKind::Workflow(w) if !declared.contains(w) => {
                    problem(format!("schedule[{i}].targets[{t}]"), no_workflow(w))
                }
                _ => {}
            }
        }
        schedules.push(schedule);
    }
    let mut archives: Vec<Archive> = Vec::new();
    for (i, raw) in raw.archives.into_iter().enumerate() {
        let Some(archive) = raw.validate(i, &mut problem) else {
            continue;
        };
        if !buses.contains(&archive.bus) {
            problem(
                format!("archive[{i}].bus"),
                format!(
                    "bus `{}` is not defined: add a `[[bus]]` table with `name = \"{}\"`",
                    archive.bus, archive.bus
                ),
            );
        }
        if archives.iter().any(|a| a.name == archive.name) {
            problem(
                format!("archive[{i}].name"),
                format!("an archive named `{}` is already defined", archive.name),
            );
        }
        archives.push(archive);
    }
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    Ok(App {
        name,
        manifest_path: file.to_path_buf(),
        root: root.to_path_buf(),
        functions,
        buses,
        rules,
        schedules,
        archives,
        workflows,
    })
}

/// The manifest with its unknown keys left out, and a diagnostic for each (in file order, with
/// its line and the closest known key), when the document is TOML whose only faults are
/// unknown keys.
fn without_unknown_keys(text: &str) -> Option<(RawManifest, Vec<Diagnostic>)> {
    let mut doc: toml::Value = toml::from_str(text).ok()?;
    let mut unknown = Vec::new();
    for _ in 0..1000 {
        let error = match serde_path_to_error::deserialize::<_, RawManifest>(doc.clone()) {
            Ok(raw) => {
                unknown.sort_by_key(|(line, _): &(usize, Diagnostic)| *line);
                return Some((raw, unknown.into_iter().map(|(_, d)| d).collect()));
            }
            Err(e) => e,
        };
        let message = error.inner().to_string();
        let field = message
            .strip_prefix("unknown field `")?
            .split('`')
            .next()?
            .to_owned();
        let expected: Vec<&str> = message
            .split_once("expected")
            .map(|(_, list)| list.split(" for key").next().unwrap_or(list))
            .map(|list| list.split('`').skip(1).step_by(2).collect())
            .unwrap_or_default();
        // The path ends at the unknown key or at the table that holds it.
        let mut segments: Vec<String> = error
            .path()
            .iter()
            .map(|s| match s {
                serde_path_to_error::Segment::Seq { index } => format!("[{index}]"),
                serde_path_to_error::Segment::Map { key } => key.clone(),
                _ => String::new(),
            })
            .collect();
        if segments.last() == Some(&field) {
            segments.pop();
        }
        let table = segments
            .iter()
            .try_fold(&mut doc, |v, s| match s.strip_prefix('[') {
                Some(i) => v.get_mut(i.trim_end_matches(']').parse::<usize>().ok()?),
                None => v.get_mut(s.as_str()),
            })?;
        table.as_table_mut()?.remove(&field)?;
        let mut key = String::new();
        for s in &segments {
            if !s.starts_with('[') && !key.is_empty() {
                key.push('.');
            }
            key.push_str(s);
        }
        key.push_str(if key.is_empty() { "" } else { "." });
        key.push_str(&field);
        let line = text
            .lines()
            .position(|l| {
                l.trim_start()
                    .strip_prefix(field.as_str())
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
            .map_or(0, |n| n + 1);
        let hint = did_you_mean(&field, &expected)
            .map(|k| format!(": did you mean `{k}`?"))
            .unwrap_or_else(|| format!(": expected one of {}", expected.join(", ")));
        let at = if line > 0 {
            format!(" (line {line})")
        } else {
            String::new()
        };
        unknown.push((
            line,
            Diagnostic {
                key,
                message: format!("unknown key `{field}`{at}{hint}"),
            },
        ));
    }
    None
}

/// The known key closest to `key` (by edit distance), if one is close enough to be a typo.
fn did_you_mean<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut previous = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let here = row[j + 1];
                row[j + 1] = (previous + usize::from(ca != *cb))
                    .min(row[j] + 1)
                    .min(here + 1);
                previous = here;
            }
        }
        row[b.len()]
    }
    known
        .iter()
        .map(|k| (distance(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Why a target naming workflow `name` is refused.
fn no_workflow(name: &str) -> String {
    format!(
        "no workflow named `{name}` in this app: declare it with a `[[workflow]]` table (`name = \"{name}\"`, `definition = \"...\"`)"
    )
}

fn valid_app_name(name: &str) -> bool {
    FunctionName::new(name).is_ok()
}

fn resolve_source(root: &Path, source: &str) -> Result<Source, String> {
    if source.starts_with('~') {
        return Err(format!(
            "{source} starts with `~`, which muon does not expand: write the path relative to muon.toml's folder, or in full"
        ));
    }
    let path = root.join(source);
    // Say what is wrong with the path, not only that it is not usable.
    let missing = |path: &Path, hint: &str| match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            format!("{} does not exist{hint}", path.display())
        }
        Err(e) => format!("{} cannot be read: {e}", path.display()),
        Ok(_) => format!("{} is not a file{hint}", path.display()),
    };
    if source.ends_with(".wasm") {
        if path.is_file() {
            Ok(Source::Wasm(path))
        } else {
            Err(missing(&path, ""))
        }
    } else if path.join("Cargo.toml").is_file() {
        Ok(Source::Cargo(path))
    } else if path.is_dir() {
        Err(format!(
            "{} is a folder without a Cargo.toml: point `source` at a `.wasm` file or a guest Cargo project",
            path.display()
        ))
    } else {
        Err(missing(
            &path,
            ": point `source` at a `.wasm` file or a guest Cargo project folder",
        ))
    }
}

#[cfg(test)]
mod tests;
