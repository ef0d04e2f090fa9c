//! Tidy checks over the workspace's own sources and manifests (after rust-analyzer's `tidy.rs`):
//! the rules of ARCHITECTURE.md that the compiler does not enforce.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The workspace's crates: (folder name, path).
fn crates() -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(root().join("crates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    out.sort();
    out
}

/// The package names a crate's `[dependencies]` table (not dev- or build-dependencies) names.
fn dependencies(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let value: toml::Value = toml::from_str(&text).unwrap();
    let mut names: Vec<String> = Vec::new();
    if let Some(table) = value.get("dependencies").and_then(|d| d.as_table()) {
        names.extend(table.keys().cloned());
    }
    if let Some(targets) = value.get("target").and_then(|t| t.as_table()) {
        for target in targets.values() {
            if let Some(table) = target.get("dependencies").and_then(|d| d.as_table()) {
                names.extend(table.keys().cloned());
            }
        }
    }
    names
}

#[test]
fn every_module_opens_with_a_doc_comment() {
    let mut missing = Vec::new();
    for (_, dir) in crates() {
        for file in rust_files(&dir.join("src")) {
            let text = std::fs::read_to_string(&file).unwrap();
            if !text.trim_start().starts_with("//!") {
                missing.push(
                    file.strip_prefix(root())
                        .unwrap_or(&file)
                        .display()
                        .to_string(),
                );
            }
        }
    }
    assert!(
        missing.is_empty(),
        "these modules do not open with a `//!` comment saying what they are for:\n  {}",
        missing.join("\n  ")
    );
}

/// Crates that do no IO and read no clock.
const PURE: &[&str] = &["pattern", "asl", "schedule"];

#[test]
fn pure_crates_do_no_io_and_read_no_clock() {
    const IO_CRATES: &[&str] = &[
        "tokio",
        "hyper",
        "hyper-util",
        "axum",
        "reqwest",
        "rusqlite",
        "async-nats",
        "wasmtime",
        "muon-store",
        "muon-store-sqlite",
        "muon-runtime",
        "muon-server",
    ];
    const IO_CALLS: &[&str] = &[
        "SystemTime::now",
        "Instant::now",
        "Utc::now",
        "Local::now",
        "std::fs",
        "std::net::Tcp",
        "std::net::Udp",
        "ToSocketAddrs",
        "std::env",
        "std::process",
        "std::thread::sleep",
        "tokio::",
    ];
    let mut problems = Vec::new();
    for name in PURE {
        let dir = root().join("crates").join(name);
        for dep in dependencies(&dir.join("Cargo.toml")) {
            if IO_CRATES.contains(&dep.as_str()) {
                problems.push(format!("crates/{name} depends on {dep}"));
            }
        }
        for file in rust_files(&dir.join("src")) {
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for call in IO_CALLS {
                    if code.contains(call) {
                        problems.push(format!(
                            "{}:{}: {call}",
                            file.strip_prefix(root()).unwrap_or(&file).display(),
                            n + 1
                        ));
                    }
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "pure crates must do no IO and read no clock (take `now` as an argument):\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_bus_and_the_workflow_engine_never_depend_on_each_other() {
    let bus = dependencies(&root().join("crates/bus/Cargo.toml"));
    let flow = dependencies(&root().join("crates/flow/Cargo.toml"));
    assert!(
        !bus.contains(&"muon-flow".to_string()),
        "crates/bus depends on muon-flow"
    );
    assert!(
        !flow.contains(&"muon-bus".to_string()),
        "crates/flow depends on muon-bus"
    );
}

#[test]
fn only_the_binary_names_concrete_backends() {
    const BACKENDS: &[&str] = &["muon-store-sqlite", "muon-runtime-wasm"];
    let mut problems = Vec::new();
    for (name, dir) in crates() {
        if name == "muon" {
            continue;
        }
        for dep in dependencies(&dir.join("Cargo.toml")) {
            if BACKENDS.contains(&dep.as_str()) {
                problems.push(format!("crates/{name} depends on {dep}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "only crates/muon chooses backends (others may use them in dev-dependencies):\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn conformance_tests_fail_under_ci_without_their_data() {
    for file in [
        "crates/asl/tests/conformance.rs",
        "crates/pattern/tests/cases/mod.rs",
    ] {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        assert!(
            text.contains("std::env::var_os(\"CI\")"),
            "{file} must fail when CI is set and the conformance data is missing"
        );
    }
}

#[test]
fn every_muon_up_flag_has_help_and_an_environment_variable() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_muon"))
        .args(["up", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let mut problems = Vec::new();
    for line in help.lines().map(str::trim) {
        let Some(flag) = line.split_whitespace().find(|w| w.starts_with("--")) else {
            continue;
        };
        if flag == "--help" {
            continue;
        }
        if !line.contains("[env: MUON_") {
            problems.push(format!("{flag} has no MUON_* variable"));
        }
        let described = line.split("  ").filter(|p| !p.trim().is_empty()).count() > 1;
        if !described {
            problems.push(format!("{flag} has no help text"));
        }
    }
    assert!(problems.is_empty(), "{}\n{help}", problems.join("\n"));
}
