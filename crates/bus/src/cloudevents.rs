//! CloudEvents' HTTP binding for attribute values carried in `ce-*` headers (section 3.1.3.2):
//! space, `"`, `%` and everything outside printable ASCII is percent-encoded as UTF-8 bytes,
//! and decoded on the way in.

/// A string attribute as a `ce-*` header value.
pub fn encode_header(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'"' && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A `ce-*` header value as the attribute it carries: percent-escapes decoded; raw UTF-8 bytes
/// (which some senders put in headers unencoded) kept. `None` when the result is not UTF-8.
pub fn decode_header(value: &[u8]) -> Option<String> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        match (
            value[i],
            value.get(i + 1).copied().and_then(hex),
            value.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_headers() {
        for v in [
            "shop.orders",
            "Bestellung über 100 €",
            "a b\"c%d",
            "",
            "日本",
        ] {
            let h = encode_header(v);
            assert!(h.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{h}");
            assert_eq!(decode_header(h.as_bytes()).as_deref(), Some(v));
        }
        assert_eq!(encode_header("a b"), "a%20b");
        assert_eq!(encode_header("ü"), "%C3%BC");
        // Raw UTF-8 is taken as it is; a lone `%` too.
        assert_eq!(decode_header("shöp".as_bytes()).as_deref(), Some("shöp"));
        assert_eq!(decode_header(b"100%").as_deref(), Some("100%"));
        assert_eq!(decode_header(b"%FF"), None);
    }
}
