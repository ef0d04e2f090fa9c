//! Pattern compilation (validation) and the naive matcher.

use std::net::IpAddr;

use crate::Error;
use crate::event::{Event, Leaf, Scalar, consistent};
use crate::json::{self, Value};

/// Longest accepted pattern, in characters.
pub const MAX_PATTERN_CHARS: usize = 2048;
/// Most conjunctions a pattern's `$or`s may expand into.
pub const MAX_OR_COMBINATIONS: usize = 1000;
/// Most `*` states a single wildcard may keep alive at once.
///
/// An approximation of EventBridge's limit: event-ruler's
/// `MachineComplexityEvaluator` threshold is not published, and AWS accepts
/// `/Users/*/dir/dir/dir/dir/dir/doc.txt` but rejects `*:*:*:*:*:event-bus/*`.
const MAX_WILDCARD_COMPLEXITY: usize = 4;

/// A validated event pattern. Only [`Pattern::parse`] makes one.
///
/// Internally a pattern is a disjunction of conjunctions (`$or` expanded),
/// each a list of dotted field paths with their alternatives: the same shape a
/// compiled multi-rule matcher consumes.
#[derive(Debug, Clone)]
pub struct Pattern {
    rules: Vec<Rule>,
}

/// One conjunction: every field must match.
pub(crate) type Rule = Vec<(String, Vec<Matcher>)>;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Matcher {
    /// Exact match of a non-string scalar (numbers also compare by value).
    Exact(Scalar),
    /// Exact match of a string.
    ExactString(String),
    /// A string literal that is an IP address: matches the same address.
    ExactIp(IpAddr, String),
    Prefix(String),
    PrefixIgnoreCase(String),
    Suffix(String),
    SuffixIgnoreCase(String),
    EqualsIgnoreCase(String),
    Wildcard(Wildcard),
    AnythingBut(AnythingBut),
    Numeric {
        lower: Option<(f64, bool)>,
        upper: Option<(f64, bool)>,
    },
    Cidr {
        v6: bool,
        low: u128,
        high: u128,
    },
    Exists(bool),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AnythingBut {
    Strings(Vec<String>),
    Numbers(Vec<f64>),
    IgnoreCase(Vec<String>),
    Prefixes(Vec<String>),
    Suffixes(Vec<String>),
    Wildcards(Vec<Wildcard>),
}

/// A wildcard pattern: literal pieces separated by `*`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Wildcard {
    pieces: Vec<String>,
}

fn invalid<T>(reason: impl Into<String>) -> Result<T, Error> {
    Err(Error::InvalidPattern(reason.into()))
}

impl Pattern {
    /// Parses and validates an event pattern.
    pub fn parse(text: &str) -> Result<Pattern, Error> {
        if text.chars().count() > MAX_PATTERN_CHARS {
            return invalid(format!(
                "Event pattern exceeds the maximum length of {MAX_PATTERN_CHARS} characters"
            ));
        }
        let root = json::parse(text).map_err(Error::InvalidPattern)?;
        let Value::Object(members) = &root else {
            return invalid("Filter is not an object");
        };
        let mut rules: Vec<Rule> = Vec::new();
        parse_object(&mut rules, "", members, false)?;
        if rules.is_empty() {
            rules.push(Vec::new());
        }
        Ok(Pattern { rules })
    }

    /// Whether the event matches this pattern.
    pub fn matches(&self, event: &Event) -> bool {
        self.rules.iter().any(|rule| match_rule(rule, event))
    }

