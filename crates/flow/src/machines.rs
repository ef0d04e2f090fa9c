//! The state machines: those the manifest declares and those created through the API.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use muon_asl::Definition;
use muon_store::StateMachineRecord;

use crate::{Config, Error, Result, check_name, now_ms};

/// Standard (durable, exactly-once transitions) or Express (in memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Standard,
    Express,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Standard => "STANDARD",
            Kind::Express => "EXPRESS",
        }
    }

    /// `STANDARD` or `EXPRESS`, in any case.
    pub fn parse(text: &str) -> Option<Kind> {
        match text.to_ascii_uppercase().as_str() {
            "STANDARD" => Some(Kind::Standard),
            "EXPRESS" => Some(Kind::Express),
            _ => None,
        }
    }
}

/// Where a state machine comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `[[workflow]]` in muon.toml: changed by editing the file.
    Manifest,
    /// `CreateStateMachine`: kept in the store.
    Api,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Manifest => "manifest",
            Origin::Api => "api",
        }
    }
}

/// A validated state machine.
#[derive(Debug)]
pub struct Machine {
    pub name: String,
    pub arn: String,
    pub kind: Kind,
    pub origin: Origin,
    pub definition: Arc<Definition>,
    /// The definition as it was given.
    pub definition_text: String,
    pub created_ms: i64,
}

impl Machine {
    pub(crate) fn record(&self) -> StateMachineRecord {
        StateMachineRecord {
            name: self.name.clone(),
            kind: self.kind.as_str().to_owned(),
            definition: self.definition_text.clone(),
            created_ms: self.created_ms,
        }
    }
}

/// Every state machine, by name.
pub(crate) struct Table {
    machines: RwLock<BTreeMap<String, Arc<Machine>>>,
}

/// The definition's problems, one per line.
fn invalid(name: &str, e: muon_asl::Error) -> Error {
    match e {
        muon_asl::Error::Invalid(diagnostics) => {
            let mut message = format!(
                "Invalid State Machine Definition for '{name}' ({} problem(s)):",
                diagnostics.len()
            );
            for d in diagnostics {
                message.push_str(&format!("\n  {d}"));
            }
            Error::InvalidDefinition(message)
        }
    }
}

impl Table {
    /// The manifest's workflows, validated.
    pub(crate) fn new(config: &Config) -> Result<Table> {
        let table = Table {
            machines: RwLock::new(BTreeMap::new()),
        };
        for w in &config.workflows {
            let mut machine = table.prepare(config, &w.name, &w.definition, w.kind)?;
            machine.origin = Origin::Manifest;
            table.insert(machine);
        }
        Ok(table)
    }

    pub(crate) fn arn(&self, config: &Config, name: &str) -> String {
        format!(
            "arn:aws:states:{}:{}:stateMachine:{name}",
            config.region, config.account
        )
    }

    /// Validate a state machine (not yet added).
    pub(crate) fn prepare(
        &self,
        config: &Config,
        name: &str,
        definition: &str,
        kind: Kind,
    ) -> Result<Machine> {
        check_name(name)?;
        let parsed = Definition::parse(definition).map_err(|e| invalid(name, e))?;
        Ok(Machine {
            name: name.to_owned(),
            arn: self.arn(config, name),
            kind,
            origin: Origin::Api,
            definition: Arc::new(parsed),
            definition_text: definition.to_owned(),
            created_ms: now_ms(),
        })
    }

    /// Add a stored API state machine; one the manifest declares too is ignored (the
    /// manifest wins), as is one that no longer validates.
    pub(crate) fn load(&self, config: &Config, record: StateMachineRecord) -> crate::Result<()> {
        if self.get(&record.name).is_some() {
            tracing::warn!(
                "state machine {} is declared in muon.toml; the one created through the API is ignored",
                record.name
            );
            return Ok(());
        }
        let bad = |why: String| crate::Error::BadStoredMachine(record.name.clone(), why);
        let kind = Kind::parse(&record.kind)
            .ok_or_else(|| bad(format!("its type {} is unknown", record.kind)))?;
        let parsed = Definition::parse(&record.definition).map_err(|e| bad(e.to_string()))?;
        self.insert(Machine {
            arn: self.arn(config, &record.name),
            name: record.name,
            kind,
            origin: Origin::Api,
            definition: Arc::new(parsed),
            definition_text: record.definition,
            created_ms: record.created_ms,
        });
        Ok(())
    }

    pub(crate) fn insert(&self, machine: Machine) -> Arc<Machine> {
        let machine = Arc::new(machine);
        self.machines
            .write()
            .expect("lock")
            .insert(machine.name.clone(), machine.clone());
        machine
    }

    pub(crate) fn remove(&self, name: &str) {
        self.machines.write().expect("lock").remove(name);
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<Machine>> {
        self.machines.read().expect("lock").get(name).cloned()
    }

    pub(crate) fn all(&self) -> Vec<Arc<Machine>> {
        self.machines
            .read()
            .expect("lock")
            .values()
            .cloned()
            .collect()
    }
}
