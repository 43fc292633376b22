//! The plugin API that does not surprise (issue 16): chain entries edited
//! one at a time, uploads checked before they are stored, deletion, fault
//! reasons and the key-value store readable by the tenant's administrators,
//! and every refusal in the `{error, field}` shape.

use std::time::Duration;

use serde_json::json;
use switchboard_e2e::{Proto, TestRouter};

const T: Duration = Duration::from_secs(4);

fn names(view: &serde_json::Value) -> Vec<(String, bool)> {
    view["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_owned(), e["enabled"] == true))
        .collect()
}

async fn put_entry(
    r: &TestRouter,
    name: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    r.api(
        "PUT",
        &format!("/tenants/1/plugin-chain/{name}"),
        Some(body.to_string().into_bytes()),
    )
    .await
}

#[tokio::test]
async fn adding_one_plugin_to_the_chain_keeps_the_others() {
    let r = TestRouter::start().await;
    r.chain(&["hotdesk", "divert"]).await;
    let (status, view) = put_entry(&r, "example-blocklist", json!({})).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        names(&view),
        vec![
            ("hotdesk".into(), true),
            ("divert".into(), true),
            ("example-blocklist".into(), true)
        ]
    );
}

#[tokio::test]
async fn one_entry_is_moved_and_switched_off_and_the_rest_stay() {
    let r = TestRouter::start().await;
    r.chain(&["hotdesk", "schedule", "divert"]).await;
    let (status, view) = put_entry(&r, "divert", json!({"position": 0, "enabled": false})).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        names(&view),
        vec![
            ("divert".into(), false),
            ("hotdesk".into(), true),
            ("schedule".into(), true)
        ]
    );
}

#[tokio::test]
async fn one_entry_is_taken_out_and_the_rest_stay() {
    let r = TestRouter::start().await;
    r.chain(&["hotdesk", "schedule", "divert"]).await;
    let (status, view) = r
        .api("DELETE", "/tenants/1/plugin-chain/schedule", None)
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(
        names(&view),
        vec![("hotdesk".into(), true), ("divert".into(), true)]
    );
    let (status, body) = r
        .api("DELETE", "/tenants/1/plugin-chain/schedule", None)
        .await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn a_chain_entry_for_an_unknown_plugin_is_404() {
    let r = TestRouter::start().await;
    let (status, body) = put_entry(&r, "no-such-plugin", json!({})).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("no-such-plugin"));
}

#[tokio::test]
async fn an_uploaded_plugin_is_deleted_only_once_out_of_the_chain() {
    let r = TestRouter::start().await;
    assert_eq!(r.upload_guest("mine", "test-reroute").await.0, 201);
    r.chain(&["mine"]).await;
    let (status, body) = r.api("DELETE", "/tenants/1/plugins/mine", None).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("chain"), "{body}");
    r.chain(&[]).await;
    let (status, body) = r.api("DELETE", "/tenants/1/plugins/mine", None).await;
    assert_eq!(status, 204, "{body}");
    let (_, view) = r.api("GET", "/tenants/1/plugins", None).await;
    assert!(
        !view["available"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "mine"),
        "{view}"
    );
    // A new upload under the name starts again at version 1.
    let (status, p) = r.upload_guest("mine", "test-reroute").await;
    assert_eq!(status, 201);
    assert_eq!(p["version"], 1);
}

#[tokio::test]
async fn a_built_in_plugin_cannot_be_deleted() {
    let r = TestRouter::start().await;
    let (status, body) = r.api("DELETE", "/tenants/1/plugins/divert", None).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["field"], "name");
}

#[tokio::test]
async fn an_upload_importing_what_the_router_lacks_is_refused_naming_it() {
    let r = TestRouter::start().await;
    let (status, body) = r.upload_guest("foreign", "test-foreign-import").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "wasm");
    assert!(
        body["error"].as_str().unwrap().contains("acme:probe/extra"),
        "{body}"
    );
}

#[tokio::test]
async fn a_bad_plugin_name_is_reported_on_the_name() {
    let r = TestRouter::start().await;
    let (status, body) = r.upload_guest("Bad_Name", "test-reroute").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "name");
}

