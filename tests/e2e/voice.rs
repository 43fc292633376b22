//! Voice feature calls (issue 12): the router answers `*88` itself, says
//! its prompts over RTP and hears the caller's keys (RFC 4733 events or SIP
//! INFO); the hotdesk plugin leads the conversation through `collect`.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use switchboard_e2e::rtp::{answer_address, tone_wav, Received, RtpPeer};
use switchboard_e2e::{Msg, Outgoing, Phone, Proto, TestRouter};

const T: Duration = Duration::from_secs(4);

/// A router with the hotdesk plugin, hotdesk phone 5401 and 2003's PIN 1234.
async fn hotdesk_router() -> TestRouter {
    let r = TestRouter::start().await;
    r.add_device("5401").await;
    r.patch_employee("2003", json!({"voicemail_pin": "1234"}))
        .await;
    r.chain(&["hotdesk", "hunt-status"]).await;
    r
}

async fn logins(r: &TestRouter) -> serde_json::Value {
    let (status, body) = r.api("GET", "/tenants/1/hotdesk", None).await;
    assert_eq!(status, 200);
    body["items"].clone()
}

/// A voice call in progress, seen from the phone.
struct VoiceCall {
    call: Outgoing,
    ok: Msg,
    media: SocketAddr,
}

/// Dials `code` offering audio at `rtp`, takes the router's 200 and ACKs it.
async fn dial(phone: &mut Phone, rtp: &RtpPeer, code: &str) -> VoiceCall {
    phone.offer = Some(rtp.offer());
    let call = phone.call(code).await;
    let ok = phone.final_response(T).await.expect("an answer");
    assert_eq!(ok.status(), Some(200), "{}", ok.raw);
    assert_eq!(ok.header("Content-Type"), Some("application/sdp"));
    let media = answer_address(&ok.body);
    phone.ack_failure(&call, &ok).await;
    VoiceCall { call, ok, media }
}

/// One prompt, as heard: its packets until 400 ms of silence.
async fn prompt(rtp: &RtpPeer) -> Vec<Received> {
    rtp.listen(T, Duration::from_millis(400), Duration::from_secs(15))
        .await
}

async fn expect_bye(phone: &mut Phone, v: &VoiceCall) {
    let bye = phone
        .recv_until(Duration::from_secs(8), |m| m.method() == Some("BYE"))
        .await
        .expect("the router hangs up");
    assert_eq!(bye.header("Call-ID"), v.ok.header("Call-ID"));
    phone.respond(&bye, 200, "OK", "").await;
}

async fn no_media_left(r: &TestRouter) {
    let media = r.running.router().media();
    for _ in 0..50 {
        if media.sessions() == 0 && media.ports_in_use() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{} media sessions and {} RTP ports still held",
        media.sessions(),
        media.ports_in_use()
    );
}

#[tokio::test]
async fn star88_alone_asks_for_the_account_and_pin_by_voice_and_logs_in() {
    let r = hotdesk_router().await;
    let mut desk = r.phone("5401", Proto::Udp).await;
    let mut rtp = RtpPeer::bind().await;
    let v = dial(&mut desk, &rtp, "*88").await;

    let asked = prompt(&rtp).await;
    assert!(asked.len() > 50, "a spoken prompt: {} packets", asked.len());
    assert!(asked
        .iter()
        .all(|p| p.payload_type == 8 && p.payload_len == 160));
    assert!(asked[0].marker, "the first packet of the stream is marked");
    for pair in asked.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq.wrapping_add(1));
        assert_eq!(pair[1].timestamp, pair[0].timestamp.wrapping_add(160));
    }
    let span = asked.last().unwrap().at - asked[0].at;
    let mean = span / (asked.len() as u32 - 1);
    assert!(
        mean > Duration::from_millis(17) && mean < Duration::from_millis(23),
        "paced at 20 ms: {mean:?}"
    );

    rtp.press(v.media, "2003#").await;
    assert!(prompt(&rtp).await.len() > 50, "asked for the PIN");
    rtp.press(v.media, "1234#").await;
    assert!(!prompt(&rtp).await.is_empty(), "logged in as 2003");
    expect_bye(&mut desk, &v).await;
    assert_eq!(
        logins(&r).await,
        json!([{"device": "5401", "extension": "2003"}])
    );
    no_media_left(&r).await;
}

