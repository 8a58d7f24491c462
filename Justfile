# Thin wrappers over `cargo xtask`, which needs nothing but rustup's Rust.

# Build the plugins and run the gateway on 127.0.0.1:8080 (SQLite, in-memory registry).
run *ARGS:
    cargo xtask run {{ARGS}}

# Build the plugins and test components, then run every test.
test *ARGS:
    cargo xtask test {{ARGS}}

# Build the plugins for wasm32-wasip2 and deploy them to plugins/dist/.
plugins:
    cargo xtask plugins

# Module loops in host/src, rustfmt, and clippy -D warnings for the host and (on
# wasm32-wasip2) the plugins.
lint:
    cargo xtask lint

# Benchmarks: micro-api vs native vs wasmtime serve under wrk, then the criterion
# micro-benchmarks (see bench/RESULTS.md); `just bench --short` is the CI smoke run.
bench *ARGS:
    cargo xtask bench {{ARGS}}

# A three-node cluster through etcd (user-api, user, auth on separate nodes), with a login.
cluster-demo:
    scripts/cluster-demo.sh
