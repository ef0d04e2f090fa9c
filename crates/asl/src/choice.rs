//! Choice rules: parsing (with every problem reported) and evaluation.

use crate::path::Path;
use crate::scope::Scope;
use crate::{Diagnostic, Failure};
use serde_json::Value;
use std::cmp::Ordering;

/// What a comparison checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Test {
    StringEquals,
    StringLessThan,
    StringGreaterThan,
    StringLessThanEquals,
    StringGreaterThanEquals,
    StringMatches,
    NumericEquals,
    NumericLessThan,
    NumericGreaterThan,
    NumericLessThanEquals,
    NumericGreaterThanEquals,
    BooleanEquals,
    TimestampEquals,
    TimestampLessThan,
    TimestampGreaterThan,
    TimestampLessThanEquals,
    TimestampGreaterThanEquals,
    IsNull,
    IsPresent,
    IsNumeric,
    IsString,
    IsBoolean,
    IsTimestamp,
}

const TESTS: &[(&str, Test)] = &[
    ("StringEquals", Test::StringEquals),
    ("StringLessThan", Test::StringLessThan),
    ("StringGreaterThan", Test::StringGreaterThan),
    ("StringLessThanEquals", Test::StringLessThanEquals),
    ("StringGreaterThanEquals", Test::StringGreaterThanEquals),
    ("StringMatches", Test::StringMatches),
    ("NumericEquals", Test::NumericEquals),
    ("NumericLessThan", Test::NumericLessThan),
    ("NumericGreaterThan", Test::NumericGreaterThan),
    ("NumericLessThanEquals", Test::NumericLessThanEquals),
    ("NumericGreaterThanEquals", Test::NumericGreaterThanEquals),
    ("BooleanEquals", Test::BooleanEquals),
    ("TimestampEquals", Test::TimestampEquals),
    ("TimestampLessThan", Test::TimestampLessThan),
    ("TimestampGreaterThan", Test::TimestampGreaterThan),
    ("TimestampLessThanEquals", Test::TimestampLessThanEquals),
    (
        "TimestampGreaterThanEquals",
        Test::TimestampGreaterThanEquals,
    ),
    ("IsNull", Test::IsNull),
    ("IsPresent", Test::IsPresent),
    ("IsNumeric", Test::IsNumeric),
    ("IsString", Test::IsString),
    ("IsBoolean", Test::IsBoolean),
    ("IsTimestamp", Test::IsTimestamp),
];

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Literal(Value),
    Path(Path),
}

/// A Boolean expression of a Choice rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
    Compare {
        variable: Path,
        test: Test,
        operand: Operand,
    },
}

impl Condition {
    /// Parses a rule; `top` says whether it is a top-level rule (which has `Next`).
    pub fn parse(v: &Value, at: &str, top: bool, diags: &mut Vec<Diagnostic>) -> Condition {
        let fallback = Condition::And(Vec::new());
        let Some(obj) = v.as_object() else {
            diags.push(Diagnostic::new(at, "a choice rule must be an object"));
            return fallback;
        };
        let meta = |k: &str| k == "Comment" || (top && (k == "Next" || k == "Assign"));
        let ops: Vec<(&String, &Value)> = obj
            .iter()
            .filter(|(k, _)| !meta(k) && *k != "Variable")
            .collect();
        if top && !obj.contains_key("Next") {
            diags.push(Diagnostic::new(
                &format!("{at}/Next"),
                "a choice rule needs 'Next'",
            ));
        }
        if !top && obj.contains_key("Next") {
            diags.push(Diagnostic::new(
                &format!("{at}/Next"),
                "a nested rule cannot have 'Next'",
            ));
        }
        if ops.len() != 1 {
            diags.push(Diagnostic::new(
                at,
                "a choice rule needs exactly one operator",
            ));
            return fallback;
        }
        let (op, operand) = ops[0];
        let here = format!("{at}/{op}");
        match op.as_str() {
            "And" | "Or" => {
                let Some(list) = operand.as_array().filter(|l| !l.is_empty()) else {
                    diags.push(Diagnostic::new(&here, "must be a non-empty array of rules"));
                    return fallback;
                };
                if obj.contains_key("Variable") {
                    diags.push(Diagnostic::new(
                        &format!("{at}/Variable"),
                        "not allowed with And/Or",
                    ));
                }
                let rules = list
                    .iter()
                    .enumerate()
                    .map(|(i, r)| Condition::parse(r, &format!("{here}/{i}"), false, diags))
                    .collect();
                if op == "And" {
                    Condition::And(rules)
                } else {
                    Condition::Or(rules)
                }
            }
            "Not" => Condition::Not(Box::new(Condition::parse(operand, &here, false, diags))),
            name => {
                let (base, is_path) = match name.strip_suffix("Path") {
                    Some(b) if b != "Is" => (b, true),
                    _ => (name, false),
                };
                let Some(&(_, test)) = TESTS.iter().find(|(n, _)| *n == base) else {
                    diags.push(Diagnostic::new(
                        &here,
                        format!("'{name}' is not a choice operator"),
                    ));
                    return fallback;
                };
                let variable = match obj.get("Variable").and_then(Value::as_str).map(Path::parse) {
                    Some(Ok(p)) => p,
                    Some(Err(why)) => {
                        diags.push(Diagnostic::new(
                            &format!("{at}/Variable"),
                            format!("invalid JSONPath: {why}"),
                        ));
                        return fallback;
                    }
                    None => {
                        diags.push(Diagnostic::new(
                            &format!("{at}/Variable"),
                            "is required and must be a path",
                        ));
                        return fallback;
                    }
                };
                let operand = if is_path {
                    if test == Test::StringMatches || is_type_test(test) {
                        diags.push(Diagnostic::new(
                            &here,
                            format!("'{name}' is not a choice operator"),
                        ));
                        return fallback;
                    }
                    match operand.as_str().map(Path::parse) {
                        Some(Ok(p)) => Operand::Path(p),
                        _ => {
                            diags.push(Diagnostic::new(&here, "must be a JSONPath"));
                            return fallback;
                        }
                    }
                } else {
                    let ok = match test {
                        t if is_type_test(t) => operand.is_boolean(),
                        Test::BooleanEquals => operand.is_boolean(),
                        Test::NumericEquals
                        | Test::NumericLessThan
                        | Test::NumericGreaterThan
                        | Test::NumericLessThanEquals
                        | Test::NumericGreaterThanEquals => operand.is_number(),
                        Test::TimestampEquals
                        | Test::TimestampLessThan
                        | Test::TimestampGreaterThan
                        | Test::TimestampLessThanEquals
                        | Test::TimestampGreaterThanEquals => operand
                            .as_str()
                            .is_some_and(|s| crate::time::parse_timestamp(s).is_some()),
                        _ => operand.is_string(),
                    };
                    if !ok {
                        diags.push(Diagnostic::new(&here, "has a value of the wrong type"));
                    }
                    Operand::Literal(operand.clone())
                };
                Condition::Compare {
                    variable,
                    test,
                    operand,
                }
            }
        }
    }

