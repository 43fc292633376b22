//! The hotdesk default plugin (seeds 000 and 004), over real SIP.

use std::time::Duration;

use serde_json::json;
use switchboard_e2e::{Phone, Proto, TestRouter};

const T: Duration = Duration::from_secs(4);
const SHORT: Duration = Duration::from_millis(400);

/// A router with the hotdesk plugin, hotdesk phones 5401 and 5402, and
/// PINs for 2003 (1234) and 2004 (4444).
async fn hotdesk_router() -> TestRouter {
    let r = TestRouter::start().await;
    r.add_device("5401").await;
    r.add_device("5402").await;
    r.patch_employee("2003", json!({"voicemail_pin": "1234"}))
        .await;
    r.patch_employee("2004", json!({"voicemail_pin": "4444"}))
        .await;
    r.chain(&["hotdesk"]).await;
    r
}

async fn logins(r: &TestRouter) -> serde_json::Value {
    let (status, body) = r.api("GET", "/tenants/1/hotdesk", None).await;
    assert_eq!(status, 200);
    body["items"].clone()
}

async fn wait_for_logins(r: &TestRouter, expected: serde_json::Value, within: Duration) -> bool {
    let until = tokio::time::Instant::now() + within;
    loop {
        if logins(r).await == expected {
            return true;
        }
        if tokio::time::Instant::now() > until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn star88_with_the_right_pin_logs_in_and_the_users_calls_ring_the_desk() {
    let r = hotdesk_router().await;
    let mut desk = r.phone("5401", Proto::Udp).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let resp = desk.feature("*88*2003*1234").await;
    assert_eq!(resp.status(), Some(200), "{}", resp.raw);
    assert_eq!(resp.reason(), "Logged in as 2003 User 2003");
    assert_eq!(
        logins(&r).await,
        json!([{"device": "5401", "extension": "2003"}])
    );
    alice.call("2003").await;
    assert!(
        desk.expect_invite(T).await.is_some(),
        "2003's call rings 5401"
    );
}

#[tokio::test]
async fn a_wrong_pin_is_refused_and_changes_nothing() {
    let r = hotdesk_router().await;
    let mut desk = r.phone("5401", Proto::Udp).await;
    let resp = desk.feature("*88*2003*9999").await;
    assert_eq!(resp.status(), Some(403));
    assert_eq!(resp.reason(), "Wrong PIN");
    assert_eq!(logins(&r).await, json!([]));
}

#[tokio::test]
async fn an_unknown_extension_is_refused() {
    let r = hotdesk_router().await;
    let mut desk = r.phone("5401", Proto::Udp).await;
    let resp = desk.feature("*88*2999*1234").await;
    assert_eq!(resp.status(), Some(403));
    assert_eq!(resp.reason(), "Unknown extension");
}

#[tokio::test]
async fn a_malformed_login_code_says_how_to_dial_it() {
    let r = hotdesk_router().await;
    let mut desk = r.phone("5401", Proto::Udp).await;
    let resp = desk.feature("*882003").await;
    assert_eq!(resp.status(), Some(403));
    assert_eq!(resp.reason(), "Dial *88*extension*PIN");
}

#[tokio::test]
async fn five_wrong_pins_lock_the_extension_even_for_the_right_one() {
    let r = hotdesk_router().await;
    let mut desk = r.phone("5401", Proto::Udp).await;
    for _ in 0..5 {
        assert_eq!(desk.feature("*88*2003*0000").await.reason(), "Wrong PIN");
    }
    let resp = desk.feature("*88*2003*1234").await;
    assert_eq!(resp.status(), Some(403));
    assert_eq!(resp.reason(), "Too many wrong PINs, try later");
    assert_eq!(logins(&r).await, json!([]));
}

#[tokio::test]
async fn a_phone_that_is_not_a_hotdesk_device_cannot_be_logged_in_at() {
    let r = hotdesk_router().await;
    // Bob's own softphone (device 2902) and Alice's own extension.
    let mut soft = r.phone("2902", Proto::Udp).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    for phone in [&mut soft, &mut alice] {
        let resp = phone.feature("*88*2003*1234").await;
        assert_eq!(resp.status(), Some(403));
        assert_eq!(resp.reason(), "Not a hotdesk phone");
    }
    assert_eq!(logins(&r).await, json!([]));
}

#[tokio::test]
async fn calls_from_the_desk_carry_the_users_identity_and_are_their_history() {
    let r = hotdesk_router().await;
    let mut desk = r.phone("5401", Proto::Udp).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    assert_eq!(desk.feature("*88*2003*1234").await.status(), Some(200));
    desk.call("2001").await;
    let inv = alice.expect_invite(T).await.unwrap();
    assert!(
        inv.header("From").unwrap().contains("sip:2003@"),
        "{}",
        inv.raw
    );
    assert!(inv.header("P-Asserted-Identity").unwrap().contains("2003"));
    alice.respond(&inv, 486, "Busy Here", "a").await;
    assert_eq!(desk.final_response(T).await.unwrap().status(), Some(486));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, calls) = r.api("GET", "/tenants/1/calls?extension=2003", None).await;
    assert_eq!(calls["total"], 1, "{calls}");
    assert_eq!(calls["items"][0]["caller"], "2003");
    let (_, calls) = r.api("GET", "/tenants/1/calls?extension=5401", None).await;
    assert_eq!(calls["total"], 0, "not the device's traffic: {calls}");
}

#[tokio::test]
async fn the_pin_never_reaches_call_history() {
    let r = hotdesk_router().await;
    let mut desk = r.phone("5401", Proto::Udp).await;
    assert_eq!(desk.feature("*88*2003*1234").await.status(), Some(200));
    assert_eq!(desk.feature("*88*2004*0000").await.status(), Some(403));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, calls) = r.api("GET", "/tenants/1/calls", None).await;
    assert_eq!(calls["total"], 0, "feature codes are not calls: {calls}");
    let (_, changes) = r.api("GET", "/tenants/1/presence/2003/changes", None).await;
    assert!(!changes.to_string().contains("1234"), "{changes}");
}

