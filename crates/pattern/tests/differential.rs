//! Differential test: [`RuleSet::matches`] must return exactly the ids whose
//! [`Pattern::matches`] is true, for random rule sets and events, and for
//! every pattern and event of the AWS conformance cases.

mod cases;

use std::collections::BTreeSet;

use muon_pattern::{Event, Pattern, RuleSet};

/// A tiny deterministic xorshift64* generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const KEYS: &[&str] = &["a", "b", "c"];
const NUMBERS: &[&str] = &[
    "0", "-0", "1", "1.0", "1e0", "2", "10", "-5", "2.5", "300", "3.0e2", "0.1",
];
const IPS: &[&str] = &["10.0.0.1", "10.0.0.7", "10.0.1.1", "192.168.0.1", "::1"];

fn quote(s: &str) -> String {
    format!("\"{s}\"")
}

/// A short string over a small alphabet (so that values collide often).
fn string(rng: &mut Rng) -> String {
    if rng.chance(10) {
        return rng.pick(IPS).to_string();
    }
    let len = rng.below(4);
    (0..len).map(|_| rng.pick(&["a", "b", "A", "."])).collect()
}

fn scalar(rng: &mut Rng) -> String {
    match rng.below(10) {
        0..=4 => quote(&string(rng)),
        5..=7 => rng.pick(NUMBERS).to_string(),
        8 => rng.pick(&["true", "false"]).to_string(),
        _ => "null".to_string(),
    }
}

fn event_value(rng: &mut Rng, depth: usize) -> String {
    match rng.below(if depth >= 3 { 6 } else { 10 }) {
        0..=5 => scalar(rng),
        6 | 7 => event_object(rng, depth + 1),
        8 => {
            // An array of objects.
            let n = rng.below(3) + 1;
            let items: Vec<String> = (0..n).map(|_| event_object(rng, depth + 1)).collect();
            format!("[{}]", items.join(","))
        }
        _ => {
            let n = rng.below(4);
            let items: Vec<String> = (0..n).map(|_| event_value(rng, depth + 1)).collect();
            format!("[{}]", items.join(","))
        }
    }
}

fn event_object(rng: &mut Rng, depth: usize) -> String {
    let n = rng.below(3) + 1;
    let members: Vec<String> = (0..n)
        .map(|_| format!("{}:{}", quote(rng.pick(KEYS)), event_value(rng, depth)))
        .collect();
    format!("{{{}}}", members.join(","))
}

fn matcher(rng: &mut Rng) -> String {
    let s = string(rng);
    match rng.below(24) {
        0..=4 => quote(&s),
        5 | 6 => rng.pick(NUMBERS).to_string(),
        7 => rng.pick(&["true", "false", "null"]).to_string(),
        8 | 9 => format!("{{\"prefix\":{}}}", quote(&s)),
        10 => format!("{{\"prefix\":{{\"equals-ignore-case\":{}}}}}", quote(&s)),
        11 => format!("{{\"suffix\":{}}}", quote(&s)),
        12 => format!("{{\"suffix\":{{\"equals-ignore-case\":{}}}}}", quote(&s)),
        13 => format!("{{\"equals-ignore-case\":{}}}", quote(&s)),
        14 => format!("{{\"exactly\":{}}}", quote(&s)),
        15 => {
            let w = rng.pick(&["*", "a*", "*a", "a*b", "*.*", "A*a", "b*"]);
            format!("{{\"wildcard\":{}}}", quote(w))
        }
        16 => {
            let inner = match rng.below(7) {
                0 => quote(&s),
                1 => format!("[{},{}]", quote(&s), quote(&string(rng))),
                2 => rng.pick(NUMBERS).to_string(),
                3 => format!("[{},{}]", rng.pick(NUMBERS), rng.pick(NUMBERS)),
                4 => format!("{{\"prefix\":{}}}", quote(rng.pick(&["a", "b", "A"]))),
                5 => format!("{{\"suffix\":{}}}", quote(rng.pick(&["a", "b", "."]))),
                _ => match rng.below(2) {
                    0 => format!("{{\"equals-ignore-case\":[{}]}}", quote(&s)),
                    _ => format!("{{\"wildcard\":{}}}", quote(rng.pick(&["a*", "*b"]))),
                },
            };
            format!("{{\"anything-but\":{inner}}}")
        }
        17 | 18 => {
            let n = rng.pick(NUMBERS);
            let range = match rng.below(4) {
                0 => format!("\"=\",{n}"),
                1 => format!("\"{}\",{n}", rng.pick(&["<", "<="])),
                2 => format!("\"{}\",{n}", rng.pick(&[">", ">="])),
                _ => format!(
                    "\"{}\",{n},\"{}\",{}",
                    rng.pick(&[">", ">="]),
                    rng.pick(&["<", "<="]),
                    rng.pick(NUMBERS)
                ),
            };
            format!("{{\"numeric\":[{range}]}}")
        }
        19 | 20 => format!("{{\"exists\":{}}}", rng.pick(&["true", "false"])),
        21 => {
            let c = rng.pick(&["10.0.0.0/24", "10.0.0.0/8", "192.168.0.0/16", "::0/120"]);
            format!("{{\"cidr\":{}}}", quote(c))
        }
        _ => quote(rng.pick(IPS)),
    }
}

