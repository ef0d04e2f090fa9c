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

    /// Create or replace a rule through the API; it is stored and survives restarts.
    pub async fn put_rule(&self, rule: Rule) -> Result<()> {
        {
            let table = self.inner.rules.read().expect("no panics under the lock");
            let bus = table
                .bus(&rule.bus)
                .ok_or_else(|| Error::NoSuchBus(rule.bus.clone()))?;
            if bus.get(&rule.name).is_some_and(|i| i.origin != Origin::Api) {
                return Err(Error::ManifestRule(rule.name.clone()));
            }
        }
        let mut tx = Transaction::new();
        tx.push(Op::PutRule(RuleRecord {
            bus: rule.bus.clone(),
            name: rule.name.clone(),
            json: rule.to_api_json().to_string(),
        }));
        self.inner.store.commit(tx).await?;
        self.inner
            .rules
            .write()
            .expect("no panics under the lock")
            .insert(Arc::new(rule), Origin::Api);
        Ok(())
    }

    /// Delete an API rule. Its pending deliveries are dead-lettered when they come due.
    pub async fn delete_rule(&self, bus: &BusName, name: &RuleName) -> Result<()> {
        {
            let table = self.inner.rules.read().expect("no panics under the lock");
            let rules = table
                .bus(bus)
                .ok_or_else(|| Error::NoSuchBus(bus.clone()))?;
            match rules.get(name) {
                None => return Err(Error::NoSuchRule(name.clone(), bus.clone())),
                Some(i) if i.origin != Origin::Api => {
                    return Err(Error::ManifestRule(name.clone()));
                }
                Some(_) => {}
            }
        }
        let mut tx = Transaction::new();
        tx.push(Op::DeleteRule {
            bus: bus.clone(),
            name: name.clone(),
        });
        self.inner.store.commit(tx).await?;
        self.inner
            .rules
            .write()
            .expect("no panics under the lock")
            .remove(bus, name);
        Ok(())
    }
}
