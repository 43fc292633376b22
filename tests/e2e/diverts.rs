//! The divert default plugin (seed 001), over real SIP. A test phone on its
//! own port stands in for the trunk and another for the voicemail server.

use std::time::Duration;

use serde_json::json;
use switchboard_e2e::{Msg, Phone, Proto, TestRouter};

const T: Duration = Duration::from_secs(4);
const SHORT: Duration = Duration::from_millis(400);
/// The shortest no-answer ring time the plugin accepts is 5 s.
const AFTER_RING: Duration = Duration::from_secs(8);
const MOBILE: &str = "441234567890";

struct Setup {
    r: TestRouter,
    trunk: Phone,
    voicemail: Phone,
}

/// Divert plugin on; 2002's mobile is MOBILE; a trunk and a voicemail
/// server listen on their own ports.
async fn setup() -> Setup {
    let r = TestRouter::start().await;
    let trunk = Phone::new(r.sip(), "trunk", "unused", Proto::Udp).await;
    let voicemail = Phone::new(r.sip(), "vm", "unused", Proto::Udp).await;
    r.patch_tenant(json!({
        "trunk_uri": format!("sip:{}", trunk.local),
        "voicemail_uri": format!("sip:{}", voicemail.local),
    }))
    .await;
    r.patch_employee("2002", json!({"mobile": MOBILE})).await;
    r.chain(&["divert"]).await;
    Setup {
        r,
        trunk,
        voicemail,
    }
}

async fn diverts(r: &TestRouter, ext: &str, settings: serde_json::Value) {
    let (status, body) = r
        .settings("divert", &format!("employee:{ext}"), settings)
        .await;
    assert_eq!(status, 200, "{body}");
}

fn diversion(inv: &Msg) -> String {
    inv.headers_all("Diversion").collect::<Vec<_>>().join(", ")
}

#[tokio::test]
async fn forward_always_to_an_extension_rings_only_the_target() {
    let s = setup().await;
    diverts(&s.r, "2002", json!({"always": {"extension": "2004"}})).await;
    let mut alice = s.r.phone("2001", Proto::Udp).await;
    let mut bob = s.r.phone("2002", Proto::Udp).await;
    let mut dave = s.r.phone("2004", Proto::Udp).await;
    alice.call("2002").await;
    let inv = dave.expect_invite(T).await.expect("diverted to 2004");
    let d = diversion(&inv);
    assert!(
        d.contains("sip:2002@") && d.contains("reason=unconditional"),
        "{d}"
    );
    assert!(
        bob.expect_invite(SHORT).await.is_none(),
        "nothing rings at 2002"
    );
}

#[tokio::test]
async fn forward_always_to_a_number_goes_out_through_the_trunk() {
    let mut s = setup().await;
    diverts(&s.r, "2002", json!({"always": {"number": MOBILE}})).await;
    let mut alice = s.r.phone("2001", Proto::Udp).await;
    alice.call("2002").await;
    let inv = s.trunk.expect_invite(T).await.expect("the trunk gets it");
    assert!(
        inv.first.starts_with(&format!("INVITE sip:{MOBILE}@")),
        "{}",
        inv.first
    );
    assert!(diversion(&inv).contains("reason=unconditional"));
}

#[tokio::test]
async fn forward_always_to_voicemail_names_the_diverting_extension() {
    let mut s = setup().await;
    diverts(&s.r, "2002", json!({"always": "voicemail"})).await;
    let mut alice = s.r.phone("2001", Proto::Udp).await;
    alice.call("2002").await;
    let inv = s
        .voicemail
        .expect_invite(T)
        .await
        .expect("voicemail answers");
    assert!(
        inv.first.starts_with("INVITE sip:2002@"),
        "mailbox of 2002: {}",
        inv.first
    );
    assert!(diversion(&inv).contains("sip:2002@"));
}

#[tokio::test]
async fn no_answer_divert_to_an_extension_after_the_ring_time() {
    let s = setup().await;
    diverts(
        &s.r,
        "2002",
        json!({"no_answer": {"extension": "2004"}, "no_answer_ring_s": 5}),
    )
    .await;
    let mut alice = s.r.phone("2001", Proto::Udp).await;
    let mut bob = s.r.phone("2002", Proto::Udp).await;
    let mut dave = s.r.phone("2004", Proto::Udp).await;
    alice.call("2002").await;
    let inv = bob.expect_invite(T).await.expect("2002 rings first");
    bob.respond(&inv, 180, "Ringing", "b").await;
    assert!(
        dave.expect_invite(Duration::from_secs(3)).await.is_none(),
        "not before 5 s"
    );
    let inv = dave.expect_invite(AFTER_RING).await.expect("then 2004");
    assert!(diversion(&inv).contains("reason=no-answer"));
}

