//! Events: parsed once, flattened into leaves keyed by dotted path.

use crate::Error;
use crate::json::{self, Value};

/// Fields every event given to `TestEventPattern` must carry.
const ENVELOPE_FIELDS: [&str; 6] = ["id", "account", "source", "time", "region", "detail-type"];

/// A scalar leaf of an event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Null,
    Bool(bool),
    /// Exact source text, and the value when a double represents it exactly.
    Number(String, Option<f64>),
    String(String),
}

/// One scalar value of the event, at a dotted path.
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    pub(crate) value: Scalar,
    /// `(array id, element index)` for every array this leaf sits in,
    /// outermost first. Two leaves may be combined in one match only if they
    /// agree on the index of every array they share ("array consistency").
    pub(crate) arrays: Vec<(u32, u32)>,
}

/// A parsed event. Numbers keep their exact JSON text.
#[derive(Debug, Clone)]
pub struct Event {
    root: Value,
    /// Leaves grouped by dotted path, paths sorted for lookup.
    fields: Vec<(String, Vec<Leaf>)>,
}

impl Event {
    /// Parses an event: any JSON object, nested at most
    /// [`MAX_DEPTH`](crate::MAX_DEPTH) levels deep.
    pub fn parse(text: &str) -> Result<Event, Error> {
        let root = json::parse(text).map_err(Error::InvalidEvent)?;
        let Value::Object(members) = &root else {
            return Err(Error::InvalidEvent("the event is not a JSON object".into()));
        };
        let mut flat: Vec<(String, Leaf)> = Vec::new();
        let mut next_array = 0u32;
        flatten_object(members, "", &mut Vec::new(), &mut next_array, &mut flat);
        flat.sort_by(|a, b| a.0.cmp(&b.0));
        let mut fields: Vec<(String, Vec<Leaf>)> = Vec::new();
        for (path, leaf) in flat {
            match fields.last_mut() {
                Some((p, leaves)) if *p == path => leaves.push(leaf),
                _ => fields.push((path, vec![leaf])),
            }
        }
        Ok(Event { root, fields })
    }

    /// Checks the envelope `TestEventPattern` requires: the top-level fields
    /// `id`, `account`, `source`, `time`, `region` and `detail-type`.
    pub fn check_envelope(&self) -> Result<(), Error> {
        let Value::Object(members) = &self.root else {
            return Err(Error::InvalidEvent("the event is not a JSON object".into()));
        };
        for field in ENVELOPE_FIELDS {
            if !members.iter().any(|(k, _)| k == field) {
                return Err(Error::InvalidEvent(format!(
                    "the event lacks the field `{field}`"
                )));
            }
        }
        Ok(())
    }

    /// Every field of the event: its dotted path and its (non-empty) leaves,
    /// paths sorted.
    pub(crate) fn fields(&self) -> &[(String, Vec<Leaf>)] {
        &self.fields
    }

    /// Every leaf at a dotted path; empty when the field is absent.
    pub(crate) fn leaves(&self, path: &str) -> &[Leaf] {
        match self.fields.binary_search_by(|(p, _)| p.as_str().cmp(path)) {
            Ok(i) => &self.fields[i].1,
            Err(_) => &[],
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn flatten_object(
    members: &[(String, Value)],
    prefix: &str,
    arrays: &mut Vec<(u32, u32)>,
    next_array: &mut u32,
    out: &mut Vec<(String, Leaf)>,
) {
    for (key, value) in members {
        flatten_value(value, &join(prefix, key), arrays, next_array, out);
    }
}

fn flatten_value(
    value: &Value,
    path: &str,
    arrays: &mut Vec<(u32, u32)>,
    next_array: &mut u32,
    out: &mut Vec<(String, Leaf)>,
) {
    let scalar = match value {
        Value::Object(members) => {
            flatten_object(members, path, arrays, next_array, out);
            return;
        }
        Value::Array(items) => {
            let id = *next_array;
            *next_array += 1;
            for (index, item) in items.iter().enumerate() {
                arrays.push((id, index as u32));
                flatten_value(item, path, arrays, next_array, out);
                arrays.pop();
            }
            return;
        }
        Value::Null => Scalar::Null,
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Number(n) => Scalar::Number(n.clone(), json::exact_f64(n)),
        Value::String(s) => Scalar::String(s.clone()),
    };
    out.push((
        path.to_string(),
        Leaf {
            value: scalar,
            arrays: arrays.clone(),
        },
    ));
}

/// Whether two leaves can be part of the same match.
pub(crate) fn consistent(a: &[(u32, u32)], b: &[(u32, u32)]) -> bool {
    a.iter()
        .all(|(id, ix)| b.iter().all(|(id2, ix2)| id != id2 || ix == ix2))
}
