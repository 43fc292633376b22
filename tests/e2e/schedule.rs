//! The schedule default plugin (seed 002): call reception, working hours,
//! absences; over real SIP, with the tenant clock moved by the test.

use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_e2e::{Phone, Proto, TestRouter};

const T: Duration = Duration::from_secs(4);
const SHORT: Duration = Duration::from_millis(400);
const MOBILE: &str = "441234567890";

/// Schedule plugin (then diverts); 2002's mobile is MOBILE; a trunk and a
/// voicemail server listen on their own ports.
async fn setup() -> (TestRouter, Phone, Phone) {
    let r = TestRouter::start().await;
    let trunk = Phone::new(r.sip(), "trunk", "unused", Proto::Udp).await;
    let voicemail = Phone::new(r.sip(), "vm", "unused", Proto::Udp).await;
    r.patch_tenant(json!({
        "trunk_uri": format!("sip:{}", trunk.local),
        "voicemail_uri": format!("sip:{}", voicemail.local),
    }))
    .await;
    r.patch_employee("2002", json!({"mobile": MOBILE})).await;
    r.chain(&["schedule", "divert"]).await;
    (r, trunk, voicemail)
}

async fn schedule(r: &TestRouter, ext: &str, settings: serde_json::Value) {
    let (status, body) = r
        .settings("schedule", &format!("employee:{ext}"), settings)
        .await;
    assert_eq!(status, 200, "{body}");
}

/// The tenant's (Europe/London) date today, as the plugin sees it.
fn today() -> String {
    chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::London)
        .format("%Y-%m-%d")
        .to_string()
}

fn all_week(ranges: serde_json::Value) -> serde_json::Value {
    json!({"mon": ranges, "tue": ranges, "wed": ranges, "thu": ranges,
           "fri": ranges, "sat": ranges, "sun": ranges})
}

#[tokio::test]
async fn a_call_outside_working_hours_goes_to_the_colleague() {
    let (r, _, _) = setup().await;
    // No working day at all: always out of hours.
    schedule(
        &r,
        "2002",
        json!({"week": {}, "out_of_hours": {"employee": "2001"}}),
    )
    .await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let mut dave = r.phone("2004", Proto::Udp).await;
    dave.call("2002").await;
    let inv = alice
        .expect_invite(T)
        .await
        .expect("the colleague takes it");
    assert!(inv
        .headers_all("Diversion")
        .any(|d| d.contains("reason=time-of-day")));
    assert!(bob.expect_invite(SHORT).await.is_none());
}

#[tokio::test]
async fn a_call_within_working_hours_rings_the_employee() {
    let (r, _, _) = setup().await;
    schedule(
        &r,
        "2002",
        json!({"week": all_week(json!([["00:00", "24:00"]])), "out_of_hours": {"employee": "2001"}}),
    )
    .await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let mut dave = r.phone("2004", Proto::Udp).await;
    dave.call("2002").await;
    assert!(bob.expect_invite(T).await.is_some());
}

#[tokio::test]
async fn a_hunt_group_skips_a_member_outside_working_hours() {
    let (r, _, _) = setup().await;
    schedule(&r, "2003", json!({"week": {}})).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut carol = r.phone("2003", Proto::Udp).await;
    let mut dave = r.phone("2004", Proto::Udp).await;
    alice.call("2100").await;
    assert!(dave.expect_invite(T).await.is_some(), "2004 is at work");
    assert!(carol.expect_invite(SHORT).await.is_none(), "2003 is not");
}

#[tokio::test]
async fn a_vacation_redirects_calls_until_its_last_day_has_passed() {
    let (r, _, _) = setup().await;
    let day = today();
    schedule(
        &r,
        "2002",
        json!({"absences": [{"kind": "vacation", "from": day, "to": day,
                             "redirect": {"employee": "2001"}}]}),
    )
    .await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let mut dave = r.phone("2004", Proto::Udp).await;
    let call = dave.call("2002").await;
    let inv = alice.expect_invite(T).await.expect("on vacation: to 2001");
    assert!(inv
        .headers_all("Diversion")
        .any(|d| d.contains("reason=away")));
    alice.respond(&inv, 486, "Busy Here", "a").await;
    let end = dave.final_response(T).await.unwrap();
    dave.ack_failure(&call, &end).await;
    assert!(bob.expect_invite(SHORT).await.is_none());
    // The next day the vacation is over by itself.
    r.advance_clock(Duration::from_secs(24 * 3600));
    dave.call("2002").await;
    assert!(bob.expect_invite(T).await.is_some(), "back from vacation");
}

#[tokio::test]
async fn an_absent_member_is_skipped_by_hunt_groups() {
    let (r, _, _) = setup().await;
    let day = today();
    schedule(
        &r,
        "2003",
        json!({"absences": [{"kind": "sick_leave", "from": day, "to": day, "redirect": "voicemail"}]}),
    )
    .await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut carol = r.phone("2003", Proto::Udp).await;
    let mut dave = r.phone("2004", Proto::Udp).await;
    alice.call("2100").await;
    assert!(dave.expect_invite(T).await.is_some());
    assert!(carol.expect_invite(SHORT).await.is_none());
}