#[tokio::test]
async fn keys_sent_as_sip_info_log_in_too() {
    let r = hotdesk_router().await;
    let mut desk = r.phone("5401", Proto::Udp).await;
    let rtp = RtpPeer::bind().await;
    let v = dial(&mut desk, &rtp, "*88").await;
    let mut cseq = 10;
    for entry in ["2003#", "1234#"] {
        // Keys while the prompt plays stop it (barge-in).
        tokio::time::sleep(Duration::from_millis(300)).await;
        for k in entry.chars() {
            cseq += 1;
            let body = format!("Signal={k}\r\nDuration=160\r\n");
            desk.in_dialog_with(
                &v.call,
                &v.ok,
                "INFO",
                cseq,
                "application/dtmf-relay",
                &body,
            )
            .await;
            let resp = desk.final_response(T).await.expect("INFO answered");
            assert_eq!(resp.status(), Some(200), "{}", resp.raw);
        }
    }
    expect_bye(&mut desk, &v).await;
    assert_eq!(
        logins(&r).await,
        json!([{"device": "5401", "extension": "2003"}])
    );
}

#[tokio::test]
async fn three_wrong_pins_end_the_call_and_nobody_is_logged_in() {
    let r = hotdesk_router().await;
    let mut desk = r.phone("5401", Proto::Udp).await;
    let mut rtp = RtpPeer::bind().await;
    let v = dial(&mut desk, &rtp, "*88").await;
    rtp.press(v.media, "2003#").await;
    for _ in 0..3 {
        rtp.press(v.media, "9999#").await;
    }
    expect_bye(&mut desk, &v).await;
    assert_eq!(logins(&r).await, json!([]));
    let (_, faults) = r
        .api("GET", "/tenants/1/plugins/hotdesk/faults", None)
        .await;
    assert_eq!(faults["items"], json!([]), "no plugin fault on the way");
}

#[tokio::test]
async fn an_entry_without_hash_ends_when_the_caller_stops_typing() {
    let r = hotdesk_router().await;
    let mut desk = r.phone("5401", Proto::Udp).await;
    let mut rtp = RtpPeer::bind().await;
    let v = dial(&mut desk, &rtp, "*88").await;
    rtp.press(v.media, "2003").await;
    // The PIN prompt comes once the entry times out (6 s after the last key).
    let pin_prompt = rtp
        .listen(
            Duration::from_secs(9),
            Duration::from_millis(400),
            Duration::from_secs(15),
        )
        .await;
    assert!(pin_prompt.len() > 50, "asked for the PIN after the timeout");
    rtp.press(v.media, "1234#").await;
    expect_bye(&mut desk, &v).await;
    assert_eq!(
        logins(&r).await,
        json!([{"device": "5401", "extension": "2003"}])
    );
}

#[tokio::test]
async fn a_caller_who_hangs_up_mid_prompt_frees_the_session_and_its_port() {
    let r = hotdesk_router().await;
    let mut desk = r.phone("5401", Proto::Udp).await;
    let rtp = RtpPeer::bind().await;
    let v = dial(&mut desk, &rtp, "*88").await;
    assert!(!rtp
        .listen(T, Duration::from_millis(100), Duration::from_millis(500))
        .await
        .is_empty());
    assert_eq!(r.running.router().media().sessions(), 1);
    desk.in_dialog(&v.call, &v.ok, "BYE", 20).await;
    let resp = desk.final_response(T).await.expect("BYE answered");
    assert_eq!(resp.status(), Some(200));
    no_media_left(&r).await;
    // What was already on its way before the BYE.
    rtp.listen(
        Duration::from_millis(50),
        Duration::from_millis(50),
        Duration::from_secs(1),
    )
    .await;
    let after = rtp
        .listen(
            Duration::from_millis(300),
            Duration::from_millis(100),
            Duration::from_secs(1),
        )
        .await;
    assert!(after.is_empty(), "no prompt after the hang-up");
}

