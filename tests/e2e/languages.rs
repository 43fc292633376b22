//! Plugins written in other languages than Rust, built from their
//! registries by `.ci/run` (`plugins/examples/`), uploaded and deciding
//! real calls. Elsewhere, without the built component, the tests say
//! plainly that they did not run (under CI that is a failure).

use std::time::Duration;

use serde_json::json;
use switchboard_e2e::{Proto, TestRouter};

const T: Duration = Duration::from_secs(10);

/// The built component of an example, if it is there.
fn example(path: &str) -> Option<Vec<u8>> {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/examples")
        .join(path);
    match std::fs::read(&file) {
        Ok(wasm) => Some(wasm),
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{} is missing; .ci/run builds it",
                file.display()
            );
            eprintln!(
                "NOT RUN: {} is not built (npm ci && npm run build in its folder)",
                file.display()
            );
            None
        }
    }
}

/// Uploads the example at `path` as `name`, checks its own validation,
/// blocks 2003 with it and routes calls through it.
async fn blocks_a_caller(path: &str, name: &str) {
    let Some(wasm) = example(path) else {
        return;
    };
    let r = TestRouter::start().await;
    let (status, body) = r
        .api("POST", &format!("/tenants/1/plugins/{name}"), Some(wasm))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["points"], json!(["incoming"]));
    // Its own validation, in its own language, refuses bad settings.
    let (status, refused) = r.settings(name, "tenant", json!({"blocked": "2003"})).await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("blocked"),
        "{refused}"
    );
    let (status, body) = r
        .settings(name, "tenant", json!({"blocked": ["2003"]}))
        .await;
    assert_eq!(status, 200, "{body}");
    r.chain(&[name]).await;
    let mut carol = r.phone("2003", Proto::Udp).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    carol.call("2002").await;
    let resp = carol.final_response(T).await.expect("an answer");
    assert_eq!(resp.status(), Some(603), "{}", resp.first);
    // Anyone else still gets through.
    alice.call("2002").await;
    assert!(bob.expect_invite(T).await.is_some());
    let (_, faults) = r
        .api("GET", &format!("/tenants/1/plugins/{name}/faults"), None)
        .await;
    assert_eq!(faults["total"], 0, "{faults}");
}

#[tokio::test]
async fn a_javascript_plugin_blocks_a_caller_on_a_real_call() {
    blocks_a_caller("js-blocklist/dist/blocklist.wasm", "js-blocklist").await;
}

#[tokio::test]
async fn a_python_plugin_blocks_a_caller_on_a_real_call() {
    blocks_a_caller("py-blocklist/dist/blocklist.wasm", "py-blocklist").await;
}

/// The example at `path` in the plugin test harness with the Rust
/// blocklist's own script, under the suite's 200 ms deadline (as
/// TestRouter's: a debug build on two busy cores instantiates a 12 MB
/// component slower than production); `None` when it is not built.
async fn blocklist_harness(
    path: &str,
) -> Option<(
    switchboard::plugins::harness::Harness,
    switchboard::plugins::harness::Script,
)> {
    use switchboard::plugins::harness::Harness;
    let wasm = example(path)?;
    let script = Harness::parse(include_str!(
        "../../plugins/example-blocklist/tests/blocklist.json"
    ))
    .unwrap();
    let config = switchboard::plugins::PluginConfig {
        deadline: Duration::from_millis(200),
        cache_dir: Some(std::env::temp_dir().join("switchboard-harness-cache")),
        ..Default::default()
    };
    let harness = Harness::new(&wasm, &script, Some(config)).await.unwrap();
    Some((harness, script))
}

/// Runs the Rust blocklist's own test script against the example at
/// `path`: the same behaviour, whatever the language.
async fn passes_the_blocklist_script(path: &str) {
    let Some((harness, script)) = blocklist_harness(path).await else {
        return;
    };
    for step in harness.run(&script).unwrap() {
        assert!(step.passed(), "{}: {:?}", step.name, step.mismatch);
    }
}

#[tokio::test]
async fn the_javascript_blocklist_passes_the_rust_blocklists_script() {
    passes_the_blocklist_script("js-blocklist/dist/blocklist.wasm").await;
}

#[tokio::test]
async fn the_python_blocklist_passes_the_rust_blocklists_script() {
    passes_the_blocklist_script("py-blocklist/dist/blocklist.wasm").await;
}

/// Asks the example at `path` 50,000 decisions in a row: a garbage-collected
/// guest's heap grows call after call, and an instance reused until it hits
/// the memory cap would fault mid-call (the runtime retires it first).
async fn decides_many_calls_without_a_fault(path: &str) {
    let Some((harness, script)) = blocklist_harness(path).await else {
        return;
    };
    let blocked = &script.steps[0];
    for i in 0..50_000 {
        let step = harness.step(i, blocked).unwrap();
        assert!(step.passed(), "decision {i}: {:?}", step.mismatch);
    }
}

#[tokio::test]
async fn a_javascript_plugin_decides_fifty_thousand_calls_without_a_fault() {
    decides_many_calls_without_a_fault("js-blocklist/dist/blocklist.wasm").await;
}

#[tokio::test]
async fn a_python_plugin_decides_fifty_thousand_calls_without_a_fault() {
    decides_many_calls_without_a_fault("py-blocklist/dist/blocklist.wasm").await;
}
