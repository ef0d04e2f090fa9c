//! The interpreter driven by hand: actions, time, retries, catch, limits,
//! and persisting an execution half way.

use muon_asl::{
    Action, Definition, EventType, Execution, ExecutionInfo, Input, Invocation, Rng, Status,
    TaskId, retry_delay_millis,
};
use serde_json::{Value, json};
use std::sync::Arc;

const T0: i64 = 1_700_000_000_000;
const LAMBDA: &str = "arn:aws:lambda:us-east-1:111111111111:function:f";

fn info(seed: u64) -> ExecutionInfo {
    ExecutionInfo {
        execution_arn: "arn:aws:states:us-east-1:111111111111:execution:sm:exe".into(),
        name: "exe".into(),
        state_machine_arn: "arn:aws:states:us-east-1:111111111111:stateMachine:sm".into(),
        state_machine_name: "sm".into(),
        role_arn: "arn:aws:iam::111111111111:role/r".into(),
        region: "us-east-1".into(),
        redrive_count: 0,
        seed,
        token_secret: u128::from(seed) << 64 | 1,
        max_duration_ms: None,
    }
}

fn start(def: Value, input: Value, seed: u64) -> (Execution, Vec<Action>) {
    let def = Definition::from_value(def).expect("a valid definition");
    Execution::start(Arc::new(def), info(seed), input, T0)
}

fn invocations(actions: &[Action]) -> Vec<Invocation> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Invoke(i) => Some(i.clone()),
            _ => None,
        })
        .collect()
}

fn timers(actions: &[Action]) -> Vec<(muon_asl::TimerId, i64)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StartTimer { timer, at } => Some((*timer, *at)),
            _ => None,
        })
        .collect()
}

fn types(exe: &Execution) -> Vec<&'static str> {
    exe.history()
        .iter()
        .map(|e| e.event_type.as_str())
        .collect()
}

fn task_def(extra: Value) -> Value {
    let mut task = json!({"Type": "Task", "Resource": LAMBDA, "End": true});
    for (k, v) in extra.as_object().unwrap() {
        task[k] = v.clone();
    }
    json!({"StartAt": "T", "States": {"T": task, "Caught": {"Type": "Pass", "End": true}}})
}

fn fail(task: TaskId, error: &str) -> Input {
    Input::TaskFailed {
        task,
        error: Some(error.into()),
        cause: Some("boom".into()),
    }
}

#[test]
fn a_task_is_invoked_and_its_result_flows_through_the_pipeline() {
    let def = task_def(json!({
        "InputPath": "$.in",
        "Parameters": {"x.$": "$.v", "c": 1},
        "ResultSelector": {"r.$": "$.out"},
        "ResultPath": "$.res",
        "OutputPath": "$.res"
    }));
    let (mut exe, actions) = start(def, json!({"in": {"v": 7}}), 1);
    let inv = invocations(&actions);
    assert_eq!(inv.len(), 1);
    assert_eq!(inv[0].input, json!({"x": 7, "c": 1}));
    assert_eq!(inv[0].attempt, 0);
    let actions = exe.apply(
        T0 + 5,
        Input::TaskSucceeded {
            task: inv[0].task,
            output: json!({"out": "done"}),
        },
    );
    assert_eq!(
        actions,
        [Action::Succeed {
            output: json!({"r": "done"})
        }]
    );
    assert_eq!(
        types(&exe),
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "LambdaFunctionScheduled",
            "LambdaFunctionStarted",
            "LambdaFunctionSucceeded",
            "TaskStateExited",
            "ExecutionSucceeded"
        ]
    );
    let last = exe.history().last().unwrap().to_aws_json();
    assert_eq!(
        last["executionSucceededEventDetails"]["output"],
        json!("{\"r\":\"done\"}")
    );
}

