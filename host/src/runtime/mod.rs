//! The wasmtime runtime: two engines (one for WASI 0.2 components, one with the component
//! model's concurrency for WASI 0.3 ones), each with its `Linker` and compile cache, the
//! capabilities every instance is prepared from, and the per-invocation `Store`.
//!
//! Isolation is the default: every rpc call and message, and every request to a WASI 0.2
//! HTTP plugin, gets a fresh `Store` and instance from a pre-instantiated component, with
//! its own memory limit and deadline. HTTP plugins may reuse instances ([`reuse`]): WASI 0.3
//! ones do by default, as `wasmtime serve` does.
//! CPU-bound guests are interrupted by epochs: a background thread ticks the engine's epoch
//! every [`EPOCH_TICK`], and each tick the guest yields to tokio (so it never holds a worker
//! thread) or traps once its deadline has passed.

/// Awaits the instantiation `$instantiate` (re-evaluated on each try), tried again up to
/// ten times while the pool is full and idle reused instances give their slots back
/// ([`Runtime::room_for`]). A macro: a closure borrowing the store for an `async` call is
/// not `Send` for every lifetime, which the spawned guest futures need.
macro_rules! with_pool_room {
    ($runtime:expr, $instantiate:expr) => {{
        let mut tries = 0;
        loop {
            match $instantiate.await {
                Err(e) if tries < 10 && $runtime.room_for(&e, tries).await => tries += 1,
                outcome => break outcome,
            }
        }
    }};
}

mod cache;
pub mod capabilities;
pub mod invoke;
mod limits;
mod load;
mod metrics;
mod plugin;
mod reuse;
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
    HttpExport, LoadError, LoadSettings, RUNTIME_KEYS, Shape, known_plugin_keys,
    runtime_key_problems,
};
pub use metrics::{Event, InvocationMetrics, PluginCounters, PluginCounts};
pub use plugin::{Configured, Entry, Plugin, plugin_name, version_of};
pub use reuse::ReusePolicy;
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

/// The engines, each with the linker of every host import and a compile cache: what loading
/// a component needs (`micro-api check` uses it alone, starting no capability).
pub struct Loader {
    /// Components that use no component-model concurrency (WASI 0.2, `micro-api:host@0.1`).
    /// Without it configured, wasmtime runs their calls without the concurrent machinery,
    /// which otherwise costs about 40% of a fresh-instance hello request (bench/RESULTS.md).
    sync: EngineKit,
    /// Components with `async func`, `stream` or `future` (WASI 0.3).
    concurrent: EngineKit,
    pool: PoolConfig,
}

/// One engine, with the linker and the compile cache of components compiled by it.
struct EngineKit {
    engine: Engine,
    linker: Linker<PluginState>,
    cache: CompileCache,
}

impl EngineKit {
    fn new(cache_dir: &Path, pool: PoolConfig, concurrent: bool) -> Result<Self, RuntimeError> {
        let engine = match Engine::new(&engine_config(Some(pool), concurrent)) {
            Ok(engine) => engine,
            Err(e) => {
                // Pooling reserves address space for every slot up front; where that is
                // short (a restrictive ulimit -v), fall back rather than refuse to start.
                tracing::warn!(error = %e, "pooling allocator unavailable, using on-demand allocation");
                Engine::new(&engine_config(None, concurrent))
                    .map_err(|e| RuntimeError::Engine(e.to_string()))?
            }
        };
        let mut linker = Linker::new(&engine);
        link_wasi_base(&mut linker, concurrent).map_err(|e| RuntimeError::Link(e.to_string()))?;
        Capabilities::link(&mut linker).map_err(|e| RuntimeError::Link(e.to_string()))?;
        let cache = CompileCache::new(&engine, cache_dir);
        Ok(Self {
            engine,
            linker,
            cache,
        })
    }
}

/// The loader, and the capabilities every instance is prepared from.
pub struct Runtime {
    loader: Loader,
    capabilities: Capabilities,
    metrics: InvocationMetrics,
    /// Cancelled to make every idle reused instance give its pool slot back.
    evictions: parking_lot::Mutex<tokio_util::sync::CancellationToken>,
}

impl Loader {
    /// Each engine has a pool of `pool`'s size.
    pub fn new(cache_dir: &Path, pool: PoolConfig) -> Result<Self, RuntimeError> {
        let sync = EngineKit::new(cache_dir, pool, false)?;
        let concurrent = EngineKit::new(cache_dir, pool, true)?;
        spawn_epoch_ticker(&[&sync.engine, &concurrent.engine]);
        Ok(Self {
            sync,
            concurrent,
            pool,
        })
    }

