use std::time::Duration;

use switchboard_e2e::{Proto, TestRouter};

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn invite_without_credentials_is_challenged_with_407() {
    let r = TestRouter::start().await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    alice.invite_unauthenticated("2002").await;
    let resp = alice.final_response(T).await.unwrap();
    assert_eq!(resp.status(), Some(407));
    assert!(resp
        .header("Proxy-Authenticate")
        .unwrap()
        .contains("Digest"));
}

#[tokio::test]
async fn call_between_two_registered_users_is_answered_and_hung_up() {
    let r = TestRouter::start().await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let call = alice.call("2002").await;
    let inv = bob.expect_invite(T).await.expect("bob rings");
    assert!(inv.header("Record-Route").is_some());
    bob.respond(&inv, 180, "Ringing", "bobtag").await;
    let ringing = alice.recv_until(T, |m| m.status() == Some(180)).await;
    assert!(ringing.is_some(), "caller hears ringing");
    bob.respond(&inv, 200, "OK", "bobtag").await;
    let ok = alice
        .recv_until(T, |m| m.status() == Some(200))
        .await
        .expect("200 OK");
    alice.in_dialog(&call, &ok, "ACK", call.cseq).await;
    assert!(
        bob.recv_until(T, |m| m.method() == Some("ACK"))
            .await
            .is_some(),
        "ACK end to end"
    );
    assert_eq!(r.running.router().dialogs().active_calls(1, "2002"), 1);
    alice.in_dialog(&call, &ok, "BYE", call.cseq + 1).await;
    let bye = bob
        .recv_until(T, |m| m.method() == Some("BYE"))
        .await
        .expect("BYE");
    bob.respond(&bye, 200, "OK", "bobtag").await;
    let done = alice
        .recv_until(T, |m| {
            m.status() == Some(200) && m.header("CSeq").unwrap_or("").contains("BYE")
        })
        .await;
    assert!(done.is_some(), "BYE answered");
    assert_eq!(r.running.router().dialogs().active_calls(1, "2002"), 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (outcome, answered_by, ended): (String, Option<String>, Option<i64>) =
        sqlx::query_as("SELECT outcome, answered_by, ended_at FROM calls WHERE sip_call_id = $1")
            .bind(&call.call_id)
            .fetch_one(r.running.store().pool())
            .await
            .unwrap();
    assert_eq!(outcome, "answered");
    assert_eq!(answered_by.as_deref(), Some("2002"));
    assert!(ended.is_some());
}

#[tokio::test]
async fn call_to_an_unregistered_user_is_unreachable() {
    let r = TestRouter::start().await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    alice.call("2003").await;
    let resp = alice.final_response(T).await.unwrap();
    assert_eq!(resp.status(), Some(480), "{}", resp.raw);
}

#[tokio::test]
async fn call_to_an_unknown_extension_gets_404() {
    let r = TestRouter::start().await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    alice.call("2999").await;
    assert_eq!(alice.final_response(T).await.unwrap().status(), Some(404));
}

#[tokio::test]
async fn callee_answering_486_gives_busy() {
    let r = TestRouter::start().await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let call = alice.call("2002").await;
    let inv = bob.expect_invite(T).await.unwrap();
    bob.respond(&inv, 486, "Busy Here", "b1").await;
    let resp = alice.final_response(T).await.unwrap();
    assert_eq!(resp.status(), Some(486));
    alice.ack_failure(&call, &resp).await;
    assert!(
        bob.recv_until(T, |m| m.method() == Some("ACK"))
            .await
            .is_some(),
        "proxy ACKs the 486"
    );
}

#[tokio::test]
async fn ring_time_elapsing_gives_no_answer_and_cancels_the_branch() {
    let r = TestRouter::start().await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    alice.call("2002").await;
    let inv = bob.expect_invite(T).await.unwrap();
    bob.respond(&inv, 180, "Ringing", "b1").await;
    let cancel = bob
        .recv_until(Duration::from_secs(6), |m| m.method() == Some("CANCEL"))
        .await;
    let cancel = cancel.expect("branch cancelled at the ring time (3 s)");
    bob.respond(&cancel, 200, "OK", "b1").await;
    bob.respond(&inv, 487, "Request Terminated", "b1").await;
    let resp = alice.final_response(T).await.unwrap();
    assert_eq!(resp.status(), Some(480));
    assert!(resp.first.contains("No Answer"), "{}", resp.first);
}

#[tokio::test]
async fn parallel_fork_answered_by_the_second_device_cancels_the_first() {
    let r = TestRouter::start().await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut desk = r.phone("2002", Proto::Udp).await;
    let mut soft = r.phone("2902", Proto::Tcp).await; // Bob's own device account
    alice.call("2002").await;
    let inv1 = desk.expect_invite(T).await.expect("desk phone rings");
    let inv2 = soft.expect_invite(T).await.expect("softphone rings");
    desk.respond(&inv1, 180, "Ringing", "d").await;
    soft.respond(&inv2, 200, "OK", "s").await;
    let ok = alice
        .recv_until(T, |m| m.status() == Some(200))
        .await
        .unwrap();
    assert_eq!(ok.to_tag().as_deref(), Some("s"));
    let cancel = desk.recv_until(T, |m| m.method() == Some("CANCEL")).await;
    assert!(cancel.is_some(), "the ringing desk phone is cancelled");
}

#[tokio::test]
async fn ring_all_hunt_group_rings_every_member() {
    let r = TestRouter::start().await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut m1 = r.phone("2003", Proto::Udp).await;
    let mut m2 = r.phone("2004", Proto::Udp).await;
    alice.call("2100").await;
    assert!(m1.expect_invite(T).await.is_some());
    assert!(m2.expect_invite(T).await.is_some());
}

#[tokio::test]
async fn sequential_hunt_group_rings_the_next_member_after_the_first_rings_out() {
    let r = TestRouter::start().await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut m1 = r.phone("2003", Proto::Udp).await;
    let mut m2 = r.phone("2004", Proto::Udp).await;
    alice.call("2101").await;
    let inv1 = m1.expect_invite(T).await.expect("first member rings");
    m1.respond(&inv1, 180, "Ringing", "m1").await;
    assert!(
        m2.expect_invite(Duration::from_secs(3)).await.is_none(),
        "second waits its turn"
    );
    // member ring time is 5 s
    let cancel = m1
        .recv_until(Duration::from_secs(4), |m| m.method() == Some("CANCEL"))
        .await;
    assert!(cancel.is_some());
    let inv2 = m2.expect_invite(T).await.expect("second member rings next");
    m2.respond(&inv2, 200, "OK", "m2").await;
    assert!(alice
        .recv_until(T, |m| m.status() == Some(200))
        .await
        .is_some());
}

#[tokio::test]
async fn caller_cancel_stops_ringing_with_487() {
    let r = TestRouter::start().await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let call = alice.call("2002").await;
    let inv = bob.expect_invite(T).await.unwrap();
    bob.respond(&inv, 180, "Ringing", "b").await;
    alice
        .recv_until(T, |m| m.status() == Some(180))
        .await
        .unwrap();
    alice.cancel(&call).await;
    assert!(bob
        .recv_until(T, |m| m.method() == Some("CANCEL"))
        .await
        .is_some());
    let resp = alice
        .recv_until(T, |m| m.status() == Some(487))
        .await
        .expect("487 to the INVITE");
    alice.ack_failure(&call, &resp).await;
}

#[tokio::test]
async fn a_udp_phone_calls_a_tcp_phone() {
    let r = TestRouter::start().await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Tcp).await;
    let call = alice.call("2002").await;
    let inv = bob.expect_invite(T).await.expect("INVITE over TCP");
    assert!(inv.header("Via").unwrap().contains("SIP/2.0/TCP"));
    bob.respond(&inv, 200, "OK", "b").await;
    let ok = alice
        .recv_until(T, |m| m.status() == Some(200))
        .await
        .unwrap();
    alice.in_dialog(&call, &ok, "BYE", call.cseq + 1).await;
    let bye = bob.recv_until(T, |m| m.method() == Some("BYE")).await;
    assert!(bye.is_some(), "BYE follows the Record-Route onto TCP");
}

