//! The 18 intrinsic functions (`States.Format(...)` and friends): parsing a
//! call once at validation, evaluating it at run time.

use crate::path::Path;
use crate::scope::{Scope, TooBig};
use base64::Engine as _;
use serde_json::Value;

/// Why an intrinsic call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// `States.IntrinsicFailure`: the call is wrong for its arguments.
    Failed(String),
    /// `States.DataLimitExceeded`: it would build more than the payload limit.
    TooBig,
}

impl From<String> for Error {
    fn from(why: String) -> Error {
        Error::Failed(why)
    }
}

impl From<TooBig> for Error {
    fn from(_: TooBig) -> Error {
        Error::TooBig
    }
}

/// How deeply intrinsic calls may nest.
pub const MAX_NESTING: usize = 10;

/// An intrinsic function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Format,
    StringToJson,
    JsonToString,
    Array,
    ArrayPartition,
    ArrayContains,
    ArrayRange,
    ArrayGetItem,
    ArrayLength,
    ArrayUnique,
    Base64Encode,
    Base64Decode,
    Hash,
    JsonMerge,
    MathRandom,
    MathAdd,
    StringSplit,
    Uuid,
}

impl Function {
    fn from_name(name: &str) -> Option<Function> {
        Some(match name {
            "States.Format" => Function::Format,
            "States.StringToJson" => Function::StringToJson,
            "States.JsonToString" => Function::JsonToString,
            "States.Array" => Function::Array,
            "States.ArrayPartition" => Function::ArrayPartition,
            "States.ArrayContains" => Function::ArrayContains,
            "States.ArrayRange" => Function::ArrayRange,
            "States.ArrayGetItem" => Function::ArrayGetItem,
            "States.ArrayLength" => Function::ArrayLength,
            "States.ArrayUnique" => Function::ArrayUnique,
            "States.Base64Encode" => Function::Base64Encode,
            "States.Base64Decode" => Function::Base64Decode,
            "States.Hash" => Function::Hash,
            "States.JsonMerge" => Function::JsonMerge,
            "States.MathRandom" => Function::MathRandom,
            "States.MathAdd" => Function::MathAdd,
            "States.StringSplit" => Function::StringSplit,
            "States.UUID" => Function::Uuid,
            _ => return None,
        })
    }

    fn arity(self) -> (usize, usize) {
        use Function::*;
        match self {
            Format => (1, usize::MAX),
            Array => (0, usize::MAX),
            StringToJson | JsonToString | ArrayLength | ArrayUnique | Base64Encode
            | Base64Decode => (1, 1),
            ArrayPartition | ArrayContains | ArrayGetItem | Hash | MathAdd | StringSplit => (2, 2),
            ArrayRange | JsonMerge => (3, 3),
            MathRandom => (2, 3),
            Uuid => (0, 0),
        }
    }
}

/// One argument of a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Literal(Value),
    Path(Path),
    Call(Call),
}

/// A parsed intrinsic call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub function: Function,
    pub name: String,
    pub args: Vec<Arg>,
}

/// Whether a `.$` string is an intrinsic call rather than a path.
pub fn looks_like_call(text: &str) -> bool {
    text.starts_with("States.")
}

impl Call {
    /// Parses `States.Name(args...)`.
    pub fn parse(text: &str) -> Result<Call, String> {
        let mut p = Parser {
            text,
            pos: 0,
            depth: 0,
        };
        let call = p.call()?;
        p.skip_ws();
        if p.pos != text.len() {
            return Err(format!("unexpected text after the call in '{text}'"));
        }
        Ok(call)
    }