    /// The engine, linker and cache of components that do (or do not) use concurrency.
    fn kit(&self, concurrent: bool) -> &EngineKit {
        if concurrent {
            &self.concurrent
        } else {
            &self.sync
        }
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
            evictions: Default::default(),
        }
    }

    /// Whether an instantiation that failed with `error` is worth another try: the pool
    /// was full. The first time, every idle reused instance (of any plugin) is ended to give
    /// its slot back; each time, one epoch tick is left for them to go.
    async fn room_for(&self, error: &wasmtime::Error, tries: u32) -> bool {
        if !error.is::<wasmtime::PoolConcurrencyLimitError>() {
            return false;
        }
        if tries == 0 {
            let mut evictions = self.evictions.lock();
            evictions.cancel();
            *evictions = tokio_util::sync::CancellationToken::new();
        }
        tokio::time::sleep(EPOCH_TICK).await;
        true
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
        self.store_on(&self.loader.kit(plugin.concurrent).engine, plugin, call)
    }

    /// [`Self::new_store`] on the concurrent engine, whatever the plugin's: reused
    /// instances are driven by wasmtime's `ProxyHandler`, which needs its concurrency.
    fn new_concurrent_store(&self, plugin: &Plugin, call: CallContext) -> Store<PluginState> {
        self.store_on(&self.loader.kit(true).engine, plugin, call)
    }

    fn store_on(&self, engine: &Engine, plugin: &Plugin, call: CallContext) -> Store<PluginState> {
        let configured = plugin.configured();
        let capabilities = self
            .capabilities
            .prepare(&configured.grants, &invocation(plugin, call));
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
            http: {
                let mut http = WasiHttpCtx::new();
                http.set_field_size_limit(configured.limits.field_bytes);
                http
            },
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size((configured.limits.memory_mb as usize) << 20)
                .trap_on_grow_failure(true)
                .build(),
            capabilities,
            deadline: Some(call.deadline),
            _alive: self.metrics.alive(),
        };
        let mut store = Store::new(engine, data);
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(1);
        // The deadline is read from the store's data, so an instance that serves one
        // request after another interrupts each at its own.
        store.epoch_deadline_callback(|context| {
            if context.data().deadline.is_some_and(|d| Instant::now() >= d) {
                Ok(wasmtime::UpdateDeadline::Interrupt)
            } else {
                Ok(wasmtime::UpdateDeadline::Yield(1))
            }
        });
        store
    }

    /// Prepares `data`'s capability state anew for the call `call` of `plugin` (a reused
    /// instance's next request).
    fn prepare_capabilities(&self, plugin: &Plugin, data: &mut PluginState, call: CallContext) {
        let configured = plugin.configured();
        data.capabilities = self
            .capabilities
            .prepare(&configured.grants, &invocation(plugin, call));
    }
}

fn invocation(plugin: &Plugin, call: CallContext) -> Invocation<'_> {
    Invocation {
        plugin: &plugin.name,
        version: &plugin.version,
        call,
    }
}

/// The WASI bases every world gets, 0.2 and 0.3 side by side (a component built by the
/// Spin SDK imports both), and `wasi:http` of each (outgoing requests of both go through
/// the `outbound` capability's hooks). Both deny by default: the `WasiCtx` of
/// [`Runtime::new_store`] serves them.
fn link_wasi_base(linker: &mut Linker<PluginState>, concurrent: bool) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    if concurrent {
        wasmtime_wasi::p3::add_to_linker(linker)?;
        wasmtime_wasi_http::p3::add_to_linker(linker)?;
    }
    Ok(())
}

/// An engine's configuration; `pool` is `None` for on-demand allocation, `concurrent`
/// turns on WASI 0.3's `async func`, `stream` and `future` in the component model.
fn engine_config(pool: Option<PoolConfig>, concurrent: bool) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    config.wasm_component_model_async(concurrent);
    config.concurrency_support(concurrent);
    config.epoch_interruption(true);
    // A deep recursion traps cleanly at this stack size instead of overflowing the host's.
    config.max_wasm_stack(1 << 20);
    config.async_stack_size(2 << 20);
    if let Some(size) = pool {
        let instances = size.instances;
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(instances);
        // A Rust component holds a few core instances (the program, WASI adapters); one
        // built for WASI 0.3 by the Spin SDK holds more, with more tables.
        pool.total_core_instances(instances * 8);
        pool.total_memories(instances * 2);
        pool.total_tables(instances * 4);
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

/// Advances the epoch of `engines` forever, from one thread; it holds only weak handles so
/// it ends with the last of them.
fn spawn_epoch_ticker(engines: &[&Engine]) {
    let weak: Vec<_> = engines.iter().map(|engine| engine.weak()).collect();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            loop {
                let mut any_alive = false;
                for engine in weak.iter().filter_map(|w| w.upgrade()) {
                    engine.increment_epoch();
                    any_alive = true;
                }
                if !any_alive {
                    return;
                }
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
