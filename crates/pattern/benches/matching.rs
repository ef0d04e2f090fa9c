//! Matching throughput of a bus's rules on ~1 KB events: 10, 1,000 and 10,000 exact/prefix rules,
//! and the reference matcher over the same rules for comparison.
//!
//! `cargo bench -p muon-pattern` — criterion reports time per event; events/s = 1 / that.

use std::hint::black_box;

// The allocator the `muon` binary runs with (parsing an event allocates per leaf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use muon_pattern::{Event, Pattern, RuleSet};

/// A ~1 KB order event, different for each `i`.
fn event(i: usize) -> String {
    format!(
        r#"{{"version":"0","id":"6a7e8feb-b491-4cf7-a9f1-bf3703467718","detail-type":"OrderPlaced","source":"shop.orders.{}","account":"123456789012","time":"2026-11-26T10:00:00Z","region":"eu-west-1","resources":["arn:aws:shop:eu-west-1:123456789012:order/{i}"],"detail":{{"order":{{"id":"ord-{i}","total":{},"currency":"EUR","items":[{{"sku":"sku-{}","qty":2,"price":19.99}},{{"sku":"sku-{}","qty":1,"price":5.5}}]}},"customer":{{"id":"cus-{}","tier":"{}","country":"{}","email":"customer{i}@example.com"}},"shipping":{{"method":"express","address":{{"city":"Paris","zip":"750{:02}","street":"1 rue de Rivoli"}}}},"notes":"leave at the door, ring twice, thank you very much for the quick delivery"}}}}"#,
        i % 50,
        (i * 37) % 1000,
        i % 97,
        i % 89,
        i % 1000,
        ["gold", "silver", "bronze"][i % 3],
        ["FR", "DE", "IT", "ES"][i % 4],
        i % 20,
    )
}

/// Rule `r`: an exact match on the source, a prefix on a SKU, or two exact fields. Only rules 0-2
/// can match the events, so every rule-set size has the same matches and the figure shows what
/// the other rules cost. (Rules that share a value, like many rules on one `source`, are counted
/// one by one by `RuleSet` today; see its docs.)
fn rule(r: usize) -> Pattern {
    let key = if r < 3 {
        "7".to_string()
    } else {
        format!("x{r}")
    };
    let text = match r % 3 {
        0 => format!(r#"{{"source":["shop.orders.{key}"]}}"#),
        1 => {
            format!(r#"{{"detail":{{"order":{{"items":{{"sku":[{{"prefix":"sku-{key}"}}]}}}}}}}}"#)
        }
        _ => format!(
            r#"{{"source":["shop.orders.{key}"],"detail":{{"customer":{{"id":["cus-{key}"]}}}}}}"#
        ),
    };
    Pattern::parse(&text).expect("benchmark rules are valid")
}

fn matching(c: &mut Criterion) {
    let events: Vec<Event> = (0..256)
        .map(|i| Event::parse(&event(i)).expect("benchmark events are valid"))
        .collect();
    let mut group = c.benchmark_group("match");
    group.throughput(Throughput::Elements(1));
    for rules in [10usize, 1_000, 10_000] {
        let patterns: Vec<Pattern> = (0..rules).map(rule).collect();
        let mut set = RuleSet::new();
        for (i, p) in patterns.iter().enumerate() {
            set.add(i, p);
        }
        let mut n = 0usize;
        group.bench_with_input(BenchmarkId::new("ruleset", rules), &rules, |b, _| {
            b.iter(|| {
                n = (n + 1) % events.len();
                black_box(set.matches(&events[n]))
            })
        });
        if rules <= 1_000 {
            group.bench_with_input(BenchmarkId::new("reference", rules), &rules, |b, _| {
                b.iter(|| {
                    n = (n + 1) % events.len();
                    black_box(patterns.iter().filter(|p| p.matches(&events[n])).count())
                })
            });
        }
    }
    group.finish();

    let text = event(7);
    c.bench_function("parse 1 KB event", |b| {
        b.iter(|| black_box(Event::parse(black_box(&text)).expect("valid")))
    });

    // What a bus does per event: parse the text keeping only the fields its rules name, then
    // match. events/s per core = 1 / this time.
    let texts: Vec<String> = (0..256).map(event).collect();
    let mut group = c.benchmark_group("parse fields + match");
    group.throughput(Throughput::Elements(1));
    for rules in [10usize, 1_000, 10_000] {
        let mut set = RuleSet::new();
        for i in 0..rules {
            set.add(i, &rule(i));
        }
        let fields = set.fields();
        let mut n = 0usize;
        group.bench_with_input(BenchmarkId::new("ruleset", rules), &rules, |b, _| {
            b.iter(|| {
                n = (n + 1) % texts.len();
                let event = Event::parse_fields(&texts[n], &fields).expect("valid");
                black_box(set.matches(&event))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, matching);
criterion_main!(benches);
