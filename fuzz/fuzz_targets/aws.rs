//! The AWS request bodies muon decodes (EventBridge's and Step Functions' JSON protocols, the
//! REST API's bodies): any bytes decode into the wire types or are refused without panicking,
//! and a decoded PutEvents round-trips.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(put) = serde_json::from_slice::<muon_api::PutEvents>(data) {
        let again = serde_json::to_vec(&put).expect("wire types serialize");
        serde_json::from_slice::<muon_api::PutEvents>(&again).expect("a round trip decodes");
    }
    let _ = serde_json::from_slice::<muon_api::eventbridge::PutRule>(data);
    let _ = serde_json::from_slice::<muon_api::eventbridge::PutTargets>(data);
    let _ = serde_json::from_slice::<muon_api::eventbridge::ListRules>(data);
    let _ = serde_json::from_slice::<muon_api::eventbridge::RemoveTargets>(data);
    let _ = serde_json::from_slice::<muon_api::TestEventPattern>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = muon_manifest::Rule::from_api_json(text);
    }
});