#[tokio::test]
async fn external_number_goes_to_the_tenant_trunk() {
    let r = TestRouter::start().await;
    let mut trunk = switchboard_e2e::Phone::new(r.sip(), "trunk", "unused-pw", Proto::Udp).await;
    sqlx::query("UPDATE tenants SET trunk_uri = $1")
        .bind(format!("sip:{}", trunk.local))
        .execute(r.running.store().pool())
        .await
        .unwrap();
    r.running.directory().reload().await.unwrap();
    let mut alice = r.phone("2001", Proto::Udp).await;
    alice.call("441234567890").await;
    let inv = trunk
        .expect_invite(T)
        .await
        .expect("the trunk gets the call");
    assert!(
        inv.first.starts_with("INVITE sip:441234567890@"),
        "{}",
        inv.first
    );
    trunk.respond(&inv, 200, "OK", "gw").await;
    assert!(alice
        .recv_until(T, |m| m.status() == Some(200))
        .await
        .is_some());
}

#[tokio::test]
async fn a_new_tenant_counts_an_employee_on_a_call_as_busy() {
    let r = TestRouter::start().await;
    let (status, body) = r
        .api(
            "POST",
            "/tenants",
            Some(
                serde_json::json!({"domain": "fresh.example", "name": "Fresh"})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["busy_on_active_call"], true, "{body}");
}

#[tokio::test]
async fn an_employee_with_call_waiting_is_rung_while_on_a_call() {
    let r = TestRouter::start().await;
    r.patch_tenant(serde_json::json!({"busy_on_active_call": true}))
        .await;
    r.patch_employee("2002", serde_json::json!({"call_waiting": true}))
        .await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let mut carol = r.phone("2003", Proto::Udp).await;
    let call = alice.call("2002").await;
    let inv = bob.expect_invite(T).await.unwrap();
    alice.answered_by(&call, &mut bob, &inv).await;
    carol.call("2002").await;
    assert!(
        bob.expect_invite(T).await.is_some(),
        "the second call rings during the first"
    );
}

#[tokio::test]
async fn second_call_is_busy_when_the_tenant_counts_an_active_call_as_busy() {
    let r = TestRouter::start().await;
    sqlx::query("UPDATE tenants SET busy_on_active_call = 1")
        .execute(r.running.store().pool())
        .await
        .unwrap();
    r.running.directory().reload().await.unwrap();
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let mut carol = r.phone("2003", Proto::Udp).await;
    let call = alice.call("2002").await;
    let inv = bob.expect_invite(T).await.unwrap();
    alice.answered_by(&call, &mut bob, &inv).await;
    carol.call("2002").await;
    assert_eq!(carol.final_response(T).await.unwrap().status(), Some(486));
    assert!(
        bob.expect_invite(Duration::from_millis(500))
            .await
            .is_none(),
        "bob is not disturbed"
    );
}

#[tokio::test]
async fn a_retransmitted_invite_is_absorbed_not_forked_again() {
    let r = TestRouter::start().await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let call = alice.call("2002").await;
    let first = bob.expect_invite(T).await.unwrap();
    let branch = first.header("Via").unwrap().to_owned();
    // The same INVITE again (same branch), as a UDP phone retransmits it.
    let mut again = call.clone();
    again.cseq = call.cseq;
    alice.resend_invite(&again).await;
    let trying = alice.recv_until(T, |m| m.status() == Some(100)).await;
    assert!(
        trying.is_some(),
        "the retransmission gets the last response"
    );
    // Bob may see our own Timer A retransmissions of the one branch, but
    // never a second branch.
    while let Some(inv) = bob.expect_invite(Duration::from_millis(800)).await {
        assert_eq!(inv.header("Via").unwrap(), branch, "no second fork");
    }
}

#[tokio::test]
async fn rotary_group_starts_each_call_with_the_next_member() {
    let r = TestRouter::start().await;
    sqlx::query("UPDATE hunt_groups SET strategy = 'rotary' WHERE extension = '2101'")
        .execute(r.running.store().pool())
        .await
        .unwrap();
    r.running.directory().reload().await.unwrap();
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut m1 = r.phone("2003", Proto::Udp).await;
    let mut m2 = r.phone("2004", Proto::Udp).await;
    let c1 = alice.call("2101").await;
    let inv = m1
        .expect_invite(T)
        .await
        .expect("first call starts at 2003");
    m1.respond(&inv, 486, "Busy Here", "x").await;
    let inv = m2.expect_invite(T).await.expect("then 2004");
    m2.respond(&inv, 486, "Busy Here", "y").await;
    let resp = alice.final_response(T).await.unwrap();
    alice.ack_failure(&c1, &resp).await;
    alice.call("2101").await;
    assert!(
        m2.expect_invite(T).await.is_some(),
        "second call starts at 2004"
    );
}
