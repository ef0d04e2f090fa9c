//! A compiled multi-rule matcher: every rule of a bus matched against one
//! event together.
//!
//! Each pattern alternative (a conjunction of `(path, matchers)` conditions,
//! `$or` expanded) is indexed by its conditions, per field path. Exact values
//! sit in hash maps and prefixes in a byte trie, so an event's value finds the
//! conditions it satisfies directly, whatever the number of rules; the other
//! matchers sit in a per-path list and are tried with the naive leaf matcher.
//! An alternative all of whose counted conditions are satisfied is a
//! candidate, which is then confirmed with the naive matcher
//! ([`match_rule`]), so that array consistency, `exists: false` and
//! everything else behave exactly as [`Pattern::matches`] does.
//!
//! A condition that holds `exists: false` can be satisfied by an absent
//! field, so no event value can announce it: it is not indexed and not
//! counted, and an alternative with no counted condition is always a
//! candidate.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;
use std::net::IpAddr;

use crate::Pattern;
use crate::event::{Event, Fields, Leaf, Scalar};
use crate::pattern::{Matcher, ip_literal, match_rule};

/// One condition of one alternative: `(alternative slot, condition index)`.
type CondRef = (u32, u32);

/// A set of patterns, each under an id, matched against events together.
///
/// [`RuleSet::matches`] returns exactly the ids whose [`Pattern::matches`]
/// is true, at a cost that does not grow with the number of rules made of
/// exact values and prefixes.
#[derive(Debug, Clone)]
pub struct RuleSet<Id> {
    /// Id → rule slot.
    ids: HashMap<Id, u32>,
    rules: Vec<Option<RuleEntry<Id>>>,
    free_rules: Vec<u32>,
    alts: Vec<Option<Alt>>,
    free_alts: Vec<u32>,
    /// Alternatives with no counted condition: always confirmed.
    always: HashSet<u32>,
    paths: HashMap<String, PathIndex>,
    /// Every path a condition names (counted conditions and `exists: false` alike), with how
    /// many conditions name it.
    fields: HashMap<String, usize>,
}

#[derive(Debug, Clone)]
struct RuleEntry<Id> {
    id: Id,
    pattern: Pattern,
    alts: Vec<u32>,
}

#[derive(Debug, Clone)]
struct Alt {
    rule: u32,
    /// Index of this alternative in the rule's pattern.
    index: usize,
    /// How many conditions must be seen satisfied to make it a candidate.
    needed: u32,
}

/// The conditions on one field path.
#[derive(Debug, Clone, Default)]
struct PathIndex {
    strings: HashMap<String, Vec<CondRef>>,
    ips: HashMap<IpAddr, Vec<CondRef>>,
    /// Numbers no double represents exactly, by their text.
    number_texts: HashMap<String, Vec<CondRef>>,
    /// Numbers by the bits of their value (`-0` folded onto `0`).
    number_values: HashMap<u64, Vec<CondRef>>,
    nulls: Vec<CondRef>,
    bools: [Vec<CondRef>; 2],
    prefixes: Trie,
    /// Matchers that cannot be looked up: tried on every leaf.
    others: Vec<(CondRef, Matcher)>,
}

/// A byte trie of prefixes; each node holds the conditions of the prefix
/// that ends there.
#[derive(Debug, Clone, Default)]
struct Trie {
    here: Vec<CondRef>,
    children: BTreeMap<u8, Trie>,
}

impl Trie {
    fn insert(&mut self, key: &[u8], cond: CondRef) {
        match key.split_first() {
            None => self.here.push(cond),
            Some((b, rest)) => self.children.entry(*b).or_default().insert(rest, cond),
        }
    }

