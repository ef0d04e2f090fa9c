//! What paths and intrinsic calls are evaluated against: the state's data,
//! the context object, the variables in scope and the execution's random
//! numbers.

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
}

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
        }
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