#[test]
fn retry_backoff_uses_the_injected_seed_and_counts_per_retrier() {
    let retry = json!([
        {"ErrorEquals": ["A"], "IntervalSeconds": 2, "MaxAttempts": 1},
        {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 3, "BackoffRate": 2.0,
         "MaxDelaySeconds": 5, "JitterStrategy": "FULL", "MaxAttempts": 3}
    ]);
    let def = task_def(json!({"Retry": retry}));
    let parsed = Definition::from_value(def.clone()).unwrap();
    let retriers = match &parsed.machine(parsed.root()).states[0].kind {
        muon_asl::Kind::Task { work, .. } => work.retry.clone(),
        _ => unreachable!(),
    };
    let (mut exe, actions) = start(def, json!({}), 42);
    let mut rng = Rng::new(42);
    let mut task = invocations(&actions)[0].task;
    let mut now = T0;
    // Two failures of B: jittered delays from the seed, capped at 5 s.
    for attempt in 1..=2 {
        let actions = exe.apply(now, fail(task, "B"));
        let (timer, at) = timers(&actions)[0];
        let want = retry_delay_millis(&retriers[1], attempt, &mut rng);
        assert!(want <= 5000);
        assert_eq!(at - now, want as i64);
        now = at;
        let actions = exe.apply(now, Input::TimerFired { timer });
        let inv = invocations(&actions);
        assert_eq!(inv[0].attempt, attempt);
        task = inv[0].task;
    }
    // A has its own counter: one retry after 2 s, no jitter.
    let actions = exe.apply(now, fail(task, "A"));
    let (timer, at) = timers(&actions)[0];
    assert_eq!(at - now, 2000);
    let actions = exe.apply(at, Input::TimerFired { timer });
    task = invocations(&actions)[0].task;
    // A again: its retrier is spent, so the execution fails.
    let actions = exe.apply(at, fail(task, "A"));
    assert!(matches!(actions.last(), Some(Action::Fail { error: Some(e), .. }) if e == "A"));
    assert_eq!(exe.status().as_str(), "FAILED");
}

#[test]
fn max_attempts_zero_never_retries() {
    let def = task_def(json!({"Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 0}]}));
    let (mut exe, actions) = start(def, json!({}), 1);
    let task = invocations(&actions)[0].task;
    exe.apply(T0, fail(task, "X"));
    assert_eq!(exe.status().as_str(), "FAILED");
}

#[test]
fn catch_puts_the_error_at_its_result_path() {
    let def = task_def(json!({
        "Catch": [{"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.err", "Next": "Caught"}]
    }));
    let (mut exe, actions) = start(def, json!({"a": 1}), 1);
    let task = invocations(&actions)[0].task;
    let actions = exe.apply(T0, fail(task, "Oops"));
    assert_eq!(
        actions.last(),
        Some(&Action::Succeed {
            output: json!({"a": 1, "err": {"Error": "Oops", "Cause": "boom"}})
        })
    );
}

#[test]
fn runtime_errors_are_not_caught() {
    let def = task_def(json!({
        "OutputPath": "$.missing",
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]
    }));
    let (mut exe, actions) = start(def, json!({}), 1);
    let task = invocations(&actions)[0].task;
    exe.apply(
        T0,
        Input::TaskSucceeded {
            task,
            output: json!({}),
        },
    );
    match exe.status() {
        Status::Failed { error, cause } => {
            assert_eq!(error.as_deref(), Some("States.Runtime"));
            assert!(
                cause
                    .as_deref()
                    .unwrap()
                    .contains("(entered at the event id #2)")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_oversized_result_is_a_data_limit_error() {
    let def = task_def(json!({
        "Catch": [{"ErrorEquals": ["States.DataLimitExceeded"], "Next": "Caught"}]
    }));
    let (mut exe, actions) = start(def, json!({}), 1);
    let task = invocations(&actions)[0].task;
    let big = "x".repeat(muon_asl::MAX_PAYLOAD_BYTES + 1);
    let actions = exe.apply(
        T0,
        Input::TaskSucceeded {
            task,
            output: json!(big),
        },
    );
    match actions.last() {
        Some(Action::Succeed { output }) => assert_eq!(output["Error"], "States.DataLimitExceeded"),
        other => panic!("{other:?}"),
    }
    assert!(types(&exe).contains(&"LambdaFunctionFailed"));
}

#[test]
fn the_history_is_capped() {
    let def = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Next": "B"},
        "B": {"Type": "Pass", "Next": "A"}
    }});
    let (exe, actions) = start(def, json!({}), 1);
    assert_eq!(exe.history().len(), muon_asl::MAX_HISTORY_EVENTS);
    let last = exe.history().last().unwrap();
    assert_eq!(last.event_type, EventType::ExecutionFailed);
    assert!(
        matches!(actions.last(), Some(Action::Fail { error: Some(e), .. }) if e == "States.Runtime")
    );
}

#[test]
fn wait_and_task_timeouts_use_timers() {
    let def = json!({"StartAt": "W", "States": {
        "W": {"Type": "Wait", "Seconds": 10, "Next": "T"},
        "T": {"Type": "Task", "Resource": LAMBDA, "TimeoutSeconds": 3, "End": true}
    }});
    let (mut exe, actions) = start(def, json!({}), 1);
    let (timer, at) = timers(&actions)[0];
    assert_eq!(at, T0 + 10_000);
    let actions = exe.apply(at, Input::TimerFired { timer });
    let inv = invocations(&actions);
    assert_eq!(inv[0].timeout_seconds, Some(3));
    let (timeout, when) = timers(&actions)[0];
    assert_eq!(when, at + 3000);
    let actions = exe.apply(when, Input::TimerFired { timer: timeout });
    assert!(actions.contains(&Action::CancelTask { task: inv[0].task }));
    assert_eq!(
        exe.status(),
        &Status::Failed {
            error: Some("States.Timeout".into()),
            cause: None
        }
    );
    // A late result changes nothing.
    assert!(
        exe.apply(
            when,
            Input::TaskSucceeded {
                task: inv[0].task,
                output: json!(1)
            }
        )
        .is_empty()
    );
}

#[test]
fn parallel_branches_and_map_iterations_have_their_own_tasks() {
    let def = json!({"StartAt": "P", "States": {
        "P": {"Type": "Parallel", "Next": "M", "Branches": [
            {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": LAMBDA, "End": true}}},
            {"StartAt": "B", "States": {"B": {"Type": "Task", "Resource": LAMBDA, "End": true}}}
        ]},
        "M": {"Type": "Map", "MaxConcurrency": 2, "ItemsPath": "$[0]", "End": true,
              "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Task", "Resource": LAMBDA, "End": true}}}}
    }});
    let (mut exe, actions) = start(def, json!({}), 1);
    let inv = invocations(&actions);
    assert_eq!(inv.len(), 2);
    assert_ne!(inv[0].task, inv[1].task);
    assert_ne!(inv[0].idempotency_key, inv[1].idempotency_key);
    // Answer out of order: the output keeps branch order.
    assert!(
        exe.apply(
            T0,
            Input::TaskSucceeded {
                task: inv[1].task,
                output: json!("b")
            }
        )
        .is_empty()
    );
    let actions = exe.apply(
        T0,
        Input::TaskSucceeded {
            task: inv[0].task,
            output: json!([1, 2, 3]),
        },
    );
    // The Map runs at most two iterations at a time.
    let inv = invocations(&actions);
    assert_eq!(
        inv.iter().map(|i| i.input.clone()).collect::<Vec<_>>(),
        [json!(1), json!(2)]
    );
    let actions = exe.apply(
        T0,
        Input::TaskSucceeded {
            task: inv[1].task,
            output: json!(20),
        },
    );
    let third = invocations(&actions);
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].input, json!(3));
    exe.apply(
        T0,
        Input::TaskSucceeded {
            task: inv[0].task,
            output: json!(10),
        },
    );
    let actions = exe.apply(
        T0,
        Input::TaskSucceeded {
            task: third[0].task,
            output: json!(30),
        },
    );
    assert_eq!(
        actions.last(),
        Some(&Action::Succeed {
            output: json!([10, 20, 30])
        })
    );
}

