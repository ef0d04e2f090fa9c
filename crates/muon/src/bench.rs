//! `muon bench`: the figures the README reports, measured on this machine.
//!
//! - isolate instantiation: a fresh store + instance of the component from the pre-instantiated
//!   component, many times in a row (p50/p99);
//! - process start to first response: `muon up` started as a child process on an app with the
//!   component, timed until its first 200 (compile cache warm), median of several runs.
//!
//! Throughput under concurrent load is measured against peer servers by `bench/http.sh`, with a
//! public load generator (oha or wrk).

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use muon_runtime_wasm::{Config, Engine, Settings};
use muon_types::FunctionName;

#[derive(clap::Args)]
pub struct Args {
    /// The component to measure (default: the hello guest, built from guests/ if needed).
    #[arg(long)]
    wasm: Option<PathBuf>,
    /// How many isolates to instantiate.
    #[arg(long, default_value_t = 20_000)]
    iterations: usize,
    /// How many times to start `muon up` for the start-to-first-response figure.
    #[arg(long, default_value_t = 15)]
    starts: usize,
    /// Also time another server's start to first response, measured the same way in the same
    /// run: a command line in which `{port}` and `{wasm}` are replaced, e.g.
    /// `--compare "wasmtime serve -S cli --addr 127.0.0.1:{port} {wasm}"`. May be repeated.
    #[arg(long)]
    compare: Vec<String>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let wasm = match args.wasm {
        Some(w) => w,
        None => hello_guest()?,
    };
    println!("component: {}", wasm.display());
    let cache = std::env::temp_dir().join("muon-bench-cache");

    for pooling in [true, false] {
        let engine = Engine::new(&Config {
            cache_dir: Some(cache.clone()),
            pooling: if pooling {
                muon_runtime_wasm::Pooling::Always
            } else {
                muon_runtime_wasm::Pooling::Never
            },
            max_instances: 100,
            max_memory_mb: 128,
        });
        let engine = match engine {
            Ok(e) => e,
            Err(e) => {
                println!(
                    "isolate instantiation ({}): unavailable: {e}",
                    label(pooling)
                );
                continue;
            }
        };
        let loaded = engine.load(&wasm)?;
        let function = engine.prepare(
            &loaded.component,
            Settings {
                name: FunctionName::new("bench").expect("a valid name"),
                memory_bytes: 128 << 20,
                timeout: Duration::from_secs(30),
                environment: Vec::new(),
                outbound: muon_manifest::OutboundPolicy::deny_all(),
                destinations: Default::default(),
                events_token: None,
                instance_reuse: 1,
                max_instances: 1,
            },
        )?;
        // Warm up, then measure.
        engine.measure_instantiation(&function, 1000).await?;
        let mut times = engine
            .measure_instantiation(&function, args.iterations)
            .await?;
        times.sort();
        println!(
            "isolate instantiation ({}): p50 {:.1} us, p99 {:.1} us, n={}",
            label(pooling),
            micros(percentile(&times, 50.0)),
            micros(percentile(&times, 99.0)),
            times.len()
        );
    }

    let dir = tempfile::tempdir()?;
    let wasm = std::path::absolute(&wasm)?;
    std::fs::write(
        dir.path().join("muon.toml"),
        format!(
            "app = \"bench\"\n[[function]]\nname = \"hello\"\nruntime = \"wasm\"\nsource = {:?}\nroute = \"/\"\n",
            wasm.display().to_string()
        ),
    )?;
    let exe = std::env::current_exe()?.display().to_string();
    let muon = format!(
        "{exe} up {} --quiet --listen 127.0.0.1:{{port}} --control 127.0.0.1:{{control}} --cache-dir {}",
        dir.path().display(),
        cache.display()
    );
    let mut servers = vec![("muon up".to_string(), muon)];
    servers.extend(args.compare.iter().map(|c| (c.clone(), c.clone())));
    for (label, command) in servers {
        let starts = start_to_first_response(&command, &wasm, args.starts).await?;
        println!(
            "process start -> first response ({label}): median {:.1} ms, min {:.1} ms, max {:.1} ms, n={}",
            millis(percentile(&starts, 50.0)),
            millis(starts[0]),
            millis(starts[starts.len() - 1]),
            starts.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn label(pooling: bool) -> &'static str {
    if pooling {
        "pooling allocator"
    } else {
        "on-demand allocator"
    }
}

fn hello_guest() -> anyhow::Result<PathBuf> {
    let guests = PathBuf::from("guests");
    if !guests.join("Cargo.toml").is_file() {
        bail!("run `muon bench` from the repository root, or pass --wasm FILE");
    }
    let built = muon_manifest::build::build_project(&guests).map_err(anyhow::Error::msg)?;
    built
        .into_iter()
        .find_map(|(name, path)| (name == "hello").then_some(path))
        .context("the guests workspace has no hello guest")
}

/// Start `command` (`{port}`, `{control}` and `{wasm}` replaced) `runs + 1` times and time each
/// start until its first 200 answer; the first start (which may fill caches) is not counted.
async fn start_to_first_response(
    command: &str,
    wasm: &std::path::Path,
    runs: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::new();
    for run in 0..=runs {
        let port = free_port()?.to_string();
        let control = free_port()?.to_string();
        let argv: Vec<String> = command
            .split_whitespace()
            .map(|a| {
                a.replace("{port}", &port)
                    .replace("{control}", &control)
                    .replace("{wasm}", &wasm.display().to_string())
            })
            .collect();
        let (program, rest) = argv.split_first().context("an empty command")?;
        let start = Instant::now();
        let mut child = tokio::process::Command::new(program)
            .args(rest)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {program}"))?;
        let port: u16 = port.parse()?;
        let elapsed = loop {
            if let Ok(true) = first_response(port).await {
                break start.elapsed();
            }
            if start.elapsed() > Duration::from_secs(30) {
                bail!("{program} did not answer within 30 s");
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        child.kill().await?;
        if run > 0 {
            times.push(elapsed);
        }
    }
    times.sort();
    Ok(times)
}

/// One plain HTTP/1.1 GET: true on a 200.
async fn first_response(port: u16) -> std::io::Result<bool> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await?;
    Ok(&head[9..12] == b"200")
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