#[tokio::test]
async fn a_new_version_that_rejects_the_stored_settings_is_refused() {
    let r = TestRouter::start().await;
    assert_eq!(r.upload_guest("guard", "example-blocklist").await.0, 201);
    let (status, body) = r
        .settings("guard", "tenant", json!({"blocked": ["441234567890"]}))
        .await;
    assert_eq!(status, 200, "{body}");
    // The divert guest reads a tenant scope differently and refuses it.
    let (status, body) = r.upload_guest("guard", "divert").await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("stored settings"),
        "{body}"
    );
    let (_, view) = r.api("GET", "/tenants/1/plugins", None).await;
    let guard = view["available"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "guard")
        .unwrap()
        .clone();
    assert_eq!(guard["version"], 1, "the old version stays");
}

#[tokio::test]
async fn a_plugins_faults_are_readable_with_their_reasons() {
    let r = TestRouter::start().await;
    r.upload_guest("bad", "test-trap").await;
    r.chain(&["bad"]).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    alice.call("2002").await;
    assert!(bob.expect_invite(T).await.is_some());
    let (status, faults) = r.api("GET", "/tenants/1/plugins/bad/faults", None).await;
    assert_eq!(status, 200, "{faults}");
    let first = &faults["items"][0];
    assert!(first["at"].as_i64().unwrap() > 0, "{faults}");
    assert!(!first["call_id"].as_str().unwrap().is_empty(), "{faults}");
    assert!(!first["reason"].as_str().unwrap().is_empty(), "{faults}");
}

#[tokio::test]
async fn a_plugins_store_is_readable_and_clearable() {
    let r = TestRouter::start().await;
    r.upload_guest("recorder", "test-failure").await;
    r.chain(&["recorder"]).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    // 2003 is not registered: the failure point records why.
    let call = alice.call("2003").await;
    let resp = alice.final_response(T).await.unwrap();
    alice.ack_failure(&call, &resp).await;
    let (status, kv) = r.api("GET", "/tenants/1/plugins/recorder/kv", None).await;
    assert_eq!(status, 200, "{kv}");
    assert_eq!(kv["items"][0]["key"], "last", "{kv}");
    let (status, _) = r
        .api("DELETE", "/tenants/1/plugins/recorder/kv", None)
        .await;
    assert_eq!(status, 204);
    let (_, kv) = r.api("GET", "/tenants/1/plugins/recorder/kv", None).await;
    assert_eq!(kv["total"], 0, "{kv}");
}

#[tokio::test]
async fn a_method_the_path_lacks_gets_405_in_json_naming_the_allowed_ones() {
    let r = TestRouter::start().await;
    let (status, body) = r.api("PATCH", "/tenants/1/plugin-chain", None).await;
    assert_eq!(status, 405, "{body}");
    assert!(body["error"].as_str().unwrap().contains("PUT"), "{body}");
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_in_json_naming_the_limit() {
    let r = TestRouter::start_with(|c| c.plugins.max_upload_kib = 1024).await;
    let big = vec![0u8; (2 << 20) + 1];
    let (status, body) = r.api("POST", "/tenants/1/plugins/big", Some(big)).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"].as_str().unwrap().contains("bytes"), "{body}");
}

#[tokio::test]
async fn an_unknown_api_path_gets_404_in_json() {
    let r = TestRouter::start().await;
    let (status, body) = r.api("GET", "/no/such/thing", None).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].is_string(), "{body}");
}

/// The reason recorded for the first fault of `guest` on a call.
async fn first_fault_of(guest: &str) -> String {
    let r = TestRouter::start().await;
    first_fault_on(&r, guest).await
}

