//! `[[workflow]]`: Step Functions state machines the app declares, each defined by an Amazon
//! States Language file next to the manifest.
//!
//! The definition is read and validated with `muon_asl` when the manifest is, so an app whose
//! workflow could not run is refused at `muon up` with every problem of the definition listed.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A validated workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workflow {
    /// Step Functions' state machine name rule: 1-80 characters from `A-Z a-z 0-9 - _`.
    pub name: String,
    /// The definition file, absolute (resolved against the app's folder).
    pub definition_path: PathBuf,
    /// The definition file's text, read and validated when the manifest was.
    pub definition: String,
    pub kind: WorkflowKind,
}

/// Standard (durable, exactly-once transitions) or Express (in memory, at-least-once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WorkflowKind {
    #[default]
    Standard,
    Express,
}

impl WorkflowKind {
    /// As Step Functions spells it: `STANDARD` or `EXPRESS`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowKind::Standard => "STANDARD",
            WorkflowKind::Express => "EXPRESS",
        }
    }
}

/// The longest state machine name Step Functions accepts.
const MAX_NAME_CHARS: usize = 80;

fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_CHARS).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWorkflow {
    name: Option<String>,
    definition: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

impl RawWorkflow {
    /// The name as written, valid or not.
    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Validate the `index`th `[[workflow]]`, reading its definition file (relative to `root`);
    /// `problem(key, why)` hears every problem. `None` when the workflow is unusable.
    pub(crate) fn validate(
        self,
        index: usize,
        root: &Path,
        problem: &mut dyn FnMut(String, String),
    ) -> Option<Workflow> {
        let key = |field: &str| format!("workflow[{index}].{field}");
        let name = match self.name {
            Some(n) if valid_name(&n) => Some(n),
            Some(n) => {
                problem(
                    key("name"),
                    format!(
                        "{n:?} is not a valid workflow name: use 1-{MAX_NAME_CHARS} characters from a-z, A-Z, 0-9, '-' and '_'"
                    ),
                );
                None
            }
            None => {
                problem(
                    key("name"),
                    "missing: name the workflow, e.g. `name = \"order\"`".into(),
                );
                None
            }
        };
        let kind = match self.kind.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("standard") => WorkflowKind::Standard,
            Some("express") => WorkflowKind::Express,
            Some(_) => {
                problem(
                    key("type"),
                    format!(
                        "unknown workflow type {:?}: expected \"standard\" or \"express\"",
                        self.kind.unwrap_or_default()
                    ),
                );
                WorkflowKind::Standard
            }
        };
        let (definition_path, definition) = match self.definition.as_deref() {
            None | Some("") => {
                problem(
                    key("definition"),
                    "missing: the state machine's Amazon States Language file, e.g. `definition = \"workflows/order.asl.json\"`".into(),
                );
                return None;
            }
            Some(relative) => {
                let path = root.join(relative);
                let path = std::path::absolute(&path).unwrap_or(path);
                match read_definition(&path) {
                    Ok(text) => (path, text),
                    Err(e) => {
                        problem(
                            key("definition"),
                            format!("cannot read {}: {e}", path.display()),
                        );
                        return None;
                    }
                }
            }
        };
        if let Err(muon_asl::Error::Invalid(diagnostics)) = muon_asl::Definition::parse(&definition)
        {
            let who = match &name {
                Some(n) => format!("workflow `{n}`"),
                None => "the workflow".to_owned(),
            };
            for d in diagnostics {
                let at = if d.path.is_empty() { "/" } else { &d.path };
                problem(
                    key("definition"),
                    format!(
                        "{who}: {}: at {at}: {}",
                        definition_path.display(),
                        d.message
                    ),
                );
            }
            return None;
        }
        Some(Workflow {
            name: name?,
            definition_path,
            definition,
            kind,
        })
    }
}

/// The largest definition read: Step Functions' limit (1 MiB).
pub const MAX_DEFINITION_BYTES: u64 = 1024 * 1024;

/// Reads a definition file, refusing what is not a regular file (`/dev/zero`, a FIFO) and
/// anything over [`MAX_DEFINITION_BYTES`], without reading more than that.
fn read_definition(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("it is not a regular file"));
    }
    let mut text = String::new();
    file.take(MAX_DEFINITION_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_DEFINITION_BYTES {
        return Err(std::io::Error::other(format!(
            "it is larger than {MAX_DEFINITION_BYTES} bytes, Step Functions' limit for a definition"
        )));
    }
    Ok(text)
}
