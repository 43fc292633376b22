//! The hunt-status default plugin (seed 004's status on no answer), over
//! real SIP.

use std::time::Duration;

use serde_json::json;
use switchboard_e2e::{Phone, Proto, TestRouter};

const T: Duration = Duration::from_secs(8);
const SHORT: Duration = Duration::from_millis(400);

/// Groups 2110 and 2111 (ring all, 5 s ring: the shortest allowed) with 2003
/// and 2004; 2003 has a PIN and forced login and the given setting.
async fn router(applies_to: &str, on_no_answer: &str) -> TestRouter {
    router_with(applies_to, on_no_answer, |_| {}).await
}

async fn router_with(
    applies_to: &str,
    on_no_answer: &str,
    tweak: impl FnOnce(&mut switchboard::config::Config),
) -> TestRouter {
    let r = TestRouter::start_with(tweak).await;
    let members = json!([r.employee_id("2003"), r.employee_id("2004")]);
    for ext in ["2110", "2111"] {
        let body = json!({
            "extension": ext, "name": format!("Queue {ext}"), "strategy": "ring_all",
            "member_ring_secs": 5, "total_ring_secs": 5,
            "no_answer_applies_to": applies_to, "members": members,
        });
        let (status, resp) = r
            .api(
                "POST",
                "/tenants/1/hunt-groups",
                Some(body.to_string().into_bytes()),
            )
            .await;
        assert_eq!(status, 201, "{resp}");
    }
    r.patch_employee(
        "2003",
        json!({"voicemail_pin": "1234", "forced_login": true}),
    )
    .await;
    let (status, resp) = r
        .settings(
            "hunt-status",
            "employee:2003",
            json!({"status_on_no_answer": on_no_answer}),
        )
        .await;
    assert_eq!(status, 200, "{resp}");
    r.chain(&["hunt-status"]).await;
    r
}

/// 2003 lets a call to `group` ring out (2004 is not registered).
async fn miss_a_group_call(caller: &mut Phone, carol: &mut Phone, group: &str) {
    let call = caller.call(group).await;
    let inv = carol.expect_invite(T).await.expect("2003 rings");
    carol.respond(&inv, 180, "Ringing", "c1").await;
    let end = caller.final_response(T).await.unwrap();
    assert_eq!(end.status(), Some(480), "nobody answered: {}", end.raw);
    caller.ack_failure(&call, &end).await;
    // The 487 for the cancelled branch.
    let _ = carol.recv(SHORT).await;
}

async fn presence(r: &TestRouter, ext: &str) -> serde_json::Value {
    assert!(r.running.router().plugins().state().flush().await);
    let (status, body) = r
        .api("GET", &format!("/tenants/1/presence/{ext}"), None)
        .await;
    assert_eq!(status, 200);
    body
}

