//! A small strict JSON parser that keeps the exact source text of every number.
//!
//! Event patterns compare numbers by their JSON text (`300` and `300.0` are
//! different exact values), so a normalising parser cannot be used.

use std::borrow::Cow;

/// Events and patterns nested deeper than this many levels are rejected (muon's one bound).
pub const MAX_DEPTH: usize = muon_types::MAX_JSON_DEPTH;

/// A parsed JSON value. Objects keep every member in source order,
/// duplicates included; callers decide what a repeated key means.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// The number exactly as written in the source.
    Number(String),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The text Jackson reports for this value's first token in error messages.
    pub(crate) fn token_text(&self) -> String {
        match self {
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.clone(),
            Value::String(s) => s.clone(),
            Value::Array(_) => "[".into(),
            Value::Object(_) => "{".into(),
        }
    }
}

/// Parses one JSON document (surrounding whitespace allowed).
pub fn parse(text: &str) -> Result<Value, String> {
    parse_with(text, &mut Tree)
}

/// What the parser builds from the values it reads: a [`Value`] tree, or
/// anything else (events are flattened straight from the text).
pub(crate) trait Sink {
    /// What one parsed value becomes.
    type Val;
    /// State of an object being read.
    type Obj;
    /// State of an array being read.
    type Arr;
    fn null(&mut self) -> Self::Val;
    fn bool(&mut self, b: bool) -> Self::Val;
    fn number(&mut self, text: &str) -> Self::Val;
    fn string(&mut self, s: Cow<'_, str>) -> Self::Val;
    fn object_start(&mut self) -> Self::Obj;
    /// A member's key, before its value is parsed.
    fn key(&mut self, obj: &mut Self::Obj, key: Cow<'_, str>);
    /// A member's value, after its key.
    fn member(&mut self, obj: &mut Self::Obj, v: Self::Val);
    fn object_end(&mut self, obj: Self::Obj) -> Self::Val;
    fn array_start(&mut self) -> Self::Arr;
    /// Called before each element is parsed.
    fn item_start(&mut self, arr: &mut Self::Arr);
    fn item(&mut self, arr: &mut Self::Arr, v: Self::Val);
    fn array_end(&mut self, arr: Self::Arr) -> Self::Val;
}

/// Builds a [`Value`] tree.
struct Tree;

impl Sink for Tree {
    type Val = Value;
    type Obj = (Vec<(String, Value)>, String);
    type Arr = Vec<Value>;
    fn null(&mut self) -> Value {
        Value::Null
    }
    fn bool(&mut self, b: bool) -> Value {
        Value::Bool(b)
    }
    fn number(&mut self, text: &str) -> Value {
        Value::Number(text.to_string())
    }
    fn string(&mut self, s: Cow<'_, str>) -> Value {
        Value::String(s.into_owned())
    }
    fn object_start(&mut self) -> Self::Obj {
        (Vec::new(), String::new())
    }
    fn key(&mut self, obj: &mut Self::Obj, key: Cow<'_, str>) {
        obj.1 = key.into_owned();
    }
    fn member(&mut self, obj: &mut Self::Obj, v: Value) {
        obj.0.push((std::mem::take(&mut obj.1), v));
    }
    fn object_end(&mut self, obj: Self::Obj) -> Value {
        Value::Object(obj.0)
    }
    fn array_start(&mut self) -> Vec<Value> {
        Vec::new()
    }
    fn item_start(&mut self, _: &mut Vec<Value>) {}
    fn item(&mut self, arr: &mut Vec<Value>, v: Value) {
        arr.push(v);
    }
    fn array_end(&mut self, arr: Vec<Value>) -> Value {
        Value::Array(arr)
    }
}

/// Parses one JSON document (surrounding whitespace allowed), handing what
/// it reads to `sink`.
pub(crate) fn parse_with<S: Sink>(text: &str, sink: &mut S) -> Result<S::Val, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        i: 0,
        sink,
    };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!(
            "Unexpected character ('{}'): expected end of input",
            p.peek_char()
        ));
    }
    Ok(v)
}