#[tokio::test]
async fn no_answer_divert_to_a_number_after_the_ring_time() {
    let mut s = setup().await;
    diverts(
        &s.r,
        "2002",
        json!({"no_answer": {"number": MOBILE}, "no_answer_ring_s": 5}),
    )
    .await;
    let mut alice = s.r.phone("2001", Proto::Udp).await;
    let mut bob = s.r.phone("2002", Proto::Udp).await;
    alice.call("2002").await;
    let inv = bob.expect_invite(T).await.unwrap();
    bob.respond(&inv, 180, "Ringing", "b").await;
    let inv = s
        .trunk
        .expect_invite(AFTER_RING)
        .await
        .expect("then the mobile");
    assert!(diversion(&inv).contains("reason=no-answer"));
}

#[tokio::test]
async fn busy_divert_to_an_extension_when_the_phone_answers_busy() {
    let s = setup().await;
    diverts(&s.r, "2002", json!({"busy": {"extension": "2004"}})).await;
    let mut alice = s.r.phone("2001", Proto::Udp).await;
    let mut bob = s.r.phone("2002", Proto::Udp).await;
    let mut dave = s.r.phone("2004", Proto::Udp).await;
    alice.call("2002").await;
    let inv = bob.expect_invite(T).await.unwrap();
    bob.respond(&inv, 486, "Busy Here", "b").await;
    let inv = dave.expect_invite(T).await.expect("diverted on busy");
    assert!(diversion(&inv).contains("reason=user-busy"));
    dave.respond(&inv, 200, "OK", "d").await;
    assert!(alice
        .recv_until(T, |m| m.status() == Some(200))
        .await
        .is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, calls) = s.r.api("GET", "/tenants/1/calls", None).await;
    let call = &calls["items"][0];
    assert!(
        call["annotations"]
            .as_str()
            .unwrap()
            .contains("diverted: busy"),
        "{call}"
    );
    assert_eq!(call["answered_by"], "2004");
}

#[tokio::test]
async fn busy_divert_to_a_number() {
    let mut s = setup().await;
    diverts(&s.r, "2002", json!({"busy": {"number": MOBILE}})).await;
    let mut alice = s.r.phone("2001", Proto::Udp).await;
    let mut bob = s.r.phone("2002", Proto::Udp).await;
    alice.call("2002").await;
    let inv = bob.expect_invite(T).await.unwrap();
    bob.respond(&inv, 486, "Busy Here", "b").await;
    assert!(s.trunk.expect_invite(T).await.is_some());
}

#[tokio::test]
async fn unreachable_divert_to_an_extension_when_nothing_is_registered() {
    let s = setup().await;
    diverts(&s.r, "2002", json!({"unreachable": {"extension": "2004"}})).await;
    let mut alice = s.r.phone("2001", Proto::Udp).await;
    let mut dave = s.r.phone("2004", Proto::Udp).await;
    alice.call("2002").await; // 2002 is not registered
    let inv = dave.expect_invite(T).await.expect("diverted: unreachable");
    assert!(diversion(&inv).contains("reason=unavailable"));
}

#[tokio::test]
async fn unreachable_divert_to_a_number() {
    let mut s = setup().await;
    diverts(&s.r, "2002", json!({"unreachable": {"number": MOBILE}})).await;
    let mut alice = s.r.phone("2001", Proto::Udp).await;
    alice.call("2002").await;
    assert!(s.trunk.expect_invite(T).await.is_some());
}

#[tokio::test]
async fn unreachable_divert_to_voicemail() {
    let mut s = setup().await;
    diverts(&s.r, "2002", json!({"unreachable": "voicemail"})).await;
    let mut alice = s.r.phone("2001", Proto::Udp).await;
    alice.call("2002").await;
    let inv = s.voicemail.expect_invite(T).await.unwrap();
    assert!(inv.first.starts_with("INVITE sip:2002@"));
}

#[tokio::test]
async fn a_logged_off_callee_is_busy_so_the_busy_divert_applies() {
    let s = setup().await;
    diverts(
        &s.r,
        "2002",
        json!({"busy": {"extension": "2004"}, "unreachable": "voicemail"}),
    )
    .await;
    let (status, _) =
        s.r.api(
            "PUT",
            "/tenants/1/presence/2002/status",
            Some(json!({"status": "logged_out"}).to_string().into_bytes()),
        )
        .await;
    assert_eq!(status, 200);
    let mut alice = s.r.phone("2001", Proto::Udp).await;
    let _bob = s.r.phone("2002", Proto::Udp).await;
    let mut dave = s.r.phone("2004", Proto::Udp).await;
    alice.call("2002").await;
    let inv = dave
        .expect_invite(T)
        .await
        .expect("busy divert, not voicemail");
    assert!(diversion(&inv).contains("reason=user-busy"));
}

