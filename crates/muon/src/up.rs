//! `muon up`: load the manifest, build and prepare every function, serve until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use muon_manifest::{App, Function};
use muon_runtime::{FunctionMeta, Invoker, LogLine};
use muon_runtime_wasm::{Config, Engine, Pooling, Settings};
use muon_types::Stream;
use tokio::net::TcpListener;

#[derive(clap::Args)]
pub struct Args {
    /// The app folder (holding muon.toml) or the manifest file.
    #[arg(default_value_os_t = crate::default_dir())]
    dir: PathBuf,
    /// Where app routes are served.
    #[arg(long, env = "MUON_LISTEN", default_value_t = crate::default_listen())]
    listen: SocketAddr,
    /// Where the control API is served. Off loopback every request needs an API key, and muon
    /// refuses to start until one exists (`muon keys create`).
    #[arg(
        long = "control",
        env = "MUON_CONTROL",
        default_value = "127.0.0.1:8081"
    )]
    control: SocketAddr,
    /// Largest request body accepted, in bytes (larger ones get 413).
    #[arg(long, env = "MUON_MAX_BODY", default_value_t = muon_server::DEFAULT_MAX_BODY)]
    max_body: u64,
    /// Where compiled components are cached (default: ~/.cache/muon).
    #[arg(long, env = "MUON_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// How many isolates may exist at once, across all functions: requests beyond it get 503.
    #[arg(long, env = "MUON_MAX_ISOLATES", default_value_t = muon_runtime_wasm::DEFAULT_MAX_ISOLATES)]
    max_isolates: u32,
    /// Threads serving app traffic (default: one per core).
    #[arg(long, env = "MUON_WORKERS")]
    workers: Option<usize>,
    /// Serve app connections through io_uring (Linux; HTTP/1.1 and h2c, no upgrades): a worker's
    /// answers leave in one system call. Falls back to epoll where the kernel refuses io_uring.
    #[arg(long, env = "MUON_IO_URING")]
    io_uring: bool,
    /// Don't print the functions' output (it is still kept for `muon logs`).
    #[arg(long, short, env = "MUON_QUIET")]
    quiet: bool,
    /// Where durable state (events, deliveries, API rules) is kept (default: DIR/.muon).
    #[arg(long, env = "MUON_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Forget events older than this (`7d`, `12h`) once all their deliveries are delivered
    /// (default: keep every event, for replays).
    #[arg(long, env = "MUON_RETENTION", value_parser = muon_types::parse_duration)]
    retention: Option<std::time::Duration>,
    /// The AWS region ARNs and events name (as tools that compare state, Terraform say, expect
    /// the region they call with).
    #[arg(long, env = "MUON_REGION", default_value = "us-east-1")]
    region: String,
    /// Require an API key on the control API on loopback too (off loopback it always is).
    #[arg(long, env = "MUON_AUTH")]
    auth: bool,
    /// Let outbound requests (guests' HTTP, rule URL targets, `http:invoke` tasks) reach loopback
    /// and private addresses (RFC 1918, CGNAT, IPv6 unique-local). Link-local and metadata
    /// addresses and muon's own sockets stay refused.
    #[arg(long, env = "MUON_ALLOW_PRIVATE_DESTINATIONS")]
    allow_private_destinations: bool,
    /// Use the pooling instance allocator: auto (when the host allows it), always or never.
    #[arg(long, env = "MUON_POOLING", default_value = "auto", value_parser = ["auto", "always", "never"])]
    pooling: String,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let app = muon_manifest::load(&args.dir)?;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| app.root.join(".muon"));
    let store: Arc<dyn muon_store::Store> = Arc::new(
        muon_store_sqlite::Sqlite::open(&data_dir.join("muon.db"))
            .with_context(|| format!("cannot open the data folder {}", data_dir.display()))?,
    );
    let require_auth = args.auth || !args.control.ip().is_loopback();
    if require_auth {
        refuse_without_keys(store.as_ref(), args.control, &data_dir).await?;
    }
    let gateway = bind(args.listen, "--listen").await?;
    let control = bind(args.control, "--control").await?;
    let network = Network::new(
        &args,
        muon_server::local_addr(&gateway),
        muon_server::local_addr(&control),
    )?;
    let invoker = prepare(&app, &args, &network)?;
    let (targets, services) =
        crate::dispatch::Targets::new(invoker.clone(), network.destinations.clone());
    let targets = Arc::new(targets);
    let bus = muon_bus::Bus::start(
        muon_bus::Config {
            buses: app.buses.clone(),
            rules: app.rules.clone(),
            schedules: app.schedules.clone(),
            archives: app.archives.clone(),
            retention: args.retention,
            region: args.region.clone(),
            ..Default::default()
        },
        store.clone(),
        targets.clone(),
    )
    .await
    .context("cannot start the event bus")?;
    let flows = muon_flow::Flows::start(
        muon_flow::Config {
            workflows: workflows(&app),
            region: args.region.clone(),
            ..Default::default()
        },
        store.clone(),
        targets,
    )
    .await
    .context("cannot start the workflow engine")?;
    services.bus.send_replace(Some(bus.clone()));
    services.flows.send_replace(Some(flows.clone()));
    let shutdown = shutdown_signal()?;
    let state = muon_server::State::new(
        muon_server::Config {
            app: app.name.clone(),
            max_body: args.max_body,
            workers: args
                .workers
                .unwrap_or_else(muon_server::Config::default_workers),
            io_uring: args.io_uring,
            events_token: Some(network.events_token.clone()),
            require_auth,
        },
        invoker.clone(),
    )
    .with_store(store, crate::keys::master(&data_dir)?)
    .with_bus(bus)
    .with_flows(flows);
    print_ready(&app, &state, &gateway, &control, started);
    if !args.quiet {
        tokio::spawn(print_logs(invoker.journal().follow()));
    }
    let engine = state.flows().cloned();
    muon_server::serve(state, gateway, control, shutdown).await?;
    // A clean stop: running executions do not count it against being resumed.
    if let Some(engine) = engine
        && let Err(e) = engine.shutdown().await
    {
        eprintln!("muon: could not record the clean shutdown: {e}");
    }
    println!("muon: stopped");
    Ok(ExitCode::SUCCESS)
}

