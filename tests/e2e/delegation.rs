//! The delegation default plugin (seed 003), over real SIP. Boss 2002,
//! delegates 2005 and 2006 (2003 and 2004 are hunt group members, who can
//! neither delegate nor be delegates).

use std::time::Duration;

use serde_json::json;
use switchboard_e2e::{Msg, Proto, TestRouter, DOMAIN};

const T: Duration = Duration::from_secs(4);
const SHORT: Duration = Duration::from_millis(400);

async fn setup(settings: serde_json::Value) -> TestRouter {
    let r = TestRouter::start().await;
    for ext in ["2005", "2006", "2007", "2008", "2009"] {
        r.add_employee(ext, json!({})).await;
    }
    r.chain(&["delegation", "divert"]).await;
    let (status, body) = r.settings("delegation", "employee:2002", settings).await;
    assert_eq!(status, 200, "{body}");
    r
}

fn ring_all() -> serde_json::Value {
    json!({"delegates": ["2005", "2006"], "mode": "ring_all", "total_ring_s": 5})
}

fn diversion(inv: &Msg) -> String {
    inv.headers_all("Diversion").collect::<Vec<_>>().join(", ")
}

#[tokio::test]
async fn ring_all_rings_every_delegate_with_the_callers_id_and_the_boss() {
    let r = setup(ring_all()).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let mut s1 = r.phone("2005", Proto::Udp).await;
    let mut s2 = r.phone("2006", Proto::Udp).await;
    alice.call("2002").await;
    for s in [&mut s1, &mut s2] {
        let inv = s.expect_invite(T).await.expect("every delegate rings");
        let from = inv.header("From").unwrap();
        assert!(from.contains("sip:2001@"), "the caller's ID: {from}");
        assert!(from.contains("for User 2002"), "which boss: {from}");
        assert!(diversion(&inv).contains("sip:2002@"), "{}", inv.raw);
    }
    assert!(
        bob.expect_invite(SHORT).await.is_none(),
        "the boss does not ring"
    );
}

#[tokio::test]
async fn sequential_rings_delegates_in_order_from_the_first_on_every_call() {
    let r =
        setup(json!({"delegates": ["2005", "2006"], "mode": "sequential", "per_user_ring_s": 5}))
            .await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut s1 = r.phone("2005", Proto::Udp).await;
    let mut s2 = r.phone("2006", Proto::Udp).await;
    for round in 0..2 {
        let call = alice.call("2002").await;
        let inv = s1.expect_invite(T).await.expect("the first delegate first");
        assert!(
            s2.expect_invite(SHORT).await.is_none(),
            "round {round}: one at a time"
        );
        s1.respond(&inv, 486, "Busy Here", "s1").await;
        let inv2 = s2.expect_invite(T).await.expect("then the second");
        s2.respond(&inv2, 486, "Busy Here", "s2").await;
        let end = alice.final_response(T).await.unwrap();
        alice.ack_failure(&call, &end).await;
    }
}

#[tokio::test]
async fn a_call_no_delegate_answers_is_dropped_without_the_bosss_diverts() {
    let r = setup(ring_all()).await;
    let (status, _) = r
        .settings(
            "divert",
            "employee:2002",
            json!({"no_answer": {"extension": "2001"}, "busy": {"extension": "2001"},
                   "unreachable": {"extension": "2001"}}),
        )
        .await;
    assert_eq!(status, 200);
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut carol = r.phone("2003", Proto::Udp).await;
    let mut s1 = r.phone("2005", Proto::Udp).await;
    carol.call("2002").await;
    let inv = s1.expect_invite(T).await.unwrap();
    s1.respond(&inv, 180, "Ringing", "s1").await;
    let end = carol.final_response(Duration::from_secs(8)).await.unwrap();
    assert_eq!(end.status(), Some(480), "dropped after the total ring time");
    assert!(
        alice.expect_invite(SHORT).await.is_none(),
        "no divert of the boss"
    );
}

#[tokio::test]
async fn call_history_marks_the_call_delegated_and_answered_by_the_secretary() {
    let r = setup(ring_all()).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut s1 = r.phone("2005", Proto::Udp).await;
    let _s2 = r.phone("2006", Proto::Udp).await;
    alice.call("2002").await;
    let inv = s1.expect_invite(T).await.unwrap();
    s1.respond(&inv, 200, "OK", "s1").await;
    assert!(alice
        .recv_until(T, |m| m.status() == Some(200))
        .await
        .is_some());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, calls) = r.api("GET", "/tenants/1/calls?extension=2005", None).await;
    let call = &calls["items"][0];
    assert_eq!(call["callee"], "2002");
    assert_eq!(call["answered_by"], "2005");
    assert!(
        call["annotations"].as_str().unwrap().contains("delegated"),
        "{call}"
    );
}

