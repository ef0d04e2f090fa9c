//! The rules of every bus, matched all at once per bus.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use muon_manifest::Rule;
use muon_pattern::{Event, Fields, Pattern, RuleSet};
use muon_store::{Op, RuleRecord, Transaction};
use muon_types::{BusName, RuleName};

use crate::{Bus, Error, Result};

/// Where a rule came from: the manifest's rules are read-only through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Manifest,
    /// The rule of a `[[schedule]]`.
    Schedule,
    Api,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Manifest => "manifest",
            Origin::Schedule => "schedule",
            Origin::Api => "api",
        }
    }
}

/// What [`Bus::edit_rule`] does with the API rule it was shown.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// Leave it as it is (nothing is written).
    Keep,
    /// Store this rule in its place, or create it when there was none. It keeps the bus and
    /// the name that were edited: an edit does not move a rule.
    Put(Rule),
    /// Delete it.
    Delete,
}

/// A rule as listed.
#[derive(Debug, Clone)]
pub struct RuleInfo {
    pub rule: Arc<Rule>,
    pub origin: Origin,
}

#[derive(Default)]
pub(crate) struct BusRules {
    set: RuleSet<RuleName>,
    rules: BTreeMap<RuleName, RuleInfo>,
    /// The paths the rules name: events are parsed keeping only these.
    fields: Arc<Fields>,
}

impl BusRules {
    /// The enabled rules `event` matches.
    pub(crate) fn matching(&self, event: &Event) -> Vec<Arc<Rule>> {
        let mut names = self.set.matches(event);
        names.sort();
        names
            .iter()
            .filter_map(|n| self.rules.get(n))
            .filter(|info| info.rule.enabled)
            .map(|info| info.rule.clone())
            .collect()
    }

    pub(crate) fn get(&self, name: &RuleName) -> Option<&RuleInfo> {
        self.rules.get(name)
    }

    /// Parse an event of this bus for [`BusRules::matching`]: only the values the rules look
    /// at are kept.
    pub(crate) fn fields(&self) -> Arc<Fields> {
        self.fields.clone()
    }
}

pub(crate) struct Table {
    buses: HashMap<BusName, BusRules>,
}

impl Table {
    pub(crate) fn new(buses: &[BusName]) -> Self {
        Self {
            buses: buses
                .iter()
                .map(|b| (b.clone(), BusRules::default()))
                .collect(),
        }
    }

    pub(crate) fn bus(&self, bus: &BusName) -> Option<&BusRules> {
        self.buses.get(bus)
    }

    /// Add or replace a rule (its bus must exist).
    pub(crate) fn insert(&mut self, rule: Arc<Rule>, origin: Origin) {
        let Some(bus) = self.buses.get_mut(&rule.bus) else {
            return;
        };
        let pattern = Pattern::parse(&rule.pattern).expect("rules hold validated patterns");
        bus.set.remove(&rule.name);
        bus.set.add(rule.name.clone(), &pattern);
        bus.fields = Arc::new(bus.set.fields());
        bus.rules
            .insert(rule.name.clone(), RuleInfo { rule, origin });
    }

    fn remove(&mut self, bus: &BusName, name: &RuleName) {
        if let Some(bus) = self.buses.get_mut(bus) {
            bus.set.remove(name);
            bus.fields = Arc::new(bus.set.fields());
            bus.rules.remove(name);
        }
    }
}

impl Bus {
    /// Every rule, by bus then name.
    pub fn rules(&self) -> Vec<RuleInfo> {
        let table = self.inner.rules.read().expect("no panics under the lock");
        let mut buses: Vec<_> = table.buses.iter().collect();
        buses.sort_by(|a, b| a.0.cmp(b.0));
        buses
            .into_iter()
            .flat_map(|(_, r)| r.rules.values().cloned())
            .collect()
    }

    /// The buses, `default` first.
    pub fn buses(&self) -> &[BusName] {
        &self.inner.config.buses
    }

    /// One rule of a bus.
    pub fn rule(&self, bus: &BusName, name: &RuleName) -> Result<RuleInfo> {
        let table = self.inner.rules.read().expect("no panics under the lock");
        table
            .bus(bus)
            .ok_or_else(|| Error::NoSuchBus(bus.clone()))?
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NoSuchRule(name.clone(), bus.clone()))
    }

    /// Create or replace a rule through the API; it is stored and survives restarts.
    pub async fn put_rule(&self, rule: Rule) -> Result<()> {
        let (bus, name) = (rule.bus.clone(), rule.name.clone());
        self.edit_rule(&bus, &name, |_| (Edit::Put(rule), ())).await
    }

    /// Delete an API rule. Its pending deliveries are dead-lettered when they come due.
    pub async fn delete_rule(&self, bus: &BusName, name: &RuleName) -> Result<()> {
        self.edit_rule(bus, name, |rule| match rule {
            None => (
                Edit::Keep,
                Err(Error::NoSuchRule(name.clone(), bus.clone())),
            ),
            Some(_) => (Edit::Delete, Ok(())),
        })
        .await?
    }

    /// Read, change and write one API rule as one step: `edit` sees the rule as it is (`None`
    /// when there is none) and says what becomes of it ([`Edit`]), and what to hand back.
    /// Edits are applied one at a time, so read-modify-writes such as adding a target to a rule
    /// never lose a concurrent one. The bus must exist, and a rule from the manifest (or a
    /// schedule's) is refused with [`Error::ManifestRule`] before `edit` sees it. A rule put
    /// must read back as it is stored (at most 5 targets, unique IDs): else
    /// [`Error::InvalidRule`], and nothing changes.
    pub async fn edit_rule<T>(
        &self,
        bus: &BusName,
        name: &RuleName,
        edit: impl FnOnce(Option<&Rule>) -> (Edit, T),
    ) -> Result<T> {
        let _one_at_a_time = self.inner.rule_edits.lock().await;
        let current = {
            let table = self.inner.rules.read().expect("no panics under the lock");
            let rules = table
                .bus(bus)
                .ok_or_else(|| Error::NoSuchBus(bus.clone()))?;
            match rules.get(name) {
                Some(i) if i.origin != Origin::Api => {
                    return Err(Error::ManifestRule(name.clone()));
                }
                found => found.map(|i| i.rule.clone()),
            }
        };
        let (mut edit, answer) = edit(current.as_deref());
        if let Edit::Put(rule) = &mut edit {
            rule.bus = bus.clone();
            rule.name = name.clone();
        }
        let op = match &edit {
            Edit::Put(rule) if current.as_deref() != Some(rule) => {
                // What is stored must load again at the next start.
                let json = rule.to_api_json().to_string();
                if let Err(e) = Rule::from_api_json(&json) {
                    return Err(Error::InvalidRule(name.clone(), e.to_string()));
                }
                Op::PutRule(RuleRecord {
                    bus: bus.clone(),
                    name: name.clone(),
                    json,
                })
            }
            Edit::Delete if current.is_some() => Op::DeleteRule {
                bus: bus.clone(),
                name: name.clone(),
            },
            // Nothing changes.
            _ => return Ok(answer),
        };
        let mut tx = Transaction::new();
        tx.push(op);
        self.inner.store.commit(tx).await?;
        let mut table = self.inner.rules.write().expect("no panics under the lock");
        match edit {
            Edit::Put(rule) => table.insert(Arc::new(rule), Origin::Api),
            Edit::Delete => table.remove(bus, name),
            Edit::Keep => {}
        }
        Ok(answer)
    }
}
