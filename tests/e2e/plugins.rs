use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_e2e::{Proto, TestRouter};

const T: Duration = Duration::from_secs(4);

#[tokio::test]
async fn an_incoming_decision_reroutes_the_call() {
    let r = TestRouter::start().await;
    assert_eq!(r.upload_guest("reroute", "test-reroute").await.0, 201);
    assert_eq!(
        r.settings("reroute", "tenant", json!({"to": "2003"}))
            .await
            .0,
        200
    );
    r.chain(&["reroute"]).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let mut carol = r.phone("2003", Proto::Udp).await;
    alice.call("2002").await;
    assert!(carol.expect_invite(T).await.is_some(), "rerouted to 2003");
    assert!(bob
        .expect_invite(Duration::from_millis(300))
        .await
        .is_none());
}

#[tokio::test]
async fn chain_order_decides_which_plugin_wins() {
    let r = TestRouter::start().await;
    r.upload_guest("reroute", "test-reroute").await;
    r.settings("reroute", "tenant", json!({"to": "2003"})).await;
    let (status, body) = r
        .settings("example-blocklist", "tenant", json!({"blocked": ["2001"]}))
        .await;
    assert_eq!(status, 200, "{body}");
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut carol = r.phone("2003", Proto::Udp).await;

    r.chain(&["example-blocklist", "reroute"]).await;
    let call = alice.call("2002").await;
    let resp = alice.final_response(T).await.unwrap();
    assert_eq!(resp.status(), Some(603), "blocklist first: declined");
    alice.ack_failure(&call, &resp).await;

    r.chain(&["reroute", "example-blocklist"]).await;
    alice.call("2002").await;
    assert!(
        carol.expect_invite(T).await.is_some(),
        "reroute first: it rings 2003"
    );
}