#[tokio::test]
async fn star89_logs_out_and_the_desk_stops_ringing_for_the_user() {
    let r = hotdesk_router().await;
    let mut desk = r.phone("5401", Proto::Udp).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    assert_eq!(desk.feature("*88*2003*1234").await.status(), Some(200));
    let resp = desk.feature("*89").await;
    assert_eq!(resp.status(), Some(200));
    assert_eq!(resp.reason(), "Logged out 2003");
    assert_eq!(logins(&r).await, json!([]));
    alice.call("2003").await;
    assert!(desk.expect_invite(SHORT).await.is_none());
    assert_eq!(alice.final_response(T).await.unwrap().status(), Some(480));
    assert_eq!(desk.feature("*89").await.reason(), "Nobody logged in");
}

#[tokio::test]
async fn another_users_login_on_the_same_desk_logs_the_first_out() {
    let r = hotdesk_router().await;
    let mut desk = r.phone("5401", Proto::Udp).await;
    assert_eq!(desk.feature("*88*2003*1234").await.status(), Some(200));
    assert_eq!(desk.feature("*88*2004*4444").await.status(), Some(200));
    assert_eq!(
        logins(&r).await,
        json!([{"device": "5401", "extension": "2004"}])
    );
    let (_, p) = r.api("GET", "/tenants/1/presence/2003", None).await;
    assert_eq!(p["hotdesk_devices"], json!([]));
}

#[tokio::test]
async fn logging_in_at_another_desk_moves_the_user() {
    let r = hotdesk_router().await;
    let mut desk1 = r.phone("5401", Proto::Udp).await;
    let mut desk2 = r.phone("5402", Proto::Udp).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    assert_eq!(desk1.feature("*88*2003*1234").await.status(), Some(200));
    assert_eq!(desk2.feature("*88*2003*1234").await.status(), Some(200));
    assert_eq!(
        logins(&r).await,
        json!([{"device": "5402", "extension": "2003"}])
    );
    alice.call("2003").await;
    assert!(desk2.expect_invite(T).await.is_some());
    assert!(desk1.expect_invite(SHORT).await.is_none());
}

#[tokio::test]
async fn the_idle_timeout_logs_out_a_forced_login_user_without_call_activity() {
    let r = hotdesk_router().await;
    r.patch_employee("2003", json!({"forced_login": true}))
        .await;
    let (status, body) = r
        .settings("hotdesk", "employee:2003", json!({"idle_period_s": 1}))
        .await;
    assert_eq!(status, 200, "{body}");
    let mut desk = r.phone("5401", Proto::Udp).await;
    assert_eq!(desk.feature("*88*2003*1234").await.status(), Some(200));
    assert!(
        wait_for_logins(&r, json!([]), Duration::from_secs(4)).await,
        "logged out after 1 s idle"
    );
    let (_, changes) = r.api("GET", "/tenants/1/presence/2003/changes", None).await;
    assert!(
        changes["items"][0]["cause"]
            .as_str()
            .unwrap()
            .contains("idle timeout"),
        "{changes}"
    );
}

#[tokio::test]
async fn the_idle_timeout_does_not_apply_without_forced_login() {
    let r = hotdesk_router().await;
    r.settings("hotdesk", "employee:2003", json!({"idle_period_s": 1}))
        .await;
    let mut desk = r.phone("5401", Proto::Udp).await;
    assert_eq!(desk.feature("*88*2003*1234").await.status(), Some(200));
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert_eq!(
        logins(&r).await,
        json!([{"device": "5401", "extension": "2003"}])
    );
}

