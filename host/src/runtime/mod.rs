//! The wasmtime runtime: one `Engine` and one `Linker` for every plugin, a compile cache,
//! the capabilities every instance is prepared from, and the per-invocation `Store`.
//!
//! Isolation is the product: every HTTP request and every rpc call gets a fresh `Store`
//! and instance from a pre-instantiated component, with its own memory limit and deadline.
//! CPU-bound guests are interrupted by epochs: a background thread ticks the engine's epoch
//! every [`EPOCH_TICK`], and each tick the guest yields to tokio (so it never holds a worker
//! thread) or traps once its deadline has passed.

mod cache;
pub mod capabilities;
pub mod invoke;
mod limits;
mod load;
mod metrics;
mod plugin;
mod state;

use std::path::Path;
use std::time::{Duration, Instant};

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{
    Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimitsBuilder,
};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::WasiHttpCtx;

pub use cache::CompileCache;
pub use capabilities::{Capabilities, CapabilityConfigs, Grants};
pub use limits::{LimitsConfig, LimitsOverrides, MAX_MEMORY_MB, PoolConfig};
pub use load::{
    LoadError, LoadSettings, RUNTIME_KEYS, Shape, known_plugin_keys, runtime_key_problems,
};
pub use metrics::{Event, InvocationMetrics, PluginCounters, PluginCounts};
pub use plugin::{Configured, Entry, Plugin, plugin_name, version_of};
pub use state::PluginState;

use crate::capability::{CallContext, Invocation};
use crate::plugin_telemetry::Stream;

/// How often the epoch advances: the granularity of deadlines and of guest yields.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot configure the wasmtime engine: {0}")]
    Engine(String),
    #[error("cannot link the host imports: {0}")]
    Link(String),
}

/// The engine, the linker with every host import, and the compile cache: what loading a
/// component needs (`micro-api check` uses it alone, starting no capability).
pub struct Loader {
    engine: Engine,
    linker: Linker<PluginState>,
    cache: CompileCache,
    pool: PoolConfig,
}

/// The loader, and the capabilities every instance is prepared from.
pub struct Runtime {
    loader: Loader,
    capabilities: Capabilities,
    metrics: InvocationMetrics,
}

impl Loader {
    pub fn new(cache_dir: &Path, pool: PoolConfig) -> Result<Self, RuntimeError> {
        let engine = match Engine::new(&engine_config(Some(pool))) {
            Ok(engine) => engine,
            Err(e) => {
                // Pooling reserves address space for every slot up front; where that is
                // short (a restrictive ulimit -v), fall back rather than refuse to start.
                tracing::warn!(error = %e, "pooling allocator unavailable, using on-demand allocation");
                Engine::new(&engine_config(None))
                    .map_err(|e| RuntimeError::Engine(e.to_string()))?
            }
        };
        spawn_epoch_ticker(&engine);
        let mut linker = Linker::new(&engine);
        link_wasi_base(&mut linker).map_err(|e| RuntimeError::Link(e.to_string()))?;
        Capabilities::link(&mut linker).map_err(|e| RuntimeError::Link(e.to_string()))?;
        let cache = CompileCache::new(&engine, cache_dir);
        Ok(Self {
            engine,
            linker,
            cache,
            pool,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

impl Runtime {
    pub fn new(
        loader: Loader,
        capabilities: Capabilities,
        registry: &mut prometheus_client::registry::Registry,
    ) -> Self {
        Self {
            loader,
            capabilities,
            metrics: InvocationMetrics::register(registry),
        }
    }

    pub fn loader(&self) -> &Loader {
        &self.loader
    }

    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// A fresh store for one invocation of `plugin`, interrupted at `call.deadline` and
    /// yielding every epoch tick.
    pub fn new_store(&self, plugin: &Plugin, call: CallContext) -> Store<PluginState> {
        let configured = plugin.configured();
        let invocation = Invocation {
            plugin: &plugin.name,
            version: &plugin.version,
            call,
        };
        let capabilities = self.capabilities.prepare(&configured.grants, &invocation);
        let telemetry = &capabilities.telemetry;
        // The fixed WASI base: only the granted environment, no arguments, no preopened
        // directories, no sockets; stdout and stderr go to the host log under the
        // plugin's name.
        let wasi = WasiCtx::builder()
            .envs(&configured.env)
            .stdout(telemetry.guest_output(Stream::Stdout))
            .stderr(telemetry.guest_output(Stream::Stderr))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let data = PluginState {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size((configured.limits.memory_mb as usize) << 20)
                .trap_on_grow_failure(true)
                .build(),
            capabilities,
            _alive: self.metrics.alive(),
        };
        let mut store = Store::new(&self.loader.engine, data);
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(1);
        let deadline = call.deadline;
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(wasmtime::UpdateDeadline::Interrupt)
            } else {
                Ok(wasmtime::UpdateDeadline::Yield(1))
            }
        });
        store
    }
}

/// The WASI 0.2 base every world gets, and `wasi:http` (outgoing requests go through the
/// `outbound` capability's hooks).
fn link_wasi_base(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)
}

/// The engine's configuration; `pool` is `None` for on-demand allocation.
fn engine_config(pool: Option<PoolConfig>) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // A deep recursion traps cleanly at this stack size instead of overflowing the host's.
    config.max_wasm_stack(1 << 20);
    config.async_stack_size(2 << 20);
    if let Some(size) = pool {
        let instances = size.instances;
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(instances);
        // A Rust component holds a few core instances (the program, WASI adapters).
        pool.total_core_instances(instances * 4);
        pool.total_memories(instances * 2);
        pool.total_tables(instances * 2);
        pool.total_stacks(instances);
        pool.max_memory_size((size.memory_mb as usize) << 20);
        // Every request gets a fresh instance in a recycled slot. By default the slot's
        // memory and tables are madvise'd away when the instance ends and page-faulted back
        // in by the next one (3 madvise calls and ~7 faults per hello request). Keep them
        // resident instead and reset only the pages the instance dirtied, which PAGEMAP_SCAN
        // (Linux 6.7+) finds: store + instantiate + a no-op call goes from 25 to 10-11 us
        // (bench/RESULTS.md). Without PAGEMAP_SCAN the reset is a memset of the whole
        // resident prefix, which costs more than the faults it saves: keep little.
        pool.table_keep_resident(64 << 10);
        if PoolingAllocationConfig::is_pagemap_scan_available() {
            pool.pagemap_scan(wasmtime::Enabled::Yes);
            pool.linear_memory_keep_resident(4 << 20);
        } else {
            pool.linear_memory_keep_resident(64 << 10);
        }
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// Advances the epoch of `engine` forever; the thread holds only a weak handle so it ends
/// with the engine.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawn the epoch ticker thread");
}

/// Whether a wasmtime error is the epoch interruption of a passed deadline.
pub fn is_deadline_trap(error: &wasmtime::Error) -> bool {
    matches!(
        error.downcast_ref::<wasmtime::Trap>(),
        Some(wasmtime::Trap::Interrupt)
    )
}
