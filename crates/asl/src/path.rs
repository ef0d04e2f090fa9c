//! JSONPath as Step Functions reads it (the Jayway dialect): `$` is the
//! state's data, `$$` the context object and `$name` a variable. Reference
//! paths (`ResultPath`, the `...Path` comparisons) may only use `.name`,
//! `['name']` and `[n]` and select a single node.

use serde_json::{Map, Value};
use std::fmt;

/// Where a path starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// `$`: the state's data.
    Data,
    /// `$$`: the context object.
    Context,
    /// `$name`: a variable set with `Assign`.
    Variable(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Field(String),
    Index(i64),
    Wildcard,
    Slice(Option<i64>, Option<i64>),
    Union(Vec<i64>),
    Fields(Vec<String>),
    DeepScan(String),
    Filter(Filter),
}

/// A filter expression (`[?(@.price < 10 && @.kind == 'book')]`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Filter {
    Or(Vec<Filter>),
    And(Vec<Filter>),
    /// `@...` exists (and is not `false` or `null`).
    Exists(Box<Path>),
    Compare(Operand, Op, Operand),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Operand {
    Current(Box<Path>),
    Literal(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Operand {
    fn parse(text: &str, whole: &str) -> Result<Operand, String> {
        let t = text.trim();
        if let Some(rest) = t.strip_prefix('@') {
            return Ok(Operand::Current(Box::new(Path::parse(&format!(
                "${rest}"
            ))?)));
        }
        let json = if let Some(inner) = t.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')) {
            Value::String(inner.replace("\\'", "'")).to_string()
        } else {
            t.to_owned()
        };
        serde_json::from_str::<Value>(&json)
            .map(|_| Operand::Literal(json))
            .map_err(|_| format!("'{whole}': '{t}' is not a value in a filter"))
    }

    fn value(&self, current: &Value) -> Option<Value> {
        match self {
            Operand::Current(p) => p.select(current).ok().filter(|_| p.is_definite()),
            Operand::Literal(json) => serde_json::from_str(json).ok(),
        }
    }
}

impl Filter {
    fn parse(text: &str, whole: &str) -> Result<Filter, String> {
        let parts = split_top(text, "||");
        if parts.len() > 1 {
            return Ok(Filter::Or(
                parts
                    .iter()
                    .map(|p| Filter::parse(p, whole))
                    .collect::<Result<_, _>>()?,
            ));
        }
        let parts = split_top(text, "&&");
        if parts.len() > 1 {
            return Ok(Filter::And(
                parts
                    .iter()
                    .map(|p| Filter::parse(p, whole))
                    .collect::<Result<_, _>>()?,
            ));
        }
        let t = text.trim();
        if let Some(inner) = t.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
            return Filter::parse(inner, whole);
        }
        for (sym, op) in [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
        ] {
            let pieces = split_top(t, sym);
            if pieces.len() == 2 {
                return Ok(Filter::Compare(
                    Operand::parse(&pieces[0], whole)?,
                    op,
                    Operand::parse(&pieces[1], whole)?,
                ));
            }
        }
        match Operand::parse(t, whole)? {
            Operand::Current(p) => Ok(Filter::Exists(p)),
            Operand::Literal(_) => Err(format!("'{whole}': a filter needs '@'")),
        }
    }

    fn holds(&self, current: &Value) -> bool {
        match self {
            Filter::Or(fs) => fs.iter().any(|f| f.holds(current)),
            Filter::And(fs) => fs.iter().all(|f| f.holds(current)),
            Filter::Exists(p) => p
                .select(current)
                .is_ok_and(|v| !matches!(v, Value::Null | Value::Bool(false))),
            Filter::Compare(a, op, b) => {
                let (Some(a), Some(b)) = (a.value(current), b.value(current)) else {
                    return false;
                };
                let ord = match (&a, &b) {
                    (Value::Number(x), Value::Number(y)) => x.as_f64().partial_cmp(&y.as_f64()),
                    (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
                    _ => None,
                };
                match op {
                    Op::Eq => ord.map_or(a == b, |o| o.is_eq()),
                    Op::Ne => ord.map_or(a != b, |o| o.is_ne()),
                    Op::Lt => ord.is_some_and(|o| o.is_lt()),
                    Op::Le => ord.is_some_and(|o| o.is_le()),
                    Op::Gt => ord.is_some_and(|o| o.is_gt()),
                    Op::Ge => ord.is_some_and(|o| o.is_ge()),
                }
            }
        }
    }
}

/// Splits `text` at `sep` where it is outside quotes, brackets and parentheses.
fn split_top(text: &str, sep: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut start = 0;
    let mut i = 0;
    while i < text.len() {
        let c = text[i..].chars().next().expect("inside the text");
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' => quote = Some(c),
                '(' | '[' => depth += 1,
                ')' | ']' => depth -= 1,
                _ if depth == 0 && text[i..].starts_with(sep) => {
                    // `<` must not split `<=`.
                    let next = text[i + sep.len()..].chars().next();
                    if !(sep.len() == 1 && next == Some('=')) {
                        parts.push(text[start..i].to_owned());
                        i += sep.len();
                        start = i;
                        continue;
                    }
                }
                _ => {}
            },
        }
        i += c.len_utf8();
    }
    parts.push(text[start..].to_owned());
    parts
}

