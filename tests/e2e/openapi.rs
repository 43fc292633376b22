//! The OpenAPI document against the live API: the document is a valid
//! OpenAPI 3.1 document (openapi-spec-validator), and schemathesis finds
//! no response that breaks it (schema, status, content type), no 5xx, no
//! schema-violating request accepted and no operation open without a token.
//! `.ci/run` installs both tools from PyPI; elsewhere the tests say plainly
//! that they did not run.

use std::process::Stdio;
use std::time::Duration;

use switchboard_e2e::{tool_available, TestRouter};
use tokio::process::Command;

/// Runs `cmd` with `args` for at most `limit`; its exit status and output.
async fn run_bounded(cmd: &mut Command, limit: Duration) -> (bool, String) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(out) => {
            let out = out.unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status.success(), text)
        }
        // Dropping the future kills the child (kill_on_drop).
        Err(_) => (false, format!("did not finish within {limit:?}")),
    }
}

#[tokio::test]
async fn the_api_document_is_a_valid_openapi_3_1_document() {
    if !tool_available(
        "openapi-spec-validator",
        "--help",
        "pip install openapi-spec-validator",
    ) {
        return;
    }
    let r = TestRouter::start().await;
    let (status, doc) = r.api("GET", "/openapi.json", None).await;
    assert_eq!(status, 200);
    let file = r.dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let (ok, out) = run_bounded(
        Command::new("openapi-spec-validator").arg(&file),
        Duration::from_secs(60),
    )
    .await;
    assert!(ok, "{out}");
}

#[tokio::test]
async fn schemathesis_finds_no_response_that_breaks_the_document() {
    if !tool_available("st", "--version", "pip install schemathesis") {
        return;
    }
    let r = TestRouter::start().await;
    // The test tenant and one of its employees, so that generated requests
    // reach the handlers and not only the 404 of an unknown tenant.
    let config = r.dir.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        "headers = { Authorization = \"Bearer test-admin-token\" }\n\
         [parameters]\n\
         tid = 1\n\
         ext = \"2002\"\n",
    )
    .unwrap();
    let url = format!("http://{}/api/v1/openapi.json", r.running.http_addr);
    // positive_data_acceptance is left out: a schema cannot say that an
    // extension must be free or a time zone must exist, and a refusal of
    // those (409, 422) is right.
    let run = || async {
        run_bounded(
            Command::new("st")
                // Its cache of earlier runs stays in the test's own folder.
                .current_dir(r.dir.path())
                .arg("--config-file")
                .arg(&config)
                .args(["run", &url])
                .args(["--max-examples", "25", "--workers", "2"])
                .args(["--exclude-checks", "positive_data_acceptance"])
                .args(["--generation-deterministic", "--no-color"]),
            Duration::from_secs(300),
        )
        .await
    };
    let (mut ok, mut out) = run().await;
    // schemathesis 4 has crashed on its own (a KeyError in its coverage
    // phase, once in many runs, no check failed): one more run then. A
    // failed check or a 5xx fails at once.
    if !ok && out.contains("Traceback") && !out.contains("Failures:") {
        eprintln!("schemathesis crashed, running it again:\n{out}");
        (ok, out) = run().await;
    }
    assert!(ok, "{out}");
}

#[tokio::test]
async fn people_read_the_api_at_api_docs_without_scripts_or_outside_fetches() {
    let r = TestRouter::start().await;
    let resp = reqwest::get(format!("http://{}/api/docs", r.running.http_addr))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let csp = resp
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    let html = resp.text().await.unwrap();
    assert!(!html.contains("<script"), "no script");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing from elsewhere"
    );
    assert!(html.contains("/tenants/{tid}/devices/{id}"));
    assert!(html.contains("id=\"schema-Device\""));
}
