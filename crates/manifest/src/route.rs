//! HTTP routes: an exact path (`/hello`) or a prefix wildcard (`/api/...`), as Spin writes them.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Route {
    /// Matches this path only.
    Exact(String),
    /// `/base/...`: matches `/base` and everything below it. `/...` matches every path.
    Prefix(String),
}

impl Route {
    pub fn parse(text: &str) -> Result<Route, String> {
        if !text.starts_with('/') {
            return Err(format!("{text:?} must start with '/'"));
        }
        if text.len() > 1024 {
            return Err("a route must be at most 1024 characters".into());
        }
        if text
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#' || c == '*')
        {
            return Err(format!(
                "{text:?} may not contain spaces, '?', '#' or '*': use `/prefix/...` for a wildcard"
            ));
        }
        let (base, wildcard) = match text.strip_suffix("/...") {
            Some(base) => (base, true),
            None => (text, false),
        };
        if base.contains("...") {
            return Err(format!(
                "{text:?}: `...` is only allowed as the last segment, as in `/api/...`"
            ));
        }
        if base.contains("//") {
            return Err(format!("{text:?} has an empty segment"));
        }
        if wildcard {
            Ok(Route::Prefix(base.to_string()))
        } else {
            Ok(Route::Exact(text.to_string()))
        }
    }

    /// Whether this route serves `path` (a request path without the query).
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Route::Exact(p) => p == path,
            Route::Prefix(base) => {
                path.starts_with(base.as_str())
                    && (path.len() == base.len() || path.as_bytes()[base.len()] == b'/')
            }
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::Exact(p) => f.write_str(p),
            Route::Prefix(base) => write!(f, "{base}/..."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_prefix_routes() {
        let exact = Route::parse("/hello").unwrap();
        assert!(exact.matches("/hello"));
        assert!(!exact.matches("/hello/x"));
        assert!(!exact.matches("/hell"));

        let prefix = Route::parse("/api/...").unwrap();
        assert!(prefix.matches("/api"));
        assert!(prefix.matches("/api/"));
        assert!(prefix.matches("/api/users/1"));
        assert!(!prefix.matches("/apix"));
        assert_eq!(prefix.to_string(), "/api/...");

        let all = Route::parse("/...").unwrap();
        assert!(all.matches("/"));
        assert!(all.matches("/anything/at/all"));
    }

    #[test]
    fn bad_routes_say_why() {
        for bad in ["hello", "/a/.../b", "/a b", "/a?x", "/a/*", "/a//b"] {
            assert!(Route::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