#[tokio::test]
async fn an_answered_call_keeps_an_idle_login_alive() {
    let r = hotdesk_router().await;
    r.patch_employee("2003", json!({"forced_login": true}))
        .await;
    r.settings("hotdesk", "employee:2003", json!({"idle_period_s": 2}))
        .await;
    let mut desk = r.phone("5401", Proto::Udp).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    assert_eq!(desk.feature("*88*2003*1234").await.status(), Some(200));
    // A call answered at 1.2 s and lasting past the 2 s period.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let call = alice.call("2003").await;
    let inv = desk.expect_invite(T).await.unwrap();
    desk.respond(&inv, 200, "OK", "d1").await;
    let ok = alice.final_response(T).await.unwrap();
    assert_eq!(ok.status(), Some(200));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(logins(&r).await.as_array().unwrap().len(), 1, "on a call");
    alice.in_dialog(&call, &ok, "BYE", 3).await;
    assert!(
        wait_for_logins(&r, json!([]), Duration::from_secs(5)).await,
        "logged out once idle again"
    );
}

#[tokio::test]
async fn idle_period_settings_outside_1_to_99999_seconds_are_refused() {
    let r = hotdesk_router().await;
    for bad in [
        json!({"idle_period_s": 0}),
        json!({"idle_period_s": 100000}),
    ] {
        let (status, body) = r.settings("hotdesk", "employee:2003", bad).await;
        assert_eq!(status, 422, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("idle_period_s"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn a_remote_hotdesker_whose_home_is_gone_is_logged_out_after_the_period() {
    let r = hotdesk_router().await;
    r.settings("hotdesk", "tenant", json!({"remote_logout_s": 1}))
        .await;
    let mut home = r.phone("2003", Proto::Udp).await;
    let mut desk = r.phone("5401", Proto::Udp).await;
    assert_eq!(desk.feature("*88*2003*1234").await.status(), Some(200));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(logins(&r).await.as_array().unwrap().len(), 1, "home is up");
    assert_eq!(home.register(0).await.status(), Some(200));
    assert!(
        wait_for_logins(&r, json!([]), Duration::from_secs(4)).await,
        "logged out 1 s after home went away"
    );
}

#[tokio::test]
async fn an_admin_activates_and_releases_a_desk_over_http() {
    let r = hotdesk_router().await;
    let mut desk = r.phone("5401", Proto::Udp).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let (status, body) = r
        .api(
            "PUT",
            "/tenants/1/hotdesk/5401",
            Some(json!({"extension": "2003"}).to_string().into_bytes()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    alice.call("2003").await;
    let inv = desk.expect_invite(T).await.unwrap();
    desk.respond(&inv, 486, "Busy Here", "x").await;
    alice.final_response(T).await.unwrap();
    let (status, _) = r.api("DELETE", "/tenants/1/hotdesk/5401", None).await;
    assert_eq!(status, 204);
    assert_eq!(logins(&r).await, json!([]));
}

#[tokio::test]
async fn a_device_outside_the_hotdesk_range_cannot_be_activated_over_http() {
    let r = hotdesk_router().await;
    let (status, body) = r
        .api(
            "PUT",
            "/tenants/1/hotdesk/2902",
            Some(json!({"extension": "2003"}).to_string().into_bytes()),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "device");
}

#[tokio::test]
async fn logins_survive_a_router_restart() {
    let r = hotdesk_router().await;
    let mut desk = r.phone("5401", Proto::Udp).await;
    assert_eq!(desk.feature("*88*2003*1234").await.status(), Some(200));
    let TestRouter {
        running,
        dir,
        database_url,
        ..
    } = r;
    running.shutdown().await;
    let mut config = switchboard_e2e::test_config(&database_url);
    config.sip.default_domain = Some(switchboard_e2e::DOMAIN.into());
    let running = switchboard::run(config).await.unwrap();
    let mut alice = Phone::new(
        running.sip_addr,
        "2001",
        &switchboard_e2e::password("2001"),
        Proto::Udp,
    )
    .await;
    assert_eq!(alice.register(600).await.status(), Some(200));
    alice.call("2003").await;
    assert!(desk.expect_invite(T).await.is_some(), "still logged in");
    drop(dir);
}

#[tokio::test]
async fn an_employee_activates_a_desk_for_themselves_only() {
    let r = hotdesk_router().await;
    let carol = r.login("2003").await;
    let put = |ext: &str| Some(json!({"extension": ext}).to_string().into_bytes());
    let (status, body) = r
        .api_as(&carol, "PUT", "/tenants/1/hotdesk/5401", put("2003"))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = r
        .api_as(&carol, "PUT", "/tenants/1/hotdesk/5402", put("2004"))
        .await;
    assert_eq!(status, 403, "not for someone else");
    let dave = r.login("2004").await;
    let (status, _) = r
        .api_as(&dave, "DELETE", "/tenants/1/hotdesk/5401", None)
        .await;
    assert_eq!(status, 403, "nor release someone else's desk");
    let (status, _) = r
        .api_as(&carol, "DELETE", "/tenants/1/hotdesk/5401", None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(logins(&r).await, json!([]));
}
