//! What the `muon up` tests share: the guest fixtures, the binary, and a running server.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<Vec<(String, PathBuf)>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../guests");
            muon_manifest::build::build_project(&dir).expect("the guest fixtures build")
        })
        .iter()
        .find_map(|(n, p)| (n == name).then(|| p.clone()))
        .unwrap_or_else(|| panic!("no guest named {name}"))
}

pub fn muon() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_muon"));
    cmd.env(
        "MUON_CACHE_DIR",
        std::env::temp_dir().join("muon-test-cache"),
    );
    cmd
}

/// A running `muon up` on ephemeral ports, stopped on drop.
pub struct Up {
    pub child: Child,
    pub gateway: String,
    pub control: String,
    _dir: Option<tempfile::TempDir>,
}

impl Up {
    pub fn start(manifest: &str, extra: &[&str]) -> Up {
        Self::start_with(muon(), manifest, extra)
    }

    /// Start without `--allow-private-destinations`, which every other start passes (the tests'
    /// upstreams listen on loopback).
    pub fn start_strict(manifest: &str, extra: &[&str]) -> Up {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("muon.toml"), manifest).unwrap();
        let path = dir.path().to_path_buf();
        Self::start_at(muon(), &path, extra, Some(dir), false)
    }

    /// Start under a virtual-memory limit (`ulimit -v`, in KiB).
    pub fn start_limited(vm_kib: u64, manifest: &str, extra: &[&str]) -> Up {
        let mut shell = Command::new("sh");
        shell
            .arg("-c")
            .arg(format!("ulimit -v {vm_kib} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_muon"))
            .env(
                "MUON_CACHE_DIR",
                std::env::temp_dir().join("muon-test-cache"),
            );
        Self::start_with(shell, manifest, extra)
    }

    fn start_with(command: Command, manifest: &str, extra: &[&str]) -> Up {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("muon.toml"), manifest).unwrap();
        let path = dir.path().to_path_buf();
        Self::start_at(command, &path, extra, Some(dir), true)
    }

    /// Start the app in folder `app` (its own muon.toml).
    pub fn start_app(app: &Path, extra: &[&str]) -> Up {
        Self::start_at(muon(), app, extra, None, true)
    }

    fn start_at(
        mut command: Command,
        app: &Path,
        extra: &[&str],
        dir: Option<tempfile::TempDir>,
        allow_private: bool,
    ) -> Up {
        command.arg("up").arg(app).args([
            "--listen",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
            "--quiet",
        ]);
        if allow_private {
            // The tests' HTTP targets and upstreams listen on loopback.
            command.arg("--allow-private-destinations");
        }
        let mut child = command
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut gateway, mut control) = (None, None);
        while gateway.is_none() || control.is_none() {
            let line = lines
                .next()
                .expect("muon up printed its addresses before exiting")
                .unwrap();
            if let Some(rest) = line.trim().strip_prefix("app routes on ") {
                gateway = Some(rest.to_string());
            }
            if let Some(rest) = line.trim().strip_prefix("control API: ") {
                control = Some(
                    rest.split_whitespace()
                        .next()
                        .unwrap()
                        .trim_end_matches("/v1")
                        .to_string(),
                );
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Up {
            child,
            gateway: gateway.unwrap(),
            control: control.unwrap(),
            _dir: dir,
        }
    }

    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        muon()
            .args(args)
            .env("MUON_CONTROL", &self.control)
            .output()
            .unwrap()
    }

    pub fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Waits (bounded) until `check` holds; panics saying what it waited for.
pub fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {limit:?} waiting for: {what}");
}

/// A `[[function]]` table with the `hello` fixture: every app needs one.
pub fn hello_function() -> String {
    format!(
        "[[function]]\nname = \"hello\"\nruntime = \"wasm\"\nsource = {:?}\n",
        guest("hello").display().to_string()
    )
}

/// Runs `muon keys ARGS --app DIR`; what it prints on standard output, trimmed.
pub fn keys(dir: &Path, args: &[&str]) -> String {
    let out = muon()
        .arg("keys")
        .args(args)
        .arg("--app")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A tiny HTTP server on loopback that records the `ce-id` of every POST it gets and answers
/// 200 after `delay` (slow, so that deliveries are still pending when muon is killed).
pub fn recorder(delay: Duration) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut id = None;
                    let mut length = 0usize;
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) == 0 {
                            return;
                        }
                        let header = header.trim_end();
                        if header.is_empty() {
                            break;
                        }
                        let (name, value) = header.split_once(':').unwrap();
                        match name.to_ascii_lowercase().as_str() {
                            "ce-id" => id = Some(value.trim().to_string()),
                            "content-length" => length = value.trim().parse().unwrap(),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    std::thread::sleep(delay);
                    seen.lock().unwrap().extend(id);
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                }
            });
        }
    });
    (url, got)
}