#[tokio::test]
async fn the_failure_point_gets_the_reason_and_what_was_tried() {
    let r = TestRouter::start().await;
    r.upload_guest("failover", "test-failure").await;
    r.settings("failover", "tenant", json!({"to": "2004"}))
        .await;
    r.chain(&["failover"]).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let mut dave = r.phone("2004", Proto::Udp).await;
    alice.call("2002").await;
    let inv = bob.expect_invite(T).await.unwrap();
    bob.respond(&inv, 486, "Busy Here", "b").await;
    let inv = dave
        .expect_invite(T)
        .await
        .expect("diverted on busy to 2004");
    dave.respond(&inv, 200, "OK", "d").await;
    assert!(alice
        .recv_until(T, |m| m.status() == Some(200))
        .await
        .is_some());
    let last = r
        .running
        .router()
        .plugins()
        .state()
        .kv_get(1, "failover", "last")
        .unwrap();
    assert_eq!(last, "busy 2002 tried=2002");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, calls) = r.api("GET", "/tenants/1/calls", None).await;
    let call = &calls["items"][0];
    assert_eq!(call["answered_by"], "2004");
    assert!(
        call["annotations"]
            .as_str()
            .unwrap()
            .contains("diverted: busy"),
        "{call}"
    );
    assert_eq!(call["legs"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn an_unregistered_callee_reaches_the_failure_point_as_unreachable() {
    let r = TestRouter::start().await;
    r.upload_guest("failover", "test-failure").await;
    r.settings("failover", "tenant", json!({"to": "2004"}))
        .await;
    r.chain(&["failover"]).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut dave = r.phone("2004", Proto::Udp).await;
    alice.call("2003").await; // not registered
    assert!(dave.expect_invite(T).await.is_some());
    let last = r
        .running
        .router()
        .plugins()
        .state()
        .kv_get(1, "failover", "last")
        .unwrap();
    assert!(last.starts_with("unreachable 2003"), "{last}");
}

#[tokio::test]
async fn timers_fire_into_the_event_point() {
    let r = TestRouter::start().await;
    r.upload_guest("timer", "test-timer").await;
    r.chain(&["timer"]).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let _bob = r.phone("2002", Proto::Udp).await;
    alice.call("2002").await;
    let state = r.running.router().plugins().state().clone();
    let start = Instant::now();
    while state.kv_get(1, "timer", "fired").is_none() && start.elapsed() < T {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(state.kv_get(1, "timer", "fired").as_deref(), Some("2002"));
}

async fn misbehaving_guest_is_skipped(guest: &str) {
    let r = TestRouter::start().await;
    let (status, body) = r.upload_guest("bad", guest).await;
    assert_eq!(status, 201, "{body}");
    r.chain(&["bad"]).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let mut carol = r.phone("2003", Proto::Udp).await;
    let started = Instant::now();
    alice.call("2002").await;
    let inv = bob
        .expect_invite(T)
        .await
        .expect("the call goes on by the default");
    assert!(started.elapsed() < Duration::from_secs(2));
    bob.respond(&inv, 200, "OK", "b").await;
    assert!(alice
        .recv_until(T, |m| m.status() == Some(200))
        .await
        .is_some());
    // Other calls are served meanwhile.
    let mut dave = r.phone("2004", Proto::Udp).await;
    dave.call("2003").await;
    assert!(carol.expect_invite(T).await.is_some());
    let (_, plugins) = r.api("GET", "/tenants/1/plugins", None).await;
    let bad = plugins["available"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "bad")
        .unwrap()
        .clone();
    assert!(bad["faults"].as_u64().unwrap() >= 2, "{bad}");
}

#[tokio::test]
async fn a_trapping_plugin_is_skipped_and_the_call_completes() {
    misbehaving_guest_is_skipped("test-trap").await;
}

#[tokio::test]
async fn a_looping_plugin_is_stopped_at_its_deadline() {
    misbehaving_guest_is_skipped("test-loop").await;
}

#[tokio::test]
async fn a_memory_hog_is_stopped_at_its_memory_cap() {
    misbehaving_guest_is_skipped("test-memory-hog").await;
}

#[tokio::test]
async fn an_invalid_decision_is_ignored() {
    misbehaving_guest_is_skipped("test-invalid-decision").await;
}

#[tokio::test]
async fn repeated_faults_switch_the_plugin_off_with_the_reason() {
    let r = TestRouter::start().await;
    r.upload_guest("bad", "test-trap").await;
    r.chain(&["bad"]).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    for _ in 0..5 {
        let call = alice.call("2003").await; // unregistered: incoming + failure points
        let resp = alice.final_response(T).await.unwrap();
        alice.ack_failure(&call, &resp).await;
    }
    let (_, plugins) = r.api("GET", "/tenants/1/plugins", None).await;
    let entry = &plugins["chain"][0];
    assert_eq!(entry["enabled"], false, "{plugins}");
    assert!(entry["disabled_reason"]
        .as_str()
        .unwrap()
        .contains("faults"));
}

#[tokio::test]
async fn a_tenant_cannot_use_another_tenants_plugin() {
    let r = TestRouter::start().await;
    let (status, other) = r
        .api(
            "POST",
            "/tenants",
            Some(
                json!({"domain": "other.example", "name": "Other"})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await;
    assert_eq!(status, 201);
    let other_id = other["id"].as_i64().unwrap();
    r.upload_guest("reroute", "test-reroute").await;
    let body = json!({"chain": [{"name": "reroute"}]})
        .to_string()
        .into_bytes();
    let (status, resp) = r
        .api(
            "PUT",
            &format!("/tenants/{other_id}/plugin-chain"),
            Some(body),
        )
        .await;
    assert_eq!(status, 422, "{resp}");
    assert_eq!(resp["field"], "chain");
    let (_, list) = r
        .api("GET", &format!("/tenants/{other_id}/plugins"), None)
        .await;
    assert!(!list["available"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "reroute"));
}

#[tokio::test]
async fn an_upload_that_is_not_a_component_is_refused_naming_why() {
    let r = TestRouter::start().await;
    let (status, body) = r
        .api(
            "POST",
            "/tenants/1/plugins/junk",
            Some(b"not wasm at all".to_vec()),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["field"], "wasm");
    assert!(
        body["error"].as_str().unwrap().contains("component"),
        "{body}"
    );
}

#[tokio::test]
async fn settings_the_plugin_rejects_get_422_naming_the_setting() {
    let r = TestRouter::start().await;
    let (status, body) = r
        .settings(
            "example-blocklist",
            "tenant",
            json!({"blocked": "everyone"}),
        )
        .await;
    assert_eq!(status, 422);
    // The SDK writes serde's error as `path: reason`, reported on that field.
    assert_eq!(body["field"], "blocked", "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("invalid type: string \"everyone\", expected a sequence"),
        "{body}"
    );
}

#[tokio::test]
async fn swapping_the_chain_during_a_ringing_call_does_not_break_it() {
    let r = TestRouter::start().await;
    r.upload_guest("reroute", "test-reroute").await;
    r.settings("reroute", "tenant", json!({"to": "2003"})).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let call = alice.call("2002").await;
    let inv = bob.expect_invite(T).await.unwrap();
    bob.respond(&inv, 180, "Ringing", "b").await;
    r.chain(&["reroute"]).await; // while Bob's phone rings
    bob.respond(&inv, 200, "OK", "b").await;
    let ok = alice
        .recv_until(T, |m| m.status() == Some(200))
        .await
        .expect("the ringing call completes");
    alice.in_dialog(&call, &ok, "ACK", call.cseq).await;
    assert!(bob
        .recv_until(T, |m| m.method() == Some("ACK"))
        .await
        .is_some());
}

#[tokio::test]
async fn registrations_reach_the_event_point() {
    let r = TestRouter::start().await;
    r.upload_guest("timer", "test-timer").await;
    r.chain(&["timer"]).await;
    // test-timer only records timers; the event point must at least be
    // called without faults for registrations.
    let _alice = r.phone("2001", Proto::Udp).await;
    let (_, plugins) = r.api("GET", "/tenants/1/plugins", None).await;
    let timer = plugins["available"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "timer")
        .unwrap()
        .clone();
    assert_eq!(timer["calls"], 1, "one registered event: {timer}");
    assert_eq!(timer["faults"], 0);
}

#[tokio::test]
async fn a_bound_device_rings_for_its_user_and_calls_as_them() {
    let r = TestRouter::start().await;
    let body = json!({"username": "5401", "password": "pw-5401-secret"})
        .to_string()
        .into_bytes();
    assert_eq!(r.api("POST", "/tenants/1/devices", Some(body)).await.0, 201);
    r.upload_guest("bind", "test-bind").await;
    r.chain(&["bind"]).await;
    let mut desk = r.phone("5401", Proto::Udp).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let login = desk.call("*88*2003").await;
    let resp = desk.final_response(T).await.unwrap();
    assert_eq!(resp.status(), Some(200), "{}", resp.raw);
    desk.ack_failure(&login, &resp).await;
    alice.call("2003").await;
    let inv = desk
        .expect_invite(T)
        .await
        .expect("Carol's call rings the desk she is logged in at");
    desk.respond(&inv, 486, "Busy Here", "x").await;
    let resp = alice.final_response(T).await.unwrap();
    assert_eq!(resp.status(), Some(486));
    desk.call("2001").await;
    let inv = alice.expect_invite(T).await.unwrap();
    assert!(
        inv.header("From").unwrap().contains("sip:2003@"),
        "{}",
        inv.raw
    );
    assert!(inv.header("P-Asserted-Identity").unwrap().contains("2003"));
}

#[tokio::test]
async fn a_core_module_is_refused_as_not_a_component() {
    let r = TestRouter::start().await;
    // `(module)`: valid WebAssembly, but a core module.
    let module = b"\0asm\x01\0\0\0".to_vec();
    let (status, body) = r.api("POST", "/tenants/1/plugins/core", Some(module)).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("component"),
        "{body}"
    );
}

#[tokio::test]
async fn a_component_of_another_world_is_refused_naming_ours() {
    let r = TestRouter::start().await;
    // `(component)`: a valid component that exports nothing.
    let empty = b"\0asm\x0d\0\x01\0".to_vec();
    let (status, body) = r.api("POST", "/tenants/1/plugins/empty", Some(empty)).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("switchboard:plugin"),
        "{body}"
    );
}

#[tokio::test]
async fn an_upload_over_the_size_limit_gets_413() {
    let r = TestRouter::start_with(|c| c.plugins.max_upload_kib = 4096).await;
    let big = vec![0u8; (4 << 20) + 1];
    let (status, body) = r.api("POST", "/tenants/1/plugins/big", Some(big)).await;
    assert_eq!(status, 413, "{body}");
}

#[tokio::test]
async fn a_built_in_plugins_name_cannot_be_taken() {
    let r = TestRouter::start().await;
    let (status, body) = r.upload_guest("divert", "test-reroute").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["field"], "name");
}

#[tokio::test]
async fn a_disabled_plugin_is_skipped_from_the_next_call() {
    let r = TestRouter::start().await;
    r.upload_guest("reroute", "test-reroute").await;
    r.settings("reroute", "tenant", json!({"to": "2003"})).await;
    let body = json!({"chain": [{"name": "reroute", "enabled": false}]});
    let (status, _) = r
        .api(
            "PUT",
            "/tenants/1/plugin-chain",
            Some(body.to_string().into_bytes()),
        )
        .await;
    assert_eq!(status, 200);
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    alice.call("2002").await;
    assert!(bob.expect_invite(T).await.is_some(), "not rerouted");
}

#[tokio::test]
async fn a_new_version_of_a_plugin_decides_the_next_call() {
    let r = TestRouter::start().await;
    r.upload_guest("mine", "test-continue").await;
    r.chain(&["mine"]).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let mut carol = r.phone("2003", Proto::Udp).await;
    let call = alice.call("2002").await;
    let inv = bob.expect_invite(T).await.expect("version 1 lets it ring");
    bob.respond(&inv, 486, "Busy Here", "b").await;
    let busy = alice.final_response(T).await.unwrap();
    alice.ack_failure(&call, &busy).await;
    let (status, v2) = r.upload_guest("mine", "test-reroute").await;
    assert_eq!(status, 201);
    assert_eq!(v2["version"], 2);
    r.settings("mine", "tenant", json!({"to": "2003"})).await;
    alice.call("2002").await;
    assert!(carol.expect_invite(T).await.is_some(), "version 2 reroutes");
}

#[tokio::test]
async fn concurrent_uploads_to_one_plugin_name_never_answer_500() {
    let r = std::sync::Arc::new(TestRouter::start().await);
    let mut tasks = Vec::new();
    for guest in ["test-continue", "test-reroute", "test-failure", "test-trap"] {
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            r.upload_guest("racer", guest).await.0
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert!(statuses.contains(&201), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| [201, 409, 429].contains(s)),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_plugin_built_against_the_frozen_0_2_0_contract_still_decides_calls() {
    let r = TestRouter::start().await;
    let (status, body) = r.upload_guest("old", "test-contract-0-2").await;
    assert_eq!(status, 201, "{body}");
    r.chain(&["old"]).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let call = alice.call("2002").await;
    let resp = alice.final_response(T).await.unwrap();
    assert_eq!(resp.status(), Some(486), "the 0.2.0 plugin's reject");
    let reason = resp.reason();
    assert!(
        reason.starts_with("Old Contract ") && reason != "Old Contract nobody",
        "its host call (find-employee) was served: {reason}"
    );
    alice.ack_failure(&call, &resp).await;
}
