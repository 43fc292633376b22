//! What the router refuses: it is not a relay for strangers, keeps no state
//! for senders it has not let in, answers unknown and known users alike,
//! and bounds what one sender can make it hold or send.

use std::net::SocketAddr;
use std::time::Duration;

use switchboard_e2e::{password, wait_until, Phone, Proto, TestRouter, DOMAIN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const T: Duration = Duration::from_secs(3);
const QUIET: Duration = Duration::from_millis(800);

/// A UDP endpoint that only listens: a trunk or phone an attacker aims at.
struct Listener {
    sock: UdpSocket,
    addr: SocketAddr,
}

impl Listener {
    async fn new() -> Listener {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        Listener { sock, addr }
    }

    /// Whether anything arrives within `within`.
    async fn hears_anything(&self, within: Duration) -> bool {
        let mut buf = vec![0u8; 65536];
        tokio::time::timeout(within, self.sock.recv_from(&mut buf))
            .await
            .is_ok()
    }
}

/// A stranger: a phone that never registered and knows no password.
async fn stranger(r: &TestRouter) -> Phone {
    Phone::new(r.sip(), "6666", "no-password", Proto::Udp).await
}

fn in_dialog_request(
    method: &str,
    ruri: &str,
    route: Option<&str>,
    local: SocketAddr,
    call_id: &str,
) -> String {
    let route = route.map(|r| format!("Route: {r}\r\n")).unwrap_or_default();
    format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{call_id}{method};rport\r\n\
         Max-Forwards: 70\r\n{route}From: <sip:attacker@evil.example>;tag=a1\r\n\
         To: <{ruri}>;tag=x\r\nCall-ID: {call_id}\r\nCSeq: 7 {method}\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Sends a stranger's in-dialog request aimed at a listener (through the
/// Request-URI, or a Route naming it or us); checks the 403 and that the
/// listener hears nothing.
async fn assert_not_relayed(r: &TestRouter, method: &str, user: &str, route: Route<'_>) {
    let target = Listener::new().await;
    let mut attacker = stranger(r).await;
    let ruri = format!("sip:{user}@{}", target.addr);
    let route = match route {
        Route::None => None,
        Route::ToTarget => Some(format!("<sip:{};lr>", target.addr)),
        Route::Given(r) => Some(r.to_owned()),
    };
    let call_id = format!("relay-{method}-{}", rand_suffix());
    let text = in_dialog_request(method, &ruri, route.as_deref(), attacker.local, &call_id);
    attacker.send_raw(&text).await;
    let resp = attacker.final_response(T).await.expect("an answer");
    assert_eq!(resp.status(), Some(403), "{method}: {}", resp.raw);
    assert!(
        !target.hears_anything(QUIET).await,
        "{method}: nothing left the router"
    );
}

/// What Route an attacker's request carries.
enum Route<'a> {
    None,
    ToTarget,
    Given(&'a str),
}

fn rand_suffix() -> u64 {
    rand::random()
}

#[tokio::test]
async fn an_invite_with_a_to_tag_from_a_stranger_is_refused_and_nothing_is_relayed() {
    let r = TestRouter::start().await;
    assert_not_relayed(&r, "INVITE", "441234567890", Route::None).await;
}

#[tokio::test]
async fn a_message_with_a_foreign_route_is_refused_and_nothing_is_relayed() {
    let r = TestRouter::start().await;
    assert_not_relayed(&r, "MESSAGE", "someone", Route::ToTarget).await;
}

#[tokio::test]
async fn a_bye_naming_our_route_without_its_signature_is_refused() {
    let r = TestRouter::start().await;
    let ours = format!("<sip:{};lr>", r.sip());
    assert_not_relayed(&r, "BYE", "someone", Route::Given(&ours)).await;
}

#[tokio::test]
async fn a_route_signed_for_another_call_does_not_open_a_relay() {
    let r = TestRouter::start().await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let call = alice.call("2002").await;
    let inv = bob.expect_invite(T).await.expect("bob rings");
    let signed = inv.header("Record-Route").unwrap().to_owned();
    assert!(
        signed.contains(";sb="),
        "our Record-Route is signed: {signed}"
    );
    bob.respond(&inv, 200, "OK", "b").await;
    let ok = alice.recv_until(T, |m| m.status() == Some(200)).await;
    alice.in_dialog(&call, &ok.unwrap(), "ACK", call.cseq).await;
    assert_not_relayed(&r, "INVITE", "441234567890", Route::Given(&signed)).await;
}

#[tokio::test]
async fn an_unauthenticated_message_is_challenged_and_never_reaches_the_phone() {
    let r = TestRouter::start().await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let mut attacker = stranger(&r).await;
    let text = attacker.request_text("MESSAGE", "2002", None);
    attacker.send_raw(&text).await;
    let resp = attacker.final_response(T).await.expect("an answer");
    assert_eq!(resp.status(), Some(407), "{}", resp.raw);
    assert!(bob.recv(QUIET).await.is_none(), "the phone got nothing");
}

#[tokio::test]
async fn unauthenticated_options_subscribe_and_refer_to_a_phone_are_challenged() {
    let r = TestRouter::start().await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let mut attacker = stranger(&r).await;
    for method in ["OPTIONS", "SUBSCRIBE", "REFER"] {
        let text = attacker.request_text(method, "2002", None);
        attacker.send_raw(&text).await;
        let resp = attacker.final_response(T).await.expect("an answer");
        assert_eq!(resp.status(), Some(407), "{method}: {}", resp.raw);
    }
    assert!(bob.recv(QUIET).await.is_none(), "the phone got nothing");
}

#[tokio::test]
async fn an_authenticated_message_reaches_the_phone() {
    let r = TestRouter::start().await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let (send, ()) = tokio::join!(alice.request("MESSAGE", "2002"), async {
        let m = bob
            .recv_until(T, |m| m.method() == Some("MESSAGE"))
            .await
            .expect("the MESSAGE arrives");
        bob.respond(&m, 200, "OK", "b").await;
    });
    assert_eq!(send.expect("an answer").status(), Some(200));
}

#[tokio::test]
async fn options_to_the_router_itself_is_answered_without_credentials() {
    let r = TestRouter::start().await;
    let mut attacker = stranger(&r).await;
    let text = format!(
        "OPTIONS sip:{router} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bKping1\r\n\
         From: <sip:x@{DOMAIN}>;tag=p\r\nTo: <sip:{router}>\r\nCall-ID: ping-1\r\nCSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        router = r.sip(),
        l = attacker.local
    );
    attacker.send_raw(&text).await;
    assert_eq!(
        attacker.final_response(T).await.unwrap().status(),
        Some(200)
    );
}

/// Everything the router sends to `p` within `quiet` of the last message.
async fn drain(p: &mut Phone, quiet: Duration) -> Vec<switchboard_e2e::Msg> {
    let mut received = Vec::new();
    while let Some(m) = p.recv(quiet).await {
        received.push(m);
    }
    received
}

#[tokio::test]
async fn a_challenge_to_a_stranger_is_sent_once_without_100_trying_or_resends() {
    let r = TestRouter::start_with(|c| c.sip.t1_ms = 100).await;
    let mut attacker = stranger(&r).await;
    attacker.invite_unauthenticated("2002").await;
    // With T1 = 100 ms a stateful 407 would be resent 4 times in 1.5 s.
    let received = drain(&mut attacker, Duration::from_millis(1500)).await;
    assert_eq!(received.len(), 1, "one response: {received:?}");
    assert_eq!(received[0].status(), Some(407));
    assert_eq!(r.running.router().server_transactions(), 0, "no state kept");
}

#[tokio::test]
async fn a_challenge_is_at_most_one_and_a_half_times_the_invite_it_answers() {
    let r = TestRouter::start().await;
    let mut attacker = stranger(&r).await;
    let call = attacker.invite_unauthenticated("2002").await;
    let sent = attacker.invite_text(&call).len();
    let received = drain(&mut attacker, QUIET).await;
    let out: usize = received.iter().map(|m| m.raw.len()).sum();
    let ratio = out as f64 / sent as f64;
    eprintln!("challenge amplification (phone's INVITE): {out}/{sent} = {ratio:.2}");
    assert!(ratio <= 1.5, "{out} bytes out for {sent} in: {ratio:.2}");
}

#[tokio::test]
async fn a_challenge_to_the_smallest_invite_is_under_twice_its_size() {
    let r = TestRouter::start().await;
    let mut attacker = stranger(&r).await;
    let invite = format!(
        "INVITE sip:2002@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bKrefl1\r\n\
         From: <sip:x@{DOMAIN}>;tag=r\r\nTo: <sip:2002@{DOMAIN}>\r\nCall-ID: refl-1\r\n\
         CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        l = attacker.local
    );
    attacker.send_raw(&invite).await;
    let received = drain(&mut attacker, QUIET).await;
    let out: usize = received.iter().map(|m| m.raw.len()).sum();
    let ratio = out as f64 / invite.len() as f64;
    eprintln!(
        "challenge amplification (smallest INVITE): {out}/{} = {ratio:.2}",
        invite.len()
    );
    assert!(
        ratio < 2.0,
        "{out} bytes out for {} in: {ratio:.2}",
        invite.len()
    );
}

#[tokio::test]
async fn an_unknown_user_is_challenged_exactly_like_a_known_one() {
    let r = TestRouter::start().await;
    let mut names = Vec::new();
    for user in ["2001", "2999"] {
        let mut p = Phone::new(r.sip(), user, "wrong", Proto::Udp).await;
        let text = format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bKenum{user}\r\n\
             From: <sip:{user}@{DOMAIN}>;tag=e\r\nTo: <sip:{user}@{DOMAIN}>\r\nCall-ID: enum-{user}\r\n\
             CSeq: 1 REGISTER\r\nContact: <sip:{user}@{l}>\r\nContent-Length: 0\r\n\r\n",
            l = p.local
        );
        p.send_raw(&text).await;
        let resp = p.final_response(T).await.unwrap();
        assert_eq!(resp.status(), Some(401), "{user}: {}", resp.raw);
        let shape: Vec<(String, usize)> = resp
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.len()))
            .filter(|(n, _)| n != "Via" && n != "From" && n != "To" && n != "Call-ID")
            .collect();
        names.push((shape, resp.reason().to_owned()));
    }
    assert_eq!(names[0], names[1], "same status, headers and sizes");
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_refusal() {
    let r = TestRouter::start().await;
    let mut known = Phone::new(r.sip(), "2001", "wrong", Proto::Udp).await;
    let mut unknown = Phone::new(r.sip(), "2999", "wrong", Proto::Udp).await;
    let a = known.register(600).await;
    let b = unknown.register(600).await;
    assert_eq!(a.status(), Some(403));
    assert_eq!((a.status(), a.reason()), (b.status(), b.reason()));
}

