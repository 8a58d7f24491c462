# micro-api as a container: the host binary and the seed plugins, on a small non-root image.
#
#   docker build -t micro-api .
#   docker run -p 8080:8080 -p 127.0.0.1:9090:9090 \
#     -e MICRO_API__ADMIN__TOKEN="$(openssl rand -hex 24)" micro-api
#
# The admin listener binds 0.0.0.0 inside the container, so the host refuses to start
# without an admin token (16+ characters, from the environment, never baked in): every
# admin endpoint but the probes /admin/health/live and /admin/health/ready asks for it.
#
# Configuration: /etc/micro-api/config.toml (the repo's config.toml, every key documented;
# mount another over it), overridden by MICRO_API__SECTION__KEY variables. The ENV lines
# below are the container's layout: listeners on every interface, state and plugins under
# /var/lib/micro-api. Plugins: baked into /var/lib/micro-api/plugins, or mount a volume there
# (the host watches the folder and hot-loads what is copied in).

# --- builder: `rustup toolchain install` installs what rust-toolchain.toml pins: the
# toolchain, clippy/rustfmt and the wasm32-wasip2 target.
FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# `cargo xtask plugins` builds the components to plugins/dist and leaves the vendored protoc
# (etcd-client's build needs it) where .cargo/config.toml points plain cargo.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    rustup toolchain install \
 && cargo xtask plugins \
 && cargo build --release --package micro-api \
 && mkdir -p /out/bin /out/plugins /out/data \
 && cp target/release/micro-api /out/bin/ \
 && cp plugins/dist/*.wasm /out/plugins/

# --- runtime: glibc, libgcc and CA certificates only; runs as uid 65532 (nonroot).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/bin/micro-api /usr/local/bin/micro-api
COPY --from=builder --chown=65532:65532 /out/plugins /var/lib/micro-api/plugins
COPY --from=builder --chown=65532:65532 /out/data /var/lib/micro-api/data
COPY config.toml /etc/micro-api/config.toml
ENV MICRO_API__SERVER__LISTEN=0.0.0.0:8080 \
    MICRO_API__SERVER__ADMIN=0.0.0.0:9090 \
    MICRO_API__DATA_DIR=/var/lib/micro-api/data \
    MICRO_API__PLUGINS__DIR=/var/lib/micro-api/plugins
USER 65532:65532
# public, admin (health probes: /admin/health/live and /admin/health/ready), internal rpc
EXPOSE 8080 9090 7000
ENTRYPOINT ["/usr/local/bin/micro-api"]
CMD ["serve", "--config", "/etc/micro-api/config.toml"]