/// The app's `[[workflow]]`s, as the engine takes them.
fn workflows(app: &App) -> Vec<muon_flow::Workflow> {
    app.workflows
        .iter()
        .map(|w| muon_flow::Workflow {
            name: w.name.clone(),
            definition: w.definition.clone(),
            kind: match w.kind {
                muon_manifest::WorkflowKind::Standard => muon_flow::Kind::Standard,
                muon_manifest::WorkflowKind::Express => muon_flow::Kind::Express,
            },
        })
        .collect()
}

/// A control API that requires keys (off loopback, or `--auth`) does not start without one.
async fn refuse_without_keys(
    store: &dyn muon_store::Store,
    control: SocketAddr,
    data_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let keys = crate::keys::all(store).await?;
    if keys.iter().any(|k| k.revoked_ms.is_none()) {
        return Ok(());
    }
    let why = if control.ip().is_loopback() {
        "--auth asks for API keys on the control API".to_string()
    } else {
        format!(
            "the control API would listen on {control}, which other machines can reach, so every request needs an API key"
        )
    };
    anyhow::bail!(
        "{why}, and this app has none. Make one with `muon keys create admin --scope admin --data-dir {}`, \
         then send it as `Authorization: Bearer <key>` (the CLI sends MUON_API_KEY). Or listen on \
         loopback (--control 127.0.0.1:{}, the default).",
        data_dir.display(),
        control.port()
    )
}

/// What outbound requests may reach, and how functions reach muon itself.
pub(crate) struct Network {
    /// The control API's address, as functions that publish events reach it.
    pub control: SocketAddr,
    pub destinations: muon_runtime::Destinations,
    /// What functions with `publish_events` present (`MUON_EVENTS_TOKEN`): it grants PutEvents
    /// and nothing else. New at every start.
    pub events_token: String,
}

impl Network {
    pub(crate) fn new(
        args: &Args,
        gateway: SocketAddr,
        control: SocketAddr,
    ) -> anyhow::Result<Self> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)
            .map_err(|e| anyhow::anyhow!("cannot draw a random token: {e}"))?;
        Ok(Self {
            control,
            destinations: muon_runtime::Destinations::new(
                vec![gateway, control],
                args.allow_private_destinations,
            ),
            events_token: format!("mev_{}", hex::encode(secret)),
        })
    }
}