#[tokio::test]
async fn a_q_value_that_is_not_a_number_gets_400_and_is_not_kept() {
    let r = TestRouter::start().await;
    let mut p = Phone::new(r.sip(), "2001", &password("2001"), Proto::Udp).await;
    let contact = format!("<sip:2001@{}>;q=nan", p.local);
    let resp = p.register_contact(600, &contact).await;
    assert_eq!(resp.status(), Some(400), "{}", resp.raw);
    assert!(!r
        .running
        .router()
        .registrar()
        .location()
        .is_registered(1, "2001"));
}

#[tokio::test]
async fn a_bad_registration_does_not_fail_others_in_the_same_batch() {
    let r = TestRouter::start().await;
    let mut tasks = Vec::new();
    for (i, user) in ["2001", "2002", "2003", "2004"].into_iter().enumerate() {
        let sip = r.sip();
        tasks.push(tokio::spawn(async move {
            let mut p = Phone::new(sip, user, &password(user), Proto::Udp).await;
            let mut statuses = Vec::new();
            for n in 0..20 {
                let q = if i == 0 { "nan" } else { "0.5" };
                let contact = format!("<sip:{user}-{n}@{}>;q={q}", p.local);
                statuses.push(p.register_contact(600, &contact).await.status());
            }
            (i, statuses)
        }));
    }
    for t in tasks {
        let (i, statuses) = t.await.unwrap();
        let want = if i == 0 { 400 } else { 200 };
        assert!(
            statuses.iter().all(|s| *s == Some(want)),
            "phone {i}: {statuses:?}"
        );
    }
}

