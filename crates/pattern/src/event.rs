//! Events: parsed once, flattened into leaves keyed by dotted path.

use std::borrow::Cow;
use std::collections::HashSet;
use std::ops::Range;

use crate::Error;
use crate::json;

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
    /// Which of [`ENVELOPE_FIELDS`] appear at the top level, one bit each.
    envelope: u8,
    /// The dotted paths' text; `paths` holds ranges into it.
    names: String,
    /// Each dotted path (a range of `names`) and its leaves (a range of
    /// `leaves`), paths sorted for lookup.
    paths: Vec<(Range<usize>, Range<usize>)>,
    /// Leaves grouped by path, each path's leaves in document order.
    leaves: Vec<Leaf>,
}

/// The dotted paths worth keeping when an event is parsed for matching: those some pattern
/// names ([`crate::RuleSet::fields`]). An event parsed with them ([`Event::parse_fields`])
/// matches every pattern that names only these paths exactly as the whole event would, at a
/// fraction of the cost: the other values are checked and skipped, not stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    paths: HashSet<Box<str>>,
}

impl Fields {
    pub fn new() -> Fields {
        Fields::default()
    }

    pub fn insert(&mut self, path: &str) {
        if !self.paths.contains(path) {
            self.paths.insert(path.into());
        }
    }

    pub fn contains(&self, path: &str) -> bool {
        self.paths.contains(path)
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Every path of `other` too.
    pub fn extend(&mut self, other: &Fields) {
        for p in &other.paths {
            self.insert(p);
        }
    }
}

impl Event {
    /// Parses an event: any JSON object, nested at most
    /// [`MAX_DEPTH`](crate::MAX_DEPTH) levels deep.
    pub fn parse(text: &str) -> Result<Event, Error> {
        Self::parse_keeping(text, None)
    }

    /// Parses an event like [`Event::parse`] (the same checks, the same errors), keeping only
    /// the values at `fields`: enough to match patterns that name no other path.
    pub fn parse_fields(text: &str, fields: &Fields) -> Result<Event, Error> {
        Self::parse_keeping(text, Some(fields))
    }

    fn parse_keeping(text: &str, keep: Option<&Fields>) -> Result<Event, Error> {
        if text
            .trim_start_matches([' ', '\t', '\n', '\r'])
            .as_bytes()
            .first()
            != Some(&b'{')
        {
            json::parse(text).map_err(Error::InvalidEvent)?;
            return Err(Error::InvalidEvent("the event is not a JSON object".into()));
        }
        let mut flattener = Flattener {
            keep,
            path: String::with_capacity(64),
            arrays: Vec::new(),
            next_array: 0,
            depth: 0,
            envelope: 0,
            names: String::with_capacity(text.len()),
            flat: Vec::with_capacity(32),
        };
        json::parse_with(text, &mut flattener).map_err(Error::InvalidEvent)?;
        let Flattener {
            envelope,
            names,
            mut flat,
            ..
        } = flattener;
        let bytes = names.as_bytes();
        flat.sort_by(|a, b| bytes[a.0.clone()].cmp(&bytes[b.0.clone()]));
        let mut paths: Vec<(Range<usize>, Range<usize>)> = Vec::new();
        let mut leaves = Vec::with_capacity(flat.len());
        for (name, leaf) in flat {
            let i = leaves.len();
            leaves.push(leaf);
            match paths.last_mut() {
                Some((p, range)) if bytes[p.clone()] == bytes[name.clone()] => range.end = i + 1,
                _ => paths.push((name, i..i + 1)),
            }
        }
        Ok(Event {
            envelope,
            names,
            paths,
            leaves,
        })
    }

    /// Checks the envelope `TestEventPattern` requires: the top-level fields
    /// `id`, `account`, `source`, `time`, `region` and `detail-type`.
    pub fn check_envelope(&self) -> Result<(), Error> {
        for (bit, field) in ENVELOPE_FIELDS.iter().enumerate() {
            if self.envelope & (1 << bit) == 0 {
                return Err(Error::InvalidEvent(format!(
                    "the event lacks the field `{field}`"
                )));
            }
        }
        Ok(())
    }

