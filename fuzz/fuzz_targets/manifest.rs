//! `muon.toml`: any text is read and validated (every problem reported) without panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let root = std::env::temp_dir();
    let _ = muon_manifest::parse(text, &root.join("muon.toml"), &root);
});