#[cold]
fn too_deep() -> String {
    format!("Document nesting depth exceeds the maximum of {MAX_DEPTH}")
}

#[cold]
fn unexpected(found: char, expecting: &str) -> String {
    format!("Unexpected character ('{found}'): was expecting {expecting}")
}

struct Parser<'a, 'k, S> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
    sink: &'k mut S,
}

impl<'a, S: Sink> Parser<'a, '_, S> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn peek_char(&self) -> char {
        self.text[self.i..].chars().next().unwrap_or(' ')
    }

    fn eof() -> String {
        "Unexpected end-of-input".into()
    }

    fn value(&mut self, depth: usize) -> Result<S::Val, String> {
        match self.s.get(self.i) {
            None => Err(Self::eof()),
            Some(b'{') => {
                if depth >= MAX_DEPTH {
                    return Err(too_deep());
                }
                self.object(depth + 1)
            }
            Some(b'[') => {
                if depth >= MAX_DEPTH {
                    return Err(too_deep());
                }
                self.array(depth + 1)
            }
            Some(b'"') => {
                let v = self.string()?;
                Ok(self.sink.string(v))
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => self.literal(),
        }
    }

    #[inline(never)]
    fn literal(&mut self) -> Result<S::Val, String> {
        for (word, v) in [("null", None), ("true", Some(true)), ("false", Some(false))] {
            if self.s[self.i..].starts_with(word.as_bytes()) {
                let end = self.i + word.len();
                if !matches!(self.s.get(end), Some(c) if c.is_ascii_alphanumeric()) {
                    self.i = end;
                    return Ok(match v {
                        None => self.sink.null(),
                        Some(b) => self.sink.bool(b),
                    });
                }
            }
        }
        let rest = &self.text[self.i..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len())
            .max(rest.chars().next().map_or(0, char::len_utf8));
        Err(format!(
            "Unrecognized token '{}': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false')",
            &rest[..end]
        ))
    }

    fn object(&mut self, depth: usize) -> Result<S::Val, String> {
        self.i += 1;
        let mut obj = self.sink.object_start();
        self.ws();
        if self.s.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(self.sink.object_end(obj));
        }
        loop {
            self.ws();
            match self.s.get(self.i) {
                Some(b'"') => {}
                None => return Err(Self::eof()),
                Some(_) => {
                    return Err(unexpected(
                        self.peek_char(),
                        "double-quote to start field name",
                    ));
                }
            }
            let key = self.string()?;
            self.sink.key(&mut obj, key);
            self.ws();
            match self.s.get(self.i) {
                Some(b':') => self.i += 1,
                None => return Err(Self::eof()),
                Some(_) => {
                    return Err(unexpected(
                        self.peek_char(),
                        "a colon to separate field name and value",
                    ));
                }
            }
            self.ws();
            let v = self.value(depth)?;
            self.sink.member(&mut obj, v);
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(self.sink.object_end(obj));
                }
                None => return Err(Self::eof()),
                Some(_) => {
                    return Err(unexpected(
                        self.peek_char(),
                        "comma to separate Object entries",
                    ));
                }
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<S::Val, String> {
        self.i += 1;
        let mut arr = self.sink.array_start();
        self.ws();
        if self.s.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(self.sink.array_end(arr));
        }
        loop {
            self.ws();
            self.sink.item_start(&mut arr);
            let v = self.value(depth)?;
            self.sink.item(&mut arr, v);
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(self.sink.array_end(arr));
                }
                None => return Err(Self::eof()),
                Some(_) => {
                    return Err(unexpected(
                        self.peek_char(),
                        "comma to separate Array entries",
                    ));
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self.s.get(self.i..self.i + 4).ok_or_else(Self::eof)?;
        let mut v = 0u32;
        for &c in h {
            let d = (c as char)
                .to_digit(16)
                .ok_or("Unexpected character in \\u escape: expected a hex-digit")?;
            v = v * 16 + d;
        }
        self.i += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<Cow<'a, str>, String> {
        self.i += 1; // opening quote
        let start = self.i;
        while let Some(&c) = self.s.get(self.i) {
            if c == b'"' || c == b'\\' || c < 0x20 {
                break;
            }
            self.i += 1;
        }
        if self.s.get(self.i) == Some(&b'"') {
            self.i += 1;
            return Ok(Cow::Borrowed(&self.text[start..self.i - 1]));
        }
        self.i = start;
        let mut out = String::new();
        loop {
            let start = self.i;
            while let Some(&c) = self.s.get(self.i) {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.i += 1;
            }
            out.push_str(&self.text[start..self.i]);
            match self.s.get(self.i) {
                None => return Err("Unexpected end-of-input in a String value".into()),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.i += 1;
                    let e = *self.s.get(self.i).ok_or_else(Self::eof)?;
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                if self.s.get(self.i..self.i + 2) != Some(b"\\u") {
                                    return Err("Unpaired high surrogate in a String value".into());
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err("Invalid low surrogate in a String value".into());
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&hi) {
                                return Err("Unpaired low surrogate in a String value".into());
                            } else {
                                hi
                            };
                            out.push(char::from_u32(cp).ok_or("Invalid \\u escape")?);
                        }
                        other => {
                            return Err(format!(
                                "Unrecognized character escape '{}'",
                                other as char
                            ));
                        }
                    }
                }
                Some(_) => {
                    return Err(
                        "Illegal unquoted character: has to be escaped using backslash to be included in string value"
                            .into(),
                    );
                }
            }
        }
    }

    fn number(&mut self) -> Result<S::Val, String> {
        let start = self.i;
        let digits = |p: &mut Self| {
            let s = p.i;
            while matches!(p.s.get(p.i), Some(b'0'..=b'9')) {
                p.i += 1;
            }
            p.i - s
        };
        if self.s.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let int_start = self.i;
        let n = digits(self);
        if n == 0 {
            return Err("Invalid numeric value: no digit following minus sign".into());
        }
        if n > 1 && self.s[int_start] == b'0' {
            return Err("Invalid numeric value: Leading zeroes not allowed".into());
        }
        if self.s.get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return Err("Unexpected character: Decimal point not followed by a digit".into());
            }
        }
        if let Some(b'e' | b'E') = self.s.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.s.get(self.i) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(
                    "Unexpected character: Exponent indicator not followed by a digit".into(),
                );
            }
        }
        Ok(self.sink.number(&self.text[start..self.i]))
    }
}

