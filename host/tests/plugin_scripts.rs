//! The default plugins' behaviour, as scripts of decisions in
//! `plugins/<plugin>/tests/*.json`, run by the plugin test harness
//! (`switchboard plugin test`) against the components built into the
//! router: the same runtime, host functions and decision checks as a call.

use std::path::PathBuf;

use switchboard::plugins::builtin;
use switchboard::plugins::harness::Harness;

/// Runs every script of one plugin; fails naming each step that did not
/// match.
async fn scripts_of(plugin: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins")
        .join(plugin)
        .join("tests");
    let wasm = builtin::get(plugin).unwrap_or_else(|| panic!("{plugin} is not built in"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scripts in {}", dir.display());
    let mut failures = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read script");
        let script = Harness::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let harness = Harness::new(wasm, &script, None)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for r in harness.run(&script).expect("run script") {
            if let Some(why) = &r.mismatch {
                failures.push(format!("{}: {}: {why}", file.display(), r.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn divert_scripts_hold() {
    scripts_of("divert").await;
}

#[tokio::test]
async fn hotdesk_scripts_hold() {
    scripts_of("hotdesk").await;
}

#[tokio::test]
async fn delegation_scripts_hold() {
    scripts_of("delegation").await;
}

#[tokio::test]
async fn schedule_scripts_hold() {
    scripts_of("schedule").await;
}

#[tokio::test]
async fn hunt_status_scripts_hold() {
    scripts_of("hunt-status").await;
}

#[tokio::test]
async fn example_blocklist_scripts_hold() {
    scripts_of("example-blocklist").await;
}

#[tokio::test]
async fn a_step_that_does_not_match_is_reported_with_what_came_back() {
    let script = Harness::parse(
        r#"{"steps": [{"name": "wrong on purpose", "point": "incoming",
            "call": {"caller": "441234567890", "dialed": "2001"},
            "expect": {"reject": {"status": 486}}}]}"#,
    )
    .expect("script");
    let wasm = builtin::get("example-blocklist").expect("built in");
    let harness = Harness::new(wasm, &script, None).await.expect("harness");
    let reports = harness.run(&script).expect("run");
    assert_eq!(
        reports[0].mismatch.as_deref(),
        Some(r#"decision: expected {"reject":{"status":486}}, got "continue""#)
    );
}

#[tokio::test]
async fn settings_the_plugin_refuses_stop_the_script_naming_the_field() {
    let script =
        Harness::parse(r#"{"settings": {"tenant": {"blocked": ["2003", "20a3"]}}, "steps": []}"#)
            .expect("script");
    let wasm = builtin::get("example-blocklist").expect("built in");
    let err = Harness::new(wasm, &script, None)
        .await
        .expect_err("refused");
    assert_eq!(
        err.to_string(),
        "script: settings.tenant: blocked[1]: `20a3` is not a string of digits"
    );
}

#[tokio::test]
async fn a_fault_is_expected_by_its_reason() {
    let script = Harness::parse(
        r#"{"steps": [{"point": "incoming", "call": {"caller": "2001", "dialed": "2002"},
            "expect": {"fault": "deadline of 10 ms exceeded"}}]}"#,
    )
    .expect("script");
    let wasm = builtin::get("test-loop").expect("built in");
    let harness = Harness::new(wasm, &script, None).await.expect("harness");
    let reports = harness.run(&script).expect("run");
    assert!(reports[0].passed(), "{:?}", reports[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_put_in_the_chain_has_an_instance_ready_before_its_first_call() {
    let script = Harness::parse(r#"{"steps": []}"#).expect("script");
    let wasm = builtin::get("example-blocklist").expect("built in");
    let harness = Harness::new(wasm, &script, None).await.expect("harness");
    // Prepared on a blocking thread; bounded wait, no timing asserted.
    for _ in 0..500 {
        if harness.ready_instances() > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("no instance was prepared within 5 s");
}