    fn remove(&mut self, key: &[u8], cond: CondRef) {
        match key.split_first() {
            None => self.here.retain(|c| *c != cond),
            Some((b, rest)) => {
                if let Some(child) = self.children.get_mut(b) {
                    child.remove(rest, cond);
                    if child.is_empty() {
                        self.children.remove(b);
                    }
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.here.is_empty() && self.children.is_empty()
    }

    /// Every condition whose prefix `value` starts with.
    fn collect(&self, value: &[u8], out: &mut Vec<CondRef>) {
        let mut node = self;
        out.extend_from_slice(&node.here);
        for b in value {
            match node.children.get(b) {
                Some(child) => node = child,
                None => return,
            }
            out.extend_from_slice(&node.here);
        }
    }
}

/// The hash key of a number's value; `-0` and `0` compare equal.
fn number_key(v: f64) -> u64 {
    if v == 0.0 { 0 } else { v.to_bits() }
}

fn remove_from<K: Hash + Eq>(map: &mut HashMap<K, Vec<CondRef>>, key: &K, cond: CondRef) {
    if let Some(list) = map.get_mut(key) {
        list.retain(|c| *c != cond);
        if list.is_empty() {
            map.remove(key);
        }
    }
}

impl PathIndex {
    /// Files `matcher` under `cond`, or removes it when `add` is false.
    fn update(&mut self, cond: CondRef, matcher: &Matcher, add: bool) {
        fn edit<K: Hash + Eq>(
            map: &mut HashMap<K, Vec<CondRef>>,
            key: K,
            cond: CondRef,
            add: bool,
        ) {
            if add {
                map.entry(key).or_default().push(cond);
            } else {
                remove_from(map, &key, cond);
            }
        }
        fn edit_list(list: &mut Vec<CondRef>, cond: CondRef, add: bool) {
            if add {
                list.push(cond);
            } else {
                list.retain(|c| *c != cond);
            }
        }
        match matcher {
            Matcher::ExactString(s) | Matcher::Exact(Scalar::String(s)) => {
                edit(&mut self.strings, s.clone(), cond, add);
            }
            // `ExactIp` matches a string that denotes the same address
            // (the pattern's own text included).
            Matcher::ExactIp(ip, _) => edit(&mut self.ips, *ip, cond, add),
            // A number matches the same text or, when a double represents
            // it exactly, the same value (the same text has the same value).
            Matcher::Exact(Scalar::Number(_, Some(v))) => {
                edit(&mut self.number_values, number_key(*v), cond, add);
            }
            Matcher::Exact(Scalar::Number(text, None)) => {
                edit(&mut self.number_texts, text.clone(), cond, add);
            }
            Matcher::Exact(Scalar::Null) => edit_list(&mut self.nulls, cond, add),
            Matcher::Exact(Scalar::Bool(b)) => edit_list(&mut self.bools[*b as usize], cond, add),
            Matcher::Prefix(p) => {
                if add {
                    self.prefixes.insert(p.as_bytes(), cond);
                } else {
                    self.prefixes.remove(p.as_bytes(), cond);
                }
            }
            other => {
                if add {
                    self.others.push((cond, other.clone()));
                } else {
                    self.others.retain(|(c, _)| *c != cond);
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.strings.is_empty()
            && self.ips.is_empty()
            && self.number_texts.is_empty()
            && self.number_values.is_empty()
            && self.nulls.is_empty()
            && self.bools.iter().all(Vec::is_empty)
            && self.prefixes.is_empty()
            && self.others.is_empty()
    }

    /// Every condition some matcher of which this leaf satisfies, with
    /// repeats. It never misses one; an extra one would be harmless, since
    /// every candidate is confirmed with the naive matcher.
    fn collect(&self, leaf: &Leaf, out: &mut Vec<CondRef>) {
        let found = |list: Option<&Vec<CondRef>>, out: &mut Vec<CondRef>| {
            if let Some(list) = list {
                out.extend_from_slice(list);
            }
        };
        match &leaf.value {
            Scalar::String(s) => {
                found(self.strings.get(s.as_str()), out);
                if !self.ips.is_empty()
                    && let Some(ip) = ip_literal(s)
                {
                    found(self.ips.get(&ip), out);
                }
                self.prefixes.collect(s.as_bytes(), out);
            }
            Scalar::Number(text, value) => {
                found(self.number_texts.get(text.as_str()), out);
                if let Some(v) = value {
                    found(self.number_values.get(&number_key(*v)), out);
                }
            }
            Scalar::Null => out.extend_from_slice(&self.nulls),
            Scalar::Bool(b) => out.extend_from_slice(&self.bools[*b as usize]),
        }
        out.extend(
            self.others
                .iter()
                .filter(|(_, m)| m.matches(leaf))
                .map(|(c, _)| *c),
        );
    }
}

impl<Id: Clone + Eq + Hash> Default for RuleSet<Id> {
    fn default() -> Self {
        Self::new()
    }
}

impl<Id: Clone + Eq + Hash> RuleSet<Id> {
    /// An empty rule set.
    pub fn new() -> Self {
        RuleSet {
            ids: HashMap::new(),
            rules: Vec::new(),
            free_rules: Vec::new(),
            alts: Vec::new(),
            free_alts: Vec::new(),
            always: HashSet::new(),
            paths: HashMap::new(),
            fields: HashMap::new(),
        }
    }

    /// Every path some pattern of the set names: parse events with these
    /// ([`Event::parse_fields`]) to match them against this set.
    pub fn fields(&self) -> Fields {
        let mut fields = Fields::new();
        for path in self.fields.keys() {
            fields.insert(path);
        }
        fields
    }

    /// How many ids have a pattern.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no id has a pattern.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Adds `pattern` under `id`, replacing the pattern `id` had. The same
    /// pattern may be added under any number of ids.
    pub fn add(&mut self, id: Id, pattern: &Pattern) {
        self.remove(&id);
        let rule = match self.free_rules.pop() {
            Some(slot) => slot,
            None => {
                self.rules.push(None);
                u32::try_from(self.rules.len() - 1).expect("fewer than 2^32 rules")
            }
        };
        let mut alts = Vec::with_capacity(pattern.alternatives().len());
        for (index, conditions) in pattern.alternatives().iter().enumerate() {
            let slot = match self.free_alts.pop() {
                Some(slot) => slot,
                None => {
                    self.alts.push(None);
                    u32::try_from(self.alts.len() - 1).expect("fewer than 2^32 alternatives")
                }
            };
            let mut needed = 0;
            for (c, (path, matchers)) in conditions.iter().enumerate() {
                *self.fields.entry(path.clone()).or_default() += 1;
                if matchers.contains(&Matcher::Exists(false)) {
                    continue;
                }
                needed += 1;
                let cond = (slot, u32::try_from(c).expect("few conditions"));
                let index = self.paths.entry(path.clone()).or_default();
                for m in matchers {
                    index.update(cond, m, true);
                }
            }
            if needed == 0 {
                self.always.insert(slot);
            }
            self.alts[slot as usize] = Some(Alt {
                rule,
                index,
                needed,
            });
            alts.push(slot);
        }
        self.rules[rule as usize] = Some(RuleEntry {
            id: id.clone(),
            pattern: pattern.clone(),
            alts,
        });
        self.ids.insert(id, rule);
    }

    /// Removes `id` and its pattern; nothing happens if it has none.
    pub fn remove(&mut self, id: &Id) {
        let Some(rule) = self.ids.remove(id) else {
            return;
        };
        let entry = self.rules[rule as usize]
            .take()
            .expect("an id's rule slot is in use");
        self.free_rules.push(rule);
        for (conditions, &slot) in entry.pattern.alternatives().iter().zip(&entry.alts) {
            for (c, (path, matchers)) in conditions.iter().enumerate() {
                if let Some(n) = self.fields.get_mut(path) {
                    *n -= 1;
                    if *n == 0 {
                        self.fields.remove(path);
                    }
                }
                if matchers.contains(&Matcher::Exists(false)) {
                    continue;
                }
                let cond = (slot, u32::try_from(c).expect("few conditions"));
                if let Some(index) = self.paths.get_mut(path) {
                    for m in matchers {
                        index.update(cond, m, false);
                    }
                    if index.is_empty() {
                        self.paths.remove(path);
                    }
                }
            }
            self.always.remove(&slot);
            self.alts[slot as usize] = None;
            self.free_alts.push(slot);
        }
    }

    /// The id of every pattern the event matches, each once, in no
    /// particular order. Exactly the ids whose [`Pattern::matches`] is true.
    pub fn matches(&self, event: &Event) -> Vec<Id> {
        let mut matched: HashSet<u32> = HashSet::new();
        let mut out = Vec::new();
        for slot in self.candidates(event) {
            let alt = self.alts[slot as usize]
                .as_ref()
                .expect("a candidate slot is in use");
            if matched.contains(&alt.rule) {
                continue;
            }
            let entry = self.rules[alt.rule as usize]
                .as_ref()
                .expect("an alternative's rule is in use");
            if match_rule(&entry.pattern.alternatives()[alt.index], event) {
                matched.insert(alt.rule);
                out.push(entry.id.clone());
            }
        }
        out
    }

    /// The alternatives (slots, sorted) whose counted conditions the event
    /// all satisfies, and those with none: what [`RuleSet::matches`] confirms.
    pub(crate) fn candidates(&self, event: &Event) -> Vec<u32> {
        // How many counted conditions of each alternative the event satisfies.
        let mut counts: HashMap<u32, u32> = HashMap::new();
        let mut hits: Vec<CondRef> = Vec::new();
        for (path, leaves) in event.fields() {
            let Some(index) = self.paths.get(path) else {
                continue;
            };
            hits.clear();
            for leaf in leaves {
                index.collect(leaf, &mut hits);
            }
            // A condition is on one path only: dedup here counts it once.
            hits.sort_unstable();
            hits.dedup();
            for (alt, _) in &hits {
                *counts.entry(*alt).or_default() += 1;
            }
        }
        let mut candidates: Vec<u32> = counts
            .into_iter()
            .filter(|(slot, n)| {
                self.alts[*slot as usize]
                    .as_ref()
                    .is_some_and(|a| a.needed == *n)
            })
            .map(|(slot, _)| slot)
            .chain(self.always.iter().copied())
            .collect();
        candidates.sort_unstable();
        candidates
    }
}