/// The value of a JSON number if a double represents it exactly, as
/// event-ruler's `ComparableNumber` requires; `None` otherwise.
pub fn exact_f64(text: &str) -> Option<f64> {
    let v: f64 = text.parse().ok()?;
    // Fast path: without an exponent and with at most 15 digits in all, the
    // number lies within (1e-15, 1e15) or is zero, and every decimal of at
    // most 15 significant digits there survives the round trip through a
    // double, so the check below would succeed.
    let body = text.strip_prefix('-').unwrap_or(text).as_bytes();
    if body.len() <= 16
        && body.iter().all(|&b| b.is_ascii_digit() || b == b'.')
        && body.iter().filter(|&&b| b.is_ascii_digit()).count() <= 15
    {
        return Some(v);
    }
    if !v.is_finite() {
        return None;
    }
    if decimal_key(text)? == decimal_key(&format!("{v:e}"))? {
        Some(v)
    } else {
        None
    }
}

/// A number's canonical decimal form: sign, significant digits, exponent.
fn decimal_key(text: &str) -> Option<(bool, String, i64)> {
    let (neg, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (mant, exp) = match rest.find(['e', 'E']) {
        Some(p) => (&rest[..p], rest[p + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (ip, fp) = mant.split_once('.').unwrap_or((mant, ""));
    let mut digits: String = format!("{ip}{fp}");
    let mut exp = exp - fp.len() as i64;
    let lead = digits.len() - digits.trim_start_matches('0').len();
    digits.drain(..lead);
    while digits.ends_with('0') {
        digits.pop();
        exp += 1;
    }
    if digits.is_empty() {
        return Some((false, String::new(), 0));
    }
    Some((neg, digits, exp))
}
