//! API keys for the control API: what a key may do (its scope), how one is made, and how a
//! presented one is checked.
//!
//! A key is `mk_<id>_<secret>`: the ID (16 hex digits) is public and names it in lists; the
//! secret (64 hex digits, 256 random bits) is shown once when the key is made and stored only as
//! its SHA-256 (a secret that long needs no slow hash). Checking compares hashes in constant
//! time.
//!
//! A key made for the AWS SDKs (`muon keys create --aws`) also gets an access key pair for SigV4
//! (`MK` + its ID, and its secret). SigV4 signs with the secret itself, so for those keys the
//! server must be able to recover it: it is kept sealed (XOR with HMAC-SHA256 of the data
//! folder's `master.key` over the key's ID), so the store alone does not reveal it.

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// What a key may do; each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read: list and describe, follow logs and tails, test patterns.
    Read,
    /// Read, and run things: invoke functions, put events, start and stop executions, answer
    /// task tokens.
    Invoke,
    /// Everything: rules, archives, replays, state machines, dead-letter redrives.
    Admin,
}

impl Scope {
    pub fn parse(text: &str) -> Option<Scope> {
        match text {
            "read" => Some(Scope::Read),
            "invoke" => Some(Scope::Invoke),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Invoke => "invoke",
            Scope::Admin => "admin",
        }
    }
}

/// What the store keeps of a key (as the JSON of its `KeyRecord`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    pub id: String,
    pub name: String,
    pub scope: Scope,
    /// SHA-256 of the secret, hex.
    pub secret_sha256: String,
    pub created_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_ms: Option<i64>,
    /// For keys that sign with SigV4: the secret, sealed with the master key (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_secret: Option<String>,
}

/// The pad a key's secret is sealed with: HMAC-SHA256(master, "muon-sigv4:" + id).
fn pad(master: &[u8; 32], id: &str) -> [u8; 32] {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(master).expect("any key length");
    mac.update(b"muon-sigv4:");
    mac.update(id.as_bytes());
    mac.finalize().into_bytes().into()
}

fn xor(a: &[u8], b: &[u8; 32]) -> Vec<u8> {
    a.iter().zip(b.iter().cycle()).map(|(x, y)| x ^ y).collect()
}

impl Key {
    /// A new key: what to store, and the text to give its owner (shown once).
    pub fn create(name: &str, scope: Scope, now_ms: i64) -> Result<(Key, String), String> {
        let mut id = [0u8; 8];
        let mut secret = [0u8; 32];
        getrandom::fill(&mut id).map_err(|e| format!("cannot draw a random key: {e}"))?;
        getrandom::fill(&mut secret).map_err(|e| format!("cannot draw a random key: {e}"))?;
        let (id, secret) = (hex::encode(id), hex::encode(secret));
        let key = Key {
            id: id.clone(),
            name: name.to_owned(),
            scope,
            secret_sha256: hex::encode(sha2::Sha256::digest(secret.as_bytes())),
            created_ms: now_ms,
            revoked_ms: None,
            sealed_secret: None,
        };
        Ok((key, format!("mk_{id}_{secret}")))
    }

    /// Lets this key also sign with SigV4: seals its secret (from `text`, what
    /// [`Key::create`] gave) with `master`. Returns the access key ID.
    pub fn seal_for_sigv4(&mut self, text: &str, master: &[u8; 32]) -> Option<String> {
        let (_, secret) = parse(text)?;
        self.sealed_secret = Some(hex::encode(xor(secret.as_bytes(), &pad(master, &self.id))));
        Some(self.access_key_id())
    }

    /// The SigV4 access key ID: `MK` and the ID in capitals.
    pub fn access_key_id(&self) -> String {
        format!("MK{}", self.id.to_ascii_uppercase())
    }

    /// The SigV4 secret, unsealed with `master`, for keys that have one.
    pub(crate) fn sigv4_secret(&self, master: &[u8; 32]) -> Option<String> {
        let sealed = hex::decode(self.sealed_secret.as_deref()?).ok()?;
        String::from_utf8(xor(&sealed, &pad(master, &self.id))).ok()
    }

    pub fn record(&self) -> muon_store::KeyRecord {
        muon_store::KeyRecord {
            id: self.id.clone(),
            json: serde_json::to_string(self).expect("keys serialize"),
        }
    }

    pub fn from_record(record: &muon_store::KeyRecord) -> Result<Key, String> {
        serde_json::from_str(&record.json)
            .map_err(|e| format!("stored key {} cannot be read: {e}", record.id))
    }

    /// Whether `presented` (the whole `mk_...` text) is this key's, and it is not revoked.
    fn accepts(&self, secret: &str) -> bool {
        let hash = hex::encode(sha2::Sha256::digest(secret.as_bytes()));
        self.revoked_ms.is_none()
            && crate::auth::same(hash.as_bytes(), self.secret_sha256.as_bytes())
    }
}

/// Splits a presented key into its ID and secret.
pub(crate) fn parse(presented: &str) -> Option<(&str, &str)> {
    let (id, secret) = presented.strip_prefix("mk_")?.split_once('_')?;
    (id.len() == 16 && secret.len() == 64).then_some((id, secret))
}

/// The key an access key ID (`MK...`) names, if it is active.
pub(crate) fn by_access_key<'a>(keys: &'a [Key], access_key: &str) -> Option<&'a Key> {
    let id = access_key.strip_prefix("MK")?.to_ascii_lowercase();
    keys.iter().find(|k| k.id == id && k.revoked_ms.is_none())
}

