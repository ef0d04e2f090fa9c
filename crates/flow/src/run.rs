//! One running execution: an actor that owns its [`Execution`], applies what arrives for it,
//! commits each step, then carries out the actions.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use muon_asl::{Action, Execution, HistoryEvent, Input, Status, TaskId, TimerId};
use muon_store::{ExecutionEnd, HistoryRecord, Op, StepRecord, Transaction};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;

use crate::{Callback, Description, Error, Inner, Kind, Recent, Result, now_ms};

/// The most messages applied together (and committed in one transaction).
const MAX_BATCH: usize = 64;

/// What an execution's actor is asked.
pub(crate) enum Msg {
    /// A task's result or a timer that fired.
    Input(Input),
    Stop {
        error: Option<String>,
        cause: Option<String>,
        reply: oneshot::Sender<Result<i64>>,
    },
    Callback {
        token: String,
        callback: Callback,
        reply: oneshot::Sender<Result<()>>,
    },
    /// History of a running Express execution (the store has none).
    History {
        after: u64,
        limit: usize,
        reply: oneshot::Sender<Vec<Value>>,
    },
}

/// A request's answer, sent once the step it caused is committed.
enum Reply {
    Stop(oneshot::Sender<Result<i64>>, i64),
    Callback(oneshot::Sender<Result<()>>),
}

impl Reply {
    fn send(self, outcome: Result<()>) {
        match self {
            Reply::Stop(tx, at) => {
                let _ = tx.send(outcome.map(|()| at));
            }
            Reply::Callback(tx) => {
                let _ = tx.send(outcome);
            }
        }
    }
}

pub(crate) struct Actor {
    inner: Weak<Inner>,
    arn: String,
    exe: Execution,
    express: bool,
    /// Steps recorded so far.
    pub(crate) steps: u64,
    /// Resumed as muon started: its next step also clears its count of resumes without
    /// progress.
    pub(crate) reset_resumes: bool,
    inbox: mpsc::UnboundedSender<Msg>,
    done: watch::Sender<Option<Arc<Description>>>,
    tasks: HashMap<TaskId, AbortHandle>,
    timers: HashMap<TimerId, AbortHandle>,
}

/// History events as the store keeps them, from index `from`.
pub(crate) fn history_records(history: &[HistoryEvent], from: usize) -> Vec<HistoryRecord> {
    history[from..]
        .iter()
        .map(|e| HistoryRecord {
            id: e.id,
            json: e.to_aws_json().to_string(),
        })
        .collect()
}

/// How the execution ended, if it did.
pub(crate) fn end_of(exe: &Execution, now: i64) -> Option<ExecutionEnd> {
    let output = match exe.status() {
        Status::Running => return None,
        Status::Succeeded { output } => Some(output.to_string()),
        _ => None,
    };
    let (error, cause) = exe.error_and_cause();
    Some(ExecutionEnd {
        status: exe.status().as_str().to_owned(),
        stop_ms: now,
        output,
        error,
        cause,
    })
}

/// Start the actor's task and carry out the first actions.
pub(crate) fn spawn(
    inner: &Arc<Inner>,
    mut actor: Actor,
    messages: mpsc::UnboundedReceiver<Msg>,
    actions: Vec<Action>,
) {
    if *actor.exe.status() != Status::Running {
        actor.finish(inner);
        return;
    }
    actor.act(inner, actions);
    tokio::spawn(actor.run(messages));
}

impl Actor {
    pub(crate) fn new(
        inner: Weak<Inner>,
        arn: String,
        exe: Execution,
        express: bool,
        inbox: mpsc::UnboundedSender<Msg>,
        done: watch::Sender<Option<Arc<Description>>>,
    ) -> Actor {
        Actor {
            inner,
            arn,
            exe,
            express,
            steps: 0,
            reset_resumes: false,
            inbox,
            done,
            tasks: HashMap::new(),
            timers: HashMap::new(),
        }
    }