#[tokio::test]
async fn an_address_of_record_holds_at_most_ten_contacts_the_oldest_make_room() {
    let r = TestRouter::start().await;
    let mut p = Phone::new(r.sip(), "2001", &password("2001"), Proto::Udp).await;
    for n in 0..15u32 {
        let contact = format!("<sip:2001-{n}@{}>", p.local);
        let resp = p.register_contact(600 + n, &contact).await;
        assert_eq!(resp.status(), Some(200), "{}", resp.raw);
    }
    let kept = r.running.router().registrar().location().lookup(1, "2001");
    assert_eq!(kept.len(), 10);
    assert!(kept.iter().all(|b| !b.contact.contains("2001-0@")));
}

#[tokio::test]
async fn one_register_naming_more_than_ten_contacts_is_refused() {
    let r = TestRouter::start().await;
    let mut p = Phone::new(r.sip(), "2001", &password("2001"), Proto::Udp).await;
    let contacts: Vec<String> = (0..11)
        .map(|n| format!("<sip:2001-{n}@{}>", p.local))
        .collect();
    let resp = p.register_contact(600, &contacts.join(", ")).await;
    assert_eq!(resp.status(), Some(403), "{}", resp.raw);
}

#[tokio::test]
async fn a_contact_at_another_public_address_or_at_the_router_is_refused() {
    let r = TestRouter::start().await;
    let mut p = Phone::new(r.sip(), "2001", &password("2001"), Proto::Udp).await;
    let foreign = p
        .register_contact(600, "<sip:2001@198.51.100.7:5060>")
        .await;
    assert_eq!(foreign.status(), Some(403), "{}", foreign.raw);
    let us = format!("<sip:2001@{}>", r.sip());
    let looped = p.register_contact(600, &us).await;
    assert_eq!(looped.status(), Some(403), "{}", looped.raw);
}

