//! Micro-benchmarks of what every request pays, each beside its native-Rust baseline
//! (issue 4; `cargo xtask bench` runs them and lists the medians):
//!
//! - `instantiate`: a fresh `Store` + instantiation from the `InstancePre` + one call of the
//!   `probe` component's no-op `echo` (instances are never reused: that isolation is the
//!   product), then the whole `invoke::call_service` path (deadline, stats, outcome);
//! - `http`: the `hello` component behind `invoke::handle_http`, body read to the end;
//! - `rpc`: one hop `probe -> probe.echo` through the grant check, registry and breaker;
//! - `sql`: one SQLite round trip: the same sqlx query direct, through the host's
//!   `Database`, through the `sql` import's host side, and from the `user` component;
//! - `allocations`: heap allocations per hello and per echo invocation, beside native's
//!   (issue 15), measured by criterion with a counting allocator instead of the clock.
//!
//! The components come from `MICRO_API_TEST_COMPONENTS` (as for the tests), by default
//! `target/wasm32-wasip2/plugin`; `cargo xtask bench` builds them. No tracing subscriber is
//! installed, so spans and events cost what a disabled level costs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::{BodyExt, Empty, Full};
use micro_api::bindings::micro_api::host::sql::{self as wit_sql, Host as _};
use micro_api::breaker::{Breaker, BreakerSettings, Outcome};
use micro_api::capability::{CallContext, Capability, Invocation};
use micro_api::config::Config;
use micro_api::host::Host;
use micro_api::rpc::Error;
use micro_api::runtime::{Entry, Plugin, invoke};
use micro_api::sql::Value;
use micro_api::telemetry::TraceContext;

/// Every heap allocation of the process so far (`realloc` counts as one: it is a call into
/// the allocator that may move the block). One relaxed increment per allocation, a cost
/// of a few nanoseconds against the microseconds the clock-measured groups take.
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// The system allocator, counting into `ALLOCATIONS`.
struct CountingAllocator;

// SAFETY: every call is forwarded unchanged to `System`, which upholds `GlobalAlloc`'s
// contract; the counter has no effect on the memory handed out.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's guarantees for `layout`, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `ptr` came from this allocator, which is `System` underneath.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING_ALLOCATOR: CountingAllocator = CountingAllocator;

/// A criterion measurement in allocations instead of nanoseconds: the `allocations` group's
/// medians are allocations per iteration (whole numbers, whatever the thread they happen on).
struct Allocations;

impl Measurement for Allocations {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        ALLOCATIONS.load(Ordering::Relaxed)
    }

    fn end(&self, started: u64) -> u64 {
        ALLOCATIONS.load(Ordering::Relaxed) - started
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        self
    }
}

impl ValueFormatter for Allocations {
    fn scale_values(&self, _typical: f64, _values: &mut [f64]) -> &'static str {
        "allocs"
    }

    fn scale_throughputs(&self, _typical: f64, _: &Throughput, _: &mut [f64]) -> &'static str {
        "allocs"
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "allocs"
    }
}

/// The seed user's row, read by the `sql` benchmarks.
const GET_USER_BY_NAME: &str = "SELECT `user_id`, `user_name` FROM `user` WHERE `user_name` = ?";
const ECHO_PAYLOAD: &[u8] = br#"{"ping":1}"#;

/// A host with the benchmarks' components loaded, on a current-thread runtime: spawned
/// tasks run on the bench thread, as they run on the request's worker.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    host: Arc<Host>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).expect("plugins dir");
        for name in ["probe", "hello", "user"] {
            let file = format!("{name}.wasm");
            let from = components_dir().join(&file);
            std::fs::copy(&from, plugins.join(&file)).unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; build the components with `cargo xtask bench`",
                    from.display()
                )
            });
        }
        let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-compile-cache");
        let config = format!(
            r#"data_dir = "data"
[plugins]
dir = "plugins"
cache_dir = {cache:?}
[auth]
signing_key = "bench-signing-key-not-a-secret-0123456789abcdef"
[plugin.probe]
rpc = ["probe"]
sql = true
[plugin.user]
sql = true
crypto = ["passwords"]
"#
        );
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config).expect("write the config");
        let config = Config::load(Some(&path)).expect("a valid config");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let host = runtime.block_on(Host::of(config)).expect("the host starts");
        Self {
            runtime,
            host,
            _dir: dir,
        }
    }

    fn plugin(&self, name: &str) -> Arc<Plugin> {
        let lifecycle = self.host.lifecycle();
        lifecycle
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not loaded: {:?}", lifecycle.table().refused()))
    }

    fn runtime(&self) -> &Arc<micro_api::runtime::Runtime> {
        self.host.lifecycle().runtime()
    }
}