#[tokio::test]
async fn a_sixth_delegate_is_refused() {
    let r = setup(ring_all()).await;
    let six = json!({"delegates": ["2001", "2005", "2006", "2007", "2008", "2009"]});
    let (status, body) = r.settings("delegation", "employee:2002", six).await;
    assert_eq!(status, 422);
    assert!(
        body["error"].as_str().unwrap().contains("at most 5"),
        "{body}"
    );
}

#[tokio::test]
async fn a_hunt_group_member_can_be_neither_delegate_nor_boss() {
    let r = setup(ring_all()).await;
    let (status, body) = r
        .settings(
            "delegation",
            "employee:2002",
            json!({"delegates": ["2003"]}),
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        body["error"].as_str().unwrap().contains("hunt group"),
        "{body}"
    );
    let (status, _) = r
        .settings(
            "delegation",
            "employee:2003",
            json!({"delegates": ["2007"]}),
        )
        .await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn a_delegate_cannot_have_delegates() {
    let r = setup(ring_all()).await;
    let (status, body) = r
        .settings(
            "delegation",
            "employee:2005",
            json!({"delegates": ["2007"]}),
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        body["error"].as_str().unwrap().contains("delegate of 2002"),
        "{body}"
    );
    // Nor can someone with delegates become one.
    r.settings(
        "delegation",
        "employee:2007",
        json!({"delegates": ["2008"]}),
    )
    .await;
    let (status, _) = r
        .settings(
            "delegation",
            "employee:2002",
            json!({"delegates": ["2007"]}),
        )
        .await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn the_secretary_calls_out_with_the_bosss_caller_id() {
    let r = setup(ring_all()).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut s1 = r.phone("2005", Proto::Udp).await;
    s1.call("*472001").await;
    let inv = alice.expect_invite(T).await.expect("the callee rings");
    let from = inv.header("From").unwrap();
    assert!(
        from.contains("sip:2002@") && from.contains("User 2002"),
        "{from}"
    );
    assert!(inv.header("P-Asserted-Identity").unwrap().contains("2002"));
    alice.respond(&inv, 486, "Busy Here", "a").await;
    s1.final_response(T).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, calls) = r.api("GET", "/tenants/1/calls", None).await;
    let call = &calls["items"][0];
    assert_eq!(call["caller"], "2002", "the boss's call in history: {call}");
    assert!(call["annotations"]
        .as_str()
        .unwrap()
        .contains("placed by 2005"));
}

#[tokio::test]
async fn someone_who_is_not_a_delegate_cannot_use_the_bosss_caller_id() {
    let r = setup(ring_all()).await;
    let mut g = r.phone("2007", Proto::Udp).await;
    g.call("*472001").await;
    assert_eq!(g.final_response(T).await.unwrap().status(), Some(403));
}

#[tokio::test]
async fn a_referred_by_that_no_relayed_refer_backs_does_not_reach_the_boss_undelegated() {
    let r = setup(ring_all()).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let mut s1 = r.phone("2005", Proto::Udp).await;
    let mut g = r.phone("2007", Proto::Udp).await;
    // 2007 claims to be transferred by the secretary; no REFER was relayed.
    g.call_with("2002", &format!("Referred-By: <sip:2005@{DOMAIN}>\r\n"))
        .await;
    assert!(
        s1.expect_invite(T).await.is_some(),
        "delegated as any other call"
    );
    assert!(
        bob.expect_invite(SHORT).await.is_none(),
        "the boss does not ring"
    );
}

#[tokio::test]
async fn a_referred_invite_is_accepted_once_per_refer() {
    let r = setup(ring_all()).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let mut s1 = r.phone("2005", Proto::Udp).await;
    let _s2 = r.phone("2006", Proto::Udp).await;
    alice.call("2002").await;
    let inv = s1.expect_invite(T).await.unwrap();
    s1.respond(&inv, 200, "OK", "s1").await;
    assert!(alice
        .recv_until(T, |m| m.status() == Some(200))
        .await
        .is_some());
    s1.request_as_callee(
        &inv,
        "s1",
        "REFER",
        1,
        &format!("Refer-To: <sip:%23%2320@{DOMAIN}>\r\nReferred-By: <sip:2005@{DOMAIN}>\r\n"),
    )
    .await;
    let refer = alice
        .recv_until(T, |m| m.method() == Some("REFER"))
        .await
        .expect("the REFER reaches the transferee");
    alice.respond(&refer, 202, "Accepted", "").await;
    let referred_by = format!("Referred-By: {}\r\n", refer.header("Referred-By").unwrap());
    alice.call_with("%23%2320", &referred_by).await;
    let first = bob
        .expect_invite(T)
        .await
        .expect("the first one reaches the boss");
    assert!(
        s1.expect_invite(SHORT).await.is_none(),
        "not delegated again"
    );
    bob.respond(&first, 486, "Busy Here", "b").await;
    let first_id = first.header("Call-ID").unwrap().to_owned();
    alice.call_with("%23%2320", &referred_by).await;
    assert!(
        bob.recv_until(SHORT, |m| m.method() == Some("INVITE")
            && m.header("Call-ID") != Some(first_id.as_str()))
            .await
            .is_none(),
        "a second INVITE on the same REFER does not"
    );
}

#[tokio::test]
async fn a_blind_transfer_to_hash_hash_20_is_relayed_and_reaches_the_boss() {
    let r = setup(ring_all()).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let mut s1 = r.phone("2005", Proto::Udp).await;
    let _s2 = r.phone("2006", Proto::Udp).await;
    alice.call("2002").await;
    let inv = s1.expect_invite(T).await.unwrap();
    s1.respond(&inv, 200, "OK", "s1").await;
    assert!(alice
        .recv_until(T, |m| m.status() == Some(200))
        .await
        .is_some());
    // The secretary's phone sends REFER in the dialog, through the router.
    let referred_by = format!("<sip:2005@{DOMAIN}>");
    s1.request_as_callee(
        &inv,
        "s1",
        "REFER",
        1,
        &format!("Refer-To: <sip:%23%2320@{DOMAIN}>\r\nReferred-By: {referred_by}\r\n"),
    )
    .await;
    let refer = alice
        .recv_until(T, |m| m.method() == Some("REFER"))
        .await
        .expect("the REFER reaches the transferee");
    assert!(refer.header("Refer-To").unwrap().contains("%23%2320"));
    alice.respond(&refer, 202, "Accepted", "").await;
    assert_eq!(
        s1.recv_until(T, |m| m.status().is_some())
            .await
            .unwrap()
            .status(),
        Some(202)
    );
    // The transferee's phone follows the REFER.
    alice
        .call_with(
            "%23%2320",
            &format!("Referred-By: {}\r\n", refer.header("Referred-By").unwrap()),
        )
        .await;
    assert!(bob.expect_invite(T).await.is_some(), "the boss rings");
}

#[tokio::test]
async fn hash_hash_20_goes_back_to_the_boss_of_the_call_being_transferred() {
    let r = setup(ring_all()).await;
    let (status, body) = r
        .settings(
            "delegation",
            "employee:2007",
            json!({"delegates": ["2005"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let mut gina = r.phone("2007", Proto::Udp).await;
    let mut hank = r.phone("2008", Proto::Udp).await;
    let mut s1 = r.phone("2005", Proto::Udp).await;
    // The secretary answers a call for 2002, then one for 2007.
    alice.call("2002").await;
    let first = s1.expect_invite(T).await.unwrap();
    s1.respond(&first, 200, "OK", "s1a").await;
    assert!(alice
        .recv_until(T, |m| m.status() == Some(200))
        .await
        .is_some());
    hank.call("2007").await;
    let second = s1.expect_invite(T).await.unwrap();
    s1.respond(&second, 200, "OK", "s1b").await;
    assert!(hank
        .recv_until(T, |m| m.status() == Some(200))
        .await
        .is_some());
    // Then sends the first caller back with ##20.
    s1.request_as_callee(
        &first,
        "s1a",
        "REFER",
        1,
        &format!("Refer-To: <sip:%23%2320@{DOMAIN}>\r\nReferred-By: <sip:2005@{DOMAIN}>\r\n"),
    )
    .await;
    let refer = alice
        .recv_until(T, |m| m.method() == Some("REFER"))
        .await
        .expect("the REFER reaches the transferee");
    alice.respond(&refer, 202, "Accepted", "").await;
    alice
        .call_with(
            "%23%2320",
            &format!("Referred-By: {}\r\n", refer.header("Referred-By").unwrap()),
        )
        .await;
    assert!(
        bob.expect_invite(T).await.is_some(),
        "the boss of the transferred call rings"
    );
    assert!(
        gina.expect_invite(SHORT).await.is_none(),
        "not the boss of the call answered last"
    );
}