#[tokio::test]
async fn a_percent_escape_next_to_a_multibyte_character_is_answered() {
    let r = TestRouter::start().await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    alice.call("%a\u{e9}").await;
    let resp = alice.final_response(T).await.expect("a final answer");
    assert!(resp.status().unwrap() >= 400, "{}", resp.raw);
}

#[tokio::test]
async fn a_call_hung_up_right_after_the_answer_leaves_no_live_call() {
    let r = TestRouter::start().await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    for n in 0..200u64 {
        let call = alice.call("2002").await;
        let inv = bob.expect_invite(T).await.expect("bob rings");
        bob.respond(&inv, 200, "OK", &format!("b{n}")).await;
        let ok = alice
            .recv_until(T, |m| m.status() == Some(200))
            .await
            .expect("200");
        alice.in_dialog(&call, &ok, "ACK", call.cseq).await;
        tokio::time::sleep(Duration::from_millis(n % 51)).await;
        alice.in_dialog(&call, &ok, "BYE", call.cseq + 1).await;
        let bye = bob
            .recv_until(T, |m| m.method() == Some("BYE"))
            .await
            .expect("BYE");
        bob.respond(&bye, 200, "OK", "").await;
        alice
            .recv_until(T, |m| {
                m.status() == Some(200) && m.header("CSeq").is_some_and(|c| c.contains("BYE"))
            })
            .await
            .expect("200 to BYE");
    }
    assert_eq!(r.running.router().dialogs().len(), 0);
    let (status, live) = r.api("GET", "/tenants/1/live-calls", None).await;
    assert_eq!(status, 200);
    assert_eq!(live["items"], serde_json::json!([]), "{live}");
}

