//! The container and Kubernetes files (`Dockerfile`, `deploy/kubernetes/`), checked against
//! the code since no cluster runs here: the ConfigMap's config, with the image's and the
//! Deployment's variables, loads through the host's own config loader (so every
//! `MICRO_API__*` name is a real key), and the ports, probes, mounts and etcd endpoints agree
//! with what that config makes the host do. The probe paths are then asked of a real host.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{HostBuilder, client};
use micro_api::config::Config;
use serde::Deserialize;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every document of `deploy/kubernetes/<file>`, as JSON.
fn manifests(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo().join("deploy/kubernetes").join(file)).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{file}: {e}")))
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// The `ENV` variables of the Dockerfile's last (runtime) stage.
fn image_env() -> Vec<(String, String)> {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let joined = dockerfile.replace("\\\n", " ");
    let runtime = joined.rsplit("\nFROM ").next().unwrap();
    runtime
        .lines()
        .filter_map(|l| l.strip_prefix("ENV "))
        .flat_map(str::split_whitespace)
        .map(|pair| {
            let (k, v) = pair.split_once('=').expect("ENV KEY=value");
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// The port number a probe or Service names, by name or number.
fn port(container: &Value, named: &Value) -> u64 {
    named.as_u64().unwrap_or_else(|| {
        container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == *named)
            .unwrap_or_else(|| panic!("no port {named}"))["containerPort"]
            .as_u64()
            .unwrap()
    })
}

/// What the downward API gives a pod, for `$(VAR)` references.
const POD_IP: &str = "10.1.2.3";
const POD_NAME: &str = "micro-api-7d9f-x2k4q";

/// The container's variables: the image's, then the Deployment's (secrets from the example
/// Secret), with `$(VAR)` expanded as the kubelet does.
fn container_env(container: &Value) -> Vec<(String, String)> {
    let secret = &manifests("secret.example.yaml")[0];
    assert_eq!(secret["metadata"]["name"], "micro-api-secrets");
    let mut env: BTreeMap<String, String> = image_env().into_iter().collect();
    for var in container["env"].as_array().unwrap() {
        let name = var["name"].as_str().unwrap().to_string();
        let value = if let Some(value) = var["value"].as_str() {
            value
                .replace("$(POD_IP)", POD_IP)
                .replace("$(POD_NAME)", POD_NAME)
        } else if let Some(field) = var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            match field {
                "status.podIP" => POD_IP.into(),
                "metadata.name" => POD_NAME.into(),
                other => panic!("unexpected fieldRef {other}"),
            }
        } else {
            let key = &var["valueFrom"]["secretKeyRef"];
            assert_eq!(key["name"], "micro-api-secrets", "{name}");
            let key = key["key"].as_str().unwrap();
            secret["stringData"][key]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: the Secret has no key {key}"))
                .into()
        };
        env.insert(name, value);
    }
    env.into_iter().collect()
}

#[test]
fn the_kubernetes_config_is_what_the_host_reads() {
    let docs = manifests("micro-api.yaml");
    let deployment = find(&docs, "Deployment", "micro-api");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let mount = |volume: &str| -> PathBuf {
        let m = container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == volume)
            .unwrap_or_else(|| panic!("no mount of {volume}"));
        PathBuf::from(m["mountPath"].as_str().unwrap())
    };

    // The config file the container reads is the ConfigMap's, where it is mounted.
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let config_arg = args[args.iter().position(|a| *a == "--config").unwrap() + 1];
    let config_volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "config")
        .unwrap();
    let config_map = find(
        &docs,
        "ConfigMap",
        config_volume["configMap"]["name"].as_str().unwrap(),
    );
    assert_eq!(Path::new(config_arg), mount("config").join("config.toml"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, config_map["data"]["config.toml"].as_str().unwrap()).unwrap();

    // Loaded by the host's own loader: an unknown MICRO_API__ name or key is refused there.
    let env = container_env(container);
    let config = Config::load_with_env(Some(&file), env.clone())
        .unwrap_or_else(|e| panic!("the Kubernetes config does not load: {e}"));
    assert!(env.iter().any(|(k, _)| k == "MICRO_API__AUTH__SIGNING_KEY"));
    assert!(
        config
            .capabilities
            .auth
            .signing_key
            .as_ref()
            .is_some_and(|k| k.len() >= 32)
    );

    // Listeners: public and admin on every interface at the container's ports; rpc on the
    // pod's own address, which is what the node registers for the others to dial.
    assert_eq!(
        config.server.listen.to_string(),
        format!("0.0.0.0:{}", port(container, &"http".into()))
    );
    assert_eq!(
        config.server.admin.to_string(),
        format!("0.0.0.0:{}", port(container, &"admin".into()))
    );
    assert_eq!(
        config.server.rpc.unwrap().to_string(),
        format!("{POD_IP}:{}", port(container, &"rpc".into()))
    );
    assert_eq!(config.server.node_id, POD_NAME);

    // Probes on the admin listener, at the paths the admin API serves.
    let admin_port = config.server.admin.port() as u64;
    for (probe, path) in [
        ("livenessProbe", "/admin/health/live"),
        ("readinessProbe", "/admin/health/ready"),
        ("startupProbe", "/admin/health/live"),
    ] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert_eq!(port(container, &get["port"]), admin_port, "{probe}");
    }
    let service = find(&docs, "Service", "micro-api");
    assert_eq!(
        port(container, &service["spec"]["ports"][0]["targetPort"]),
        config.server.listen.port() as u64,
        "the Service sends traffic to the public listener"
    );

    // Folders: the plugins volume is the plugins folder, the data volume the data folder.
    assert_eq!(config.plugins.dir, mount("plugins"));
    assert_eq!(config.data_dir, mount("data"));
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "plugins" && v["persistentVolumeClaim"].is_object())
    );

    // The registry is the etcd StatefulSet, every member by its stable name.
    let etcd_docs = manifests("etcd.yaml");
    let etcd = find(&etcd_docs, "StatefulSet", "etcd");
    assert_eq!(etcd["spec"]["replicas"], 3);
    let etcd_service = find(
        &etcd_docs,
        "Service",
        etcd["spec"]["serviceName"].as_str().unwrap(),
    );
    assert_eq!(etcd_service["spec"]["clusterIP"], "None", "headless");
    let client_port = port(
        &etcd["spec"]["template"]["spec"]["containers"][0],
        &"client".into(),
    );
    let members: Vec<String> = (0..3)
        .map(|i| format!("http://etcd-{i}.etcd:{client_port}"))
        .collect();
    assert_eq!(config.capabilities.registry.endpoints, members);

    // Not root, in the image and in the pod, as the same user.
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .unwrap();
    let uid: u64 = user.split(':').next().unwrap().parse().unwrap();
    assert_ne!(uid, 0);
    assert_eq!(pod["securityContext"]["runAsUser"], uid);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert!(
        dockerfile.contains(" AS builder"),
        "multi-stage: the toolchain stays out of the image"
    );

    let nats = manifests("nats.yaml");
    assert_eq!(
        find(&nats, "Service", "nats")["spec"]["ports"][0]["port"],
        4222
    );
}

#[tokio::test]
async fn the_probe_paths_answer_on_a_running_host() {
    let docs = manifests("micro-api.yaml");
    let container =
        &find(&docs, "Deployment", "micro-api")["spec"]["template"]["spec"]["containers"][0];
    let host = HostBuilder::seed().start();
    for probe in ["livenessProbe", "readinessProbe"] {
        let path = container[probe]["httpGet"]["path"].as_str().unwrap();
        let response = client()
            .get(format!("{}{path}", host.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{probe} {path}");
    }
}
