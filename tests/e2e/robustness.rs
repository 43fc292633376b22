use std::time::Duration;

use switchboard_e2e::{Proto, TestRouter};

const T: Duration = Duration::from_secs(3);

#[tokio::test]
async fn malformed_request_gets_400_and_the_next_request_is_served() {
    let r = TestRouter::start().await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let bad = format!(
        "OPTIONS sip:{d} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bKbad1\r\n\
         From: <sip:2001@{d}>;tag=x\r\nTo: <sip:{d}>\r\nCall-ID: bad-1\r\nCSeq: 1 OPTIONS\r\n\
         Content-Length: 999\r\n\r\n",
        d = switchboard_e2e::DOMAIN,
        l = alice.local
    );
    alice.send_raw(&bad).await;
    let resp = alice.recv(T).await.expect("a 400");
    assert_eq!(resp.status(), Some(400), "{}", resp.raw);
    assert_eq!(alice.register(600).await.status(), Some(200));
}

#[tokio::test]
async fn unparseable_bytes_are_dropped_and_the_router_keeps_serving() {
    let r = TestRouter::start().await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    alice
        .send_raw("\u{1}\u{2}garbage without structure\r\n\r\n")
        .await;
    assert!(alice.recv(Duration::from_millis(500)).await.is_none());
    assert_eq!(alice.register(600).await.status(), Some(200));
}

#[tokio::test]
async fn request_missing_call_id_gets_400() {
    let r = TestRouter::start().await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let bad = format!(
        "OPTIONS sip:{d} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bKbad2\r\n\
         From: <sip:2001@{d}>;tag=x\r\nTo: <sip:{d}>\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        d = switchboard_e2e::DOMAIN,
        l = alice.local
    );
    alice.send_raw(&bad).await;
    assert_eq!(alice.recv(T).await.unwrap().status(), Some(400));
}

#[tokio::test]
async fn max_forwards_zero_gets_483() {
    let r = TestRouter::start().await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let req = format!(
        "MESSAGE sip:2002@{d} SIP/2.0\r\nVia: SIP/2.0/UDP {l};branch=z9hG4bKmf0\r\nMax-Forwards: 0\r\n\
         From: <sip:2001@{d}>;tag=x\r\nTo: <sip:2002@{d}>\r\nCall-ID: mf-1\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n",
        d = switchboard_e2e::DOMAIN,
        l = alice.local
    );
    alice.send_raw(&req).await;
    assert_eq!(alice.recv(T).await.unwrap().status(), Some(483));
}

#[tokio::test]
async fn malformed_tcp_stream_gets_400_and_new_connections_are_served() {
    let r = TestRouter::start().await;
    let mut p = switchboard_e2e::Phone::new(
        r.sip(),
        "2001",
        &switchboard_e2e::password("2001"),
        Proto::Tcp,
    )
    .await;
    let bad = format!(
        "OPTIONS sip:{d} SIP/2.0\r\nVia: SIP/2.0/TCP {l};branch=z9hG4bKbad3\r\n\
         From: <sip:2001@{d}>;tag=x\r\nTo: <sip:{d}>\r\nCall-ID: bad-3\r\nCSeq: 1 OPTIONS\r\n\r\n",
        d = switchboard_e2e::DOMAIN,
        l = p.local
    );
    p.send_raw(&bad).await;
    assert_eq!(
        p.recv(T).await.unwrap().status(),
        Some(400),
        "no Content-Length on TCP"
    );
    let _fresh = r.phone("2001", Proto::Tcp).await;
}
