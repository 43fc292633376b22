//! The binary's command line: `--check-config` validates without starting,
//! and names what is wrong.

use std::process::Command;

fn check(config: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("switchboard.toml");
    std::fs::write(&path, config).unwrap_or_else(|e| panic!("write: {e}"));
    let (code, text) = run(Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(&path)
        .arg("--check-config"));
    (code == Some(0), text)
}

/// Runs the binary without backtraces; its exit code and all it printed.
fn run(cmd: &mut Command) -> (Option<i32>, String) {
    let out = cmd
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .unwrap_or_else(|e| panic!("run: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn check_config_accepts_the_example_and_does_not_start() {
    let example = include_str!("../../switchboard.example.toml");
    let (ok, text) = check(example);
    assert!(ok, "{text}");
    assert!(text.contains("configuration is valid"), "{text}");
}

#[test]
fn check_config_names_an_unknown_key() {
    let (ok, text) = check("[sip]\nnonsense = 1\n");
    assert!(!ok);
    assert!(text.contains("unknown field `nonsense`"), "{text}");
}

#[test]
fn check_config_names_tls_without_a_certificate() {
    let (ok, text) = check("[sip]\ntls_listen = \"127.0.0.1:5061\"\n");
    assert!(!ok);
    assert!(text.contains("sip.tls_listen"), "{text}");
}

#[test]
fn check_config_reads_the_tls_files() {
    let (ok, text) = check(
        "[sip]\ntls_listen = \"127.0.0.1:5061\"\ntls_cert = \"/nonexistent/cert.pem\"\n\
         tls_key = \"/nonexistent/key.pem\"\n",
    );
    assert!(!ok);
    assert!(text.contains("/nonexistent/cert.pem"), "{text}");
}

/// Runs `switchboard plugin test` on the built-in blocklist with `script`;
/// returns the exit code and what it printed.
fn plugin_test(script: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let wasm = dir.path().join("blocklist.wasm");
    let bytes = switchboard::plugins::builtin::get("example-blocklist")
        .unwrap_or_else(|| panic!("the blocklist is built in"));
    std::fs::write(&wasm, bytes).unwrap_or_else(|e| panic!("write: {e}"));
    let path = dir.path().join("script.json");
    std::fs::write(&path, script).unwrap_or_else(|e| panic!("write: {e}"));
    run(Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["plugin", "test"])
        .arg(&wasm)
        .arg("--script")
        .arg(&path))
}

#[test]
fn plugin_test_passes_the_blocklists_own_script() {
    let (code, text) = plugin_test(include_str!(
        "../../plugins/example-blocklist/tests/blocklist.json"
    ));
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("3 steps, 0 failed"), "{text}");
}

#[test]
fn plugin_test_exits_1_naming_the_step_that_did_not_match() {
    let (code, text) = plugin_test(
        r#"{"steps": [{"name": "busy on purpose", "point": "incoming",
            "call": {"caller": "2001", "dialed": "2002"}, "expect": {"reject": {"status": 486}}}]}"#,
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("FAIL busy on purpose"), "{text}");
}

#[test]
fn plugin_test_exits_2_when_the_script_is_wrong() {
    let (code, text) = plugin_test(r#"{"steps": [{"point": "ringing"}]}"#);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("point: `ringing` is not"), "{text}");
}

#[test]
fn the_rust_template_builds_outside_the_repository_and_passes_its_script() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let project = dir.path().join("my-vip");
    let made = Command::new("bash")
        .arg(root.join("plugins/new.sh"))
        .arg("rust")
        .arg(&project)
        .status()
        .unwrap_or_else(|e| panic!("new.sh: {e}"));
    assert!(made.success());
    // The guests' target directory: the SDK's dependencies are built there
    // already, so this compiles only the SDK and the template.
    let target = std::env::var_os("SWITCHBOARD_PLUGINS_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target/wasm-plugins"));
    let built = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&project)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .unwrap_or_else(|e| panic!("cargo: {e}"));
    assert!(built.success());
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["plugin", "test"])
        .arg(target.join("wasm32-wasip2/release/my_vip.wasm"))
        .arg("--script")
        .arg(project.join("tests/vip.json"))
        .output()
        .unwrap_or_else(|e| panic!("run: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("2 steps, 0 failed"), "{text}");
}
