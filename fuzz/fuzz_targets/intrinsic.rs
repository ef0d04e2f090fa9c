//! Intrinsic functions (`States.Format(...)` and the rest): any text parses or is refused
//! without panicking, and a parsed call evaluates (or fails) within the payload limit.

#![no_main]

use libfuzzer_sys::fuzz_target;
use muon_asl::{Call, Rng, Scope};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(call) = Call::parse(text) else {
        return;
    };
    let input = serde_json::json!({
        "a": [1, 2, 2, 3, {"x": 1}, {"x": 1}],
        "s": "a,b,,c",
        "big": "y".repeat(100_000),
        "n": 9007199254740993i64,
        "o": {"k": 1}
    });
    let context = serde_json::json!({"StateMachine": {"Name": "m"}, "Execution": {"Id": "e"}});
    let mut rng = Rng::new(3);
    let mut scope = Scope::new(&input, &context, None, &mut rng);
    if let Ok(v) = call.eval(&mut scope) {
        let size = v.to_string().len();
        assert!(size <= 2 * muon_asl::MAX_PAYLOAD_BYTES, "{size} bytes built");
    }
});
