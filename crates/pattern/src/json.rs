//! A small strict JSON parser that keeps the exact source text of every number.
//!
//! Event patterns compare numbers by their JSON text (`300` and `300.0` are
//! different exact values), so a normalising parser cannot be used.

/// Events and patterns nested deeper than this many levels are rejected.
pub const MAX_DEPTH: usize = 1000;

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
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        i: 0,
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

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

impl Parser<'_> {
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

    fn value(&mut self, depth: usize) -> Result<Value, String> {
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
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => self.literal(),
        }
    }

    #[inline(never)]
    fn literal(&mut self) -> Result<Value, String> {
        for (word, v) in [
            ("null", Value::Null),
            ("true", Value::Bool(true)),
            ("false", Value::Bool(false)),
        ] {
            if self.s[self.i..].starts_with(word.as_bytes()) {
                let end = self.i + word.len();
                if !matches!(self.s.get(end), Some(c) if c.is_ascii_alphanumeric()) {
                    self.i = end;
                    return Ok(v);
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

    fn object(&mut self, depth: usize) -> Result<Value, String> {
        self.i += 1;
        let mut members = Vec::new();
        self.ws();
        if self.s.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(Value::Object(members));
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
            members.push((key, v));
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Value::Object(members));
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

    fn array(&mut self, depth: usize) -> Result<Value, String> {
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.s.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth)?);
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Value::Array(items));
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

    fn string(&mut self) -> Result<String, String> {
        self.i += 1; // opening quote
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
                    return Ok(out);
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

    fn number(&mut self) -> Result<Value, String> {
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
        Ok(Value::Number(self.text[start..self.i].to_string()))
    }
}

/// The value of a JSON number if a double represents it exactly, as
/// event-ruler's `ComparableNumber` requires; `None` otherwise.
pub fn exact_f64(text: &str) -> Option<f64> {
    let v: f64 = text.parse().ok()?;
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
