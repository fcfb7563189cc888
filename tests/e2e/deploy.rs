//! The deployment files: the Dockerfile passes hadolint, the binary carries its allocator
//! settings, the image's default config and the Kubernetes ConfigMap's config are valid, the
//! probes and ports match the config, and the Prometheus scrape config passes promtool.

use crate::common;

use std::process::Command;

use mcp_tap::config::Config;
use serde_yaml_ng::Value;

#[test]
fn the_dockerfile_passes_hadolint() {
    let hadolint = common::repo().join("target/peers-venv/bin/hadolint");
    assert!(
        hadolint.exists(),
        "hadolint is missing: run scripts/test.sh, or `target/peers-venv/bin/pip install -r tests/peers/requirements.txt`"
    );
    let out = Command::new(hadolint).arg("Dockerfile").current_dir(common::repo()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let dockerfile = std::fs::read_to_string(common::repo().join("Dockerfile")).unwrap();
    for needed in
        ["COPY .cargo", "cargo build --release --locked", "USER 65532", "EXPOSE 7070 9464", "ENTRYPOINT [\"mcp-tap\"]"]
    {
        assert!(dockerfile.contains(needed), "the Dockerfile lacks {needed}");
    }
}

/// The allocator settings docs/performance.md's memory numbers were measured with (`.cargo/config.toml`)
/// are the ones compiled into the binary: jemalloc prints its options when asked to.
#[test]
fn the_binary_runs_on_jemalloc_with_one_arena_and_small_caches() {
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-tap"))
        .arg("--version")
        .env("_RJEM_MALLOC_CONF", "stats_print:true")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    for option in ["opt.narenas: 1\n", "opt.tcache_max: 8192\n", "opt.tcache_gc_incr_bytes: 1048576\n"] {
        assert!(text.contains(option), "the binary's allocator lacks {option:?}: is .cargo/config.toml read?");
    }
}

#[test]
fn the_image_default_config_is_valid_and_listens_everywhere() {
    let c = Config::load(&common::repo().join("config/mcp-tap.container.yaml")).unwrap();
    assert_eq!(c.listen.to_string(), "0.0.0.0:7070");
    assert_eq!(c.admin_listen.to_string(), "0.0.0.0:9464");
}

#[test]
fn the_kubernetes_example_is_consistent() {
    let text = std::fs::read_to_string(common::repo().join("deploy/kubernetes.yaml")).unwrap();
    let docs: Vec<Value> =
        serde_yaml_ng::Deserializer::from_str(&text).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect();
    let kind = |k: &str| docs.iter().find(|d| d["kind"] == k).unwrap_or_else(|| panic!("no {k}"));
    let config = Config::parse(kind("ConfigMap")["data"]["config.yaml"].as_str().unwrap())
        .expect("the ConfigMap's config is valid");
    let container = &kind("Deployment")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    let ports: Vec<u64> =
        container["ports"].as_sequence().unwrap().iter().map(|p| p["containerPort"].as_u64().unwrap()).collect();
    assert_eq!(ports, vec![u64::from(config.listen.port()), u64::from(config.admin_listen.port())]);
    let env: Vec<&str> = container["env"].as_sequence().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert!(env.contains(&config.audit.fingerprint_key_env.as_str()), "the Secret feeds the fingerprint key");
    for t in &config.clients.tokens {
        assert!(env.contains(&t.token_env.as_deref().unwrap()), "token of {} comes from the Secret", t.subject);
    }
    // The admin port's web config comes from a Secret mounted where the argument points, and the
    // probes speak HTTPS to it.
    let args: Vec<&str> = container["args"].as_sequence().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let web_at = args.iter().position(|a| *a == "--web.config.file").map(|i| args[i + 1]).expect("--web.config.file");
    let web: Vec<&Value> =
        docs.iter().filter(|d| d["kind"] == "Secret" && d["metadata"]["name"] == "mcp-tap-web").collect();
    let web_text = web[0]["stringData"]["web.yml"].as_str().unwrap();
    let parsed: mcp_tap::config::WebConfig = serde_yaml_ng::from_str(web_text).expect("the web config parses");
    let tls = parsed.tls_server_config.expect("TLS on the admin port");
    let mounts = container["volumeMounts"].as_sequence().unwrap();
    let web_mount = mounts.iter().find(|m| m["name"] == "web").unwrap()["mountPath"].as_str().unwrap();
    assert!(web_at.starts_with(web_mount) && tls.cert_file.starts_with(web_mount), "{web_at} {web_mount}");
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(container[probe]["httpGet"]["scheme"], "HTTPS", "{probe}");
        assert!(config.admin_open_paths.iter().any(|p| *p == container[probe]["httpGet"]["path"].as_str().unwrap()));
    }
    // Cluster mode: the replicas share a store whose password comes from the same Secret.
    let replicas = kind("Deployment")["spec"]["replicas"].as_u64().unwrap();
    assert!(replicas >= 2 && config.cluster.store_url.is_some(), "2+ replicas share a store");
    assert!(env.contains(&config.cluster.password_env.as_deref().unwrap()));
    let store = docs.iter().find(|d| d["kind"] == "StatefulSet").expect("a Valkey for the cluster");
    let store_url = config.cluster.store_url.as_deref().unwrap();
    assert!(store_url.contains(store["metadata"]["name"].as_str().unwrap()), "{store_url}");
    let grace = kind("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"].as_u64().unwrap();
    let (drain, finish) = (config.shutdown_drain_delay.as_secs(), config.shutdown_grace_period.as_secs());
    assert!(drain > 0, "the example drains before it stops");
    assert!(drain + finish < grace, "the tap drains and finishes before Kubernetes kills it");
}

#[test]
fn the_scrape_config_passes_promtool() {
    assert!(
        std::path::Path::new("/usr/bin/promtool").exists(),
        "promtool is missing: run scripts/test.sh, or `apt-get install prometheus`"
    );
    let out = Command::new("promtool")
        .args(["check", "config", "--syntax-only", "deploy/prometheus-scrape.yml"])
        .current_dir(common::repo())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}
