//! AWS Signature Version 4, verified as the AWS SDKs and CLI sign: the canonical request, the
//! string to sign and the signing key derived from the secret, date, region and service
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html>).

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// How far a request's `X-Amz-Date` may be from now, as AWS allows.
const MAX_SKEW_SECS: i64 = 15 * 60;

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Authorization<'a> {
    pub access_key: &'a str,
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub signed_headers: Vec<&'a str>,
    pub signature: &'a str,
}

/// Reads an `Authorization` header value; `None` if it is not SigV4.
pub(crate) fn parse(header: &str) -> Option<Authorization<'_>> {
    let rest = header.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => {}
        }
    }
    let mut scope = credential?.split('/');
    let auth = Authorization {
        access_key: scope.next()?,
        date: scope.next()?,
        region: scope.next()?,
        service: scope.next()?,
        signed_headers: signed?.split(';').collect(),
        signature: signature?,
    };
    (scope.next()? == "aws4_request").then_some(auth)
}

/// What a signature is computed over.
pub(crate) struct Signed<'a> {
    pub method: &'a str,
    /// The path as sent (percent-encoded once).
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Percent-encodes as SigV4 does: unreserved characters (and `/` when `keep_slash`) stay.
fn encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn canonical_request(auth: &Authorization<'_>, r: &Signed<'_>) -> Result<String, String> {
    let path = if r.path.is_empty() { "/" } else { r.path };
    let mut query: Vec<(&str, &str)> = r
        .query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    query.sort();
    let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut headers = String::new();
    for name in &auth.signed_headers {
        let values: Vec<String> = r
            .headers
            .get_all(*name)
            .iter()
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        if values.is_empty() {
            return Err(format!("the signed header {name} is missing"));
        }
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let payload = match r.headers.get("x-amz-content-sha256") {
        Some(v) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
        None => hex::encode(Sha256::digest(r.body)),
    };
    Ok(format!(
        "{}\n{}\n{}\n{headers}\n{}\n{payload}",
        r.method,
        encode(path, true),
        query.join("&"),
        auth.signed_headers.join(";")
    ))
}

/// Checks the signature of `request` against `secret`, and that it was made within 15 minutes
/// of `now_secs`.
pub(crate) fn verify(
    auth: &Authorization<'_>,
    secret: &str,
    request: &Signed<'_>,
    now_secs: i64,
) -> Result<(), String> {
    let amz_date = request
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or("the request has no X-Amz-Date")?;
    if !auth.signed_headers.contains(&"host") {
        return Err("the signature does not cover the host header".into());
    }
    let signed_at = chrono::NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ")
        .map_err(|_| format!("X-Amz-Date {amz_date} is not of the form 20150830T123600Z"))?
        .and_utc()
        .timestamp();
    if (now_secs - signed_at).abs() > MAX_SKEW_SECS {
        return Err(format!(
            "Signature expired: {amz_date} is more than 15 minutes from the server's time"
        ));
    }
    if !amz_date.starts_with(auth.date) {
        return Err("the credential's date is not the request's".into());
    }
    let canonical = canonical_request(auth, request)?;
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = [auth.date, auth.region, auth.service, "aws4_request"]
        .iter()
        .fold(format!("AWS4{secret}").into_bytes(), |k, part| {
            hmac(&k, part.as_bytes())
        });
    let expected = hex::encode(hmac(&key, to_sign.as_bytes()));
    if crate::auth::same(expected.as_bytes(), auth.signature.as_bytes()) {
        Ok(())
    } else {
        Err("The request signature we calculated does not match the signature you provided".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of AWS's SigV4 documentation (IAM ListUsers).
    #[test]
    fn the_documented_example_verifies() {
        let header = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";
        let auth = parse(header).unwrap();
        assert_eq!(auth.access_key, "AKIDEXAMPLE");
        assert_eq!(auth.service, "iam");
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8"
                .parse()
                .unwrap(),
        );
        headers.insert("host", "iam.amazonaws.com".parse().unwrap());
        headers.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
        let request = Signed {
            method: "GET",
            path: "/",
            query: "Action=ListUsers&Version=2010-05-08",
            headers: &headers,
            body: b"",
        };
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let at = chrono::NaiveDate::from_ymd_opt(2015, 8, 30)
            .unwrap()
            .and_hms_opt(12, 40, 0)
            .unwrap()
            .and_utc()
            .timestamp();
        assert_eq!(verify(&auth, secret, &request, at), Ok(()));
        assert!(verify(&auth, "wrong", &request, at).is_err());
        assert!(
            verify(&auth, secret, &request, at + 3600)
                .unwrap_err()
                .contains("expired")
        );
        let tampered = Signed {
            query: "Action=DeleteUser&Version=2010-05-08",
            ..request
        };
        assert!(verify(&auth, secret, &tampered, at).is_err());
        assert_eq!(parse("Bearer x"), None);
    }
}