    /// Evaluates the call. Its arguments are charged to the scope's budget as
    /// they are made, then given back while the result is built against the
    /// same budget.
    pub fn eval(&self, scope: &mut Scope<'_>) -> Result<Value, Error> {
        let before = scope.budget();
        let mut args = Vec::with_capacity(self.args.len());
        for a in &self.args {
            let v = match a {
                Arg::Literal(v) => v.clone(),
                Arg::Path(p) => scope.select(p).map_err(|m| {
                    format!(
                        "The JSONPath {} could not be found in the input ({})",
                        p.as_str(),
                        m.at
                    )
                })?,
                Arg::Call(c) => c.eval(scope)?,
            };
            scope.charge(&v)?;
            args.push(v);
        }
        // The result may take what the arguments took (both exist at once only while it is
        // built, so at most twice the budget is ever held).
        scope.refund_to(before);
        let out = apply(self.function, &self.name, args, scope)?;
        scope.charge(&out)?;
        Ok(out)
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn skip_ws(&mut self) {
        while self.rest().starts_with([' ', '\t', '\n', '\r']) {
            self.pos += 1;
        }
    }

    fn call(&mut self) -> Result<Call, String> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(format!(
                "intrinsic functions nest deeper than {MAX_NESTING} in '{}'",
                self.text
            ));
        }
        let open = self
            .rest()
            .find('(')
            .ok_or_else(|| format!("'{}' is not an intrinsic function call", self.text))?;
        let name = self.rest()[..open].trim().to_owned();
        let function = Function::from_name(&name)
            .ok_or_else(|| format!("'{name}' is not a known intrinsic function"))?;
        self.pos += open + 1;
        let mut args = Vec::new();
        self.skip_ws();
        if self.rest().starts_with(')') {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                args.push(self.arg()?);
                self.skip_ws();
                if self.rest().starts_with(',') {
                    self.pos += 1;
                } else if self.rest().starts_with(')') {
                    self.pos += 1;
                    break;
                } else {
                    return Err(format!("malformed arguments in '{}'", self.text));
                }
            }
        }
        let (lo, hi) = function.arity();
        if args.len() < lo || args.len() > hi {
            return Err(format!(
                "{name} takes {} arguments, got {}",
                if lo == hi {
                    lo.to_string()
                } else if hi == usize::MAX {
                    format!("at least {lo}")
                } else {
                    format!("{lo} to {hi}")
                },
                args.len()
            ));
        }
        self.depth -= 1;
        Ok(Call {
            function,
            name,
            args,
        })
    }

    fn arg(&mut self) -> Result<Arg, String> {
        let text = self.text;
        let rest = &text[self.pos..];
        if rest.starts_with('\'') {
            let mut out = String::new();
            let mut chars = rest.char_indices().skip(1);
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, e @ ('{' | '}'))) => {
                            out.push('\\');
                            out.push(e);
                        }
                        Some((_, e)) => out.push(e),
                        None => break,
                    },
                    '\'' => {
                        self.pos += i + 1;
                        return Ok(Arg::Literal(Value::String(out)));
                    }
                    c => out.push(c),
                }
            }
            return Err(format!("unterminated string in '{}'", self.text));
        }
        if rest.starts_with("States.") {
            return Ok(Arg::Call(self.call()?));
        }
        // A path or a number/boolean/null: up to the next top-level ',' or ')'.
        let mut depth = 0usize;
        let mut quote: Option<char> = None;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match c {
                    '\'' | '"' => quote = Some(c),
                    '[' | '(' => depth += 1,
                    ']' => depth = depth.saturating_sub(1),
                    ')' if depth == 0 => {
                        end = i;
                        break;
                    }
                    ')' => depth -= 1,
                    ',' if depth == 0 => {
                        end = i;
                        break;
                    }
                    _ => {}
                },
            }
        }
        let token = rest[..end].trim();
        self.pos += end;
        if token.starts_with('$') {
            return Ok(Arg::Path(Path::parse(token)?));
        }
        match serde_json::from_str::<Value>(token) {
            Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::Null)) => Ok(Arg::Literal(v)),
            _ => Err(format!("'{token}' is not a valid intrinsic argument")),
        }
    }
}

fn int_arg(name: &str, v: &Value) -> Result<i64, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .ok_or_else(|| format!("{name}: expected an integer, got {v}")),
        _ => Err(format!("{name}: expected an integer, got {v}")),
    }
}

fn str_arg<'a>(name: &str, v: &'a Value) -> Result<&'a str, String> {
    v.as_str()
        .ok_or_else(|| format!("{name}: expected a string, got {v}"))
}

/// Rounds like Java's `Math.round`: half-way values go towards +infinity.
fn java_round(f: f64) -> i64 {
    (f + 0.5).floor() as i64
}

/// The text `States.Format` and `States.JsonToString` give a value.
fn format_arg(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Hashes a JSON value so that equal values (objects in any key order) hash alike.
fn hash_value(v: &Value, h: &mut impl std::hash::Hasher) {
    use std::hash::{Hash, Hasher};
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => (1u8, b).hash(h),
        Value::Number(n) => (2u8, n.to_string()).hash(h),
        Value::String(s) => (3u8, s).hash(h),
        Value::Array(items) => {
            (4u8, items.len()).hash(h);
            items.iter().for_each(|i| hash_value(i, h));
        }
        Value::Object(map) => {
            // Key order does not make objects differ: combine the entries' hashes commutatively.
            let mut sum = 0u64;
            for (k, i) in map {
                let mut e = std::collections::hash_map::DefaultHasher::new();
                k.hash(&mut e);
                hash_value(i, &mut e);
                sum = sum.wrapping_add(e.finish());
            }
            (5u8, map.len(), sum).hash(h);
        }
    }
}