/// A parsed JSONPath.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    text: String,
    root: Root,
    segments: Vec<Segment>,
}

/// Why a path selected nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// The path up to the missing part, in Jayway's bracket form (`$['a']['b']`).
    pub at: String,
    /// Whether the whole path matched nothing (rather than an inner step).
    pub no_results: bool,
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Path {
    /// Parses a JSONPath; the error says why it is not one.
    pub fn parse(text: &str) -> Result<Path, String> {
        let bytes = text.as_bytes();
        if bytes.first() != Some(&b'$') {
            return Err(format!("'{text}' does not start with '$'"));
        }
        let mut i = 1;
        let root = if bytes.get(1) == Some(&b'$') {
            i = 2;
            Root::Context
        } else if bytes
            .get(1)
            .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
        {
            let start = 1;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            Root::Variable(text[start..i].to_owned())
        } else {
            Root::Data
        };
        let mut segments = Vec::new();
        while i < bytes.len() {
            match bytes[i] {
                b'.' => {
                    let deep = bytes.get(i + 1) == Some(&b'.');
                    i += if deep { 2 } else { 1 };
                    if bytes.get(i) == Some(&b'*') {
                        i += 1;
                        segments.push(Segment::Wildcard);
                        continue;
                    }
                    if bytes.get(i) == Some(&b'[') && deep {
                        continue;
                    }
                    let start = i;
                    while i < bytes.len() && bytes[i] != b'.' && bytes[i] != b'[' {
                        i += 1;
                    }
                    let name = &text[start..i];
                    if name.is_empty() {
                        return Err(format!("'{text}' has an empty field name"));
                    }
                    segments.push(if deep {
                        Segment::DeepScan(name.to_owned())
                    } else {
                        Segment::Field(name.to_owned())
                    });
                }
                b'[' => {
                    let (segment, next) = parse_bracket(text, i)?;
                    segments.push(segment);
                    i = next;
                }
                _ => return Err(format!("'{text}' has an unexpected character at {i}")),
            }
        }
        Ok(Path {
            text: text.to_owned(),
            root,
            segments,
        })
    }

    /// The path's text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Where the path starts.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// Whether the path selects at most one node (no wildcard, slice, union or deep scan).
    pub fn is_definite(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Field(_) | Segment::Index(_)))
    }

    /// Whether this is a reference path (definite, on the state's data).
    pub fn is_reference(&self) -> bool {
        self.is_definite() && self.root == Root::Data
    }

    /// Selects from `value` (the root this path starts at). A definite path
    /// yields its node; an indefinite one an array of every match.
    pub fn select(&self, value: &Value) -> Result<Value, Missing> {
        if self.is_definite() {
            let mut cur = value;
            let mut at = String::from("$");
            let last = self.segments.len().saturating_sub(1);
            for (n, seg) in self.segments.iter().enumerate() {
                let next = match seg {
                    Segment::Field(name) => {
                        at.push_str(&format!("['{name}']"));
                        cur.as_object().and_then(|o| o.get(name))
                    }
                    Segment::Index(i) => {
                        at.push_str(&format!("[{i}]"));
                        cur.as_array().and_then(|a| index(a, *i).map(|k| &a[k]))
                    }
                    _ => unreachable!("definite paths have only fields and indices"),
                };
                match next {
                    Some(v) => cur = v,
                    None => {
                        return Err(Missing {
                            at,
                            no_results: n == last,
                        });
                    }
                }
            }
            return Ok(cur.clone());
        }
        let mut current: Vec<&Value> = vec![value];
        for seg in &self.segments {
            let mut next = Vec::new();
            for v in current {
                match seg {
                    Segment::Field(name) => {
                        if let Some(x) = v.as_object().and_then(|o| o.get(name)) {
                            next.push(x);
                        }
                    }
                    Segment::Index(i) => {
                        if let Some(a) = v.as_array()
                            && let Some(k) = index(a, *i)
                        {
                            next.push(&a[k]);
                        }
                    }
                    Segment::Wildcard => match v {
                        Value::Array(a) => next.extend(a.iter()),
                        Value::Object(o) => next.extend(o.values()),
                        _ => {}
                    },
                    Segment::Slice(start, end) => {
                        if let Value::Array(a) = v {
                            let len = a.len() as i64;
                            let norm = |x: i64| if x < 0 { (len + x).max(0) } else { x.min(len) };
                            let s = start.map(norm).unwrap_or(0);
                            let e = end.map(norm).unwrap_or(len);
                            let mut k = s;
                            while k < e {
                                next.push(&a[k as usize]);
                                k += 1;
                            }
                        }
                    }
                    Segment::Union(idx) => {
                        if let Some(a) = v.as_array() {
                            for i in idx {
                                if let Some(k) = index(a, *i) {
                                    next.push(&a[k]);
                                }
                            }
                        }
                    }
                    Segment::Fields(names) => {
                        if let Some(o) = v.as_object() {
                            for n in names {
                                if let Some(x) = o.get(n) {
                                    next.push(x);
                                }
                            }
                        }
                    }
                    Segment::DeepScan(name) => deep_scan(v, name, &mut next),
                    Segment::Filter(filter) => match v {
                        Value::Array(a) => next.extend(a.iter().filter(|x| filter.holds(x))),
                        Value::Object(_) if filter.holds(v) => next.push(v),
                        _ => {}
                    },
                }
            }
            current = next;
        }
        Ok(Value::Array(current.into_iter().cloned().collect()))
    }

    /// Writes `value` at this reference path inside `target`, creating
    /// objects on the way. Fails when a step crosses a non-object.
    pub fn set(&self, target: Value, value: Value) -> Result<Value, Missing> {
        if self.segments.is_empty() {
            return Ok(value);
        }
        let mut root = target;
        let mut at = String::from("$");
        {
            let mut cur = &mut root;
            let last = self.segments.len() - 1;
            for (n, seg) in self.segments.iter().enumerate() {
                match seg {
                    Segment::Field(name) => {
                        at.push_str(&format!("['{name}']"));
                        let Value::Object(obj) = cur else {
                            return Err(Missing {
                                at,
                                no_results: false,
                            });
                        };
                        if n == last {
                            obj.insert(name.clone(), value);
                            break;
                        }
                        let entry = obj
                            .entry(name.clone())
                            .or_insert_with(|| Value::Object(Map::new()));
                        cur = entry;
                    }
                    Segment::Index(i) => {
                        at.push_str(&format!("[{i}]"));
                        let Value::Array(arr) = cur else {
                            return Err(Missing {
                                at,
                                no_results: false,
                            });
                        };
                        let Some(k) = index(arr, *i) else {
                            return Err(Missing {
                                at,
                                no_results: false,
                            });
                        };
                        if n == last {
                            arr[k] = value;
                            break;
                        }
                        cur = &mut arr[k];
                    }
                    _ => {
                        return Err(Missing {
                            at,
                            no_results: false,
                        });
                    }
                }
            }
        }
        Ok(root)
    }
}