#[tokio::test]
async fn a_callee_hanging_up_as_it_answers_leaves_no_live_call() {
    let r = TestRouter::start().await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    for n in 0..50u32 {
        let call = alice.call("2002").await;
        let inv = bob.expect_invite(T).await.expect("bob rings");
        let tag = format!("b{n}");
        bob.respond(&inv, 200, "OK", &tag).await;
        bob.request_as_callee(&inv, &tag, "BYE", 1, "").await;
        let ok = alice
            .recv_until(T, |m| m.status() == Some(200))
            .await
            .expect("200");
        alice.in_dialog(&call, &ok, "ACK", call.cseq).await;
        let bye = alice
            .recv_until(T, |m| m.method() == Some("BYE"))
            .await
            .expect("the BYE reaches the caller");
        alice.respond(&bye, 200, "OK", "").await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(r.running.router().dialogs().len(), 0);
    assert_eq!(r.running.router().dialogs().active_calls(1, "2002"), 0);
}

#[tokio::test]
async fn an_answered_call_with_no_activity_is_reaped_after_the_idle_bound() {
    let r = TestRouter::start_with(|c| c.sip.dialog_max_idle_secs = 1).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let call = alice.call("2002").await;
    let inv = bob.expect_invite(T).await.expect("bob rings");
    bob.respond(&inv, 200, "OK", "b").await;
    let ok = alice.recv_until(T, |m| m.status() == Some(200)).await;
    alice.in_dialog(&call, &ok.unwrap(), "ACK", call.cseq).await;
    assert_eq!(r.running.router().dialogs().active_calls(1, "2002"), 1);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(r.running.router().dialogs().len(), 0);
    assert_eq!(r.running.router().dialogs().active_calls(1, "2002"), 0);
}

/// RFC 4475-style invalid INVITEs: each gets 400 and nothing else (no
/// 100 Trying, no challenge).
#[tokio::test]
async fn invalid_invites_get_400_before_any_transaction() {
    let r = TestRouter::start().await;
    let mut p = stranger(&r).await;
    let l = p.local;
    let cases = [
        (
            "unclosed < in From",
            format!("From: <sip:x@{DOMAIN};tag=1\r\nTo: <sip:2002@{DOMAIN}>\r\nMax-Forwards: 70\r\n"),
        ),
        (
            "unterminated display name",
            format!("From: \"Bob <sip:x@{DOMAIN}>;tag=1\r\nTo: <sip:2002@{DOMAIN}>\r\nMax-Forwards: 70\r\n"),
        ),
        (
            "Max-Forwards not a number",
            format!("From: <sip:x@{DOMAIN}>;tag=1\r\nTo: <sip:2002@{DOMAIN}>\r\nMax-Forwards: seventy\r\n"),
        ),
    ];
    for (n, (what, headers)) in cases.iter().enumerate() {
        let text = format!(
            "INVITE sip:2002@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bKbad{n}\r\n\
             {headers}Call-ID: bad-{n}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        p.send_raw(&text).await;
        let first = p.recv(T).await.expect("an answer");
        assert_eq!(first.status(), Some(400), "{what}: {}", first.raw);
    }
    let no_sent_by = format!(
        "INVITE sip:2002@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP ;branch=z9hG4bKnosb\r\n\
         From: <sip:x@{DOMAIN}>;tag=1\r\nTo: <sip:2002@{DOMAIN}>\r\nCall-ID: bad-sb\r\n\
         CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    );
    p.send_raw(&no_sent_by).await;
    // No sent-by: there is nowhere to answer but the source; 400 or silence,
    // never a transaction.
    if let Some(m) = p.recv(QUIET).await {
        assert_eq!(m.status(), Some(400), "{}", m.raw);
    }
    assert!(p.recv(QUIET).await.is_none(), "nothing more");
    assert_eq!(r.running.router().server_transactions(), 0);
}

/// RFC 4475 3.1.1 valid messages the strict checks must let through: a
/// user part with a `;` parameter, and a To URI of an unknown scheme.
#[tokio::test]
async fn unusual_but_valid_invites_are_not_refused() {
    let r = TestRouter::start().await;
    let mut p = stranger(&r).await;
    let l = p.local;
    let cases = [
        (
            "user part with a parameter",
            format!("sip:2002;par=u@{DOMAIN}"),
            format!("<sip:2002@{DOMAIN}>"),
        ),
        (
            "To of an unknown scheme",
            format!("sip:2002@{DOMAIN}"),
            "<http://www.example.com>".to_owned(),
        ),
    ];
    for (n, (what, ruri, to)) in cases.iter().enumerate() {
        let text = format!(
            "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bKodd{n}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:x@{DOMAIN}>;tag=1\r\nTo: {to}\r\nCall-ID: odd-{n}\r\n\
             CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        p.send_raw(&text).await;
        let resp = p.final_response(T).await.expect("an answer");
        assert_eq!(resp.status(), Some(407), "{what}: {}", resp.raw);
    }
}

#[tokio::test]
async fn a_request_uri_in_angle_brackets_gets_400() {
    let r = TestRouter::start().await;
    let mut p = stranger(&r).await;
    let text = format!(
        "INVITE <sip:2002@{DOMAIN}> SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bKangle\r\n\
         Max-Forwards: 70\r\nFrom: <sip:x@{DOMAIN}>;tag=1\r\nTo: <sip:2002@{DOMAIN}>\r\n\
         Call-ID: angle-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        l = p.local
    );
    p.send_raw(&text).await;
    let resp = p.recv(T).await.expect("an answer");
    assert_eq!(resp.status(), Some(400), "{}", resp.raw);
}

#[tokio::test]
async fn an_unknown_method_gets_501() {
    let r = TestRouter::start().await;
    let mut p = stranger(&r).await;
    let text = format!(
        "NEWMETHOD sip:2002@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bKnm1\r\n\
         From: <sip:x@{DOMAIN}>;tag=1\r\nTo: <sip:2002@{DOMAIN}>\r\nCall-ID: nm-1\r\n\
         CSeq: 1 NEWMETHOD\r\nContent-Length: 0\r\n\r\n",
        l = p.local
    );
    p.send_raw(&text).await;
    assert_eq!(p.recv(T).await.expect("an answer").status(), Some(501));
}

#[tokio::test]
async fn requests_with_the_same_branch_from_different_senders_are_different_transactions() {
    let r = TestRouter::start().await;
    let mut p = stranger(&r).await;
    for (n, sent_by) in ["192.0.2.1:5060", "192.0.2.2:5060"].iter().enumerate() {
        let text = format!(
            "OPTIONS sip:{router} SIP/2.0\r\nVia: SIP/2.0/UDP {sent_by};branch=z9hG4bKsame;rport\r\n\
             From: <sip:x@{DOMAIN}>;tag=s{n}\r\nTo: <sip:{router}>\r\nCall-ID: same-branch-{n}\r\n\
             CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            router = r.sip()
        );
        p.send_raw(&text).await;
        let resp = p.recv(T).await.expect("an answer");
        assert_eq!(
            resp.header("Call-ID"),
            Some(format!("same-branch-{n}").as_str()),
            "answered as its own transaction"
        );
    }
}

/// Connections to the router's SIP port that the kernel still holds
/// (anything but LISTEN): what a leaked descriptor looks like from outside.
fn router_side_connections(port: u16) -> usize {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let local_port = cols
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            local_port == Some(port) && cols.get(3) != Some(&"0A")
        })
        .count()
}

#[tokio::test]
async fn a_huge_content_length_on_tcp_closes_the_connection_and_frees_it() {
    let r = TestRouter::start().await;
    let port = r.sip().port();
    let mut conns = Vec::new();
    for n in 0..50 {
        let mut s = TcpStream::connect(r.sip()).await.unwrap();
        let text = format!(
            "OPTIONS sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKcl{n}\r\n\
             From: <sip:x@{DOMAIN}>;tag=1\r\nTo: <sip:{DOMAIN}>\r\nCall-ID: cl-{n}\r\nCSeq: 1 OPTIONS\r\n\
             Content-Length: 18446744073709551615\r\n\r\n"
        );
        s.write_all(text.as_bytes()).await.unwrap();
        conns.push(s);
    }
    drop(conns);
    let transport_count = || r.running.router().tcp_connections();
    assert!(
        wait_until(Duration::from_secs(5), || transport_count() == 0).await,
        "router still holds {} connections",
        transport_count()
    );
    assert!(
        wait_until(Duration::from_secs(5), || router_side_connections(port)
            == 0)
        .await,
        "descriptors still open: {}",
        router_side_connections(port)
    );
    let _fresh = r.phone("2001", Proto::Tcp).await;
}

#[tokio::test]
async fn a_message_that_does_not_complete_in_time_closes_the_connection() {
    let r = TestRouter::start_with(|c| c.sip.tcp.message_secs = 1).await;
    let mut s = TcpStream::connect(r.sip()).await.unwrap();
    s.write_all(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed: {read:?}");
}

#[tokio::test]
async fn an_idle_connection_without_a_registration_is_closed() {
    let r = TestRouter::start_with(|c| c.sip.tcp.idle_secs = 1).await;
    let mut s = TcpStream::connect(r.sip()).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed: {read:?}");
}

#[tokio::test]
async fn an_idle_connection_carrying_a_registration_stays_open() {
    let r = TestRouter::start_with(|c| c.sip.tcp.idle_secs = 1).await;
    let mut bob = r.phone("2002", Proto::Tcp).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    alice.call("2002").await;
    assert!(
        bob.expect_invite(T).await.is_some(),
        "bob's flow still open"
    );
}

#[tokio::test]
async fn connections_beyond_the_per_source_cap_are_refused() {
    let r = TestRouter::start_with(|c| c.sip.tcp.max_per_source = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(r.sip()).await.unwrap());
    }
    assert!(
        wait_until(Duration::from_secs(2), || {
            r.running.router().tcp_connections() == 3
        })
        .await
    );
    let mut extra = TcpStream::connect(r.sip()).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(2), extra.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "refused: {read:?}");
    assert_eq!(r.running.router().tcp_connections(), 3);
}

#[tokio::test]
async fn a_feature_code_login_is_in_the_database_when_the_phone_hears_it() {
    let r = TestRouter::start().await;
    r.add_device("5401").await;
    r.patch_employee("2003", serde_json::json!({"voicemail_pin": "1234"}))
        .await;
    r.chain(&["hotdesk"]).await;
    let mut desk = r.phone("5401", Proto::Udp).await;
    let call = desk.call("*88*2003*1234").await;
    let resp = desk.final_response(T).await.expect("an answer");
    assert_eq!(resp.status(), Some(200), "{}", resp.raw);
    // Read the file the moment the phone has the answer.
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT device, extension FROM device_bindings")
            .fetch_all(r.running.store().pool())
            .await
            .unwrap();
    assert_eq!(rows, vec![("5401".to_owned(), "2003".to_owned())]);
    desk.ack_failure(&call, &resp).await;
}

#[tokio::test]
async fn metrics_show_the_gauges_of_everything_that_can_leak() {
    let r = TestRouter::start().await;
    let body = r.metrics().await;
    for gauge in [
        "switchboard_server_transactions",
        "switchboard_client_transactions",
        "switchboard_active_dialogs",
        "switchboard_tcp_connections",
        "switchboard_plugin_instances",
    ] {
        assert!(body.contains(&format!("# TYPE {gauge} gauge")), "{gauge}");
    }
}

#[tokio::test]
async fn a_looping_plugin_s_settings_validation_does_not_stall_sip() {
    let r = std::sync::Arc::new(TestRouter::start().await);
    let (status, resp) = r.upload_guest("looper", "test-loop").await;
    assert_eq!(status, 201, "{resp}");
    let until = tokio::time::Instant::now() + Duration::from_millis(2500);
    let mut abusers = Vec::new();
    for _ in 0..4 {
        let r = r.clone();
        abusers.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            while tokio::time::Instant::now() < until {
                let (s, _) = r.settings("looper", "tenant", serde_json::json!({})).await;
                statuses.push(s);
            }
            statuses
        }));
    }
    let mut probe = stranger(&r).await;
    let mut worst = Duration::ZERO;
    let mut n = 0;
    while tokio::time::Instant::now() < until {
        let text = format!(
            "OPTIONS sip:{router} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bKprobe{n}\r\n\
             From: <sip:x@{DOMAIN}>;tag=p\r\nTo: <sip:{router}>\r\nCall-ID: probe-{n}\r\n\
             CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            router = r.sip(),
            l = probe.local
        );
        let sent = std::time::Instant::now();
        probe.send_raw(&text).await;
        assert!(probe.recv(T).await.is_some(), "probe {n} answered");
        worst = worst.max(sent.elapsed());
        n += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for a in abusers {
        let statuses = a.await.unwrap();
        assert!(
            statuses.iter().all(|s| *s == 422 || *s == 429),
            "{statuses:?}"
        );
    }
    eprintln!("worst SIP probe during settings abuse: {worst:?} over {n} probes");
    // Before, each validation held a runtime worker for a second: probes
    // waited 1.6 s and more.
    assert!(worst < Duration::from_millis(400), "worst probe {worst:?}");
}

