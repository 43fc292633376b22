//! The binary's command line: `--check-config` validates without starting,
//! and names what is wrong.

use std::process::Command;

fn check(config: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("switchboard.toml");
    std::fs::write(&path, config).unwrap_or_else(|e| panic!("write: {e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(&path)
        .arg("--check-config")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .unwrap_or_else(|e| panic!("run: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
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