fn pattern_object(rng: &mut Rng, depth: usize, inside_or: bool) -> String {
    let n = rng.below(3) + 1;
    let mut members = Vec::new();
    for _ in 0..n {
        if depth < 2 && !inside_or && rng.chance(15) {
            let branches = rng.below(2) + 2;
            let items: Vec<String> = (0..branches)
                .map(|_| pattern_object(rng, depth + 1, true))
                .collect();
            members.push(format!("\"$or\":[{}]", items.join(",")));
            continue;
        }
        let key = quote(rng.pick(KEYS));
        if depth < 3 && rng.chance(30) {
            members.push(format!(
                "{key}:{}",
                pattern_object(rng, depth + 1, inside_or)
            ));
        } else {
            let m = rng.below(3) + 1;
            let items: Vec<String> = (0..m).map(|_| matcher(rng)).collect();
            members.push(format!("{key}:[{}]", items.join(",")));
        }
    }
    format!("{{{}}}", members.join(","))
}

/// A valid random pattern (invalid draws, such as an empty numeric range,
/// are drawn again).
fn pattern(rng: &mut Rng) -> (String, Pattern) {
    loop {
        let text = pattern_object(rng, 0, false);
        if let Ok(p) = Pattern::parse(&text) {
            return (text, p);
        }
    }
}

fn naive(patterns: &[(usize, Pattern)], event: &Event) -> BTreeSet<usize> {
    patterns
        .iter()
        .filter(|(_, p)| p.matches(event))
        .map(|(id, _)| *id)
        .collect()
}

fn compiled(set: &RuleSet<usize>, event: &Event) -> BTreeSet<usize> {
    let got = set.matches(event);
    let unique: BTreeSet<usize> = got.iter().copied().collect();
    assert_eq!(unique.len(), got.len(), "an id was reported twice: {got:?}");
    unique
}

#[test]
fn random_rule_sets_agree_with_the_naive_matcher() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut pairs = 0;
    let mut matched = 0;
    for _round in 0..300 {
        let mut set = RuleSet::new();
        let mut live: Vec<(usize, Pattern)> = Vec::new();
        let mut texts: Vec<String> = Vec::new();
        let count = rng.below(25) + 1;
        for id in 0..count {
            let (text, p) = if id > 0 && rng.chance(10) {
                // The same pattern under another id.
                let (_, p) = &live[rng.below(live.len())];
                (String::from("(copy)"), p.clone())
            } else {
                pattern(&mut rng)
            };
            set.add(id, &p);
            live.push((id, p));
            texts.push(text);
        }
        // Remove and replace a few.
        for _ in 0..rng.below(4) {
            let id = rng.below(count);
            set.remove(&id);
            live.retain(|(i, _)| *i != id);
            if rng.chance(50) {
                let (text, p) = pattern(&mut rng);
                set.add(id, &p);
                live.push((id, p));
                texts[id] = text;
            }
        }
        assert_eq!(set.len(), live.len());
        for _ in 0..20 {
            let text = event_object(&mut rng, 0);
            let event = Event::parse(&text).expect("generated events are valid");
            let want = naive(&live, &event);
            let got = compiled(&set, &event);
            // Parsed with only the rule set's fields, the event matches the same rules.
            let fields = set.fields();
            let trimmed = Event::parse_fields(&text, &fields).expect("the same checks pass");
            assert_eq!(
                compiled(&set, &trimmed),
                got,
                "event {text}: its fields {fields:?} match otherwise than the whole event"
            );
            if got != want {
                let rules: Vec<String> = live
                    .iter()
                    .map(|(id, _)| format!("  {id}: {}", texts[*id]))
                    .collect();
                panic!(
                    "event {text}\nrule set says {got:?}, naive says {want:?}\nrules:\n{}",
                    rules.join("\n")
                );
            }
            pairs += 1;
            matched += want.len();
        }
    }
    println!("{pairs} (rule set, event) pairs, {matched} matches");
    assert!(
        matched > pairs / 2,
        "the generator rarely matches: {matched}"
    );
}

#[test]
fn many_exact_and_prefix_rules() {
    let mut rng = Rng(7);
    let mut set = RuleSet::new();
    let mut live = Vec::new();
    for id in 0..2000 {
        let text = match id % 3 {
            0 => format!("{{\"a\":[\"v{id}\"]}}"),
            1 => format!("{{\"a\":[{{\"prefix\":\"v{id}\"}}],\"b\":[{}]}}", id % 7),
            _ => format!("{{\"b\":[{id}]}}"),
        };
        let p = Pattern::parse(&text).unwrap();
        set.add(id, &p);
        live.push((id, p));
    }
    for _ in 0..200 {
        let text = format!(
            "{{\"a\":\"v{}\",\"b\":{}}}",
            rng.below(2100),
            rng.below(2100)
        );
        let event = Event::parse(&text).unwrap();
        assert_eq!(compiled(&set, &event), naive(&live, &event), "{text}");
    }
}

#[test]
fn conformance_patterns_and_events_agree() {
    let Some(files) = cases::files() else {
        return;
    };
    let mut patterns = Vec::new();
    let mut events = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read a case");
        let case: serde_json::Value = serde_json::from_str(&text).expect("a case is JSON");
        if let Some(Ok(p)) = case["pattern_text"].as_str().map(Pattern::parse) {
            patterns.push((patterns.len(), p));
        }
        if let Some(Ok(e)) = case["event_text"].as_str().map(Event::parse) {
            events.push(e);
        }
    }
    let mut set = RuleSet::new();
    for (id, p) in &patterns {
        set.add(*id, p);
    }
    let mut matched = 0;
    for event in &events {
        let want = naive(&patterns, event);
        assert_eq!(compiled(&set, event), want);
        matched += want.len();
    }
    println!(
        "{} patterns x {} events, {matched} matches",
        patterns.len(),
        events.len()
    );
    assert!(matched > 0);
}
