//! `allowed_outbound_hosts`: which hosts a guest may send HTTP requests to. Deny by default.
//!
//! Entries are written as Spin writes them: `https://api.example.com`, `http://localhost:3000`,
//! `https://*.example.com` (any subdomain), `*://example.com` (any scheme), `http://127.0.0.1:*`
//! (any port). Without a port, only the scheme's default port is allowed.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    /// `None` for `*://`.
    scheme: Option<String>,
    host: HostPattern,
    /// `None` for `:*`.
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// `*.example.com`: any name ending in `.example.com`.
    Subdomains(String),
    /// `*`: any host.
    Any,
}

impl AllowedHost {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("{text:?} {why}");
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| bad("needs a scheme, e.g. \"https://api.example.com\""))?;
        let scheme = match scheme {
            "*" => None,
            "http" | "https" => Some(scheme.to_string()),
            _ => return Err(bad("has an unsupported scheme: use http, https or *")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('?') || rest.contains('@') {
            return Err(bad(
                "must be scheme://host[:port] with no path, query or user",
            ));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            // `[::1]` or `[::1]:8080`
            let (addr, tail) = v6
                .split_once(']')
                .ok_or_else(|| bad("has an unclosed '[' in its host"))?;
            match tail {
                "" => (addr, None),
                t => (
                    addr,
                    Some(
                        t.strip_prefix(':')
                            .ok_or_else(|| bad("has junk after ']'"))?,
                    ),
                ),
            }
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        let port = match port {
            None => match scheme.as_deref() {
                Some("http") => Some(80),
                Some("https") => Some(443),
                _ => return Err(bad("with scheme `*` needs an explicit port or `:*`")),
            },
            Some("*") => None,
            Some(p) => Some(p.parse::<u16>().map_err(|_| bad("has an invalid port"))?),
        };
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            HostPattern::Subdomains(suffix.to_string())
        } else if host.is_empty() || host.contains('*') {
            return Err(bad("has an invalid host: use a name, `*.name` or `*`"));
        } else {
            HostPattern::Exact(host)
        };
        Ok(AllowedHost { scheme, host, port })
    }

    /// Whether a request to `scheme://host:port` is allowed by this entry.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.scheme.as_deref().is_none_or(|s| s == scheme)
            && self.port.is_none_or(|p| p == port)
            && match &self.host {
                HostPattern::Any => true,
                HostPattern::Exact(h) => *h == host,
                HostPattern::Subdomains(suffix) => host
                    .strip_suffix(suffix.as_str())
                    .is_some_and(|head| head.ends_with('.') && head.len() > 1),
            }
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme.as_deref().unwrap_or("*"))?;
        match &self.host {
            HostPattern::Any => f.write_str("*")?,
            HostPattern::Exact(h) => f.write_str(h)?,
            HostPattern::Subdomains(s) => write!(f, "*.{s}")?,
        }
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => f.write_str(":*"),
        }
    }
}

/// The outbound rules of one function. Empty means no outbound HTTP at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    allowed: Vec<AllowedHost>,
}

impl OutboundPolicy {
    pub fn deny_all() -> Self {
        Self::default()
    }

    /// Parse every entry; on failure, one message per bad entry.
    pub fn parse(entries: &[String]) -> Result<Self, Vec<String>> {
        let mut allowed = Vec::new();
        let mut errors = Vec::new();
        for entry in entries {
            match AllowedHost::parse(entry) {
                Ok(a) => allowed.push(a),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(Self { allowed })
        } else {
            Err(errors)
        }
    }

    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.allowed.iter().any(|a| a.allows(scheme, host, port))
    }

    pub fn entries(&self) -> &[AllowedHost] {
        &self.allowed
    }

    /// Allow one more host (what `muon up` grants a function with `publish_events`).
    pub fn allow(&mut self, host: AllowedHost) {
        self.allowed.push(host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: &[&str]) -> OutboundPolicy {
        OutboundPolicy::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn deny_by_default() {
        assert!(!OutboundPolicy::deny_all().allows("https", "example.com", 443));
    }

    #[test]
    fn exact_hosts_use_the_default_port() {
        let p = policy(&["https://api.example.com"]);
        assert!(p.allows("https", "api.example.com", 443));
        assert!(p.allows("https", "API.example.com.", 443));
        assert!(!p.allows("http", "api.example.com", 80));
        assert!(!p.allows("https", "api.example.com", 8443));
        assert!(!p.allows("https", "evil.com", 443));
        assert!(!p.allows("https", "api.example.com.evil.com", 443));
    }

    #[test]
    fn wildcards() {
        let p = policy(&[
            "https://*.example.com",
            "http://127.0.0.1:*",
            "*://svc:8080",
        ]);
        assert!(p.allows("https", "a.example.com", 443));
        assert!(p.allows("https", "a.b.example.com", 443));
        assert!(!p.allows("https", "example.com", 443));
        assert!(!p.allows("https", "badexample.com", 443));
        assert!(p.allows("http", "127.0.0.1", 9999));
        assert!(!p.allows("https", "127.0.0.1", 9999));
        assert!(p.allows("http", "svc", 8080));
        assert!(p.allows("https", "svc", 8080));
        assert_eq!(
            policy(&["http://127.0.0.1:*"]).entries()[0].to_string(),
            "http://127.0.0.1:*"
        );
    }

    #[test]
    fn bad_entries_say_why() {
        let errors = OutboundPolicy::parse(&[
            "example.com".into(),
            "ftp://example.com".into(),
            "https://example.com/path".into(),
            "https://example.com:http".into(),
            "*://example.com".into(),
            "https://ex*ample.com".into(),
        ])
        .unwrap_err();
        assert_eq!(errors.len(), 6, "{errors:#?}");
    }
}
