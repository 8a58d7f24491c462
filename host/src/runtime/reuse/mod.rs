//! Instances that serve more than one request, through wasmtime's own reuse logic
//! (`wasmtime_wasi_http::handler::ProxyHandler`, what `wasmtime serve` runs): this module
//! is the policy around it. [`Instances`] makes an instance when no live one can take a
//! request, under the plugin's `max_alive` and the pool; [`Worker`] says how many requests
//! an instance takes ([`ReusePolicy`]) and hands each its own deadline, and, on an instance
//! that serves one request at a time, its own capability state (claims and trace context
//! never outlive their request); [`Expiration`] ends an instance idle too long, retired by a
//! reload, evicted for a full pool, or past a request's deadline (the clock outside the
//! guest, which a busy loop cannot stop).
//!
//! What a reused instance shares between its requests is its linear memory and globals:
//! that is the point of reuse, and why it is a per-plugin policy (README, "WASI 0.3
//! components and reused instances"). A trap poisons the whole instance: wasmtime cannot
//! tie it to one request, so each request in flight on it fails at once, and the next
//! request gets another instance.

mod policy;

pub use policy::ReusePolicy;
pub(super) use policy::{ReuseShape, ReuseWritten};

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use wasmtime::component::GuestTaskId;
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, InstantiationError, ProxyHandler, ProxyPre, Request, Response,
    ShouldAccept, WorkerExpiration, WorkerState, WorkerStatus,
};

use super::{Plugin, PluginState, Runtime};
use crate::capability::CallContext;
use crate::telemetry::TraceContext;

/// What a request brings to the instance that serves it.
pub struct RequestMeta {
    pub(super) call: CallContext,
}

/// One plugin version's reused instances.
pub struct Reused {
    handler: ProxyHandler<Instances>,
}

impl Reused {
    pub(super) fn new(
        runtime: Arc<Runtime>,
        plugin: Weak<Plugin>,
        pre: ProxyPre<PluginState>,
    ) -> Self {
        Self {
            handler: ProxyHandler::new(Instances {
                runtime,
                plugin,
                pre,
                alive: Arc::default(),
                retired: Mutex::new(CancellationToken::new()),
            }),
        }
    }

    /// Hands `request` to a live instance that can take it, or to a new one. With
    /// `max_alive` instances alive and none free, the request is handed back at once (a
    /// worker waiting for room would hold it out of the queue the live instances take
    /// from), and handed in again when one of them can take more or has ended, until
    /// `meta`'s deadline: then the error says there was no instance.
    pub(super) async fn handle(
        &self,
        meta: RequestMeta,
        request: Request,
    ) -> wasmtime::Result<Response> {
        let alive = &self.handler.state().alive;
        let deadline = meta.call.deadline;
        let (mut meta, mut request) = (meta, request);
        loop {
            let room = alive.room.notified();
            let mut room = std::pin::pin!(room);
            room.as_mut().enable();
            let refused = match self.handler.handle(meta, request).await {
                Err(error) if no_room(&error) => error
                    .downcast::<InstantiationError<RequestMeta>>()
                    .expect("checked by no_room"),
                outcome => return outcome,
            };
            meta = refused.request_data;
            request = refused
                .request
                .into_inner()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if tokio::time::timeout_at(deadline.into(), room)
                .await
                .is_err()
            {
                return Err(NoRoom.into());
            }
        }
    }

    /// This version no longer serves: its idle instances end now, its busy ones once their
    /// requests are done.
    pub fn retire(&self) {
        self.handler.state().retired.lock().cancel();
    }

    /// This version serves again (a rollback made it current): new instances may start.
    pub fn reinstate(&self) {
        let mut retired = self.handler.state().retired.lock();
        if retired.is_cancelled() {
            *retired = CancellationToken::new();
        }
    }
}

/// Makes the instances of one plugin version.
pub(super) struct Instances {
    runtime: Arc<Runtime>,
    /// Weak: the plugin owns this, and an instance keeps its plugin alive while it runs.
    plugin: Weak<Plugin>,
    pre: ProxyPre<PluginState>,
    alive: Arc<Alive>,
    retired: Mutex<CancellationToken>,
}

impl HandlerState for Instances {
    type StoreData = PluginState;
    type WorkerExpiration = Expiration;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<PluginState, Expiration, Worker>> {
        let plugin = self
            .plugin
            .upgrade()
            .ok_or_else(|| wasmtime::format_err!("the plugin was unloaded"))?;
        let policy = plugin
            .configured()
            .reuse
            .unwrap_or(ReusePolicy::ONE_REQUEST);
        let slot = self
            .alive
            .try_take(policy.max_alive, plugin.counters.reused_alive.clone())
            .ok_or(NoRoom)?;
        let call = CallContext {
            // Each request brings its own deadline (`Worker::on_request_start`).
            deadline: Instant::now() + Duration::from_secs(24 * 3600),
            depth: 0,
            trace: TraceContext::new_root(),
        };
        let mut store = self.runtime.new_concurrent_store(&plugin, call);
        store.data_mut().deadline = None;
        let instantiate =
            async { with_pool_room!(self.runtime, self.pre.instantiate_async(&mut store)) };
        let proxy = tokio::time::timeout(plugin.deadline(), instantiate)
            .await
            .map_err(|_| wasmtime::format_err!("instantiation ran past the plugin's deadline"))??;
        let retired = self.retired.lock().clone();
        let expiration = Expiration {
            idle: Duration::from_millis(policy.idle_ms),
            busy: plugin.deadline(),
            retired: Box::pin(retired.clone().cancelled_owned()),
            evicted: Box::pin(self.runtime.evictions.lock().clone().cancelled_owned()),
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: None,
            idle_gauge: plugin.counters.reused_idle.clone(),
            counted_idle: false,
        };
        Ok(Instance {
            store,
            proxy,
            view: <PluginState as WasiHttpView>::http,
            expiration,
            state: Worker {
                alive: self.alive.clone(),
                runtime: self.runtime.clone(),
                plugin,
                policy,
                retired,
                served: AtomicU32::new(0),
                _slot: slot,
            },
        })
    }
}

