//! History events in the shape of Step Functions' `GetExecutionHistory`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

macro_rules! event_types {
    ($($name:ident => $details:literal,)*) => {
        /// The type of a history event.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum EventType {
            $($name,)*
        }

        impl EventType {
            /// The type's name, as in the `type` field.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$name => stringify!($name),)*
                }
            }

            /// The name of the field that holds this type's details.
            pub fn details_key(self) -> &'static str {
                match self {
                    $(EventType::$name => $details,)*
                }
            }
        }
    };
}

event_types! {
    ExecutionStarted => "executionStartedEventDetails",
    ExecutionSucceeded => "executionSucceededEventDetails",
    ExecutionFailed => "executionFailedEventDetails",
    ExecutionTimedOut => "executionTimedOutEventDetails",
    ExecutionAborted => "executionAbortedEventDetails",
    PassStateEntered => "stateEnteredEventDetails",
    PassStateExited => "stateExitedEventDetails",
    TaskStateEntered => "stateEnteredEventDetails",
    TaskStateExited => "stateExitedEventDetails",
    TaskStateAborted => "stateAbortedEventDetails",
    ChoiceStateEntered => "stateEnteredEventDetails",
    ChoiceStateExited => "stateExitedEventDetails",
    WaitStateEntered => "stateEnteredEventDetails",
    WaitStateExited => "stateExitedEventDetails",
    WaitStateAborted => "stateAbortedEventDetails",
    SucceedStateEntered => "stateEnteredEventDetails",
    SucceedStateExited => "stateExitedEventDetails",
    FailStateEntered => "stateEnteredEventDetails",
    ParallelStateEntered => "stateEnteredEventDetails",
    ParallelStateExited => "stateExitedEventDetails",
    ParallelStateStarted => "parallelStateStartedEventDetails",
    ParallelStateSucceeded => "parallelStateSucceededEventDetails",
    ParallelStateFailed => "parallelStateFailedEventDetails",
    ParallelStateAborted => "parallelStateAbortedEventDetails",
    MapStateEntered => "stateEnteredEventDetails",
    MapStateExited => "stateExitedEventDetails",
    MapStateStarted => "mapStateStartedEventDetails",
    MapStateSucceeded => "mapStateSucceededEventDetails",
    MapStateFailed => "mapStateFailedEventDetails",
    MapStateAborted => "mapStateAbortedEventDetails",
    MapIterationStarted => "mapIterationStartedEventDetails",
    MapIterationSucceeded => "mapIterationSucceededEventDetails",
    MapIterationFailed => "mapIterationFailedEventDetails",
    MapIterationAborted => "mapIterationAbortedEventDetails",
    MapRunStarted => "mapRunStartedEventDetails",
    MapRunSucceeded => "mapRunSucceededEventDetails",
    MapRunFailed => "mapRunFailedEventDetails",
    MapRunAborted => "mapRunAbortedEventDetails",
    TaskScheduled => "taskScheduledEventDetails",
    TaskStarted => "taskStartedEventDetails",
    TaskSucceeded => "taskSucceededEventDetails",
    TaskFailed => "taskFailedEventDetails",
    TaskTimedOut => "taskTimedOutEventDetails",
    LambdaFunctionScheduled => "lambdaFunctionScheduledEventDetails",
    LambdaFunctionStarted => "lambdaFunctionStartedEventDetails",
    LambdaFunctionSucceeded => "lambdaFunctionSucceededEventDetails",
    LambdaFunctionFailed => "lambdaFunctionFailedEventDetails",
    LambdaFunctionTimedOut => "lambdaFunctionTimedOutEventDetails",
    EvaluationFailed => "evaluationFailedEventDetails",
}

/// One history event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvent {
    pub id: u64,
    pub previous_event_id: u64,
    /// When it happened, in epoch milliseconds.
    pub timestamp: i64,
    pub event_type: EventType,
    /// The `<type>EventDetails` object, if the type has details.
    pub details: Option<Map<String, Value>>,
}

impl HistoryEvent {
    /// The event as `GetExecutionHistory` returns it (timestamp in epoch
    /// seconds, payloads as JSON text).
    pub fn to_aws_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("id".into(), Value::from(self.id));
        obj.insert(
            "previousEventId".into(),
            Value::from(self.previous_event_id),
        );
        obj.insert(
            "timestamp".into(),
            Value::from(self.timestamp as f64 / 1000.0),
        );
        obj.insert("type".into(), Value::from(self.event_type.as_str()));
        if let Some(d) = &self.details {
            obj.insert(
                self.event_type.details_key().into(),
                Value::Object(d.clone()),
            );
        }
        Value::Object(obj)
    }
}

/// Where an execution or one of its branches is in the event numbering:
/// the event the next one follows, and the last one it published.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Cursor {
    pub source: u64,
    pub last: u64,
}

impl Cursor {
    pub fn after(source: u64) -> Cursor {
        Cursor {
            source,
            last: source,
        }
    }

    /// Takes in what a finished branch published.
    pub fn integrate(&mut self, other: Cursor) {
        self.source = self.source.max(other.source);
        self.last = self.last.max(other.last);
    }
}
