//! `muon-asl`: the Amazon States Language (AWS Step Functions) — parse and
//! validate state machine definitions, and run executions of them.
//!
//! **What it is for.** The `flow` service drives durable workflow
//! executions with it: [`Definition::parse`] turns a definition into a
//! validated form (every problem reported at once, each with the path of the
//! offending field, state names resolved to indices so that a dangling `Next`
//! cannot exist at run time), and [`Execution`] runs it: the JSONPath
//! input/output pipeline (`InputPath` → `Parameters` → task → `ResultSelector`
//! → `ResultPath` → `OutputPath`), the context object `$$`, the 18 intrinsic
//! functions, every Choice operator, Wait, Parallel and Map (inline, and
//! distributed run inline), Retry with backoff and jitter, Catch, and the
//! `States.*` errors and limits.
//!
//! **Main design decision: a state machine that returns actions, with the
//! history as its record.** [`Execution::start`] and [`Execution::apply`]
//! take the current time and one [`Input`] (a task's result, a timer that
//! fired, a stop request) and return the [`Action`]s the caller must carry
//! out ([`Action::Invoke`] a task, [`Action::StartTimer`], and at the end
//! [`Action::Succeed`] or [`Action::Fail`]). Each step appends events to the
//! execution's history in the exact shape Step Functions' `GetExecutionHistory`
//! returns ([`HistoryEvent::to_aws_json`]). Parallel branches and Map
//! iterations run inside the same machine; their tasks carry their own
//! [`TaskId`]s. An `Execution` is `serde`-serialisable: a durable caller
//! persists it (or the inputs it applied) with the history, and after a crash
//! deserialises it, or rebuilds it with [`Execution::replay`], which gives the
//! same actions and history because nothing inside depends on anything but
//! its inputs; [`Execution::pending_tasks`] and [`Execution::pending_timers`]
//! then say what to dispatch and arm again. Every task carries a
//! deterministic idempotency key (execution, state entry, attempt).
//!
//! Distributed Map states run their items inline (no child executions; the
//! history shows `MapRunStarted`/`MapRunSucceeded` as Step Functions does).
//!
//! **It must never** do IO, read a clock, spawn threads, be async, or draw
//! randomness from the operating system. Time comes in as `now` (epoch
//! milliseconds) and randomness from a seed the caller chooses at start
//! (retry jitter, `States.MathRandom`, `States.UUID`), so runs replay
//! exactly. `QueryLanguage: JSONata` is rejected at validation for now.

mod choice;
mod definition;
mod exec;
mod history;
mod intrinsic;
mod path;
mod retry;
mod rng;
mod scope;
mod template;
mod time;

pub use choice::{Condition, Operand, Test};
pub use definition::{
    Catcher, ChoiceRule, Count, Definition, IoPath, Kind, Machine, MachineId, MapState, Retrier,
    State, StateId, Text, Transition, WaitFor, Work,
};
pub use exec::{
    Action, Execution, ExecutionInfo, Input, Invocation, MAX_DEPTH, MAX_HISTORY_BYTES,
    MAX_HISTORY_EVENTS, MAX_PAYLOAD_BYTES, MAX_STANDARD_DURATION_MS, ResourceKind, Status, TaskId,
    TimerId,
};
pub use history::{EventType, HistoryEvent};
pub use intrinsic::{Call, Function, MAX_NESTING};
pub use path::{Missing, Path, Root};
pub use retry::retry_delay_millis;
pub use rng::Rng;
pub use scope::Scope;
pub use template::{Expr, Template};

use serde::{Deserialize, Serialize};
use std::fmt;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a definition or an execution request was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The definition is invalid; every problem found is listed.
    #[error("Invalid State Machine Definition: {}", join(.0))]
    Invalid(Vec<Diagnostic>),
}

impl Error {
    /// The AWS error code this error is reported with.
    pub fn aws_code(&self) -> &'static str {
        match self {
            Error::Invalid(_) => "InvalidDefinition",
        }
    }
}

fn join(d: &[Diagnostic]) -> String {
    d.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// One problem in a definition, with the path of the field it concerns
/// (for example `/States/Foo/Next`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: String,
    pub message: String,
}

impl Diagnostic {
    /// A problem at `path`.
    pub fn new(path: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(f, "{at}: {}", self.message)
    }
}

/// A run-time error as Step Functions names it: `error` is the name
/// (`States.Timeout`, a Lambda's `errorType`, a Fail state's `Error`),
/// `cause` the text that explains it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub error: Option<String>,
    pub cause: Option<String>,
}

impl Failure {
    /// A failure with an error name and a cause.
    pub fn new(error: &str, cause: impl Into<String>) -> Failure {
        Failure {
            error: Some(error.to_owned()),
            cause: Some(cause.into()),
        }
    }

    /// A `States.Runtime` failure: it cannot be retried or caught.
    pub fn runtime(cause: impl Into<String>) -> Failure {
        Failure::new(errors::RUNTIME, cause)
    }

    /// The error name, `""` when there is none.
    pub fn error_name(&self) -> &str {
        self.error.as_deref().unwrap_or("")
    }

    /// Whether this is a `States.Runtime` failure.
    pub fn is_runtime(&self) -> bool {
        self.error.as_deref() == Some(errors::RUNTIME)
    }
}

/// The `States.*` error names.
pub mod errors {
    pub const ALL: &str = "States.ALL";
    pub const TIMEOUT: &str = "States.Timeout";
    pub const TASK_FAILED: &str = "States.TaskFailed";
    pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
    pub const PERMISSIONS: &str = "States.Permissions";
    pub const RESULT_PATH_MATCH_FAILURE: &str = "States.ResultPathMatchFailure";
    pub const PARAMETER_PATH_FAILURE: &str = "States.ParameterPathFailure";
    pub const BRANCH_FAILED: &str = "States.BranchFailed";
    pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
    pub const INTRINSIC_FAILURE: &str = "States.IntrinsicFailure";
    pub const DATA_LIMIT_EXCEEDED: &str = "States.DataLimitExceeded";
    pub const EXCEED_TOLERATED_FAILURE_THRESHOLD: &str = "States.ExceedToleratedFailureThreshold";
    pub const ITEM_READER_FAILED: &str = "States.ItemReaderFailed";
    pub const RESULT_WRITER_FAILED: &str = "States.ResultWriterFailed";
    pub const RUNTIME: &str = "States.Runtime";
    pub const QUERY_EVALUATION_ERROR: &str = "States.QueryEvaluationError";
}