#[tokio::test]
async fn the_signed_route_of_a_call_that_ended_opens_nothing() {
    let r = TestRouter::start().await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let call = alice.call("2002").await;
    let inv = bob.expect_invite(T).await.expect("bob rings");
    let signed = inv.header("Record-Route").unwrap().to_owned();
    bob.respond(&inv, 200, "OK", "b").await;
    let ok = alice
        .recv_until(T, |m| m.status() == Some(200))
        .await
        .unwrap();
    alice.in_dialog(&call, &ok, "ACK", call.cseq).await;
    alice.in_dialog(&call, &ok, "BYE", call.cseq + 1).await;
    let bye = bob
        .recv_until(T, |m| m.method() == Some("BYE"))
        .await
        .unwrap();
    bob.respond(&bye, 200, "OK", "").await;
    // Later, a stranger replays the call's signed route.
    let trunk = Listener::new().await;
    let mut attacker = stranger(&r).await;
    let text = in_dialog_request(
        "INVITE",
        &format!("sip:441234567890@{}", trunk.addr),
        Some(&signed),
        attacker.local,
        &call.call_id,
    );
    attacker.send_raw(&text).await;
    let resp = attacker.final_response(T).await.expect("an answer");
    assert_eq!(resp.status(), Some(481), "{}", resp.raw);
    assert!(
        !trunk.hears_anything(QUIET).await,
        "nothing left the router"
    );
}

