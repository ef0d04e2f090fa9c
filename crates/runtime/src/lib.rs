//! The invoker: one place every invocation goes through, whatever runtime runs the function.
//!
//! A runtime (wasm today; process, lambda and model later) implements [`Function`]: it takes an
//! HTTP request and answers with an HTTP response, and reports once, through the
//! [`InvocationContext`], how the invocation ended and what the guest logged. The [`Invoker`]
//! gives every invocation an ID and keeps the recent ones and their logs in a bounded in-memory
//! [`Journal`] that the control API reads and follows.
//!
//! Design decision: the response and the end of an invocation are separate, because a function
//! can keep streaming its body after it has answered. This crate never touches storage on the
//! request path: the journal is in memory and bounded.

mod body;
mod journal;
mod net;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub use body::{Body, BoxError, LimitedBody, TooLarge, empty, full};
pub use journal::{InvocationRecord, Journal, LogLine};
use muon_types::{FunctionName, InvocationId, Status, Stream};
pub use net::{Destinations, Refused};

pub type Request = http::Request<Body>;
pub type Response = http::Response<Body>;
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The header that carries an invocation's ID on every response muon sends.
pub const INVOCATION_ID_HEADER: &str = "x-muon-invocation-id";
/// [`INVOCATION_ID_HEADER`] as a header name, checked once at compile time.
static INVOCATION_ID: http::HeaderName = http::HeaderName::from_static(INVOCATION_ID_HEADER);

/// Why a function gave no response.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {message}")]
pub struct Failure {
    pub status: Status,
    pub message: String,
}

impl Failure {
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// The HTTP status the gateway answers with.
    pub fn http_status(&self) -> http::StatusCode {
        match self.status {
            Status::Timeout => http::StatusCode::GATEWAY_TIMEOUT,
            Status::StartFailed => http::StatusCode::SERVICE_UNAVAILABLE,
            _ => http::StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// How an invocation ended, reported once by the runtime when the instance is gone.
#[derive(Debug, Clone)]
pub struct Finished {
    pub status: Status,
    /// The HTTP status the function answered with, if it answered.
    pub http_status: Option<u16>,
    /// Why it failed, for anything but [`Status::Ok`].
    pub message: Option<String>,
    /// What the guest wrote, line by line.
    pub logs: Vec<(Stream, String)>,
}

/// What a runtime gets with each invocation.
pub struct InvocationContext {
    pub id: InvocationId,
    pub function: FunctionName,
    finish: Box<dyn FnOnce(Finished) + Send>,
}

impl InvocationContext {
    /// A context whose end is reported to `finish`.
    pub fn new(
        id: InvocationId,
        function: FunctionName,
        finish: impl FnOnce(Finished) + Send + 'static,
    ) -> Self {
        Self {
            id,
            function,
            finish: Box::new(finish),
        }
    }

    /// Split into the ID and the callback that reports the end.
    pub fn into_parts(self) -> (InvocationId, Box<dyn FnOnce(Finished) + Send>) {
        (self.id, self.finish)
    }
}

/// A function a runtime has prepared: ready to be invoked many times at once.
pub trait Function: Send + Sync + 'static {
    /// Run one invocation. The future resolves with the response head (its body may still be
    /// streaming) or with why there is none; the context's callback hears the end either way.
    fn invoke(
        &self,
        cx: InvocationContext,
        request: Request,
    ) -> BoxFuture<Result<Response, Failure>>;
}

/// What the invoker knows of a function besides its code.
#[derive(Debug, Clone)]
pub struct FunctionMeta {
    pub name: FunctionName,
    pub runtime: &'static str,
    pub route: Option<String>,
    pub memory_mb: u32,
    pub timeout: Duration,
    pub min_instances: u32,
    pub max_instances: u32,
    pub instance_reuse: u32,
    pub source: String,
}

struct Entry {
    meta: FunctionMeta,
    code: Arc<dyn Function>,
}

/// Routes invocations to functions and records them. Cheap to clone.
#[derive(Clone)]
pub struct Invoker {
    functions: Arc<BTreeMap<FunctionName, Entry>>,
    journal: Arc<Journal>,
}

/// Builds an [`Invoker`].
#[derive(Default)]
pub struct InvokerBuilder {
    functions: BTreeMap<FunctionName, Entry>,
    journal: Option<Arc<Journal>>,
}

impl InvokerBuilder {
    pub fn function(mut self, meta: FunctionMeta, code: Arc<dyn Function>) -> Self {
        self.functions
            .insert(meta.name.clone(), Entry { meta, code });
        self
    }

    pub fn journal(mut self, journal: Arc<Journal>) -> Self {
        self.journal = Some(journal);
        self
    }

    pub fn build(self) -> Invoker {
        Invoker {
            functions: Arc::new(self.functions),
            journal: self.journal.unwrap_or_default(),
        }
    }
}

impl Invoker {
    pub fn builder() -> InvokerBuilder {
        InvokerBuilder::default()
    }

    pub fn functions(&self) -> impl Iterator<Item = &FunctionMeta> {
        self.functions.values().map(|e| &e.meta)
    }

    pub fn function(&self, name: &str) -> Option<&FunctionMeta> {
        let name = FunctionName::new(name).ok()?;
        self.functions.get(&name).map(|e| &e.meta)
    }

    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// Invoke `function` with `request`. The response carries [`INVOCATION_ID_HEADER`]; a
    /// failure is answered by the caller, with the ID returned here.
    pub async fn invoke(
        &self,
        function: &FunctionName,
        request: Request,
    ) -> Option<(InvocationId, Result<Response, Failure>)> {
        let entry = self.functions.get(function)?;
        let id = InvocationId::random();
        let started_at = SystemTime::now();
        let clock = Instant::now();
        let journal = self.journal.clone();
        let name = function.clone();
        let cx = InvocationContext::new(id, function.clone(), move |finished| {
            journal.record(name, id, started_at, clock.elapsed(), finished);
        });
        let mut result = entry.code.invoke(cx, request).await;
        if let Ok(response) = &mut result {
            response.headers_mut().insert(
                INVOCATION_ID.clone(),
                http::HeaderValue::from_bytes(&id.to_ascii()).expect("IDs are ASCII"),
            );
        }
        Some((id, result))
    }
}

#[cfg(test)]
mod tests;
