//! The event-pattern cases recorded against AWS (`shared/conformance/event-patterns`, see its
//! README), shared by the test targets that read them.

use std::path::{Path, PathBuf};

pub const CASES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/conformance/event-patterns"
);

/// Every case file, sorted; `None` (after saying so) when the folder is not there.
pub fn files() -> Option<Vec<PathBuf>> {
    let dir = Path::new(CASES);
    if !dir.is_dir() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{CASES} does not exist, and CI must run the conformance cases"
        );
        println!("note: {CASES} does not exist; skipping the conformance cases");
        return None;
    }
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("read the conformance folder")
        .map(|e| e.expect("read a folder entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no cases in {CASES}");
    Some(files)
}