    /// The pattern's conjunctions (`$or` expanded); it matches an event when
    /// one of them does (see [`match_rule`]).
    pub(crate) fn alternatives(&self) -> &[Rule] {
        &self.rules
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

const RESERVED_IN_OR: [&str; 9] = [
    "exactly",
    "equals-ignore-case",
    "prefix",
    "suffix",
    "anything-but",
    "exists",
    "wildcard",
    "numeric",
    "cidr",
];

fn parse_object(
    rules: &mut Vec<Rule>,
    path: &str,
    members: &[(String, Value)],
    inside_or: bool,
) -> Result<(), Error> {
    if members.is_empty() {
        return invalid("Empty objects are not allowed");
    }
    for (name, value) in members {
        if name == "$or" {
            parse_or(rules, path, value)?;
            continue;
        }
        if inside_or && RESERVED_IN_OR.contains(&name.as_str()) {
            return invalid(format!(
                "{name} is Ruler reserved fieldName which cannot be used inside $or."
            ));
        }
        match value {
            Value::Object(inner) => parse_object(rules, &join(path, name), inner, inside_or)?,
            Value::Array(items) => {
                let matchers = parse_leaf(items)?;
                if rules.is_empty() {
                    rules.push(Vec::new());
                }
                let full = join(path, name);
                for rule in rules.iter_mut() {
                    // A repeated key: the last occurrence wins.
                    match rule.iter_mut().find(|(p, _)| *p == full) {
                        Some(slot) => slot.1 = matchers.clone(),
                        None => rule.push((full.clone(), matchers.clone())),
                    }
                }
            }
            _ => return invalid(format!("\"{name}\" must be an object or an array")),
        }
    }
    Ok(())
}

fn parse_or(rules: &mut Vec<Rule>, path: &str, value: &Value) -> Result<(), Error> {
    let Value::Array(branches) = value else {
        return invalid("It must be an Array followed with $or.");
    };
    let current = std::mem::take(rules);
    for branch in branches {
        let Value::Object(members) = branch else {
            return invalid("Only JSON object is allowed in array of $or relationship.");
        };
        let mut new_rules = current.clone();
        if new_rules.is_empty() {
            new_rules.push(Vec::new());
        }
        parse_object(&mut new_rules, path, members, true)?;
        rules.extend(new_rules);
        if rules.len() > MAX_OR_COMBINATIONS {
            return invalid(format!(
                "The $or relationships expand to more than {MAX_OR_COMBINATIONS} combinations"
            ));
        }
    }
    if branches.len() < 2 {
        return invalid("There must have at least 2 Objects in $or relationship.");
    }
    Ok(())
}

fn parse_leaf(items: &[Value]) -> Result<Vec<Matcher>, Error> {
    if items.is_empty() {
        return invalid("Empty arrays are not allowed");
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::Object(members) => out.push(parse_match_expression(members)?),
            Value::String(s) => out.push(match ip_literal(s) {
                Some(ip) => Matcher::ExactIp(ip, s.clone()),
                None => Matcher::ExactString(s.clone()),
            }),
            Value::Number(n) => out.push(Matcher::Exact(Scalar::Number(
                n.clone(),
                json::exact_f64(n),
            ))),
            Value::Null => out.push(Matcher::Exact(Scalar::Null)),
            Value::Bool(b) => out.push(Matcher::Exact(Scalar::Bool(*b))),
            Value::Array(_) => {
                return invalid("Match value must be String, number, true, false, or null");
            }
        }
    }
    Ok(out)
}

/// The single `{"op": value}` member of a match expression.
fn only_member(members: &[(String, Value)]) -> Result<(&str, &Value), Error> {
    let Some((name, value)) = members.first() else {
        return invalid("Match expression name not found");
    };
    Ok((name, value))
}

fn check_single(members: &[(String, Value)]) -> Result<(), Error> {
    if members.len() > 1 {
        return invalid("Only one key allowed in match expression");
    }
    Ok(())
}

fn string_value<'a>(value: &'a Value, what: &str) -> Result<&'a str, Error> {
    match value {
        Value::String(s) => Ok(s),
        _ => invalid(format!("{what} match pattern must be a string")),
    }
}