/// Build, compile and pre-instantiate every function of `app`.
pub(crate) fn prepare(app: &App, args: &Args, network: &Network) -> anyhow::Result<Invoker> {
    let control = network.control;
    let destinations = Arc::new(network.destinations.clone());
    let components = muon_manifest::build::components(app, |f: &Function| {
        eprintln!(
            "muon: building function `{}` from {} ...",
            f.name,
            f.source.path().display()
        );
    })?;
    let engine = Engine::new(&Config {
        cache_dir: Some(cache_dir(args)),
        pooling: match args.pooling.as_str() {
            "always" => Pooling::Always,
            "never" => Pooling::Never,
            _ => Pooling::Auto,
        },
        max_instances: args.max_isolates,
        max_memory_mb: app
            .functions
            .iter()
            .map(|f| f.memory_mb)
            .max()
            .unwrap_or(128),
    })?;
    let mut invoker = Invoker::builder();
    for (f, path) in app.functions.iter().zip(components) {
        let context = || format!("function `{}`", f.name);
        let mut environment: Vec<(String, String)> = f.environment.clone().into_iter().collect();
        let mut outbound = f.outbound.clone();
        if f.publish_events {
            environment.push((
                "MUON_EVENTS_URL".into(),
                format!("http://{control}/v1/events"),
            ));
            environment.push(("MUON_EVENTS_TOKEN".into(), network.events_token.clone()));
            outbound.allow(
                muon_manifest::AllowedHost::parse(&format!("http://{control}"))
                    .map_err(anyhow::Error::msg)?,
            );
        }
        let loaded = engine.load(&path).with_context(context)?;
        let prepared = engine
            .prepare(
                &loaded.component,
                Settings {
                    name: f.name.clone(),
                    memory_bytes: f.memory_bytes(),
                    timeout: f.timeout,
                    environment,
                    outbound,
                    destinations: destinations.clone(),
                    events_token: f.publish_events.then(|| network.events_token.clone()),
                    instance_reuse: f.instance_reuse,
                    max_instances: f.max_instances,
                },
            )
            .with_context(context)?;
        invoker = invoker.function(
            FunctionMeta {
                name: f.name.clone(),
                runtime: f.runtime.as_str(),
                route: f.route.as_ref().map(ToString::to_string),
                memory_mb: f.memory_mb,
                timeout: f.timeout,
                min_instances: f.min_instances,
                max_instances: f.max_instances,
                instance_reuse: f.instance_reuse,
                source: path.display().to_string(),
            },
            Arc::new(prepared),
        );
    }
    Ok(invoker.build())
}

fn cache_dir(args: &Args) -> PathBuf {
    if let Some(dir) = &args.cache_dir {
        return dir.clone();
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("muon").join("components")
}

async fn bind(addr: SocketAddr, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} (is another `muon up` running? choose another address with {flag})")
    })
}

fn print_ready(
    app: &App,
    state: &muon_server::State,
    gateway: &TcpListener,
    control: &TcpListener,
    started: Instant,
) {
    let gateway = muon_server::local_addr(gateway);
    let control = muon_server::local_addr(control);
    println!(
        "muon: app `{}` is up: {} function(s), ready in {:.1} ms",
        app.name,
        app.functions.len(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    println!("  app routes on http://{gateway}");
    for (route, function) in state.routes().iter() {
        println!("  http://{gateway}{route}  ->  {function}");
    }
    for f in app.functions.iter().filter(|f| f.route.is_none()) {
        println!(
            "  (no route)  ->  {}   invoke with `muon invoke {}`",
            f.name, f.name
        );
    }
    for rule in &app.rules {
        let targets: Vec<String> = rule.targets.iter().map(|t| t.kind.describe()).collect();
        println!(
            "  rule {} on bus {}  ->  {}",
            rule.name,
            rule.bus,
            if targets.is_empty() {
                "(no targets)".to_string()
            } else {
                targets.join(", ")
            }
        );
    }
    for schedule in &app.schedules {
        let targets: Vec<String> = schedule
            .rule
            .targets
            .iter()
            .map(|t| t.kind.describe())
            .collect();
        println!(
            "  schedule {} {}{}  ->  {}",
            schedule.rule.name,
            schedule.expression,
            schedule
                .timezone
                .as_deref()
                .map(|tz| format!(" ({tz})"))
                .unwrap_or_default(),
            targets.join(", ")
        );
    }
    for w in &app.workflows {
        println!(
            "  workflow {} ({})  start with `muon flows start {}`",
            w.name,
            w.kind.as_str().to_lowercase(),
            w.name
        );
    }
    println!("  control API: http://{control}/v1   (Ctrl-C stops)");
}

/// Print what functions write, as it is recorded.
async fn print_logs(mut lines: tokio::sync::broadcast::Receiver<Arc<LogLine>>) {
    loop {
        match lines.recv().await {
            Ok(line) => println!("{}", log_line(&line)),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                println!("muon: ({n} log lines not printed: output is slower than the functions)");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// A guest's log line as `muon up` and `muon flows exec` print it.
pub(crate) fn log_line(line: &LogLine) -> String {
    match line.stream {
        Stream::Platform => format!("[{}] {} ! {}", line.function, line.invocation, line.text),
        _ => format!("[{}] {}", line.function, line.text),
    }
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed now, before the app is announced,
/// so a signal sent right after the announcement is not lost.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        println!("muon: shutting down (finishing requests in flight; Ctrl-C again stops at once)");
        tokio::spawn(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            eprintln!("muon: stopped without finishing requests in flight");
            std::process::exit(130);
        });
    })
}