/// The scope of the key `presented` names, if it is one of `keys` and its secret matches.
pub(crate) fn check(keys: &[Key], presented: &str) -> Option<Scope> {
    let (id, secret) = parse(presented)?;
    keys.iter()
        .find(|k| k.id == id)
        .filter(|k| k.accepts(secret))
        .map(|k| k.scope)
}

/// The least scope an operation needs: `method` and `path` of a REST call, or `target` (the
/// `X-Amz-Target` operation name after its service prefix) on the AWS protocols.
pub(crate) fn needed(method: &http::Method, path: &str, target: Option<&str>) -> Scope {
    if let Some(op) = target {
        let op = op.rsplit('.').next().unwrap_or(op);
        return if ["Describe", "List", "Get", "Test"]
            .iter()
            .any(|p| op.starts_with(p))
        {
            Scope::Read
        } else if matches!(
            op,
            "PutEvents"
                | "StartExecution"
                | "StartSyncExecution"
                | "StopExecution"
                | "SendTaskSuccess"
                | "SendTaskFailure"
                | "SendTaskHeartbeat"
        ) {
            Scope::Invoke
        } else {
            Scope::Admin
        };
    }
    if method == http::Method::GET || method == http::Method::HEAD {
        return Scope::Read;
    }
    if path == "/v1/events/test-pattern" {
        return Scope::Read;
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let invoke = matches!(
        segments.as_slice(),
        ["v1", "functions", _, "invoke"]
            | ["v1", "events"]
            | ["v1", "buses", _, "cloudevents"]
            | ["v1", "state-machines", _, "executions"]
            | ["v1", "executions", .., "stop"]
            | ["v1", "tasks", _]
    );
    if invoke { Scope::Invoke } else { Scope::Admin }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_checked_by_its_secret_and_revocation() {
        let (mut key, text) = Key::create("ci", Scope::Invoke, 1).unwrap();
        assert!(
            text.starts_with("mk_") && text.len() == 3 + 16 + 1 + 64,
            "{text}"
        );
        let keys = vec![key.clone()];
        assert_eq!(check(&keys, &text), Some(Scope::Invoke));
        let mut wrong = text.clone();
        wrong.replace_range(
            text.len() - 1..,
            if text.ends_with('0') { "1" } else { "0" },
        );
        assert_eq!(check(&keys, &wrong), None);
        assert_eq!(check(&keys, "mk_00_11"), None);
        key.revoked_ms = Some(2);
        assert_eq!(check(&[key.clone()], &text), None);
        // What is stored reads back, and holds no secret.
        let record = key.record();
        assert!(!record.json.contains(&text[20..]));
        assert_eq!(Key::from_record(&record).unwrap(), key);
        // A SigV4 key's secret is kept sealed, and only the master key opens it.
        let (mut aws, text) = Key::create("sdk", Scope::Admin, 1).unwrap();
        let master = [7u8; 32];
        let access = aws.seal_for_sigv4(&text, &master).unwrap();
        assert_eq!(access, format!("MK{}", text[3..19].to_ascii_uppercase()));
        assert!(!aws.record().json.contains(&text[20..]));
        assert_eq!(aws.sigv4_secret(&master).as_deref(), Some(&text[20..]));
        assert_ne!(aws.sigv4_secret(&[8u8; 32]).as_deref(), Some(&text[20..]));
        assert!(by_access_key(&[aws.clone()], &access).is_some());
    }

    #[test]
    fn operations_need_their_scope() {
        use http::Method;
        let rest = |m: Method, p: &str| needed(&m, p, None);
        assert_eq!(rest(Method::GET, "/v1/functions"), Scope::Read);
        assert_eq!(rest(Method::POST, "/v1/events/test-pattern"), Scope::Read);
        assert_eq!(rest(Method::POST, "/v1/functions/f/invoke"), Scope::Invoke);
        assert_eq!(rest(Method::POST, "/v1/events"), Scope::Invoke);
        assert_eq!(
            rest(Method::POST, "/v1/state-machines/m/executions"),
            Scope::Invoke
        );
        assert_eq!(
            rest(Method::POST, "/v1/executions/m%2Fx/stop"),
            Scope::Invoke
        );
        assert_eq!(rest(Method::POST, "/v1/tasks/success"), Scope::Invoke);
        assert_eq!(rest(Method::PUT, "/v1/rules"), Scope::Admin);
        assert_eq!(rest(Method::POST, "/v1/dlq/redrive"), Scope::Admin);
        assert_eq!(rest(Method::POST, "/v1/replays"), Scope::Admin);
        assert_eq!(rest(Method::DELETE, "/v1/state-machines/m"), Scope::Admin);
        let aws = |t: &str| needed(&Method::POST, "/", Some(t));
        assert_eq!(aws("AWSEvents.ListRules"), Scope::Read);
        assert_eq!(aws("AWSStepFunctions.DescribeExecution"), Scope::Read);
        assert_eq!(aws("AWSStepFunctions.GetExecutionHistory"), Scope::Read);
        assert_eq!(aws("AWSEvents.PutEvents"), Scope::Invoke);
        assert_eq!(aws("AWSStepFunctions.StartExecution"), Scope::Invoke);
        assert_eq!(aws("AWSEvents.PutRule"), Scope::Admin);
        assert_eq!(aws("AWSStepFunctions.CreateStateMachine"), Scope::Admin);
        assert_eq!(aws("AWSEvents.StartReplay"), Scope::Admin);
        assert!(Scope::Admin > Scope::Invoke && Scope::Invoke > Scope::Read);
    }
}