    /// Every field of the event: its dotted path and its (non-empty) leaves,
    /// paths sorted.
    pub(crate) fn fields(&self) -> impl Iterator<Item = (&str, &[Leaf])> {
        self.paths
            .iter()
            .map(|(name, leaves)| (&self.names[name.clone()], &self.leaves[leaves.clone()]))
    }

    /// Every leaf at a dotted path; empty when the field is absent.
    pub(crate) fn leaves(&self, path: &str) -> &[Leaf] {
        match self
            .paths
            .binary_search_by(|(name, _)| self.names.as_bytes()[name.clone()].cmp(path.as_bytes()))
        {
            Ok(i) => &self.leaves[self.paths[i].1.clone()],
            Err(_) => &[],
        }
    }
}

/// Flattens an event straight from its text into `(dotted path, leaf)`
/// pairs, reusing one path buffer.
struct Flattener<'k> {
    /// Only the leaves at these paths are kept (all when `None`).
    keep: Option<&'k Fields>,
    path: String,
    arrays: Vec<(u32, u32)>,
    next_array: u32,
    /// Objects and arrays open around the value being read.
    depth: u32,
    envelope: u8,
    /// Every leaf's path text, one after the other.
    names: String,
    /// Every leaf with its path (a range of `names`), in document order.
    flat: Vec<(Range<usize>, Leaf)>,
}

impl Flattener<'_> {
    /// Whether the leaf at the current path is kept.
    fn wanted(&self) -> bool {
        self.keep.is_none_or(|k| k.contains(&self.path))
    }

    fn leaf(&mut self, value: Scalar) {
        // Array elements share their path: store it once.
        let name = match self.flat.last() {
            Some((last, _)) if self.names.as_bytes()[last.clone()] == *self.path.as_bytes() => {
                last.clone()
            }
            _ => {
                let start = self.names.len();
                self.names.push_str(&self.path);
                start..self.names.len()
            }
        };
        self.flat.push((
            name,
            Leaf {
                value,
                arrays: self.arrays.clone(),
            },
        ));
    }
}

impl json::Sink for Flattener<'_> {
    type Val = ();
    /// The path's length outside the object.
    type Obj = usize;
    /// The array's id and the index of the element being read.
    type Arr = (u32, u32);

    fn null(&mut self) {
        if self.wanted() {
            self.leaf(Scalar::Null);
        }
    }
    fn bool(&mut self, b: bool) {
        if self.wanted() {
            self.leaf(Scalar::Bool(b));
        }
    }
    fn number(&mut self, text: &str) {
        if self.wanted() {
            self.leaf(Scalar::Number(text.to_string(), json::exact_f64(text)));
        }
    }
    fn string(&mut self, s: Cow<'_, str>) {
        if self.wanted() {
            self.leaf(Scalar::String(s.into_owned()));
        }
    }
    fn object_start(&mut self) -> usize {
        self.depth += 1;
        self.path.len()
    }
    fn key(&mut self, obj: &mut usize, key: Cow<'_, str>) {
        if self.depth == 1
            && let Some(bit) = ENVELOPE_FIELDS.iter().position(|f| *f == key)
        {
            self.envelope |= 1 << bit;
        }
        self.path.truncate(*obj);
        if *obj != 0 {
            self.path.push('.');
        }
        self.path.push_str(&key);
    }
    fn member(&mut self, obj: &mut usize, (): ()) {
        self.path.truncate(*obj);
    }
    fn object_end(&mut self, obj: usize) {
        self.path.truncate(obj);
        self.depth -= 1;
    }
    fn array_start(&mut self) -> (u32, u32) {
        self.depth += 1;
        let id = self.next_array;
        self.next_array += 1;
        (id, 0)
    }
    fn item_start(&mut self, arr: &mut (u32, u32)) {
        self.arrays.push(*arr);
    }
    fn item(&mut self, arr: &mut (u32, u32), (): ()) {
        self.arrays.pop();
        arr.1 += 1;
    }
    fn array_end(&mut self, _: (u32, u32)) {
        self.depth -= 1;
    }
}

/// Whether two leaves can be part of the same match.
pub(crate) fn consistent(a: &[(u32, u32)], b: &[(u32, u32)]) -> bool {
    a.iter()
        .all(|(id, ix)| b.iter().all(|(id2, ix2)| id != id2 || ix == ix2))
}