    /// Evaluates the rule against the state's input.
    pub fn eval(&self, scope: &mut Scope<'_>) -> Result<bool, Failure> {
        match self {
            Condition::And(rules) => {
                for r in rules {
                    if !r.eval(scope)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Condition::Or(rules) => {
                for r in rules {
                    if r.eval(scope)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Condition::Not(r) => Ok(!r.eval(scope)?),
            Condition::Compare {
                variable,
                test,
                operand,
            } => {
                let value = scope.select(variable);
                if *test == Test::IsPresent {
                    let present = value.is_ok();
                    return Ok(operand_bool(operand) == present);
                }
                let value = value.map_err(|_| {
                    Failure::runtime(format!(
                        "Invalid path '{}': The choice state's condition path references an invalid value.",
                        variable.as_str()
                    ))
                })?;
                if is_type_test(*test) {
                    let is = match test {
                        Test::IsNull => value.is_null(),
                        Test::IsNumeric => value.is_number(),
                        Test::IsString => value.is_string(),
                        Test::IsBoolean => value.is_boolean(),
                        _ => value
                            .as_str()
                            .is_some_and(|s| crate::time::parse_timestamp(s).is_some()),
                    };
                    return Ok(operand_bool(operand) == is);
                }
                let rhs = match operand {
                    Operand::Literal(v) => v.clone(),
                    Operand::Path(p) => scope.select(p).map_err(|_| {
                        Failure::runtime(format!(
                            "Invalid path '{}': The choice state's condition path references an invalid value.",
                            p.as_str()
                        ))
                    })?,
                };
                Ok(compare(*test, &value, &rhs))
            }
        }
    }
}

fn is_type_test(t: Test) -> bool {
    matches!(
        t,
        Test::IsNull
            | Test::IsPresent
            | Test::IsNumeric
            | Test::IsString
            | Test::IsBoolean
            | Test::IsTimestamp
    )
}

fn operand_bool(o: &Operand) -> bool {
    matches!(o, Operand::Literal(Value::Bool(true)))
}

fn ord_test(test: Test, ord: Ordering) -> bool {
    use Test::*;
    match test {
        StringEquals | NumericEquals | TimestampEquals => ord == Ordering::Equal,
        StringLessThan | NumericLessThan | TimestampLessThan => ord == Ordering::Less,
        StringGreaterThan | NumericGreaterThan | TimestampGreaterThan => ord == Ordering::Greater,
        StringLessThanEquals | NumericLessThanEquals | TimestampLessThanEquals => {
            ord != Ordering::Greater
        }
        _ => ord != Ordering::Less,
    }
}

fn compare(test: Test, lhs: &Value, rhs: &Value) -> bool {
    use Test::*;
    match test {
        StringMatches => match (lhs.as_str(), rhs.as_str()) {
            (Some(s), Some(p)) => string_matches(s, p),
            _ => false,
        },
        StringEquals
        | StringLessThan
        | StringGreaterThan
        | StringLessThanEquals
        | StringGreaterThanEquals => match (lhs.as_str(), rhs.as_str()) {
            (Some(a), Some(b)) => ord_test(test, a.cmp(b)),
            _ => false,
        },
        NumericEquals
        | NumericLessThan
        | NumericGreaterThan
        | NumericLessThanEquals
        | NumericGreaterThanEquals => match (lhs.as_f64(), rhs.as_f64()) {
            (Some(a), Some(b)) => a.partial_cmp(&b).is_some_and(|o| ord_test(test, o)),
            _ => false,
        },
        BooleanEquals => match (lhs.as_bool(), rhs.as_bool()) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        },
        _ => {
            let ts = |v: &Value| v.as_str().and_then(crate::time::parse_timestamp);
            match (ts(lhs), ts(rhs)) {
                (Some(a), Some(b)) => ord_test(test, a.cmp(&b)),
                _ => false,
            }
        }
    }
}

/// `StringMatches`: `*` matches any run of characters; `\*` and `\\` are literal.
pub fn string_matches(s: &str, pattern: &str) -> bool {
    // Tokens: Some(c) a literal character, None a wildcard.
    let mut toks = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => toks.push(Some(chars.next().unwrap_or('\\'))),
            '*' => toks.push(None),
            c => toks.push(Some(c)),
        }
    }
    let text: Vec<char> = s.chars().collect();
    let (mut t, mut p) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < toks.len() && toks[p] == Some(text[t]) {
            t += 1;
            p += 1;
        } else if p < toks.len() && toks[p].is_none() {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while p < toks.len() && toks[p].is_none() {
        p += 1;
    }
    p == toks.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use serde_json::json;

    fn check(rule: Value, input: Value) -> Result<bool, Failure> {
        let mut diags = Vec::new();
        let c = Condition::parse(&rule, "", false, &mut diags);
        assert!(diags.is_empty(), "{diags:?}");
        let ctx = json!({});
        let mut rng = Rng::new(1);
        let mut scope = Scope::new(&input, &ctx, None, &mut rng);
        c.eval(&mut scope)
    }

    #[test]
    fn operators() {
        let i = json!({"s": "abc", "n": 3, "b": true, "t": "2024-01-01T00:00:00Z", "z": null, "m": 3.0});
        let yes = |r: Value| assert!(check(r.clone(), i.clone()).unwrap(), "{r}");
        let no = |r: Value| assert!(!check(r.clone(), i.clone()).unwrap(), "{r}");
        yes(json!({"Variable": "$.s", "StringEquals": "abc"}));
        yes(json!({"Variable": "$.s", "StringLessThan": "abd"}));
        yes(json!({"Variable": "$.s", "StringGreaterThanEquals": "abc"}));
        yes(json!({"Variable": "$.s", "StringMatches": "a*c"}));
        no(json!({"Variable": "$.s", "StringMatches": "a\\*c"}));
        yes(json!({"Variable": "$.n", "NumericEquals": 3}));
        yes(json!({"Variable": "$.n", "NumericEqualsPath": "$.m"}));
        yes(json!({"Variable": "$.n", "NumericLessThanEquals": 3.5}));
        no(json!({"Variable": "$.n", "NumericGreaterThan": 3}));
        no(json!({"Variable": "$.s", "NumericEquals": 3}));
        yes(json!({"Variable": "$.b", "BooleanEquals": true}));
        yes(json!({"Variable": "$.t", "TimestampLessThan": "2024-01-01T00:00:01Z"}));
        yes(json!({"Variable": "$.t", "TimestampEqualsPath": "$.t"}));
        yes(json!({"Variable": "$.z", "IsNull": true}));
        yes(json!({"Variable": "$.q", "IsPresent": false}));
        yes(json!({"Variable": "$.n", "IsNumeric": true}));
        yes(json!({"Variable": "$.s", "IsString": true}));
        yes(json!({"Variable": "$.b", "IsBoolean": true}));
        yes(json!({"Variable": "$.t", "IsTimestamp": true}));
        no(json!({"Variable": "$.s", "IsTimestamp": true}));
        yes(
            json!({"And": [{"Variable": "$.n", "NumericEquals": 3}, {"Not": {"Variable": "$.b", "BooleanEquals": false}}]}),
        );
        yes(
            json!({"Or": [{"Variable": "$.n", "NumericEquals": 4}, {"Variable": "$.s", "StringEquals": "abc"}]}),
        );
        assert!(
            check(
                json!({"Variable": "$.missing", "StringEquals": "x"}),
                i.clone()
            )
            .is_err()
        );
    }

    #[test]
    fn wildcard_matching() {
        assert!(string_matches("log-2024.txt", "log-*.txt"));
        assert!(string_matches("", "*"));
        assert!(!string_matches("abc", "*d"));
        assert!(string_matches("a*b", "a\\*b"));
    }
}