#[tokio::test]
async fn a_forward_always_loop_ends_at_the_last_new_target() {
    let s = setup().await;
    diverts(&s.r, "2002", json!({"always": {"extension": "2004"}})).await;
    diverts(&s.r, "2004", json!({"always": {"extension": "2002"}})).await;
    let mut alice = s.r.phone("2001", Proto::Udp).await;
    let mut bob = s.r.phone("2002", Proto::Udp).await;
    let mut dave = s.r.phone("2004", Proto::Udp).await;
    alice.call("2002").await;
    assert!(
        dave.expect_invite(T).await.is_some(),
        "2002 -> 2004, not back"
    );
    assert!(bob.expect_invite(SHORT).await.is_none());
}

#[tokio::test]
async fn a_busy_loop_ends_with_busy_for_the_caller() {
    let s = setup().await;
    diverts(&s.r, "2002", json!({"busy": {"extension": "2004"}})).await;
    diverts(&s.r, "2004", json!({"busy": {"extension": "2002"}})).await;
    let mut alice = s.r.phone("2001", Proto::Udp).await;
    let mut bob = s.r.phone("2002", Proto::Udp).await;
    let mut dave = s.r.phone("2004", Proto::Udp).await;
    alice.call("2002").await;
    let inv = bob.expect_invite(T).await.unwrap();
    bob.respond(&inv, 486, "Busy Here", "b").await;
    let inv = dave.expect_invite(T).await.unwrap();
    dave.respond(&inv, 486, "Busy Here", "d").await;
    assert_eq!(alice.final_response(T).await.unwrap().status(), Some(486));
    assert!(bob.expect_invite(SHORT).await.is_none(), "not back to 2002");
}

#[tokio::test]
async fn a_number_that_is_not_international_digits_is_refused_naming_the_field() {
    let s = setup().await;
    let (status, body) =
        s.r.settings(
            "divert",
            "employee:2002",
            json!({"busy": {"number": "01234 567"}}),
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        body["error"].as_str().unwrap().starts_with("busy.number"),
        "{body}"
    );
}

#[tokio::test]
async fn a_divert_to_a_number_no_tenant_prefix_allows_is_refused() {
    let s = setup().await;
    let (status, body) =
        s.r.settings(
            "divert",
            "employee:2002",
            json!({"always": {"number": "15551234567"}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"].as_str().unwrap().starts_with("always.number")
            && body["error"].as_str().unwrap().contains("number_prefixes"),
        "{body}"
    );
}

#[tokio::test]
async fn an_administrator_may_divert_a_user_to_a_number_the_tenant_allows() {
    let mut s = setup().await;
    let (status, body) =
        s.r.settings("divert", "tenant", json!({"number_prefixes": ["1555"]}))
            .await;
    assert_eq!(status, 200, "{body}");
    // 2002 has the User role; the operator sets it, as an administrator would.
    diverts(&s.r, "2002", json!({"always": {"number": "15551234567"}})).await;
    let mut alice = s.r.phone("2001", Proto::Udp).await;
    alice.call("2002").await;
    let inv = s.trunk.expect_invite(T).await.expect("the trunk gets it");
    assert!(
        inv.first.starts_with("INVITE sip:15551234567@"),
        "{}",
        inv.first
    );
}

#[tokio::test]
async fn a_prefix_list_that_is_not_digits_is_refused_naming_the_setting() {
    let s = setup().await;
    let (status, body) =
        s.r.settings("divert", "tenant", json!({"number_prefixes": ["+44"]}))
            .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("number_prefixes"),
        "{body}"
    );
}

#[tokio::test]
async fn a_diverted_call_carries_history_info_beside_diversion() {
    let s = setup().await;
    diverts(&s.r, "2002", json!({"always": {"extension": "2004"}})).await;
    let mut alice = s.r.phone("2001", Proto::Udp).await;
    let mut dave = s.r.phone("2004", Proto::Udp).await;
    alice.call("2002").await;
    let inv = dave.expect_invite(T).await.expect("diverted to 2004");
    let h: Vec<&str> = inv.headers_all("History-Info").collect();
    assert_eq!(h.len(), 2, "{}", inv.raw);
    assert!(
        h[0].starts_with("<sip:2002@") && h[0].ends_with(";index=1"),
        "{h:?}"
    );
    assert!(
        h[1].starts_with("<sip:2004@")
            && h[1].contains(";cause=302>")
            && h[1].ends_with(";index=1.1;mp=1"),
        "{h:?}"
    );
}
