//! WebAssembly functions on wasmtime.
//!
//! One [`Engine`] per process. A component is compiled once and its machine code cached on disk
//! by content hash; each function version gets one pre-instantiated component (`ProxyPre`), and
//! each request gets a fresh isolate: a new `Store` with its own memory limit, epoch deadline,
//! environment, captured stdout/stderr and outbound allowlist. With the pooling allocator and
//! copy-on-write memory images that costs microseconds. `instance_reuse > 1` opts a function into
//! reusing an instance for many requests, like Workers' isolates.
//!
//! Guests have no ambient authority: no preopened files, no sockets, only the environment the
//! manifest grants, and outbound HTTP only to allowlisted hosts. A guest that traps, runs past its
//! timeout or grows past its memory limit is stopped and its isolate thrown away.

mod cache;
mod function;
mod host;
mod logs;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use function::{Settings, WasmFunction};
use host::Host;
use wasmtime::component::{Component, Linker};

/// How many isolates may exist at once by default (calls in flight plus idle reusable ones).
pub const DEFAULT_MAX_ISOLATES: u32 = 256;

/// How often the epoch advances: the granularity of timeouts and of preemption.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {why}", path.display())]
    Load { path: PathBuf, why: String },
    #[error("cannot start the WebAssembly engine: {0}")]
    Engine(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether to use wasmtime's pooling instance allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pooling {
    /// Use it when the host lets us reserve the address space; fall back otherwise.
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Where compiled components are cached; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    pub pooling: Pooling,
    /// How many isolates may exist at once across all functions (pooling slots).
    pub max_instances: u32,
    /// The largest memory limit of any function, in MiB: the size of a pooling slot.
    pub max_memory_mb: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cache_dir: None,
            pooling: Pooling::Auto,
            max_instances: DEFAULT_MAX_ISOLATES,
            max_memory_mb: muon_manifest::MAX_MEMORY_MB,
        }
    }
}

/// The process-wide wasmtime engine, its linker and its compile cache. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    engine: wasmtime::Engine,
    linker: Linker<Host>,
    cache_dir: Option<PathBuf>,
    pooling: bool,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// A loaded component and how it was loaded.
pub struct Loaded {
    pub component: Component,
    /// True when the machine code came from the disk cache.
    pub cached: bool,
}

impl Engine {
    pub fn new(config: &Config) -> Result<Self> {
        let (engine, pooling) = match config.pooling {
            Pooling::Never => (build_engine(config, false)?, false),
            Pooling::Always => (build_engine(config, true)?, true),
            Pooling::Auto => match build_engine(config, true) {
                Ok(engine) => (engine, true),
                Err(e) => {
                    // The host would not let us reserve the pool's address space (a `ulimit -v`,
                    // for one): reserve only what each memory may grow to, so that many isolates
                    // still fit.
                    tracing::info!("pooling allocator unavailable ({e}); allocating on demand");
                    let mut constrained = config.clone();
                    constrained.pooling = Pooling::Never;
                    (build_engine_constrained(&constrained)?, false)
                }
            },
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|()| wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker))
            .map_err(|e| Error::Engine(format!("{e:#}")))?;
        let stop_ticker = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker(engine.clone(), stop_ticker.clone());
        Ok(Self {
            inner: Arc::new(EngineInner {
                engine,
                linker,
                cache_dir: config.cache_dir.clone(),
                pooling,
                stop_ticker,
            }),
        })
    }

    /// Whether isolates come from the pooling allocator.
    pub fn pooling(&self) -> bool {
        self.inner.pooling
    }

    /// Load the component at `path`, from the compile cache when it holds it.
    pub fn load(&self, path: &Path) -> Result<Loaded> {
        let fail = |why: String| Error::Load {
            path: path.to_path_buf(),
            why,
        };
        let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        cache::check_component(&bytes).map_err(fail)?;
        cache::load(&self.inner.engine, self.inner.cache_dir.as_deref(), &bytes).map_err(fail)
    }

    /// Prepare `component` to serve requests with `settings`: link it and pre-instantiate it.
    pub fn prepare(&self, component: &Component, settings: Settings) -> Result<WasmFunction> {
        WasmFunction::new(self, component, settings)
    }

    /// How long instantiating a fresh isolate of `function` takes, `iterations` times, for
    /// `muon bench`. Returns each duration.
    pub async fn measure_instantiation(
        &self,
        function: &WasmFunction,
        iterations: usize,
    ) -> anyhow::Result<Vec<Duration>> {
        function.measure_instantiation(iterations).await
    }
}

fn build_engine(config: &Config, pooling: bool) -> Result<wasmtime::Engine> {
    let mut c = wasmtime::Config::new();
    c.wasm_component_model(true);
    c.epoch_interruption(true);
    c.memory_init_cow(true);
    if pooling {
        let mut p = wasmtime::PoolingAllocationConfig::default();
        let slots = config.max_instances.max(1);
        p.total_component_instances(slots);
        // A Rust component has a handful of core instances, memories and tables.
        p.total_core_instances(slots * 8);
        p.total_memories(slots * 2);
        p.total_tables(slots * 4);
        // One fiber stack per call in flight. Creating the pool costs a syscall per stack, which
        // is most of an engine's start-up time: size it to the isolates that can run at once.
        p.total_stacks(slots);
        p.max_memory_size(config.max_memory_mb as usize * 1024 * 1024);
        // Reset an isolate's memory by copying back only the pages it dirtied (found with
        // Linux's PAGEMAP_SCAN where the kernel has it) instead of unmapping them: no madvise,
        // so no TLB-shootdown IPIs, and the next isolate starts without page faults.
        p.pagemap_scan(wasmtime::Enabled::Auto);
        p.linear_memory_keep_resident(1 << 20);
        p.table_keep_resident(64 * 1024);
        p.max_unused_warm_slots(64);
        c.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(p));
    }
    wasmtime::Engine::new(&c).map_err(|e| Error::Engine(format!("{e:#}")))
}

/// An on-demand engine that reserves address space only up to the largest memory limit (bounds
/// checks are then explicit in the machine code), for hosts with little virtual address space.
fn build_engine_constrained(config: &Config) -> Result<wasmtime::Engine> {
    let mut c = wasmtime::Config::new();
    c.wasm_component_model(true);
    c.epoch_interruption(true);
    c.memory_init_cow(true);
    c.memory_reservation(config.max_memory_mb as u64 * 1024 * 1024);
    c.memory_guard_size(64 * 1024);
    c.memory_reservation_for_growth(0);
    wasmtime::Engine::new(&c).map_err(|e| Error::Engine(format!("{e:#}")))
}

fn spawn_epoch_ticker(engine: wasmtime::Engine, stop: Arc<AtomicBool>) {
    std::thread::Builder::new()
        .name("muon-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })
        .expect("the OS can start a thread");
}
