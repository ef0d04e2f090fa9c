//! Payload templates (`Parameters`, `ResultSelector`, `ItemSelector`):
//! JSON whose keys ending in `.$` take their value from a path or an
//! intrinsic call.

use crate::intrinsic::{self, Call};
use crate::path::Path;
use crate::scope::Scope;
use crate::{Diagnostic, Failure};
use serde_json::{Map, Value};

/// A value computed from a path or an intrinsic call.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Path(Path),
    Call(Call),
}

impl Expr {
    /// Parses the string value of a `.$` key (or of `ErrorPath`-like fields).
    pub fn parse(text: &str) -> Result<Expr, String> {
        if intrinsic::looks_like_call(text) {
            Ok(Expr::Call(Call::parse(text)?))
        } else {
            Ok(Expr::Path(Path::parse(text)?))
        }
    }

    /// Evaluates the expression; `field` names the field for error messages.
    /// What it makes is charged to the scope's budget.
    pub fn eval(&self, scope: &mut Scope<'_>, field: &str) -> Result<Value, Failure> {
        match self {
            Expr::Path(p) => {
                let v = scope.select(p).map_err(|_| {
                    Failure::runtime(format!(
                        "The JSONPath '{}' specified for the field '{field}' could not be found in the input '{}'",
                        p.as_str(),
                        scope.data
                    ))
                })?;
                scope.charge(&v).map_err(|_| too_big(field))?;
                Ok(v)
            }
            Expr::Call(c) => c.eval(scope).map_err(|e| match e {
                intrinsic::Error::TooBig => too_big(field),
                intrinsic::Error::Failed(why) => Failure::new(
                    crate::errors::INTRINSIC_FAILURE,
                    format!(
                        "The evaluation of the intrinsic function '{}' for the field '{field}' failed: {why}",
                        c.name
                    ),
                ),
            }),
        }
    }
}

fn too_big(field: &str) -> Failure {
    Failure::new(
        crate::errors::DATA_LIMIT_EXCEEDED,
        format!(
            "The value built for the field '{field}' exceeds the maximum size of {} bytes.",
            crate::MAX_PAYLOAD_BYTES
        ),
    )
}

/// A parsed payload template.
#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    Literal(Value),
    Object(Vec<(String, Template)>),
    Array(Vec<Template>),
    Dynamic { key: String, expr: Expr },
}

impl Template {
    /// Parses `value`, reporting problems under `at`.
    pub fn parse(value: &Value, at: &str, diags: &mut Vec<Diagnostic>) -> Template {
        match value {
            Value::Object(obj) => {
                let mut fields = Vec::with_capacity(obj.len());
                for (k, v) in obj {
                    let here = format!("{at}/{k}");
                    if let Some(name) = k.strip_suffix(".$") {
                        match v.as_str().map(Expr::parse) {
                            Some(Ok(expr)) => fields.push((
                                name.to_owned(),
                                Template::Dynamic {
                                    key: k.clone(),
                                    expr,
                                },
                            )),
                            Some(Err(why)) => diags.push(Diagnostic::new(
                                &here,
                                format!("the value of a '.$' field must be a JSONPath or an intrinsic function: {why}"),
                            )),
                            None => diags.push(Diagnostic::new(
                                &here,
                                "the value of a '.$' field must be a string",
                            )),
                        }
                    } else {
                        fields.push((k.clone(), Template::parse(v, &here, diags)));
                    }
                }
                if fields
                    .iter()
                    .all(|(_, t)| matches!(t, Template::Literal(_)))
                {
                    Template::Literal(value.clone())
                } else {
                    Template::Object(fields)
                }
            }
            Value::Array(items) => {
                let parts: Vec<Template> = items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Template::parse(v, &format!("{at}/{i}"), diags))
                    .collect();
                if parts.iter().all(|t| matches!(t, Template::Literal(_))) {
                    Template::Literal(value.clone())
                } else {
                    Template::Array(parts)
                }
            }
            other => Template::Literal(other.clone()),
        }
    }

    /// Builds the payload.
    pub fn eval(&self, scope: &mut Scope<'_>) -> Result<Value, Failure> {
        Ok(match self {
            Template::Literal(v) => {
                scope.charge(v).map_err(|_| too_big("(literal)"))?;
                v.clone()
            }
            Template::Object(fields) => {
                let mut out = Map::with_capacity(fields.len());
                for (k, t) in fields {
                    out.insert(k.clone(), t.eval(scope)?);
                }
                Value::Object(out)
            }
            Template::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|t| t.eval(scope))
                    .collect::<Result<_, _>>()?,
            ),
            Template::Dynamic { key, expr } => expr.eval(scope, key)?,
        })
    }
}
