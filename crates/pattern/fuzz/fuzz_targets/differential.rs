//! Differential fuzz target: the compiled multi-rule matcher (`RuleSet`) must answer exactly
//! what the naive reference matcher (`Pattern::matches`) answers, and no input may panic.
//!
//! Input: UTF-8 text. Every line before the first empty line is a pattern (invalid ones are
//! skipped, after checking that parsing them does not panic); the rest is the event.

#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use muon_pattern::{Event, Pattern, RuleSet};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (patterns, event) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut set = RuleSet::new();
    let mut valid = Vec::new();
    for (i, line) in patterns.lines().enumerate().take(64) {
        if let Ok(p) = Pattern::parse(line) {
            set.add(i, &p);
            valid.push((i, p));
        }
    }
    let Ok(event) = Event::parse(event) else {
        return;
    };
    let naive: BTreeSet<usize> = valid
        .iter()
        .filter(|(_, p)| p.matches(&event))
        .map(|(i, _)| *i)
        .collect();
    let compiled: BTreeSet<usize> = set.matches(&event).into_iter().collect();
    assert_eq!(compiled, naive, "RuleSet and the reference matcher disagree");
    // Removing every rule leaves a set that matches nothing.
    for (i, _) in &valid {
        set.remove(i);
    }
    assert!(set.matches(&event).is_empty());
});
