//! The `muon` binary: the CLI and the wiring of `muon up`. Glue only: parsing flags, building
//! the services from the manifest, and printing for people; the domain lives in the crates.

mod bench;
mod client;
mod dispatch;
mod events;
mod flows;
mod keys;
mod up;
mod workflows;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// Every isolate allocates and frees host structures; glibc's malloc serializes threads on its
// arena locks under load, mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "muon",
    version,
    about = "The serverless platform you run yourself"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the app in DIR (default: the current folder): its functions answer HTTP at once.
    Up(up::Args),
    /// Invoke a function of a running app and print its answer.
    Invoke(client::InvokeArgs),
    /// Print a function's recent logs, or follow them.
    Logs(client::LogsArgs),
    /// List the functions of a running app.
    Functions(client::FunctionsArgs),
    /// Event-bus tools: put, tail, trace, dlq, replay (`test-pattern` runs without a server).
    #[command(subcommand)]
    Events(events::Command),
    /// Step Functions workflows: state machines, executions, history, task tokens (`exec` runs
    /// one execution locally, without a server).
    #[command(subcommand)]
    Flows(flows::Command),
    /// The event rules of a running app.
    #[command(subcommand)]
    Rules(events::Rules),
    /// API keys for the control API: create, list, revoke (in the app's store).
    #[command(subcommand)]
    Keys(keys::Command),
    /// Measure isolate start, process start to first response, and throughput.
    Bench(bench::Args),
}

/// Where the control API of a running `muon up` is.
#[derive(clap::Args, Clone)]
pub struct Server {
    /// The control API's address. With MUON_API_KEY set, requests carry that key.
    #[arg(
        long,
        env = "MUON_CONTROL",
        default_value = "127.0.0.1:8081",
        global = true
    )]
    control: String,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        let base = self.control.trim_end_matches('/');
        if base.starts_with("http://") || base.starts_with("https://") {
            format!("{base}{path}")
        } else {
            format!("http://{base}{path}")
        }
    }
}

pub fn default_listen() -> SocketAddr {
    "127.0.0.1:8080".parse().expect("a valid address")
}

pub fn default_dir() -> PathBuf {
    PathBuf::from(".")
}

/// Output into a closed pipe (`muon flows history X --json | head`) ends the program quietly, as
/// it would for a program that lets SIGPIPE kill it: `println!` panics on a broken pipe, and
/// this hook turns that one panic into a quiet exit.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        let broken_pipe = format!("{}", std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        if message.starts_with("failed printing to std")
            && (message.contains(&broken_pipe) || message.contains("os error 32"))
        {
            std::process::exit(0);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_on_closed_pipe();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MUON_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colors only on a terminal, and never with NO_COLOR set.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Up(args) => up::run(args).await,
            Command::Invoke(args) => client::invoke(args).await,
            Command::Logs(args) => client::logs(args).await,
            Command::Functions(args) => client::functions(args).await,
            Command::Events(command) => events::run(command).await,
            Command::Rules(command) => events::rules(command).await,
            Command::Flows(command) => flows::run(command).await,
            Command::Keys(command) => keys::run(command).await,
            Command::Bench(args) => bench::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("muon: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