fn components_dir() -> PathBuf {
    std::env::var_os("MICRO_API_TEST_COMPONENTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/plugin")
        })
}

fn call_context() -> CallContext {
    CallContext {
        deadline: Instant::now() + Duration::from_secs(5),
        depth: 0,
        trace: TraceContext::new_root(),
    }
}

/// `probe`'s `echo` through the whole `invoke::call_service` path.
async fn invoke_echo(fx: &Fixture, probe: &Arc<Plugin>) -> Vec<u8> {
    invoke::call_service(fx.runtime(), probe, "echo", ECHO_PAYLOAD, call_context())
        .await
        .answer
        .expect("an answer")
}

/// `hello` behind `invoke::handle_http`, its body read to the end.
async fn invoke_hello(fx: &Fixture, hello: &Arc<Plugin>) -> Bytes {
    let response = invoke::handle_http(
        fx.runtime(),
        hello,
        hello_request(),
        TraceContext::new_root(),
    )
    .await
    .expect("a response");
    collect(response).await
}

/// What `probe`'s `echo` does, natively.
fn native_echo(method: &str, payload: &[u8]) -> Result<Vec<u8>, Error> {
    match method {
        "echo" => Ok(payload.to_vec()),
        other => Err(Error::Invalid(format!("unknown method {other}"))),
    }
}

fn instantiate(c: &mut Criterion, fx: &Fixture) {
    let probe = fx.plugin("probe");
    let Entry::Service(pre) = &probe.entry else {
        panic!("probe is a service");
    };
    let mut group = c.benchmark_group("instantiate");
    group.bench_function("native echo", |b| {
        b.iter(|| native_echo(black_box("echo"), black_box(ECHO_PAYLOAD)))
    });
    group.bench_function("native echo on a spawned task", |b| {
        b.to_async(&fx.runtime).iter(|| async {
            tokio::spawn(async { native_echo(black_box("echo"), black_box(ECHO_PAYLOAD)) })
                .await
                .expect("the task ends")
        })
    });
    group.bench_function("store + instantiate + echo", |b| {
        b.to_async(&fx.runtime).iter(|| async {
            let mut store = fx.runtime().new_store(&probe, call_context());
            let service = pre
                .instantiate_async(&mut store)
                .await
                .expect("instantiate");
            service
                .micro_api_host_handler()
                .call_handle(&mut store, "echo", ECHO_PAYLOAD)
                .await
                .expect("no trap")
                .expect("an answer")
        })
    });
    group.bench_function("invoke::call_service echo", |b| {
        b.to_async(&fx.runtime).iter(|| invoke_echo(fx, &probe))
    });
    group.finish();
}

/// `GET /hello` with an empty body, as the front hands it to the component.
fn hello_request() -> http::Request<wasmtime_wasi_http::WasiBody> {
    http::Request::get("http://localhost/hello")
        .body(Empty::new().map_err(|never| match never {}).boxed_unsync())
        .expect("a request")
}

/// What `hello` answers, natively.
fn native_hello(
    request: http::Request<wasmtime_wasi_http::WasiBody>,
) -> http::Response<Full<Bytes>> {
    black_box(request);
    http::Response::builder()
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from_static(b"hello")))
        .expect("a response")
}

/// The response's body, read to the end.
async fn collect<B: http_body::Body<Data = Bytes>>(response: http::Response<B>) -> Bytes
where
    B::Error: std::fmt::Debug,
{
    response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes()
}

fn http(c: &mut Criterion, fx: &Fixture) {
    let hello = fx.plugin("hello");
    let mut group = c.benchmark_group("http");
    group.bench_function("native hello", |b| {
        b.to_async(&fx.runtime)
            .iter(|| collect(native_hello(hello_request())))
    });
    group.bench_function("invoke::handle_http hello", |b| {
        b.to_async(&fx.runtime).iter(|| invoke_hello(fx, &hello))
    });
    group.finish();
}