fn parse_match_expression(members: &[(String, Value)]) -> Result<Matcher, Error> {
    let (op, value) = only_member(members)?;
    let matcher = match op {
        "exactly" => Matcher::ExactString(string_value(value, "exact")?.to_string()),
        "prefix" | "suffix" => {
            let prefix = op == "prefix";
            if let Value::Object(inner) = value {
                let (inner_op, inner_value) = only_member(inner).map_err(|_| {
                    Error::InvalidPattern(if prefix {
                        "Prefix expression name not found".into()
                    } else {
                        "Suffix expression name not found".into()
                    })
                })?;
                if inner_op != "equals-ignore-case" {
                    return invalid(format!("Unsupported {op} pattern: {inner_op}"));
                }
                let s = string_value(inner_value, "equals-ignore-case")?.to_string();
                check_single(inner)?;
                check_single(members)?;
                return Ok(if prefix {
                    Matcher::PrefixIgnoreCase(s)
                } else {
                    Matcher::SuffixIgnoreCase(s)
                });
            }
            let s = string_value(value, op)?.to_string();
            if prefix {
                Matcher::Prefix(s)
            } else {
                Matcher::Suffix(s)
            }
        }
        "equals-ignore-case" => {
            Matcher::EqualsIgnoreCase(string_value(value, "equals-ignore-case")?.to_string())
        }
        "wildcard" => Matcher::Wildcard(parse_wildcard(string_value(value, "wildcard")?)?),
        "numeric" => {
            let Value::Array(items) = value else {
                return invalid("Value of numeric must be an array.");
            };
            let m = parse_numeric(items)?;
            if members.len() > 1 {
                return invalid("Too many elements in numeric expression");
            }
            return Ok(m);
        }
        "anything-but" => {
            let m = parse_anything_but(value)?;
            if members.len() > 1 {
                return invalid("Too many elements in numeric expression");
            }
            return Ok(m);
        }
        "exists" => match value {
            Value::Bool(b) => Matcher::Exists(*b),
            _ => return invalid("exists match pattern must be either true or false."),
        },
        // event-ruler reports a non-string CIDR with the prefix message.
        "cidr" => parse_cidr(string_value(value, "prefix")?)?,
        other => return invalid(format!("Unrecognized match type {other}")),
    };
    check_single(members)?;
    Ok(matcher)
}

fn parse_anything_but(value: &Value) -> Result<Matcher, Error> {
    const BAD_VALUE: &str = "Value of anything-but must be an array or single string/number value.";
    let (kind, value) = match value {
        Value::Object(inner) => {
            let Some((op, v)) = inner.first() else {
                return invalid("Anything-But expression name not found");
            };
            if !matches!(
                op.as_str(),
                "equals-ignore-case" | "prefix" | "suffix" | "wildcard"
            ) {
                return invalid(format!("Unsupported anything-but pattern: {op}"));
            }
            if inner.len() > 1 {
                return invalid("Too many elements in numeric expression");
            }
            (Some(op.as_str()), v)
        }
        v => (None, v),
    };
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        Value::String(_) | Value::Number(_) => vec![value],
        _ => return invalid(BAD_VALUE),
    };
    let single = !matches!(value, Value::Array(_));
    let Some(kind) = kind else {
        // Plain anything-but: strings or numbers, not mixed.
        let mut strings = Vec::new();
        let mut numbers = Vec::new();
        for item in items {
            match item {
                Value::String(s) => strings.push(s.clone()),
                Value::Number(n) => match json::exact_f64(n) {
                    Some(v) => numbers.push(v),
                    None => return invalid(format!("Cannot compare number : {n}")),
                },
                _ if single => {
                    return invalid(
                        "Inside anything-but list, start|null|boolean is not supported.",
                    );
                }
                _ => {
                    return invalid(
                        "Inside anything but list, start|null|boolean is not supported.",
                    );
                }
            }
        }
        if strings.is_empty() == numbers.is_empty() {
            return invalid(
                "Inside anything but list, either all values are number or string, mixed type is not supported",
            );
        }
        return Ok(Matcher::AnythingBut(if numbers.is_empty() {
            AnythingBut::Strings(strings)
        } else {
            AnythingBut::Numbers(numbers)
        }));
    };
    let mut strings = Vec::new();
    for item in items {
        match item {
            Value::String(s) => {
                if matches!(kind, "prefix" | "suffix") && s.is_empty() {
                    return invalid("Null prefix/suffix not allowed");
                }
                strings.push(s.clone());
            }
            _ => {
                return invalid(match kind {
                    "equals-ignore-case" => {
                        "Inside anything-but/equals-ignore-case list, number|start|null|boolean is not supported."
                    }
                    "wildcard" => "wildcard match pattern must be a string",
                    _ => "prefix/suffix match pattern must be a string",
                });
            }
        }
    }
    Ok(Matcher::AnythingBut(match kind {
        "equals-ignore-case" => AnythingBut::IgnoreCase(strings),
        "prefix" => AnythingBut::Prefixes(strings),
        "suffix" => AnythingBut::Suffixes(strings),
        _ => AnythingBut::Wildcards(
            strings
                .iter()
                .map(|s| parse_wildcard(s))
                .collect::<Result<_, _>>()?,
        ),
    }))
}

