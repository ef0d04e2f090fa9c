//! Recent invocations and their logs, per function, in bounded memory, with live following.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use muon_types::{FunctionName, InvocationId, Status, Stream};
use tokio::sync::broadcast;

use crate::Finished;

/// How many invocations the journal keeps per function.
pub const INVOCATIONS_KEPT: usize = 1000;
/// How many log lines the journal keeps per function.
pub const LOG_LINES_KEPT: usize = 10_000;
/// The most bytes of log text the journal keeps per function; the oldest lines go first.
pub const LOG_BYTES_KEPT: usize = 4 * 1024 * 1024;
/// The longest log line kept; longer lines are cut and marked.
pub const MAX_LINE: usize = 16 * 1024;

/// One finished invocation.
#[derive(Debug, Clone)]
pub struct InvocationRecord {
    pub id: InvocationId,
    pub function: FunctionName,
    pub started_at: SystemTime,
    pub duration: Duration,
    pub status: Status,
    pub http_status: Option<u16>,
    pub message: Option<String>,
}

/// One line a guest (or muon, about a guest) wrote.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub time: SystemTime,
    pub function: FunctionName,
    pub invocation: InvocationId,
    pub stream: Stream,
    pub text: String,
}

#[derive(Default)]
struct PerFunction {
    invocations: VecDeque<InvocationRecord>,
    logs: VecDeque<Arc<LogLine>>,
    log_bytes: usize,
    total: u64,
    failed: u64,
}

/// Counters of one function since the server started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub invocations: u64,
    pub failed: u64,
}

pub struct Journal {
    functions: Mutex<HashMap<FunctionName, PerFunction>>,
    live: broadcast::Sender<Arc<LogLine>>,
}

impl Default for Journal {
    fn default() -> Self {
        Self {
            functions: Mutex::default(),
            live: broadcast::channel(4096).0,
        }
    }
}

impl Journal {
    /// Record a finished invocation and its logs (and a platform line saying why it failed).
    pub fn record(
        &self,
        function: FunctionName,
        id: InvocationId,
        started_at: SystemTime,
        duration: Duration,
        finished: Finished,
    ) {
        let now = SystemTime::now();
        let mut lines: Vec<Arc<LogLine>> = finished
            .logs
            .into_iter()
            .map(|(stream, text)| {
                Arc::new(LogLine {
                    time: now,
                    function: function.clone(),
                    invocation: id,
                    stream,
                    text: cut(text),
                })
            })
            .collect();
        if let Some(message) = finished
            .message
            .as_ref()
            .filter(|_| finished.status != Status::Ok)
        {
            lines.push(Arc::new(LogLine {
                time: now,
                function: function.clone(),
                invocation: id,
                stream: Stream::Platform,
                text: cut(format!(
                    "invocation failed ({}): {message}",
                    finished.status
                )),
            }));
        }
        let record = InvocationRecord {
            id,
            function: function.clone(),
            started_at,
            duration,
            status: finished.status,
            http_status: finished.http_status,
            message: finished.message,
        };
        {
            let mut functions = self.functions.lock().expect("journal lock poisoned");
            let f = functions.entry(function).or_default();
            f.total += 1;
            if record.status != Status::Ok {
                f.failed += 1;
            }
            if f.invocations.len() == INVOCATIONS_KEPT {
                f.invocations.pop_front();
            }
            f.invocations.push_back(record);
            for line in &lines {
                f.log_bytes += line.text.len();
                f.logs.push_back(line.clone());
                while f.logs.len() > LOG_LINES_KEPT || f.log_bytes > LOG_BYTES_KEPT {
                    let Some(old) = f.logs.pop_front() else { break };
                    f.log_bytes -= old.text.len();
                }
            }
        }
        if self.live.receiver_count() > 0 {
            for line in lines {
                // Nobody listening is not an error.
                let _ = self.live.send(line);
            }
        }
    }

    /// The newest `limit` invocations of `function`, newest first.
    pub fn invocations(&self, function: &FunctionName, limit: usize) -> Vec<InvocationRecord> {
        let functions = self.functions.lock().expect("journal lock poisoned");
        functions
            .get(function)
            .map(|f| f.invocations.iter().rev().take(limit).cloned().collect())
            .unwrap_or_default()
    }

    /// One invocation and its log lines, if it is still kept.
    pub fn invocation(&self, id: InvocationId) -> Option<(InvocationRecord, Vec<Arc<LogLine>>)> {
        let functions = self.functions.lock().expect("journal lock poisoned");
        functions.values().find_map(|f| {
            let record = f.invocations.iter().rev().find(|r| r.id == id)?;
            let logs = f
                .logs
                .iter()
                .filter(|l| l.invocation == id)
                .cloned()
                .collect();
            Some((record.clone(), logs))
        })
    }

    /// The newest `limit` log lines of `function`, oldest first.
    pub fn logs(&self, function: &FunctionName, limit: usize) -> Vec<Arc<LogLine>> {
        let functions = self.functions.lock().expect("journal lock poisoned");
        functions
            .get(function)
            .map(|f| {
                let skip = f.logs.len().saturating_sub(limit);
                f.logs.iter().skip(skip).cloned().collect()
            })
            .unwrap_or_default()
    }

    pub fn counts(&self, function: &FunctionName) -> Counts {
        let functions = self.functions.lock().expect("journal lock poisoned");
        functions
            .get(function)
            .map(|f| Counts {
                invocations: f.total,
                failed: f.failed,
            })
            .unwrap_or_default()
    }

    /// Every log line recorded from now on, of every function.
    pub fn follow(&self) -> broadcast::Receiver<Arc<LogLine>> {
        self.live.subscribe()
    }
}

fn cut(mut text: String) -> String {
    if text.len() > MAX_LINE {
        let mut end = MAX_LINE;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(" [line truncated]");
    }
    text
}
