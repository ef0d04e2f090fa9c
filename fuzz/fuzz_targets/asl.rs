//! Amazon States Language: any text is validated without panicking; a valid definition runs on
//! an empty input, its Pass/Choice/intrinsic work bounded (every task answered with its input,
//! every timer fired), for a bounded number of steps.

#![no_main]

use libfuzzer_sys::fuzz_target;
use muon_asl::{Action, Definition, Execution, ExecutionInfo, Input};
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(definition) = Definition::parse(text) else {
        return;
    };
    let info = ExecutionInfo {
        execution_arn: "arn:aws:states:us-east-1:0:execution:f:e".into(),
        name: "e".into(),
        state_machine_arn: "arn:aws:states:us-east-1:0:stateMachine:f".into(),
        state_machine_name: "f".into(),
        role_arn: "arn:aws:iam::0:role/r".into(),
        region: "us-east-1".into(),
        redrive_count: 0,
        seed: 7,
        token_secret: 1,
        max_duration_ms: Some(muon_asl::MAX_STANDARD_DURATION_MS),
    };
    let input = serde_json::json!({"a": [1, 2, 3], "s": "x,y", "o": {"k": true}});
    let (mut exe, mut actions) = Execution::start(Arc::new(definition), info, input, 0);
    let mut now = 0;
    for _ in 0..200 {
        let Some(action) = actions.pop() else { break };
        let next = match action {
            Action::Invoke(invocation) => Input::TaskSucceeded {
                task: invocation.task,
                output: invocation.input.clone(),
            },
            Action::StartTimer { timer, at } => {
                now = now.max(at);
                Input::TimerFired { timer }
            }
            _ => continue,
        };
        actions.extend(exe.apply(now, next));
    }
});