#[tokio::test]
async fn overlapping_absences_are_refused() {
    let (r, _, _) = setup().await;
    let (status, body) = r
        .settings(
            "schedule",
            "employee:2002",
            json!({"absences": [
                {"kind": "vacation", "from": "2027-01-01", "to": "2027-01-10", "redirect": "voicemail"},
                {"kind": "other", "from": "2027-01-10", "to": "2027-01-12", "redirect": "voicemail"}]}),
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("absences[1]: overlaps"),
        "{body}"
    );
}

#[tokio::test]
async fn the_mobile_rings_only_after_its_delay() {
    let (r, mut trunk, _) = setup().await;
    schedule(&r, "2002", json!({"reception": "all", "mobile_delay_s": 2})).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let mut dave = r.phone("2004", Proto::Udp).await;
    dave.call("2002").await;
    let desk = bob.expect_invite(T).await.expect("the desk rings at once");
    let rang = Instant::now();
    bob.respond(&desk, 180, "Ringing", "b").await;
    assert!(
        trunk
            .expect_invite(Duration::from_millis(1500))
            .await
            .is_none(),
        "not yet"
    );
    let inv = trunk.expect_invite(T).await.expect("then the mobile");
    assert!(
        rang.elapsed() >= Duration::from_millis(1800),
        "{:?}",
        rang.elapsed()
    );
    assert!(inv.first.starts_with(&format!("INVITE sip:{MOBILE}@")));
}

#[tokio::test]
async fn mobile_only_reception_does_not_ring_the_desk() {
    let (r, mut trunk, _) = setup().await;
    schedule(&r, "2002", json!({"reception": "mobile"})).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let mut dave = r.phone("2004", Proto::Udp).await;
    dave.call("2002").await;
    assert!(trunk.expect_invite(T).await.is_some());
    assert!(bob.expect_invite(SHORT).await.is_none());
}

#[tokio::test]
async fn an_unanswered_call_goes_to_voicemail_after_the_chosen_wait() {
    let (r, _, mut voicemail) = setup().await;
    schedule(&r, "2002", json!({"ring_s": 5, "no_answer": "voicemail"})).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let mut dave = r.phone("2004", Proto::Udp).await;
    dave.call("2002").await;
    let inv = bob.expect_invite(T).await.unwrap();
    bob.respond(&inv, 180, "Ringing", "b").await;
    assert!(voicemail
        .expect_invite(Duration::from_secs(3))
        .await
        .is_none());
    let inv = voicemail
        .expect_invite(Duration::from_secs(5))
        .await
        .expect("voicemail");
    assert!(inv.first.starts_with("INVITE sip:2002@"));
}

#[tokio::test]
async fn a_vacation_comes_before_a_forward_always_divert() {
    let (r, _, _) = setup().await;
    let day = today();
    schedule(
        &r,
        "2002",
        json!({"absences": [{"kind": "vacation", "from": day, "to": day,
                             "redirect": {"employee": "2001"}}]}),
    )
    .await;
    let (status, _) = r
        .settings(
            "divert",
            "employee:2002",
            json!({"always": {"extension": "2003"}}),
        )
        .await;
    assert_eq!(status, 200);
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut carol = r.phone("2003", Proto::Udp).await;
    let mut dave = r.phone("2004", Proto::Udp).await;
    dave.call("2002").await;
    assert!(
        alice.expect_invite(T).await.is_some(),
        "the vacation's redirect"
    );
    assert!(carol.expect_invite(SHORT).await.is_none(), "not the divert");
}

#[tokio::test]
async fn out_of_hours_drop_answers_the_caller_unavailable() {
    let (r, _, _) = setup().await;
    schedule(&r, "2002", json!({"week": {}, "out_of_hours": "drop"})).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let mut dave = r.phone("2004", Proto::Udp).await;
    dave.call("2002").await;
    assert_eq!(dave.final_response(T).await.unwrap().status(), Some(480));
    assert!(bob.expect_invite(SHORT).await.is_none());
}

#[tokio::test]
async fn out_of_hours_calls_can_go_to_the_department() {
    let (r, _, _) = setup().await;
    let dept = r
        .running
        .directory()
        .tenant_for(switchboard_e2e::DOMAIN)
        .unwrap()
        .groups
        .values()
        .find(|g| g.extension.as_str() == "2101")
        .unwrap()
        .id;
    r.patch_employee("2002", json!({"department_id": dept}))
        .await;
    schedule(
        &r,
        "2002",
        json!({"week": {}, "out_of_hours": "department"}),
    )
    .await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut carol = r.phone("2003", Proto::Udp).await;
    alice.call("2002").await;
    let inv = carol
        .expect_invite(T)
        .await
        .expect("the department (2101) rings");
    assert!(inv
        .headers_all("Diversion")
        .any(|d| d.contains("sip:2002@")));
}