fn numeric_value(items: &[Value], at: usize, op: &str) -> Result<f64, Error> {
    match items.get(at) {
        Some(Value::Number(n)) => match json::exact_f64(n) {
            Some(v) => Ok(v),
            None => invalid(format!("Cannot compare number : {n}")),
        },
        _ => invalid(format!("Value of {op} must be numeric")),
    }
}

fn parse_numeric(items: &[Value]) -> Result<Matcher, Error> {
    let op = match items.first() {
        Some(Value::String(s)) => s.as_str(),
        Some(v) => {
            return invalid(format!(
                "Invalid member in numeric match: {}",
                v.token_text()
            ));
        }
        None => return invalid("Invalid member in numeric match: ]"),
    };
    let too_many = || invalid("Too many elements in numeric expression");
    match op {
        "=" => {
            let v = numeric_value(items, 1, "equals")?;
            if items.len() > 2 {
                return too_many();
            }
            Ok(Matcher::Numeric {
                lower: Some((v, true)),
                upper: Some((v, true)),
            })
        }
        "<" | "<=" => {
            let v = numeric_value(items, 1, op)?;
            if items.len() > 2 {
                return too_many();
            }
            Ok(Matcher::Numeric {
                lower: None,
                upper: Some((v, op == "<=")),
            })
        }
        ">" | ">=" => {
            let low = numeric_value(items, 1, op)?;
            let lower = Some((low, op == ">="));
            if items.len() == 2 {
                return Ok(Matcher::Numeric { lower, upper: None });
            }
            let top_op = match &items[2] {
                Value::String(s) => s.as_str(),
                v => return invalid(format!("Bad value in numeric range: {}", v.token_text())),
            };
            if top_op != "<" && top_op != "<=" {
                return invalid(format!("Bad numeric range operator: {top_op}"));
            }
            let high = numeric_value(items, 3, top_op)?;
            if items.len() > 4 {
                return invalid("Too many terms in numeric range expression");
            }
            if low >= high {
                return invalid("Bottom must be less than top");
            }
            Ok(Matcher::Numeric {
                lower,
                upper: Some((high, top_op == "<=")),
            })
        }
        other => invalid(format!("Unrecognized numeric range operator: {other}")),
    }
}

fn parse_wildcard(text: &str) -> Result<Wildcard, Error> {
    // Positions are byte offsets in the quoted value, as event-ruler reports them.
    let bytes = text.as_bytes();
    let mut pieces = vec![Vec::new()];
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'*' => {
                if bytes.get(i + 1) == Some(&b'*') {
                    return invalid(format!("Consecutive wildcard characters at pos {}", i + 1));
                }
                pieces.push(Vec::new());
            }
            b'\\' => match bytes.get(i + 1) {
                Some(&c @ (b'*' | b'\\')) => {
                    pieces.last_mut().expect("never empty").push(c);
                    i += 1;
                }
                _ => return invalid(format!("Invalid escape character at pos {}", i + 1)),
            },
            c => pieces.last_mut().expect("never empty").push(c),
        }
        i += 1;
    }
    let pieces: Vec<String> = pieces
        .into_iter()
        .map(|p| String::from_utf8(p).expect("split at ASCII bytes"))
        .collect();
    let wildcard = Wildcard { pieces };
    if wildcard_complexity(&wildcard) > MAX_WILDCARD_COMPLEXITY {
        return invalid(
            "Rule is too complex - try using fewer wildcard characters or fewer repeating character sequences after a wildcard character",
        );
    }
    Ok(wildcard)
}

/// How many automaton states (each weighed by its size) the complexity check
/// may visit before it calls the wildcard too complex: the check's own work
/// stays bounded, whatever the wildcard.
const MAX_COMPLEXITY_WORK: usize = 200_000;