#[tokio::test]
async fn star88_alone_without_g711_audio_gets_488() {
    let r = hotdesk_router().await;
    let mut desk = r.phone("5401", Proto::Udp).await;
    let rtp = RtpPeer::bind().await;
    desk.offer = Some(rtp.offer_formats("9 101"));
    let call = desk.call("*88").await;
    let resp = desk.final_response(T).await.unwrap();
    assert_eq!(resp.status(), Some(488), "{}", resp.raw);
    desk.ack_failure(&call, &resp).await;
    no_media_left(&r).await;
}

#[tokio::test]
async fn star89_confirms_the_logout_by_voice() {
    let r = hotdesk_router().await;
    let mut desk = r.phone("5401", Proto::Udp).await;
    assert_eq!(desk.feature("*88*2003*1234").await.status(), Some(200));
    let rtp = RtpPeer::bind().await;
    let v = dial(&mut desk, &rtp, "*89").await;
    assert_eq!(v.ok.reason(), "Logged out 2003");
    assert!(prompt(&rtp).await.len() > 25, "\"You are logged out\"");
    expect_bye(&mut desk, &v).await;
    assert_eq!(logins(&r).await, json!([]));
}

#[tokio::test]
async fn star90_confirms_the_status_by_voice() {
    let r = hotdesk_router().await;
    let mut carol = r.phone("2003", Proto::Udp).await;
    let rtp = RtpPeer::bind().await;
    let v = dial(&mut carol, &rtp, "*90").await;
    assert_eq!(v.ok.reason(), "Available");
    assert!(prompt(&rtp).await.len() > 25, "\"Your status is set\"");
    expect_bye(&mut carol, &v).await;
}

#[tokio::test]
async fn a_tenants_uploaded_prompt_is_the_one_callers_hear() {
    let r = hotdesk_router().await;
    let (status, body) = r
        .api(
            "PUT",
            "/tenants/1/prompts/enter-account",
            Some(tone_wav(8000, 1000)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["duration_ms"], 1000);
    let (_, list) = r.api("GET", "/tenants/1/prompts", None).await;
    assert_eq!(list["items"][0]["name"], "enter-account", "{list}");

    let mut desk = r.phone("5401", Proto::Udp).await;
    let rtp = RtpPeer::bind().await;
    let v = dial(&mut desk, &rtp, "*88").await;
    let heard = prompt(&rtp).await;
    // 1 s of the upload is 50 packets; the router's own takes 2.6 s.
    assert!((45..=55).contains(&heard.len()), "{} packets", heard.len());
    desk.in_dialog(&v.call, &v.ok, "BYE", 20).await;

    let (status, _) = r
        .api("DELETE", "/tenants/1/prompts/enter-account", None)
        .await;
    assert_eq!(status, 204);
    let (_, list) = r.api("GET", "/tenants/1/prompts", None).await;
    assert_eq!(list["items"], json!([]));
}

#[tokio::test]
async fn a_prompt_upload_that_is_not_8khz_mono_is_refused_naming_why() {
    let r = hotdesk_router().await;
    let (status, body) = r
        .api(
            "PUT",
            "/tenants/1/prompts/enter-pin",
            Some(tone_wav(16000, 500)),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "wav");
    assert!(
        body["error"].as_str().unwrap().contains("16000 Hz"),
        "{body}"
    );
    let (status, body) = r
        .api(
            "PUT",
            "/tenants/1/prompts/welcome",
            Some(tone_wav(8000, 500)),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "name");
    let (status, body) = r
        .api(
            "PUT",
            "/tenants/1/prompts/enter-pin",
            Some(b"not audio".to_vec()),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (_, list) = r.api("GET", "/tenants/1/prompts", None).await;
    assert_eq!(list["items"], json!([]), "nothing stored");
}