    /// After a replay: the pending tasks to dispatch again and the timers to arm again.
    pub(crate) fn resumed_actions(&self) -> Vec<Action> {
        let mut actions: Vec<Action> = self
            .exe
            .pending_tasks()
            .cloned()
            .map(Action::Invoke)
            .collect();
        actions.extend(
            self.exe
                .pending_timers()
                .map(|(timer, at)| Action::StartTimer { timer, at }),
        );
        actions
    }

    async fn run(mut self, mut messages: mpsc::UnboundedReceiver<Msg>) {
        while let Some(first) = messages.recv().await {
            let Some(inner) = self.inner.upgrade() else {
                break;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match messages.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            let mut tx = Transaction::new();
            let mut actions = Vec::new();
            let mut replies = Vec::new();
            for msg in batch {
                let now = now_ms();
                let (input, reply) = match msg {
                    Msg::History {
                        after,
                        limit,
                        reply,
                    } => {
                        let events = self
                            .exe
                            .history()
                            .iter()
                            .filter(|e| e.id > after)
                            .take(limit)
                            .map(HistoryEvent::to_aws_json)
                            .collect();
                        let _ = reply.send(events);
                        continue;
                    }
                    Msg::Input(input) => (input, None),
                    Msg::Stop {
                        error,
                        cause,
                        reply,
                    } => (Input::Stop { error, cause }, Some(Reply::Stop(reply, now))),
                    Msg::Callback {
                        token,
                        callback,
                        reply,
                    } => {
                        let Some(task) = self.exe.task_for_token(&token) else {
                            let _ = reply.send(Err(Error::TaskDoesNotExist));
                            continue;
                        };
                        let input = match callback {
                            Callback::Success(output) => match serde_json::from_str(&output) {
                                Ok(output) => Input::TaskSucceeded { task, output },
                                Err(e) => {
                                    let _ = reply.send(Err(Error::InvalidInput(format!(
                                        "the output is not valid JSON: {e}"
                                    ))));
                                    continue;
                                }
                            },
                            Callback::Failure { error, cause } => {
                                Input::TaskFailed { task, error, cause }
                            }
                            Callback::Heartbeat => Input::TaskHeartbeat { task },
                        };
                        (input, Some(Reply::Callback(reply)))
                    }
                };
                if *self.exe.status() != Status::Running {
                    if let Some(reply) = reply {
                        reply.send(Ok(()));
                    }
                    continue;
                }
                match &input {
                    Input::TaskSucceeded { task, .. }
                    | Input::TaskFailed { task, .. }
                    | Input::TaskTimedOut { task } => {
                        self.tasks.remove(task);
                    }
                    Input::TimerFired { timer } => {
                        self.timers.remove(timer);
                    }
                    Input::TaskHeartbeat { .. } | Input::Stop { .. } => {}
                }
                let before = self.exe.history().len();
                let text = (!self.express)
                    .then(|| serde_json::to_string(&input).expect("an input serializes"));
                actions.extend(self.exe.apply(now, input));
                self.steps += 1;
                if let Some(text) = text {
                    tx.push(Op::Step {
                        execution: self.arn.clone(),
                        step: StepRecord {
                            seq: self.steps,
                            at_ms: now,
                            input: text,
                        },
                        history: history_records(self.exe.history(), before),
                        end: end_of(&self.exe, now),
                    });
                }
                replies.extend(reply);
            }
            if self.reset_resumes && !tx.is_empty() {
                tx.push(Op::SetResumes {
                    execution: self.arn.clone(),
                    resumes: 0,
                });
                self.reset_resumes = false;
            }
            if !tx.is_empty()
                && let Err(e) = inner.store.commit(tx).await
            {
                tracing::error!(
                    "execution {}: a step could not be committed ({e}); reloading it from the store",
                    self.arn
                );
                for reply in replies {
                    reply.send(Err(e.clone().into()));
                }
                self.reload(&inner, messages).await;
                return;
            }
            for reply in replies {
                reply.send(Ok(()));
            }
            if *self.exe.status() != Status::Running {
                self.finish(&inner);
                return;
            }
            self.act(&inner, actions);
        }
        self.cancel_all();
    }

    /// A commit failed: the execution in memory is ahead of the store. Rebuild it from the
    /// store (its pending tasks are dispatched again) and go on with the messages waiting.
    async fn reload(mut self, inner: &Arc<Inner>, messages: mpsc::UnboundedReceiver<Msg>) {
        self.cancel_all();
        inner.live.lock().expect("lock").remove(&self.arn);
        let record = match inner.store.execution(&self.arn).await {
            Ok(Some(record)) => record,
            other => {
                tracing::error!(
                    "execution {} cannot be reloaded ({other:?}); it resumes when muon restarts",
                    self.arn
                );
                return;
            }
        };
        drop(messages);
        // Task results that were waiting are lost with the channel; the reloaded execution
        // dispatches its pending tasks again.
        let mut wait = Duration::from_millis(100);
        loop {
            match Inner::resume_one(inner, &record, false).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::error!("execution {}: reload failed ({e}); retrying", self.arn);
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    fn cancel_all(&mut self) {
        for (_, h) in self.tasks.drain() {
            h.abort();
        }
        for (_, h) in self.timers.drain() {
            h.abort();
        }
    }

    /// The execution ended: tell who waits, and forget it.
    fn finish(mut self, inner: &Arc<Inner>) {
        self.cancel_all();
        let live = inner.live.lock().expect("lock").remove(&self.arn);
        let end = end_of(&self.exe, now_ms());
        let info = self.exe.info();
        let (start_ms, input) = match &live {
            Some(l) => (l.start_ms, l.input.to_string()),
            None => (0, String::new()),
        };
        let description = Arc::new(Description {
            arn: self.arn.clone(),
            machine_arn: info.state_machine_arn.clone(),
            machine: info.state_machine_name.clone(),
            name: info.name.clone(),
            kind: if self.express {
                Kind::Express
            } else {
                Kind::Standard
            },
            status: self.exe.status().as_str().to_owned(),
            start_ms,
            stop_ms: end.as_ref().map(|e| e.stop_ms),
            input,
            output: end.as_ref().and_then(|e| e.output.clone()),
            error: end.as_ref().and_then(|e| e.error.clone()),
            cause: end.as_ref().and_then(|e| e.cause.clone()),
        });
        if self.express {
            let mut recent = inner.recent.lock().expect("lock");
            if recent.len() >= crate::RECENT_EXPRESS {
                recent.pop_front();
            }
            let done = self.done.clone();
            recent.push_back(Arc::new(Recent {
                description: description.clone(),
                // Kept as it is: its history is turned into JSON only if someone asks.
                execution: self.exe,
            }));
            drop(recent);
            let _ = done.send(Some(description));
            return;
        }
        let _ = self.done.send(Some(description));
    }

    /// Carry out the interpreter's actions.
    fn act(&mut self, inner: &Arc<Inner>, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Invoke(invocation) => {
                    let task = invocation.task;
                    let inbox = self.inbox.clone();
                    let flows = crate::Flows {
                        inner: inner.clone(),
                    };
                    let handle = tokio::spawn(async move {
                        if let Some(input) = crate::task::run(&flows, &invocation).await {
                            let _ = inbox.send(Msg::Input(input));
                        }
                    });
                    self.tasks.insert(task, handle.abort_handle());
                }
                Action::CancelTask { task } => {
                    if let Some(h) = self.tasks.remove(&task) {
                        h.abort();
                    }
                }
                Action::StartTimer { timer, at } => {
                    let inbox = self.inbox.clone();
                    let wait = Duration::from_millis((at - now_ms()).max(0) as u64);
                    let handle = tokio::spawn(async move {
                        tokio::time::sleep(wait).await;
                        let _ = inbox.send(Msg::Input(Input::TimerFired { timer }));
                    });
                    self.timers.insert(timer, handle.abort_handle());
                }
                Action::CancelTimer { timer } => {
                    if let Some(h) = self.timers.remove(&timer) {
                        h.abort();
                    }
                }
                Action::Succeed { .. }
                | Action::Fail { .. }
                | Action::TimedOut
                | Action::Aborted => {}
            }
        }
    }
}
