//! EventBridge schedule expressions (`cron(...)`, `rate(...)`, `at(...)`) with an optional time
//! zone: any text parses or is refused without panicking, and a parsed schedule's next firings
//! are computed without panicking or looping.

#![no_main]

use libfuzzer_sys::fuzz_target;
use muon_schedule::Schedule;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (expression, zone) = match text.split_once('\n') {
        Some((e, z)) => (e, Some(z)),
        None => (text, None),
    };
    let Ok(schedule) = Schedule::parse(expression, zone) else {
        return;
    };
    let start = chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("a valid time");
    let _ = schedule.upcoming(start, 5);
});
