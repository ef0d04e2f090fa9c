//! JSONPath as Step Functions takes it (`$.a[0].b`, `$..x`, filters, `$$`, `$var`): any text
//! parses or is refused without panicking, and a parsed path selects from a document with
//! every JSON shape.

#![no_main]

use libfuzzer_sys::fuzz_target;
use muon_asl::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(path) = Path::parse(text) else {
        return;
    };
    let document = serde_json::json!({
        "a": [1, 2.5, "x", null, true, {"b": [{"c": 1}, {"c": 2}]}],
        "o": {"k": {"k": {"k": []}}, "n": -3, "s": "text"},
        "": {"": 0}
    });
    let _ = path.select(&document);
    let _ = path.as_str();
});