/// The distinct items of `items`, first occurrence first, in linear expected time.
fn unique(items: &[Value]) -> Vec<Value> {
    use std::hash::Hasher;
    let mut seen: std::collections::HashMap<u64, Vec<usize>> = Default::default();
    let mut out: Vec<Value> = Vec::new();
    for v in items {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        hash_value(v, &mut h);
        let bucket = seen.entry(h.finish()).or_default();
        if !bucket.iter().any(|&i| out[i] == *v) {
            bucket.push(out.len());
            out.push(v.clone());
        }
    }
    out
}

fn apply(
    function: Function,
    name: &str,
    mut args: Vec<Value>,
    scope: &mut Scope<'_>,
) -> Result<Value, Error> {
    use Function::*;
    Ok(match function {
        Format => {
            let template = str_arg(name, &args[0])?.to_owned();
            let mut out = String::new();
            let mut rest = args[1..].iter();
            let mut chars = template.chars().peekable();
            // The text is charged as it grows, so a template cannot build past the limit.
            let limit = scope.budget();
            while let Some(c) = chars.next() {
                match c {
                    '\\' if matches!(chars.peek(), Some('{' | '}' | '\\' | '\'')) => {
                        out.push(chars.next().expect("peeked"));
                    }
                    '{' if chars.peek() == Some(&'}') => {
                        chars.next();
                        let v = rest.next().ok_or_else(|| {
                            format!("{name}: the template has more '{{}}' than arguments")
                        })?;
                        match v {
                            Value::String(s) => out.push_str(s),
                            other => out.push_str(&other.to_string()),
                        }
                    }
                    c => out.push(c),
                }
                if out.len() > limit {
                    return Err(Error::TooBig);
                }
            }
            if rest.next().is_some() {
                return Err(format!("{name}: more arguments than '{{}}' in the template").into());
            }
            Value::String(out)
        }
        StringToJson => {
            let s = str_arg(name, &args[0])?;
            if s.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(s)
                    .map_err(|e| format!("{name}: '{s}' is not valid JSON: {e}"))?
            }
        }
        JsonToString => Value::String(args[0].to_string()),
        Array => Value::Array(args),
        ArrayPartition => {
            let arr = args[0]
                .as_array()
                .ok_or_else(|| format!("{name}: expected an array"))?;
            let size = int_arg(name, &args[1])?;
            if size <= 0 {
                return Err(format!("{name}: the chunk size must be positive").into());
            }
            Value::Array(
                arr.chunks(size as usize)
                    .map(|c| Value::Array(c.to_vec()))
                    .collect(),
            )
        }
        ArrayContains => {
            let arr = args[0]
                .as_array()
                .ok_or_else(|| format!("{name}: expected an array"))?;
            Value::Bool(arr.contains(&args[1]))
        }
        ArrayRange => {
            let start = int_arg(name, &args[0])?;
            let end = int_arg(name, &args[1])?;
            let step = int_arg(name, &args[2])?;
            if step == 0 {
                return Err(format!("{name}: the step must not be 0").into());
            }
            let mut out = Vec::new();
            let mut k = start;
            while (step > 0 && k <= end) || (step < 0 && k >= end) {
                out.push(Value::from(k));
                if out.len() > 1000 {
                    return Err(format!("{name}: the range has more than 1000 items").into());
                }
                // A step that would pass the integers' range ends the range there.
                match k.checked_add(step) {
                    Some(next) => k = next,
                    None => break,
                }
            }
            Value::Array(out)
        }
        ArrayGetItem => {
            let arr = args[0]
                .as_array()
                .ok_or_else(|| format!("{name}: expected an array"))?;
            let i = int_arg(name, &args[1])?;
            usize::try_from(i)
                .ok()
                .and_then(|i| arr.get(i))
                .cloned()
                .ok_or_else(|| format!("{name}: index {i} is out of bounds"))?
        }
        ArrayLength => Value::from(
            args[0]
                .as_array()
                .ok_or_else(|| format!("{name}: expected an array"))?
                .len(),
        ),
        ArrayUnique => {
            let arr = args[0]
                .as_array()
                .ok_or_else(|| format!("{name}: expected an array"))?;
            Value::Array(unique(arr))
        }
        Base64Encode => Value::String(
            base64::engine::general_purpose::STANDARD.encode(str_arg(name, &args[0])?),
        ),
        Base64Decode => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(str_arg(name, &args[0])?)
                .map_err(|e| format!("{name}: {e}"))?;
            Value::String(String::from_utf8(bytes).map_err(|e| format!("{name}: {e}"))?)
        }
        Hash => {
            use sha2::Digest as _;
            let data = format_arg(&args[0]);
            let algo = str_arg(name, &args[1])?;
            let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
            Value::String(match algo {
                "MD5" => hex(&md5::Md5::digest(data.as_bytes())),
                "SHA-1" => hex(&sha1::Sha1::digest(data.as_bytes())),
                "SHA-256" => hex(&sha2::Sha256::digest(data.as_bytes())),
                "SHA-384" => hex(&sha2::Sha384::digest(data.as_bytes())),
                "SHA-512" => hex(&sha2::Sha512::digest(data.as_bytes())),
                other => {
                    return Err(format!(
                        "{name}: unsupported algorithm '{other}' (MD5, SHA-1, SHA-256, SHA-384, SHA-512)"
                    ).into());
                }
            })
        }
        JsonMerge => {
            if args[2] != Value::Bool(false) {
                return Err(format!("{name}: deep merge is not supported; pass false").into());
            }
            let b = args.swap_remove(1);
            let a = args.swap_remove(0);
            match (a, b) {
                (Value::Object(mut a), Value::Object(b)) => {
                    for (k, v) in b {
                        a.insert(k, v);
                    }
                    Value::Object(a)
                }
                _ => return Err(format!("{name}: both arguments must be objects").into()),
            }
        }
        MathRandom => {
            let lo = int_arg(name, &args[0]).or_else(|_| {
                args[0]
                    .as_f64()
                    .map(|f| f as i64)
                    .ok_or_else(|| format!("{name}: expected a number"))
            })?;
            let hi = int_arg(name, &args[1]).or_else(|_| {
                args[1]
                    .as_f64()
                    .map(|f| f as i64)
                    .ok_or_else(|| format!("{name}: expected a number"))
            })?;
            if hi <= lo {
                return Err(format!("{name}: the end must be greater than the start").into());
            }
            let span = hi
                .checked_sub(lo)
                .ok_or_else(|| format!("{name}: the range from {lo} to {hi} is too wide"))?;
            let r = match args.get(2) {
                Some(seed) => {
                    let mut rng = crate::rng::Rng::new(int_arg(name, seed)? as u64);
                    rng.next_u64()
                }
                None => scope.rng.next_u64(),
            };
            Value::from(lo + (r % span as u64) as i64)
        }
        MathAdd => {
            let a = args[0]
                .as_f64()
                .ok_or_else(|| format!("{name}: expected a number"))?;
            let b = args[1]
                .as_f64()
                .ok_or_else(|| format!("{name}: expected a number"))?;
            java_round(a)
                .checked_add(java_round(b))
                .filter(|_| a.is_finite() && b.is_finite())
                .map(Value::from)
                .ok_or_else(|| format!("{name}: the sum of {a} and {b} is out of range"))?
        }
        StringSplit => {
            let s = str_arg(name, &args[0])?;
            let d: std::collections::HashSet<char> = str_arg(name, &args[1])?.chars().collect();
            Value::Array(
                s.split(|c| d.contains(&c))
                    .filter(|p| !p.is_empty())
                    .map(|p| Value::String(p.to_owned()))
                    .collect(),
            )
        }
        Uuid => Value::String(scope.rng.uuid()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use serde_json::json;

    fn eval(text: &str, input: Value) -> Result<Value, Error> {
        let call = Call::parse(text)?;
        let ctx = json!({"StateMachine": {"Name": "a-b-c"}});
        let mut rng = Rng::new(7);
        let mut scope = Scope::new(&input, &ctx, None, &mut rng);
        call.eval(&mut scope)
    }

    #[test]
    fn format_stops_at_the_payload_limit_while_it_builds() {
        // 2,000 placeholders over a 200 KB input: 400 MB if built whole.
        let big = "x".repeat(200_000);
        let text = format!(
            "States.Format('{}', {})",
            "{}".repeat(2000),
            vec!["$.big"; 2000].join(", ")
        );
        assert_eq!(eval(&text, json!({ "big": big })), Err(Error::TooBig));
        // Arguments alone are bounded too: States.Array of the same.
        let text = format!("States.Array({})", vec!["$.big"; 2000].join(", "));
        assert_eq!(
            eval(&text, json!({ "big": "x".repeat(200_000) })),
            Err(Error::TooBig)
        );
        // A result near the limit is fine.
        let text = "States.Format('{}{}', $.big, $.big)";
        let out = eval(text, json!({ "big": "y".repeat(100_000) })).unwrap();
        assert_eq!(out.as_str().unwrap().len(), 200_000);
    }

    #[test]
    fn array_unique_is_linear_and_ignores_key_order() {
        let items: Vec<Value> = (0..50_000).map(|i| json!(i % 1000)).collect();
        let out = eval("States.ArrayUnique($.a)", json!({ "a": items })).unwrap();
        assert_eq!(out.as_array().unwrap().len(), 1000);
        let out = eval(
            "States.ArrayUnique($.a)",
            json!({"a": [{"x": 1, "y": 2}, {"y": 2, "x": 1}, 1, 1.0, "1", [1], [1]]}),
        )
        .unwrap();
        assert_eq!(out, json!([{"x": 1, "y": 2}, 1, 1.0, "1", [1]]));
    }

    #[test]
    fn array_range_does_not_overflow() {
        // Found by the intrinsic fuzz target: a step past i64's range.
        assert_eq!(
            eval("States.ArrayRange(1, 8, 333333333333333333331)", json!({})),
            Ok(json!([1]))
        );
        assert_eq!(
            eval(
                &format!("States.ArrayRange({}, {}, -5)", i64::MIN + 2, i64::MIN),
                json!({})
            ),
            Ok(json!([i64::MIN + 2]))
        );
    }

    #[test]
    fn math_add_does_not_wrap() {
        assert!(matches!(
            eval(&format!("States.MathAdd({}, 1)", i64::MAX), json!({})),
            Err(Error::Failed(_))
        ));
        assert_eq!(
            eval("States.MathAdd(2147483647, 1)", json!({})).unwrap(),
            json!(2147483648i64)
        );
    }

    #[test]
    fn every_function() {
        let i = json!({"a": [1, 2, 2, 3], "s": "x,y", "o": {"k": 1}});
        let check = |t: &str, want: Value| assert_eq!(eval(t, i.clone()), Ok(want), "{t}");
        check("States.Format('{} and {}', 1, 'b')", json!("1 and b"));
        check("States.Format('\\{\\}{}', $.s)", json!("{}x,y"));
        check("States.StringToJson('{\"a\": 1}')", json!({"a": 1}));
        check("States.JsonToString($.o)", json!("{\"k\":1}"));
        check("States.Array(1, 'x', $.o)", json!([1, "x", {"k": 1}]));
        check("States.ArrayPartition($.a, 3)", json!([[1, 2, 2], [3]]));
        check("States.ArrayContains($.a, 3)", json!(true));
        check("States.ArrayRange(1, 9, 2)", json!([1, 3, 5, 7, 9]));
        check("States.ArrayGetItem($.a, 3)", json!(3));
        check("States.ArrayLength($.a)", json!(4));
        check("States.ArrayUnique($.a)", json!([1, 2, 3]));
        check(
            "States.Base64Encode('Data to encode')",
            json!("RGF0YSB0byBlbmNvZGU="),
        );
        check(
            "States.Base64Decode('RGF0YSB0byBlbmNvZGU=')",
            json!("Data to encode"),
        );
        check(
            "States.Hash('input data', 'SHA-1')",
            json!("aaff4a450a104cd177d28d18d74485e8cae074b7"),
        );
        check(
            "States.Hash('input data', 'MD5')",
            json!("812f45842bc6d66ee14572ce20db8e86"),
        );
        check(
            "States.JsonMerge($.o, States.StringToJson('{\"z\": 2}'), false)",
            json!({"k": 1, "z": 2}),
        );
        check("States.MathAdd(1.5, -2.5)", json!(0));
        check("States.StringSplit($.s, ',')", json!(["x", "y"]));
        check(
            "States.ArrayGetItem(States.StringSplit($$.StateMachine.Name, '-'), 1)",
            json!("b"),
        );
        let r = eval("States.MathRandom(1, 10)", i.clone()).unwrap();
        assert!((1..10).contains(&r.as_i64().unwrap()));
        let u = eval("States.UUID()", i.clone()).unwrap();
        assert_eq!(u.as_str().unwrap().len(), 36);
    }

    #[test]
    fn rejects_bad_calls() {
        assert!(Call::parse("States.Nope(1)").is_err());
        assert!(Call::parse("States.ArrayLength(1, 2)").is_err());
        let deep = "States.Array(".repeat(11) + &")".repeat(11);
        assert!(Call::parse(&deep).is_err());
        let ok = "States.Array(".repeat(10) + &")".repeat(10);
        assert!(Call::parse(&ok).is_ok());
        assert!(eval("States.ArrayGetItem($.a, 9)", json!({"a": []})).is_err());
    }
}
