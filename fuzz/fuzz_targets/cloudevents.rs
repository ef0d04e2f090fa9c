//! CloudEvents attributes in `ce-*` headers: any bytes decode or are refused without panicking,
//! and every string survives encoding into a header and decoding back.

#![no_main]

use libfuzzer_sys::fuzz_target;
use muon_bus::cloudevents::{decode_header, encode_header};

fuzz_target!(|data: &[u8]| {
    let _ = decode_header(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let header = encode_header(text);
        assert!(header.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{header}");
        assert_eq!(decode_header(header.as_bytes()).as_deref(), Some(text));
    }
});