fn membership(p: &serde_json::Value, group: &str) -> bool {
    p["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["group"] == group)
        .unwrap()["enabled"]
        .as_bool()
        .unwrap()
}

/// The plugin's changes go through the state writer; wait until they are in.
async fn settle(r: &TestRouter) {
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(r.running.router().plugins().state().flush().await);
}

#[tokio::test]
async fn busy_wrap_up_disables_only_the_group_whose_call_was_missed() {
    let r = router("any_calls", "busy_wrap_up").await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut carol = r.phone("2003", Proto::Udp).await;
    miss_a_group_call(&mut alice, &mut carol, "2110").await;
    settle(&r).await;
    let p = presence(&r, "2003").await;
    assert!(!membership(&p, "2110"), "{p}");
    assert!(membership(&p, "2111"), "{p}");
    assert_eq!(p["status"], "available");
    // Other groups and personal calls still ring them.
    let call = alice.call("2111").await;
    let inv = carol.expect_invite(T).await.expect("2111 still rings 2003");
    carol.respond(&inv, 486, "Busy Here", "c2").await;
    let busy = alice.final_response(T).await.unwrap();
    alice.ack_failure(&call, &busy).await;
    alice.call("2110").await;
    assert!(
        carol.expect_invite(SHORT).await.is_none(),
        "2110 skips 2003"
    );
}

#[tokio::test]
async fn busy_wrap_up_stays_until_restored_over_http() {
    let r = router("any_calls", "busy_wrap_up").await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut carol = r.phone("2003", Proto::Udp).await;
    miss_a_group_call(&mut alice, &mut carol, "2110").await;
    settle(&r).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!membership(&presence(&r, "2003").await, "2110"), "no timer");
    let (status, body) = r
        .api(
            "PUT",
            "/tenants/1/presence/2003/memberships/2110",
            Some(json!({"enabled": true}).to_string().into_bytes()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(membership(&body, "2110"));
    alice.call("2110").await;
    assert!(
        carol.expect_invite(T).await.is_some(),
        "2110 rings 2003 again"
    );
    let (_, changes) = r.api("GET", "/tenants/1/presence/2003/changes", None).await;
    let items = changes["items"].as_array().unwrap();
    assert_eq!(items[0]["what"], "membership of 2110 enabled");
    assert_eq!(items[0]["cause"], "http: operator");
    assert_eq!(items[1]["what"], "membership of 2110 disabled");
    assert!(
        items[1]["cause"].as_str().unwrap().contains("busy wrap-up"),
        "{changes}"
    );
}

#[tokio::test]
async fn busy_not_available_blocks_every_call() {
    let r = router("any_calls", "busy_not_available").await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut carol = r.phone("2003", Proto::Udp).await;
    miss_a_group_call(&mut alice, &mut carol, "2110").await;
    settle(&r).await;
    assert_eq!(presence(&r, "2003").await["status"], "dnd");
    let call = alice.call("2003").await;
    assert!(carol.expect_invite(SHORT).await.is_none());
    let busy = alice.final_response(T).await.unwrap();
    assert_eq!(busy.status(), Some(486));
    alice.ack_failure(&call, &busy).await;
    alice.call("2111").await;
    assert!(carol.expect_invite(SHORT).await.is_none(), "no group calls");
}

#[tokio::test]
async fn logged_off_makes_personal_calls_busy_and_outgoing_calls_refused() {
    let r = router("any_calls", "logged_off").await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut carol = r.phone("2003", Proto::Udp).await;
    miss_a_group_call(&mut alice, &mut carol, "2110").await;
    settle(&r).await;
    assert_eq!(presence(&r, "2003").await["status"], "logged_out");
    alice.call("2003").await;
    assert_eq!(alice.final_response(T).await.unwrap().status(), Some(486));
    carol.call("2001").await;
    let resp = carol.final_response(T).await.unwrap();
    assert_eq!(resp.status(), Some(403));
    assert_eq!(resp.reason(), "Logged Off");
}

#[tokio::test]
async fn star90_makes_the_member_available_and_back_in_their_groups() {
    let r = router("any_calls", "busy_wrap_up").await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut carol = r.phone("2003", Proto::Udp).await;
    miss_a_group_call(&mut alice, &mut carol, "2110").await;
    settle(&r).await;
    let resp = carol.feature("*90").await;
    assert_eq!(resp.status(), Some(200), "{}", resp.raw);
    settle(&r).await;
    let p = presence(&r, "2003").await;
    assert!(membership(&p, "2110"), "{p}");
    assert_eq!(p["status"], "available");
}

#[tokio::test]
async fn star90_works_for_a_logged_off_member() {
    let r = router("any_calls", "logged_off").await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut carol = r.phone("2003", Proto::Udp).await;
    miss_a_group_call(&mut alice, &mut carol, "2110").await;
    settle(&r).await;
    assert_eq!(carol.feature("*90").await.status(), Some(200));
    settle(&r).await;
    assert_eq!(presence(&r, "2003").await["status"], "available");
}

#[tokio::test]
async fn external_only_groups_ignore_missed_internal_calls() {
    let r = router("external_incoming", "busy_wrap_up").await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut carol = r.phone("2003", Proto::Udp).await;
    miss_a_group_call(&mut alice, &mut carol, "2110").await;
    settle(&r).await;
    assert!(membership(&presence(&r, "2003").await, "2110"));
}

#[tokio::test]
async fn external_only_groups_count_missed_calls_from_outside() {
    let r = router_with("external_incoming", "busy_wrap_up", |c| {
        c.sip.trusted = vec!["127.0.0.1/32".into()];
    })
    .await;
    let mut carol = r.phone("2003", Proto::Udp).await;
    // A caller from outside (a trunk on a trusted address).
    let mut outside = Phone::new(r.sip(), "441234567890", "unused", Proto::Udp).await;
    outside.invite_unauthenticated("2110").await;
    let inv = carol.expect_invite(T).await.expect("2003 rings");
    carol.respond(&inv, 180, "Ringing", "c1").await;
    assert_eq!(outside.final_response(T).await.unwrap().status(), Some(480));
    settle(&r).await;
    assert!(!membership(&presence(&r, "2003").await, "2110"));
}

#[tokio::test]
async fn a_member_without_forced_login_keeps_their_status() {
    let r = router("any_calls", "logged_off").await;
    r.patch_employee("2003", json!({"forced_login": false}))
        .await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut carol = r.phone("2003", Proto::Udp).await;
    miss_a_group_call(&mut alice, &mut carol, "2110").await;
    settle(&r).await;
    assert_eq!(presence(&r, "2003").await["status"], "available");
}

#[tokio::test]
async fn a_member_whose_phone_rang_while_another_answered_did_not_miss_the_call() {
    let r = router("any_calls", "logged_off").await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut carol = r.phone("2003", Proto::Udp).await;
    let mut dave = r.phone("2004", Proto::Udp).await;
    alice.call("2110").await;
    let inv_c = carol.expect_invite(T).await.unwrap();
    carol.respond(&inv_c, 180, "Ringing", "c1").await;
    let inv_d = dave.expect_invite(T).await.unwrap();
    dave.respond(&inv_d, 200, "OK", "d1").await;
    assert_eq!(alice.final_response(T).await.unwrap().status(), Some(200));
    settle(&r).await;
    assert_eq!(presence(&r, "2003").await["status"], "available");
}

#[tokio::test]
async fn an_unknown_status_on_no_answer_is_refused_naming_the_field() {
    let r = router("any_calls", "logged_in").await;
    let (status, body) = r
        .settings(
            "hunt-status",
            "employee:2003",
            json!({"status_on_no_answer": "away"}),
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("status_on_no_answer"),
        "{body}"
    );
}