/// The most `*` states of the wildcard's automaton that some input keeps
/// active at once (after event-ruler's `MachineComplexityEvaluator`, but
/// counting only states sitting on a `*`), or `MAX_WILDCARD_COMPLEXITY + 1`
/// as soon as it is known to exceed the limit or the search would cost more
/// than [`MAX_COMPLEXITY_WORK`].
fn wildcard_complexity(w: &Wildcard) -> usize {
    let too_complex = MAX_WILDCARD_COMPLEXITY + 1;
    // No input keeps more `*` states alive than there are `*`s.
    let stars_written = w.pieces.len() - 1;
    if stars_written <= MAX_WILDCARD_COMPLEXITY {
        return stars_written;
    }
    // Positions 0..=n over the literal bytes; `star[i]` says a `*` precedes byte i.
    let mut bytes = Vec::new();
    let mut star = Vec::new();
    for (k, piece) in w.pieces.iter().enumerate() {
        let mut first = k > 0;
        for &b in piece.as_bytes() {
            bytes.push(b);
            star.push(first);
            first = false;
        }
    }
    let trailing_star = w.pieces.len() > 1 && w.pieces.last().is_some_and(String::is_empty);
    let n = bytes.len();
    let alphabet: Vec<u8> = {
        let mut a = bytes.clone();
        a.push(0);
        a.sort_unstable();
        a.dedup();
        a
    };
    let on_star = |p: usize| (p < n && star[p]) || (p == n && trailing_star);
    let mut seen = std::collections::HashSet::new();
    seen.insert(vec![0usize]);
    let mut queue = vec![vec![0usize]];
    let mut work = 0usize;
    let mut max = 0;
    while let Some(state) = queue.pop() {
        let stars = state.iter().filter(|&&p| on_star(p)).count();
        max = max.max(stars);
        if max > MAX_WILDCARD_COMPLEXITY {
            return too_complex;
        }
        work += state.len() * alphabet.len();
        if work > MAX_COMPLEXITY_WORK {
            return too_complex;
        }
        for &c in &alphabet {
            let mut next: Vec<usize> = Vec::new();
            for &p in &state {
                if p < n && bytes[p] == c {
                    next.push(p + 1);
                }
                // A star before byte p (or trailing) lets p stay put.
                if on_star(p) {
                    next.push(p);
                }
            }
            next.sort_unstable();
            next.dedup();
            if !next.is_empty() && !seen.contains(&next) {
                seen.insert(next.clone());
                queue.push(next);
            }
        }
    }
    max
}

/// The address a string denotes, when it is written as an IP literal.
pub(crate) fn ip_literal(s: &str) -> Option<IpAddr> {
    let v4 = {
        let parts: Vec<&str> = s.split('.').collect();
        parts.len() == 4
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    };
    let v6 = s.contains(':') && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
    if v4 || v6 { s.parse().ok() } else { None }
}

fn ip_bits(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (false, u32::from(a) as u128),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

fn parse_cidr(text: &str) -> Result<Matcher, Error> {
    let parts: Vec<&str> = text.split('/').collect();
    if parts.len() != 2 {
        return invalid("Malformed CIDR, one '/' required");
    }
    let Ok(mask) = parts[1].parse::<i32>() else {
        return invalid("Malformed CIDR, mask bits must be an integer");
    };
    if mask < 0 {
        return invalid("Malformed CIDR, mask bits must not be negative");
    }
    let addr = parts[0];
    let looks_like_ip = {
        let v4 = {
            let p: Vec<&str> = addr.split('.').collect();
            p.len() == 4
                && p.iter()
                    .all(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()))
        };
        v4 || (addr.contains(':') && addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':'))
    };
    if !looks_like_ip {
        return invalid(format!("Nonstandard IP address: {addr}"));
    }
    let Ok(ip) = addr.parse::<IpAddr>() else {
        return invalid(format!("Invalid IP address: {addr}"));
    };
    let (v6, bits) = ip_bits(ip);
    let width: u32 = if v6 { 128 } else { 32 };
    if !v6 && mask > 31 {
        return invalid("IPv4 mask bits must be < 32");
    }
    if v6 && mask > 127 {
        return invalid("IPv6 mask bits must be < 128");
    }
    let host_bits = width - mask as u32;
    let host_mask: u128 = if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    Ok(Matcher::Cidr {
        v6,
        low: bits & !host_mask,
        high: bits | host_mask,
    })
}

// ---------------------------------------------------------------- matching

/// Whether the event matches one conjunction of a pattern.
pub(crate) fn match_rule(rule: &Rule, event: &Event) -> bool {
    let mut chosen: Vec<&[(u32, u32)]> = Vec::with_capacity(rule.len());
    search(rule, 0, event, &mut chosen)
}