#[test]
fn a_persisted_execution_resumes_where_it_was() {
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": LAMBDA, "Next": "U",
              "Retry": [{"ErrorEquals": ["States.ALL"], "JitterStrategy": "FULL"}]},
        "U": {"Type": "Pass", "Parameters": {"id.$": "States.UUID()", "r.$": "$"}, "End": true}
    }});
    let run = |persist: bool| {
        let (mut exe, actions) = start(def.clone(), json!({"k": 1}), 9);
        let task = invocations(&actions)[0].task;
        let actions = exe.apply(T0 + 1, fail(task, "X"));
        let (timer, at) = timers(&actions)[0];
        if persist {
            let saved = serde_json::to_string(&exe).unwrap();
            exe = serde_json::from_str(&saved).unwrap();
        }
        let actions = exe.apply(at, Input::TimerFired { timer });
        let task = invocations(&actions)[0].task;
        let actions = exe.apply(
            at + 1,
            Input::TaskSucceeded {
                task,
                output: json!("ok"),
            },
        );
        (actions, exe.history().to_vec())
    };
    let (a, ha) = run(false);
    let (b, hb) = run(true);
    assert_eq!(a, b);
    assert_eq!(ha, hb);
    assert!(matches!(a.last(), Some(Action::Succeed { .. })));
}

#[test]
fn replaying_the_inputs_rebuilds_the_execution_and_what_it_waits_for() {
    let def = json!({"StartAt": "P", "States": {
        "P": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": LAMBDA, "End": true}}},
            {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": true}}}
        ]}
    }});
    let (mut exe, actions) = start(def.clone(), json!({}), 3);
    let task = invocations(&actions)[0].task;
    let inputs = vec![(
        T0 + 10,
        Input::TaskSucceeded {
            task,
            output: json!("a"),
        },
    )];
    for (now, input) in inputs.clone() {
        exe.apply(now, input);
    }
    let parsed = Arc::new(Definition::from_value(def).unwrap());
    let replayed = Execution::replay(parsed, info(3), json!({}), T0, inputs);
    assert_eq!(replayed.history(), exe.history());
    assert_eq!(replayed.pending_tasks().count(), 0);
    let timers: Vec<_> = replayed.pending_timers().collect();
    assert_eq!(timers.len(), 1);
    assert_eq!(timers[0].1, T0 + 60_000);
    let mut replayed = replayed;
    let actions = replayed.apply(timers[0].1, Input::TimerFired { timer: timers[0].0 });
    assert_eq!(
        actions.last(),
        Some(&Action::Succeed {
            output: json!(["a", {}])
        })
    );
}

