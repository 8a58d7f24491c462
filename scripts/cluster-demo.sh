#!/usr/bin/env bash
# A three-node micro-api cluster on one machine: etcd, then node 1 serving user-api (the
# public port 8080), node 2 serving user and node 3 serving auth, found through etcd and
# calling each other over their internal rpc listeners (mutual TLS, certificates made here
# with openssl). Logs in through node 1, then keeps running until Ctrl-C. Needs etcd
# (Debian: apt-get install etcd-server) and openssl.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v etcd >/dev/null || { echo "etcd is not installed (apt-get install etcd-server)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "openssl is not installed (apt-get install openssl)" >&2; exit 1; }
cargo xtask plugins
cargo build --quiet --package micro-api
bin=target/debug/micro-api
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

etcd --data-dir "$work/etcd" --listen-client-urls http://127.0.0.1:2379 \
    --advertise-client-urls http://127.0.0.1:2379 >"$work/etcd.log" 2>&1 &
pids+=($!)

# The cluster's shared secrets: every node must hold the same ones.
export MICRO_API__CLUSTER__SECRET="demo-cluster-secret-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export MICRO_API__AUTH__SIGNING_KEY="demo-signing-key-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"

# Mutual TLS between the nodes: a CA of the demo's own and a certificate per node, carrying
# the name every node checks (micro-api-node) and its own (node-N), which [cluster] allow
# below names: only node 1 (user-api) may check passwords and mint tokens.
tls="$work/tls"
mkdir -p "$tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=micro-api demo CA" -keyout "$tls/ca.key" -out "$tls/ca.crt" 2>/dev/null
node_cert() { # number
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=node-$1" \
        -keyout "$tls/node$1.key" -out "$tls/node$1.csr" 2>/dev/null
    printf 'subjectAltName=DNS:node-%s,DNS:micro-api-node\nextendedKeyUsage=serverAuth,clientAuth\n' "$1" \
        >"$tls/node$1.ext"
    openssl x509 -req -in "$tls/node$1.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" \
        -CAcreateserial -days 2 -extfile "$tls/node$1.ext" -out "$tls/node$1.crt" 2>/dev/null
}
allow='allow = { "*" = ["user.GetUserByName"], "node-1" = ["user", "auth.MakeAccessToken"] }'

start_node() { # number plugin...
    local n=$1; shift
    local dir="$work/node$n"
    mkdir -p "$dir/plugins"
    for plugin in "$@"; do cp "plugins/dist/${plugin//-/_}.wasm" "$dir/plugins/"; done
    sed -e "s|^data_dir = .*|data_dir = \"data\"|" \
        -e "s|^dir = \"plugins/dist\".*|dir = \"plugins\"|" \
        -e "s|^node_id = .*|node_id = \"node-$n\"|" \
        -e "s|^backend = \"memory\"|backend = \"etcd\"|" \
        -e "s|^allow = .*|$allow|" config.toml >"$dir/config.toml"
    node_cert "$n"
    printf '\n[cluster.tls]\ncert = "%s"\nkey = "%s"\nca = "%s"\n' \
        "$tls/node$n.crt" "$tls/node$n.key" "$tls/ca.crt" >>"$dir/config.toml"
    "$bin" serve --config "$dir/config.toml" --listen "127.0.0.1:808$((n - 1))" \
        --admin "127.0.0.1:909$((n - 1))" --rpc "127.0.0.1:700$n" >"$dir/log" 2>&1 &
    pids+=($!)
}
start_node 1 user-api
start_node 2 user
start_node 3 auth

for _ in $(seq 1 100); do
    curl -sf http://127.0.0.1:9090/admin/health/ready >/dev/null && break
    sleep 0.2
done
echo "node 1 ready: $(curl -s http://127.0.0.1:9090/admin/health/ready)"
curl -s --request POST --url http://127.0.0.1:8080/user/login \
    --header 'Content-Type: application/x-www-form-urlencoded' --data 'userName=micro&pwd=123'
echo
echo "user ran on node 2: $(curl -s http://127.0.0.1:9091/admin/plugins | grep -o '"invocations":[0-9]*')"
echo "auth ran on node 3: $(curl -s http://127.0.0.1:9092/admin/plugins | grep -o '"invocations":[0-9]*')"
echo "logs under $work; Ctrl-C stops the cluster"
wait