fn index(a: &[Value], i: i64) -> Option<usize> {
    let len = a.len() as i64;
    let k = if i < 0 { len + i } else { i };
    (0..len).contains(&k).then_some(k as usize)
}

fn deep_scan<'a>(v: &'a Value, name: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(o) => {
            if let Some(x) = o.get(name) {
                out.push(x);
            }
            for x in o.values() {
                deep_scan(x, name, out);
            }
        }
        Value::Array(a) => {
            for x in a {
                deep_scan(x, name, out);
            }
        }
        _ => {}
    }
}

fn parse_bracket(text: &str, open: usize) -> Result<(Segment, usize), String> {
    let bytes = text.as_bytes();
    let mut i = open + 1;
    if bytes.get(i) == Some(&b'\'') || bytes.get(i) == Some(&b'"') {
        // One or more quoted names.
        let mut names = Vec::new();
        loop {
            // After a comma, the next name must be quoted too (and the text may have ended).
            let quote = match bytes.get(i) {
                Some(&q @ (b'\'' | b'"')) => q,
                _ => return Err(format!("'{text}' has a malformed bracket")),
            };
            i += 1;
            let mut name = String::new();
            loop {
                let Some(&b) = bytes.get(i) else {
                    return Err(format!("'{text}' has an unterminated quoted name"));
                };
                if b == b'\\' && bytes.get(i + 1) == Some(&quote) {
                    name.push(quote as char);
                    i += 2;
                    continue;
                }
                if b == quote {
                    i += 1;
                    break;
                }
                let c = text[i..].chars().next().expect("inside the text");
                name.push(c);
                i += c.len_utf8();
            }
            names.push(name);
            while bytes.get(i) == Some(&b' ') {
                i += 1;
            }
            match bytes.get(i) {
                Some(b']') => break,
                Some(b',') => {
                    i += 1;
                    while bytes.get(i) == Some(&b' ') {
                        i += 1;
                    }
                }
                _ => return Err(format!("'{text}' has a malformed bracket")),
            }
        }
        let seg = if names.len() == 1 {
            Segment::Field(names.pop().expect("one name"))
        } else {
            Segment::Fields(names)
        };
        return Ok((seg, i + 1));
    }
    if bytes.get(i) == Some(&b'?') {
        // A filter: `?(` ... `)` `]`, with nested brackets and quotes.
        let body_start = i + 1;
        let mut depth = 0i32;
        let mut quote: Option<char> = None;
        for (k, c) in text[body_start..].char_indices() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match c {
                    '\'' | '"' => quote = Some(c),
                    '(' | '[' => depth += 1,
                    ')' => depth -= 1,
                    ']' if depth == 0 => {
                        let body = text[body_start..body_start + k].trim();
                        let inner = body
                            .strip_prefix('(')
                            .and_then(|b| b.strip_suffix(')'))
                            .ok_or_else(|| format!("'{text}': a filter is written [?(...)]"))?;
                        return Ok((
                            Segment::Filter(Filter::parse(inner, text)?),
                            body_start + k + 1,
                        ));
                    }
                    ']' => depth -= 1,
                    _ => {}
                },
            }
        }
        return Err(format!("'{text}' has an unclosed filter"));
    }
    let close = text[i..]
        .find(']')
        .map(|k| i + k)
        .ok_or_else(|| format!("'{text}' has an unclosed bracket"))?;
    let inner = text[i..close].trim();
    let num = |s: &str| -> Result<i64, String> {
        s.trim()
            .parse::<i64>()
            .map_err(|_| format!("'{text}' has a bad index '{s}'"))
    };
    let seg = if inner == "*" {
        Segment::Wildcard
    } else if let Some((a, b)) = inner.split_once(':') {
        let b = b.split(':').next().unwrap_or("");
        let a = if a.trim().is_empty() {
            None
        } else {
            Some(num(a)?)
        };
        let b = if b.trim().is_empty() {
            None
        } else {
            Some(num(b)?)
        };
        Segment::Slice(a, b)
    } else if inner.contains(',') {
        Segment::Union(inner.split(',').map(num).collect::<Result<_, _>>()?)
    } else {
        Segment::Index(num(inner)?)
    };
    Ok((seg, close + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(p: &str, v: Value) -> Result<Value, Missing> {
        Path::parse(p).unwrap().select(&v)
    }

    #[test]
    fn selects_definite_and_indefinite() {
        let v = json!({"a": {"b": [1, 2, 3, {"c": 4}]}});
        assert_eq!(sel("$.a.b[0]", v.clone()).unwrap(), json!(1));
        assert_eq!(sel("$.a.b[-1].c", v.clone()).unwrap(), json!(4));
        assert_eq!(sel("$['a']['b'][1]", v.clone()).unwrap(), json!(2));
        assert_eq!(sel("$.a.b[1:3]", v.clone()).unwrap(), json!([2, 3]));
        assert_eq!(sel("$.a.b[:1]", v.clone()).unwrap(), json!([1]));
        assert_eq!(sel("$.a.b[*].c", v.clone()).unwrap(), json!([4]));
        assert_eq!(sel("$..c", v.clone()).unwrap(), json!([4]));
        assert_eq!(sel("$.x[1:]", v.clone()).unwrap(), json!([]));
        let items = json!({"items": [
            {"n": "a", "price": 5, "tags": ["x"]},
            {"n": "b", "price": 15, "sale": true},
            {"n": "c", "price": 25}
        ]});
        assert_eq!(
            sel("$.items[?(@.price > 10)].n", items.clone()).unwrap(),
            json!(["b", "c"])
        );
        assert_eq!(
            sel("$.items[?(@.price <= 5 || @.n == 'c')].n", items.clone()).unwrap(),
            json!(["a", "c"])
        );
        assert_eq!(
            sel("$.items[?(@.sale)].n", items.clone()).unwrap(),
            json!(["b"])
        );
        assert_eq!(
            sel(
                "$.items[?(@.tags[0] == 'x' && @.price < 10)].n",
                items.clone()
            )
            .unwrap(),
            json!(["a"])
        );
        assert_eq!(
            sel("$.items[?(@.n != \"a\")].price", items).unwrap(),
            json!([15, 25])
        );
        let err = sel("$.a.x.y", v).unwrap_err();
        assert_eq!(err.at, "$['a']['x']");
    }

    #[test]
    fn sets_reference_paths() {
        let p = Path::parse("$.a.b").unwrap();
        assert_eq!(
            p.set(json!({"x": 1}), json!(2)).unwrap(),
            json!({"x": 1, "a": {"b": 2}})
        );
        assert!(p.set(json!({"a": 1}), json!(2)).is_err());
        assert_eq!(
            Path::parse("$").unwrap().set(json!(1), json!(2)).unwrap(),
            json!(2)
        );
    }

    #[test]
    fn parses_roots() {
        assert_eq!(Path::parse("$$.Map.Item").unwrap().root(), &Root::Context);
        assert_eq!(
            Path::parse("$var.x").unwrap().root(),
            &Root::Variable("var".into())
        );
        assert!(Path::parse("a.b").is_err());
    }

    #[test]
    fn malformed_brackets_are_refused_not_panicked_on() {
        // Found by the jsonpath/intrinsic fuzz targets: a comma then the end of the text.
        for text in ["$['a', ", "$['a',", "$['a', b]", "$['a'", "$[", "$['"] {
            assert!(Path::parse(text).is_err(), "{text}");
        }
        assert!(Path::parse("$['a', 'b']").is_ok());
    }
}
