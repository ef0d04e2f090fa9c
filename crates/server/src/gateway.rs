//! The gateway: app routes to functions, over bare hyper.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use muon_types::FunctionName;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::{State, bounded, error_response, invocation_response};

/// How long shutdown waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(10);

/// The route table: exact paths in a map, prefixes longest first.
#[derive(Debug, Default)]
pub struct Routes {
    exact: HashMap<String, FunctionName>,
    prefixes: Vec<(String, FunctionName)>,
    listing: Vec<(String, FunctionName)>,
}

impl Routes {
    /// Build from `(route text, function)` pairs; the texts are valid routes (`/x`, `/x/...`).
    pub fn new(routes: impl IntoIterator<Item = (String, FunctionName)>) -> Self {
        let mut table = Routes::default();
        for (route, function) in routes {
            table.listing.push((route.clone(), function.clone()));
            match route.strip_suffix("/...") {
                Some(base) => table.prefixes.push((base.to_string(), function)),
                None => {
                    table.exact.insert(route, function);
                }
            }
        }
        table.prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        table.listing.sort();
        table
    }

    pub fn lookup(&self, path: &str) -> Option<&FunctionName> {
        if let Some(f) = self.exact.get(path) {
            return Some(f);
        }
        self.prefixes.iter().find_map(|(base, f)| {
            let below = path.starts_with(base.as_str())
                && (path.len() == base.len() || path.as_bytes()[base.len()] == b'/');
            below.then_some(f)
        })
    }

    /// Every route and its function, sorted by route.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &FunctionName)> {
        self.listing.iter().map(|(r, f)| (r.as_str(), f))
    }
}

pub async fn serve(
    state: State,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let service = hyper::service::service_fn(move |request| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(handle(state, request).await) }
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection ended with an error: {e}");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {DRAIN:?}; stopping anyway");
    }
    Ok(())
}

async fn handle(state: State, request: http::Request<Incoming>) -> muon_runtime::Response {
    let Some(function) = state.inner.routes.lookup(request.uri().path()).cloned() else {
        return error_response(
            http::StatusCode::NOT_FOUND,
            "not_found",
            format!("no route matches {}", request.uri().path()),
            None,
        );
    };
    let max_body = state.inner.config.max_body;
    let (request, exceeded) = match bounded(request, max_body).await {
        Ok(r) => r,
        Err(answer) => return answer,
    };
    match state.inner.invoker.invoke(&function, request).await {
        Some((id, result)) => {
            invocation_response(id, result, exceeded.load(Ordering::Acquire), max_body)
        }
        None => error_response(
            http::StatusCode::NOT_FOUND,
            "not_found",
            format!("function {function} is not loaded"),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> FunctionName {
        FunctionName::new(n).unwrap()
    }

    #[test]
    fn exact_routes_win_and_longer_prefixes_win() {
        let routes = Routes::new([
            ("/...".to_string(), name("root")),
            ("/api/...".to_string(), name("api")),
            ("/api/users/...".to_string(), name("users")),
            ("/api/health".to_string(), name("health")),
        ]);
        assert_eq!(routes.lookup("/api/health"), Some(&name("health")));
        assert_eq!(routes.lookup("/api/users/7"), Some(&name("users")));
        assert_eq!(routes.lookup("/api/usersx"), Some(&name("api")));
        assert_eq!(routes.lookup("/api"), Some(&name("api")));
        assert_eq!(routes.lookup("/other"), Some(&name("root")));
        assert_eq!(routes.iter().count(), 4);
        let none = Routes::new([("/a".to_string(), name("a"))]);
        assert_eq!(none.lookup("/b"), None);
        assert_eq!(none.lookup("/a/"), None);
    }
}
