//! What paths and intrinsic calls are evaluated against: the state's data,
//! the context object, the variables in scope and the execution's random
//! numbers, and how many bytes one evaluation may still build.
//!
//! The budget bounds the work an input causes, not only the result: a
//! template or an intrinsic call charges every value it selects or makes as it
//! goes, so `States.Format` with thousands of `{}` over a large input stops at
//! the payload limit instead of building gigabytes first.

use crate::path::{Missing, Path, Root};
use crate::rng::Rng;
use serde_json::{Map, Value};

/// The values a path or an intrinsic call can see.
pub struct Scope<'a> {
    /// `$`.
    pub data: &'a Value,
    /// `$$`.
    pub context: &'a Value,
    /// `$name`, when variables are in scope.
    pub vars: Option<&'a Map<String, Value>>,
    /// Where `States.MathRandom` and `States.UUID` draw from.
    pub rng: &'a mut Rng,
    /// Bytes (of JSON text) this evaluation may still build.
    budget: usize,
}

/// An evaluation built more than the payload limit allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooBig;

impl<'a> Scope<'a> {
    /// A scope over `data` and `context`.
    pub fn new(
        data: &'a Value,
        context: &'a Value,
        vars: Option<&'a Map<String, Value>>,
        rng: &'a mut Rng,
    ) -> Scope<'a> {
        Scope {
            data,
            context,
            vars,
            rng,
            budget: crate::MAX_PAYLOAD_BYTES,
        }
    }

    /// Takes the size of `v` from the budget; fails once the budget is spent.
    pub fn charge(&mut self, v: &Value) -> Result<(), TooBig> {
        let size = json_size(v, self.budget).ok_or(TooBig)?;
        self.budget -= size;
        Ok(())
    }

    /// Takes `bytes` from the budget; fails once the budget is spent.
    pub fn charge_bytes(&mut self, bytes: usize) -> Result<(), TooBig> {
        self.budget = self.budget.checked_sub(bytes).ok_or(TooBig)?;
        Ok(())
    }

    /// Bytes left.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Gives back what was charged since the budget was `earlier`.
    pub fn refund_to(&mut self, earlier: usize) {
        self.budget = self.budget.max(earlier);
    }

    /// Evaluates `path` against the root it names.
    pub fn select(&self, path: &Path) -> Result<Value, Missing> {
        match path.root() {
            Root::Data => path.select(self.data),
            Root::Context => path.select(self.context),
            Root::Variable(name) => match self.vars.and_then(|v| v.get(name)) {
                Some(v) => path.select(v),
                None => Err(Missing {
                    at: format!("${name}"),
                    no_results: true,
                }),
            },
        }
    }
}

/// The length of `v` as compact JSON text (escapes aside), or `None` once it
/// exceeds `limit`. Walks at most `limit` bytes' worth of the value.
pub fn json_size(v: &Value, limit: usize) -> Option<usize> {
    fn walk(v: &Value, left: &mut usize) -> Option<()> {
        let take = |left: &mut usize, n: usize| -> Option<()> {
            *left = left.checked_sub(n)?;
            Some(())
        };
        match v {
            Value::Null | Value::Bool(true) => take(left, 4),
            Value::Bool(false) => take(left, 5),
            Value::Number(n) => take(left, number_len(n)),
            Value::String(s) => take(left, s.len() + 2),
            Value::Array(items) => {
                take(left, 2 + items.len().saturating_sub(1))?;
                items.iter().try_for_each(|i| walk(i, left))
            }
            Value::Object(map) => {
                take(left, 2 + map.len().saturating_sub(1))?;
                map.iter().try_for_each(|(k, i)| {
                    take(left, k.len() + 3)?;
                    walk(i, left)
                })
            }
        }
    }
    let mut left = limit;
    walk(v, &mut left)?;
    Some(limit - left)
}

fn number_len(n: &serde_json::Number) -> usize {
    if let Some(i) = n.as_i64() {
        let digits = i
            .unsigned_abs()
            .checked_ilog10()
            .map_or(1, |d| d as usize + 1);
        digits + usize::from(i < 0)
    } else if let Some(u) = n.as_u64() {
        u.checked_ilog10().map_or(1, |d| d as usize + 1)
    } else {
        // Floats print in at most 24 characters (`-1.2345678901234567e-308`).
        24
    }
}

#[cfg(test)]
mod tests {
    use super::json_size;
    use serde_json::json;

    #[test]
    fn sizes_are_those_of_compact_json() {
        for v in [
            json!(null),
            json!(false),
            json!(-120),
            json!(7),
            json!(u64::MAX),
            json!("abc"),
            json!([1, "x", {"k": [true, null]}]),
            json!({}),
            json!([]),
        ] {
            assert_eq!(json_size(&v, 1000), Some(v.to_string().len()), "{v}");
        }
        assert_eq!(json_size(&json!("abcdef"), 7), None);
        assert_eq!(json_size(&json!("abcdef"), 8), Some(8));
    }
}