/// One instance's life: which requests it takes, and each one's deadline and state.
pub(super) struct Worker {
    alive: Arc<Alive>,
    runtime: Arc<Runtime>,
    plugin: Arc<Plugin>,
    policy: ReusePolicy,
    retired: CancellationToken,
    served: AtomicU32,
    _slot: AliveSlot,
}

impl WorkerState for Worker {
    type StoreData = PluginState;
    type RequestData = RequestMeta;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if self.retired.is_cancelled() || total >= self.policy.requests as usize {
            ShouldAccept::Never
        } else if concurrent >= self.policy.concurrent as usize {
            ShouldAccept::No
        } else {
            // A request handed back for want of room may come in again.
            self.alive.room.notify_one();
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        mut store: StoreContextMut<'_, PluginState>,
        meta: RequestMeta,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        if self.served.fetch_add(1, Ordering::Relaxed) > 0 {
            self.plugin.counters.reuses.inc();
        }
        if self.policy.concurrent == 1 {
            // The only request on this instance now: its own grants' state (call context,
            // trace) and its own deadline, which the epoch enforces inside the guest too.
            let data = store.data_mut();
            self.runtime
                .prepare_capabilities(&self.plugin, data, meta.call);
            data.deadline = Some(meta.call.deadline);
        }
        Box::pin(tokio::time::sleep_until(meta.call.deadline.into()))
    }

    fn drop(&self, store: Store<PluginState>, result: wasmtime::Result<()>) {
        if let Err(e) = result {
            tracing::warn!(plugin = %self.plugin.name, version = %self.plugin.version, error = %format!("{e:#}"), "reused instance ended early: its requests in flight failed");
        }
        drop(store);
    }
}

/// When an instance ends, polled by `ProxyHandler` outside the guest.
pub(super) struct Expiration {
    idle: Duration,
    /// A request's own deadline: past it, every request on the instance has expired.
    busy: Duration,
    retired: Pin<Box<WaitForCancellationFutureOwned>>,
    evicted: Pin<Box<WaitForCancellationFutureOwned>>,
    timer: Pin<Box<tokio::time::Sleep>>,
    armed: Option<(WorkerStatus, Instant)>,
    idle_gauge: Gauge,
    counted_idle: bool,
}

impl WorkerExpiration for Expiration {
    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let this = self.get_mut();
        let idle = status == WorkerStatus::Idle;
        if idle != this.counted_idle {
            if idle {
                this.idle_gauge.inc();
            } else {
                this.idle_gauge.dec();
            }
            this.counted_idle = idle;
        }
        if idle
            && (this.retired.as_mut().poll(cx).is_ready()
                || this.evicted.as_mut().poll(cx).is_ready())
        {
            return Poll::Ready(());
        }
        if this.armed != Some((status, start)) {
            let limit = if idle { this.idle } else { this.busy };
            this.timer.as_mut().reset((start + limit).into());
            this.armed = Some((status, start));
        }
        this.timer.as_mut().poll(cx)
    }
}

impl Drop for Expiration {
    fn drop(&mut self) {
        if self.counted_idle {
            self.idle_gauge.dec();
        }
    }
}

/// How many instances of one plugin version are alive, against its `max_alive`.
#[derive(Default)]
struct Alive {
    count: AtomicU32,
    /// Notified when an instance ends or a live one can take another request.
    room: Notify,
}

/// Why an instance was not made: `max_alive` are alive (the request is handed back).
#[derive(Debug, thiserror::Error)]
#[error("the plugin has max_alive instances alive, none free")]
pub(super) struct NoRoom;

impl Alive {
    /// A slot for one more instance, if fewer than `max` are alive.
    fn try_take(self: &Arc<Self>, max: u32, gauge: Gauge) -> Option<AliveSlot> {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        gauge.inc();
        Some(AliveSlot {
            alive: self.clone(),
            gauge,
        })
    }
}

/// Whether `error` is an instance not made for want of room, its request handed back.
fn no_room(error: &wasmtime::Error) -> bool {
    error
        .downcast_ref::<InstantiationError<RequestMeta>>()
        .is_some_and(|refused| refused.error.is::<NoRoom>())
}

/// One alive instance's place under `max_alive`, given back when it ends.
struct AliveSlot {
    alive: Arc<Alive>,
    gauge: Gauge,
}

impl Drop for AliveSlot {
    fn drop(&mut self) {
        self.alive.count.fetch_sub(1, Ordering::AcqRel);
        self.gauge.dec();
        self.alive.room.notify_one();
    }
}