#[test]
fn wait_for_task_token_puts_the_token_in_the_context() {
    let def = json!({"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"token.$": "$$.Task.Token"}, "End": true
    }}});
    let (exe, actions) = start(def, json!({}), 1);
    let inv = &invocations(&actions)[0];
    assert_eq!(inv.input["token"].as_str(), inv.task_token.as_deref());
    assert!(inv.task_token.is_some());
    assert_eq!(exe.pending_tasks().count(), 1);
    assert_eq!(
        exe.task_for_token(inv.task_token.as_deref().unwrap()),
        Some(inv.task)
    );
    assert_eq!(exe.task_for_token("nope"), None);
    let scheduled = exe.history()[2].to_aws_json();
    assert_eq!(
        scheduled["taskScheduledEventDetails"]["resourceType"],
        "sqs"
    );
    assert_eq!(
        scheduled["taskScheduledEventDetails"]["resource"],
        "sendMessage.waitForTaskToken"
    );
}

/// Found by the `asl` fuzz target: a Pass state that loops to itself, wrapping its input once
/// more each time, grew it until serializing it took seconds (and could overflow the stack).
/// Past 128 levels of nesting the state fails instead.
#[test]
fn a_loop_that_nests_its_input_deeper_each_time_fails_at_the_nesting_bound() {
    let (exe, _) = start(
        json!({"StartAt": "Wrap", "States": {"Wrap": {"Type": "Pass",
            "Parameters": {"Arg1": "argument1", "FromInput.$": "$"}, "Next": "Wrap"}}}),
        json!({}),
        1,
    );
    assert_eq!(exe.status().as_str(), "FAILED");
    match exe.status() {
        muon_asl::Status::Failed { error, cause } => {
            assert_eq!(error.as_deref(), Some("States.DataLimitExceeded"));
            assert!(cause.as_deref().unwrap().contains("nesting"), "{cause:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(exe.history().len() < 2 * muon_asl::MAX_DEPTH + 10);
}

/// A loop over a large payload would hold gigabytes of history (25,000 events of up to 256 KB):
/// it stops at 64 MiB of history instead, failing as the event limit fails.
#[test]
fn a_loop_over_a_large_payload_stops_at_the_history_bytes_bound() {
    let (exe, _) = start(
        json!({"StartAt": "Spin", "States": {"Spin": {"Type": "Pass", "Next": "Spin"}}}),
        json!({ "pad": "x".repeat(200_000) }),
        1,
    );
    match exe.status() {
        muon_asl::Status::Failed { error, cause } => {
            assert_eq!(error.as_deref(), Some("States.Runtime"));
            assert!(
                cause.as_deref().unwrap().contains("history bytes"),
                "{cause:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(exe.history().len() < 1000, "{} events", exe.history().len());
}

/// A Wait past one year: the execution times out at one year, as Step Functions ends a
/// Standard execution, rather than being stopped at once.
#[test]
fn a_wait_past_one_year_times_out_at_one_year() {
    let def = Definition::from_value(json!({"StartAt": "W", "States": {
        "W": {"Type": "Wait", "Seconds": 40_000_000, "Next": "D"},
        "D": {"Type": "Pass", "End": true}}}))
    .unwrap();
    let info = ExecutionInfo {
        max_duration_ms: Some(muon_asl::MAX_STANDARD_DURATION_MS),
        ..info(1)
    };
    let (mut exe, actions) = Execution::start(Arc::new(def), info, json!({}), T0);
    let timers: Vec<(muon_asl::TimerId, i64)> = actions
        .iter()
        .filter_map(|a| match a {
            Action::StartTimer { timer, at } => Some((*timer, *at)),
            _ => None,
        })
        .collect();
    let (first, at) = *timers.iter().min_by_key(|(_, at)| *at).unwrap();
    assert_eq!(at, T0 + muon_asl::MAX_STANDARD_DURATION_MS);
    exe.apply(at, Input::TimerFired { timer: first });
    assert_eq!(exe.status().as_str(), "TIMED_OUT");
}