#[tokio::test]
async fn a_forged_2xx_for_a_branch_we_never_made_is_not_relayed() {
    let r = TestRouter::start().await;
    let target = Listener::new().await;
    let mut attacker = stranger(&r).await;
    let text = format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {router};branch=z9hG4bKforged1\r\n\
         Via: SIP/2.0/UDP {t};branch=z9hG4bKvictim\r\n\
         From: <sip:a@{DOMAIN}>;tag=1\r\nTo: <sip:b@{DOMAIN}>;tag=2\r\nCall-ID: forged-2xx\r\n\
         CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        router = r.sip(),
        t = target.addr
    );
    attacker.send_raw(&text).await;
    assert!(
        !target.hears_anything(QUIET).await,
        "nothing left the router"
    );
}

#[tokio::test]
async fn a_subscription_is_record_routed_and_its_notify_comes_back_through_us() {
    let r = TestRouter::start().await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let (answer, sub) = tokio::join!(alice.request("SUBSCRIBE", "2002"), async {
        let sub = bob
            .recv_until(T, |m| m.method() == Some("SUBSCRIBE"))
            .await
            .expect("the SUBSCRIBE arrives");
        bob.respond(&sub, 200, "OK", "n1").await;
        sub
    });
    assert_eq!(answer.expect("an answer").status(), Some(200));
    assert!(
        sub.header("Record-Route")
            .is_some_and(|r| r.contains(";sb=")),
        "{}",
        sub.raw
    );
    bob.request_as_callee(&sub, "n1", "NOTIFY", 1, "Event: presence\r\n")
        .await;
    let notify = alice.recv_until(T, |m| m.method() == Some("NOTIFY")).await;
    assert!(notify.is_some(), "the NOTIFY reaches the subscriber");
}