fn rpc(c: &mut Criterion, fx: &Fixture) {
    let probe = fx.plugin("probe");
    let mut group = c.benchmark_group("rpc");
    let breaker = Arc::new(Breaker::new(
        "probe.echo",
        BreakerSettings::default(),
        Default::default(),
    ));
    group.bench_function("breaker alone", |b| {
        b.iter(|| {
            let permit = black_box(&breaker).try_acquire().expect("a closed breaker");
            permit.complete(Outcome::Success);
        })
    });
    group.bench_function("invoke::call_service echo (no rpc)", |b| {
        b.to_async(&fx.runtime).iter(|| invoke_echo(fx, &probe))
    });
    group.bench_function("rpc hop probe.echo", |b| {
        b.to_async(&fx.runtime).iter(|| async {
            let configured = probe.configured();
            let invocation = Invocation {
                plugin: &probe.name,
                version: &probe.version,
                call: call_context(),
            };
            let caller = fx
                .runtime()
                .capabilities()
                .rpc
                .prepare(&configured.grants.rpc, &invocation);
            caller
                .call("probe", "echo", ECHO_PAYLOAD.to_vec())
                .await
                .expect("an answer")
        })
    });
    group.finish();
}

fn sql(c: &mut Criterion, fx: &Fixture) {
    let user = fx.plugin("user");
    let config = fx.host.config();
    let db_path = config.data_dir.join("micro-api.db");
    // A pool of its own on the same file, as the host opens it (WAL, create if missing).
    let pool = fx.runtime.block_on(async {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db_path)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5));
        sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(config.capabilities.database.pool_size())
            .connect_with(options)
            .await
            .expect("open the database")
    });
    let mut group = c.benchmark_group("sql");
    group.bench_function("sqlx direct", |b| {
        b.to_async(&fx.runtime).iter(|| async {
            let rows: Vec<(i64, String)> = sqlx::query_as(GET_USER_BY_NAME)
                .bind("micro")
                .fetch_all(&pool)
                .await
                .expect("rows");
            assert_eq!(rows.len(), 1);
            rows
        })
    });
    group.bench_function("host Database::query", |b| {
        b.to_async(&fx.runtime).iter(|| async {
            fx.host
                .database()
                .query(GET_USER_BY_NAME, &[Value::Text("micro".into())])
                .await
                .expect("rows")
        })
    });
    group.bench_function("sql import, host side", |b| {
        b.to_async(&fx.runtime).iter(|| async {
            let configured = user.configured();
            let invocation = Invocation {
                plugin: &user.name,
                version: &user.version,
                call: call_context(),
            };
            let mut state = fx
                .runtime()
                .capabilities()
                .database
                .prepare(&configured.grants.database, &invocation);
            let params = vec![wit_sql::Value::Text("micro".into())];
            (&mut state)
                .query(GET_USER_BY_NAME.into(), params)
                .await
                .expect("rows")
        })
    });
    group.bench_function("user.GetUserByName component", |b| {
        b.to_async(&fx.runtime).iter(|| async {
            invoke::call_service(
                fx.runtime(),
                &user,
                "GetUserByName",
                br#"{"name":"micro"}"#,
                call_context(),
            )
            .await
            .answer
            .expect("an answer")
        })
    });
    group.finish();
}

/// Allocations per invocation of the hot paths, beside native's (issue 15's target: <= 20
/// per hello invocation, instance and body included).
fn allocations(c: &mut Criterion<Allocations>, fx: &Fixture) {
    let hello = fx.plugin("hello");
    let probe = fx.plugin("probe");
    let mut group = c.benchmark_group("allocations");
    group.bench_function("native hello", |b| {
        b.to_async(&fx.runtime)
            .iter(|| collect(native_hello(hello_request())))
    });
    group.bench_function("invoke::handle_http hello", |b| {
        b.to_async(&fx.runtime).iter(|| invoke_hello(fx, &hello))
    });
    group.bench_function("invoke::call_service echo", |b| {
        b.to_async(&fx.runtime).iter(|| invoke_echo(fx, &probe))
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let fx = Fixture::new();
    instantiate(c, &fx);
    http(c, &fx);
    rpc(c, &fx);
    sql(c, &fx);
}

fn allocation_benches(c: &mut Criterion<Allocations>) {
    allocations(c, &Fixture::new());
}

criterion_group!(invocation, benches);
criterion_group! {
    name = allocation_counts;
    config = Criterion::default().with_measurement(Allocations);
    targets = allocation_benches
}
criterion_main!(invocation, allocation_counts);