/// Backtracking: pick, for each field in turn, a leaf that matches and is
/// array-consistent with the leaves picked so far.
fn search<'e>(
    rule: &Rule,
    at: usize,
    event: &'e Event,
    chosen: &mut Vec<&'e [(u32, u32)]>,
) -> bool {
    let Some((path, matchers)) = rule.get(at) else {
        return true;
    };
    let leaves = event.leaves(path);
    if leaves.is_empty() && matchers.contains(&Matcher::Exists(false)) {
        return search(rule, at + 1, event, chosen);
    }
    for leaf in leaves {
        if !chosen.iter().all(|c| consistent(c, &leaf.arrays)) {
            continue;
        }
        if matchers.iter().any(|m| m.matches(leaf)) {
            chosen.push(&leaf.arrays);
            if search(rule, at + 1, event, chosen) {
                return true;
            }
            chosen.pop();
        }
    }
    false
}

impl Matcher {
    /// Whether one leaf of the event satisfies this matcher.
    pub(crate) fn matches(&self, leaf: &Leaf) -> bool {
        let value = &leaf.value;
        let string = match value {
            Scalar::String(s) => Some(s.as_str()),
            _ => None,
        };
        match self {
            Matcher::Exact(Scalar::Number(text, num)) => match value {
                Scalar::Number(t, n) => t == text || (num.is_some() && num == n),
                _ => false,
            },
            Matcher::Exact(s) => s == value,
            Matcher::ExactString(s) => string == Some(s.as_str()),
            Matcher::ExactIp(ip, s) => string.is_some_and(|v| v == s || ip_literal(v) == Some(*ip)),
            Matcher::Prefix(p) => string.is_some_and(|v| v.starts_with(p.as_str())),
            Matcher::Suffix(p) => string.is_some_and(|v| v.ends_with(p.as_str())),
            Matcher::PrefixIgnoreCase(p) => {
                string.is_some_and(|v| v.to_lowercase().starts_with(&p.to_lowercase()))
            }
            Matcher::SuffixIgnoreCase(p) => {
                string.is_some_and(|v| v.to_lowercase().ends_with(&p.to_lowercase()))
            }
            Matcher::EqualsIgnoreCase(p) => string.is_some_and(|v| eq_ignore_case(v, p)),
            Matcher::Wildcard(w) => string.is_some_and(|v| w.matches(v)),
            Matcher::Numeric { lower, upper } => match value {
                Scalar::Number(_, Some(n)) => {
                    lower.is_none_or(|(l, inc)| if inc { *n >= l } else { *n > l })
                        && upper.is_none_or(|(u, inc)| if inc { *n <= u } else { *n < u })
                }
                _ => false,
            },
            Matcher::Cidr { v6, low, high } => string
                .and_then(ip_literal)
                .map(ip_bits)
                .is_some_and(|(is_v6, bits)| is_v6 == *v6 && (*low..=*high).contains(&bits)),
            Matcher::Exists(e) => *e,
            Matcher::AnythingBut(a) => match a {
                AnythingBut::Strings(set) => string.is_none_or(|v| !set.iter().any(|s| s == v)),
                AnythingBut::Numbers(set) => match value {
                    Scalar::Number(_, Some(n)) => !set.contains(n),
                    _ => true,
                },
                AnythingBut::IgnoreCase(set) => {
                    string.is_none_or(|v| !set.iter().any(|s| eq_ignore_case(v, s)))
                }
                AnythingBut::Prefixes(set) => {
                    string.is_none_or(|v| !set.iter().any(|s| v.starts_with(s.as_str())))
                }
                AnythingBut::Suffixes(set) => {
                    string.is_none_or(|v| !set.iter().any(|s| v.ends_with(s.as_str())))
                }
                AnythingBut::Wildcards(set) => {
                    string.is_none_or(|v| !set.iter().any(|w| w.matches(v)))
                }
            },
        }
    }
}

fn eq_ignore_case(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

impl Wildcard {
    fn matches(&self, value: &str) -> bool {
        let v = value.as_bytes();
        let pieces = &self.pieces;
        if pieces.len() == 1 {
            return v == pieces[0].as_bytes();
        }
        let first = pieces[0].as_bytes();
        let last = pieces[pieces.len() - 1].as_bytes();
        if v.len() < first.len() + last.len() || !v.starts_with(first) || !v.ends_with(last) {
            return false;
        }
        let mut rest = &v[first.len()..v.len() - last.len()];
        for piece in &pieces[1..pieces.len() - 1] {
            let p = piece.as_bytes();
            if p.is_empty() {
                continue;
            }
            match rest.windows(p.len()).position(|w| w == p) {
                Some(at) => rest = &rest[at + p.len()..],
                None => return false,
            }
        }
        true
    }
}