/// The same, on a router already set up.
async fn first_fault_on(r: &TestRouter, guest: &str) -> String {
    r.upload_guest("bad", guest).await;
    r.chain(&["bad"]).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    alice.call("2002").await;
    assert!(bob.expect_invite(T).await.is_some());
    let (_, faults) = r.api("GET", "/tenants/1/plugins/bad/faults", None).await;
    faults["items"][0]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_plugin_past_its_deadline_is_told_so_in_plain_words() {
    let reason = first_fault_of("test-loop").await;
    // The tests run plugins with a 200 ms deadline.
    assert_eq!(reason, "deadline of 200 ms exceeded");
}

#[tokio::test]
async fn a_plugin_over_its_memory_cap_is_told_so_in_plain_words() {
    let reason = first_fault_of("test-memory-hog").await;
    assert!(
        reason.starts_with("memory cap of 16 MiB exceeded"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_plugin_that_traps_is_told_what_the_trap_means() {
    let reason = first_fault_of("test-trap").await;
    assert!(reason.contains("unreachable"), "{reason}");
}

/// Runs one call through `test-wasi` in `mode`; the plugin's entry of
/// `GET /plugins` and its recent faults.
async fn wasi_guest(mode: &str) -> (serde_json::Value, serde_json::Value) {
    let r = TestRouter::start().await;
    let (status, body) = r.upload_guest("std", "test-wasi").await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = r.settings("std", "tenant", json!(mode)).await;
    assert_eq!(status, 200, "{body}");
    r.chain(&["std"]).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    alice.call("2002").await;
    assert!(bob.expect_invite(T).await.is_some(), "the call goes on");
    let (_, view) = r.api("GET", "/tenants/1/plugins", None).await;
    let entry = view["available"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "std")
        .unwrap()
        .clone();
    let (_, faults) = r.api("GET", "/tenants/1/plugins/std/faults", None).await;
    (entry, faults)
}

#[tokio::test]
async fn a_plugin_may_print_hash_and_read_the_clock_as_std_code_does() {
    let (entry, faults) = wasi_guest("print").await;
    assert_eq!(entry["faults"], 0, "{faults}");
    assert!(entry["calls"].as_u64().unwrap() >= 1, "{entry}");
}

#[tokio::test]
async fn a_plugins_panic_message_is_the_fault_reason() {
    let (_, faults) = wasi_guest("panic").await;
    assert_eq!(
        faults["items"][0]["reason"], "panicked: no route for this call",
        "{faults}"
    );
}

#[tokio::test]
async fn a_plugin_finds_no_files_and_decides_on() {
    // There are no preopened directories: reading a file fails inside the
    // plugin like a missing file, and the call goes on.
    let (entry, faults) = wasi_guest("files").await;
    assert_eq!(entry["faults"], 0, "{faults}");
}

#[tokio::test]
async fn a_deleted_and_uploaded_again_plugin_runs_its_new_code() {
    let r = TestRouter::start().await;
    // Version 1: reroutes every call to 2003.
    assert_eq!(r.upload_guest("swap", "test-reroute").await.0, 201);
    assert_eq!(
        r.settings("swap", "tenant", json!({"to": "2003"})).await.0,
        200
    );
    r.chain(&["swap"]).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let mut carol = r.phone("2003", Proto::Udp).await;
    let first = alice.call("2002").await;
    assert!(
        carol.expect_invite(T).await.is_some(),
        "rerouted by the first upload"
    );
    alice.cancel(&first).await;
    r.chain(&[]).await;
    assert_eq!(
        r.api("DELETE", "/tenants/1/plugins/swap", None).await.0,
        204
    );
    // Version 1 again, other code: it lets calls through.
    let (status, p) = r.upload_guest("swap", "test-continue").await;
    assert_eq!(status, 201, "{p}");
    assert_eq!(p["version"], 1);
    r.chain(&["swap"]).await;
    let mut dave = r.phone("2004", Proto::Udp).await;
    dave.call("2002").await;
    assert!(bob.expect_invite(T).await.is_some(), "the new code decides");
}

#[tokio::test]
async fn a_json_body_over_a_mebibyte_gets_413_in_json() {
    let r = TestRouter::start().await;
    let big = format!("{{\"blocked\": [\"{}\"]}}", "1".repeat((1 << 20) + 10));
    let (status, body) = r
        .api(
            "PUT",
            "/tenants/1/plugins/example-blocklist/settings/tenant",
            Some(big.into_bytes()),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("1048576"),
        "{body}"
    );
}

#[tokio::test]
async fn the_first_entry_of_an_empty_chain_can_be_put_first_and_on() {
    let r = TestRouter::start().await;
    let (status, view) = put_entry(&r, "hotdesk", json!({"enabled": true, "position": 0})).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(names(&view), vec![("hotdesk".into(), true)]);
    let (status, view) = put_entry(&r, "hotdesk", json!({"enabled": true, "position": 0})).await;
    assert_eq!(status, 200, "{view}");
}

/// Sets tenant 1's plugin limits as `token`.
async fn put_limits(
    r: &TestRouter,
    token: &str,
    limits: serde_json::Value,
) -> (u16, serde_json::Value) {
    r.api_as(
        token,
        "PUT",
        "/tenants/1/plugin-limits",
        Some(limits.to_string().into_bytes()),
    )
    .await
}

#[tokio::test]
async fn the_operator_gives_one_tenant_a_shorter_deadline() {
    let r = TestRouter::start().await;
    let (status, body) = put_limits(&r, "test-admin-token", json!({"deadline_ms": 3})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deadline_ms"], 3, "{body}");
    assert_eq!(body["overrides"]["deadline_ms"], 3, "{body}");
    assert_eq!(
        first_fault_on(&r, "test-loop").await,
        "deadline of 3 ms exceeded"
    );
}

#[tokio::test]
async fn the_operator_gives_one_tenant_a_smaller_memory_cap() {
    let r = TestRouter::start().await;
    let (status, body) = put_limits(&r, "test-admin-token", json!({"memory_mib": 2})).await;
    assert_eq!(status, 200, "{body}");
    let reason = first_fault_on(&r, "test-memory-hog").await;
    assert!(
        reason.starts_with("memory cap of 2 MiB exceeded"),
        "{reason}"
    );
}

#[tokio::test]
async fn the_operator_gives_one_tenant_a_smaller_upload_limit() {
    let r = TestRouter::start().await;
    let (status, body) = put_limits(&r, "test-admin-token", json!({"upload_kib": 1})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = r.upload_guest("blocky", "example-blocklist").await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("1024 bytes"),
        "{body}"
    );
}

#[tokio::test]
async fn a_tenant_administrator_reads_the_limits_but_cannot_change_them() {
    let r = TestRouter::start().await;
    r.patch_employee("2001", json!({"role": "administrator"}))
        .await;
    let alice = r.login("2001").await;
    let (status, body) = r
        .api_as(&alice, "GET", "/tenants/1/plugin-limits", None)
        .await;
    assert_eq!(status, 200, "{body}");
    // The tests' routers run plugins with a 200 ms deadline and 16 MiB.
    assert_eq!(body["deadline_ms"], 200, "{body}");
    assert_eq!(body["memory_mib"], 16, "{body}");
    assert_eq!(
        body["overrides"],
        json!({"deadline_ms": null, "memory_mib": null, "upload_kib": null})
    );
    let (status, body) = put_limits(&r, &alice, json!({"deadline_ms": 100})).await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn a_limit_out_of_range_is_refused_naming_it() {
    let r = TestRouter::start().await;
    let (status, body) = put_limits(&r, "test-admin-token", json!({"memory_mib": 65})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "memory_mib", "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("1-64 MiB"),
        "{body}"
    );
    let (status, body) = put_limits(&r, "test-admin-token", json!({"deadline_ms": 0})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "deadline_ms", "{body}");
}

#[tokio::test]
async fn limits_given_as_a_list_are_refused() {
    let r = TestRouter::start().await;
    let (status, body) = put_limits(&r, "test-admin-token", json!([null, null])).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("expected an object"),
        "{body}"
    );
}

#[tokio::test]
async fn an_absent_limit_goes_back_to_the_default() {
    let r = TestRouter::start().await;
    put_limits(&r, "test-admin-token", json!({"deadline_ms": 3})).await;
    let (status, body) = put_limits(&r, "test-admin-token", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deadline_ms"], 200, "{body}");
    assert_eq!(body["overrides"]["deadline_ms"], json!(null), "{body}");
}
