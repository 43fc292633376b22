//! SIP over TLS (RFC 3261 section 26, RFC 5630): phones register over TLS
//! and are reached over their TLS flow, Record-Route says so, sips: never
//! travels in the clear, and TLS connections are bounded like TCP ones.

use std::time::Duration;

use switchboard_e2e::{password, Phone, Proto, TestRouter};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(4);

#[tokio::test]
async fn a_phone_registered_over_tls_is_called_over_its_tls_flow() {
    let r = TestRouter::start_with_tls(|_| {}).await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = r.phone("2002", Proto::Tls).await;
    let call = alice.call("2002").await;
    let inv = bob.expect_invite(T).await.expect("INVITE over TLS");
    let tls_port = r.running.tls_addr.unwrap().port();
    assert!(
        inv.header("Via").unwrap().starts_with("SIP/2.0/TLS"),
        "{}",
        inv.raw
    );
    let rr: Vec<&str> = inv.headers_all("Record-Route").collect();
    assert!(
        rr[0].contains(";transport=tls") && rr[0].contains(&format!(":{tls_port};")),
        "the entry facing the TLS phone names our TLS port: {rr:?}"
    );
    let ok = alice.answered_by(&call, &mut bob, &inv).await;
    alice.hang_up(&call, &ok, &mut bob).await;
}

#[tokio::test]
async fn a_sips_contact_registered_over_plain_tcp_is_refused() {
    let r = TestRouter::start_with_tls(|_| {}).await;
    let mut p = Phone::new(r.sip(), "2002", &password("2002"), Proto::Tcp).await;
    let contact = format!("<sips:2002@{}>", p.local);
    let resp = p.register_contact(600, &contact).await;
    assert_eq!(resp.status(), Some(400), "{}", resp.raw);
}

#[tokio::test]
async fn a_sips_contact_registered_over_tls_is_accepted() {
    let r = TestRouter::start_with_tls(|_| {}).await;
    let mut p = Phone::new(
        r.addr_for(Proto::Tls),
        "2002",
        &password("2002"),
        Proto::Tls,
    )
    .await;
    let contact = format!("<sips:2002@{}>", p.local);
    let resp = p.register_contact(600, &contact).await;
    assert_eq!(resp.status(), Some(200), "{}", resp.raw);
}

#[tokio::test]
async fn a_tls_handshake_that_never_completes_is_closed() {
    let r = TestRouter::start_with_tls(|c| c.sip.tcp.message_secs = 1).await;
    let mut s = TcpStream::connect(r.addr_for(Proto::Tls)).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed: {read:?}");
    assert!(
        switchboard_e2e::wait_until(Duration::from_secs(2), || {
            r.running.router().tcp_connections() == 0
        })
        .await
    );
}

#[tokio::test]
async fn tls_connections_count_against_the_per_source_cap() {
    let r = TestRouter::start_with_tls(|c| c.sip.tcp.max_per_source = 2).await;
    let _a = Phone::new(r.addr_for(Proto::Tls), "2001", "x", Proto::Tls).await;
    let _b = Phone::new(r.addr_for(Proto::Tls), "2002", "x", Proto::Tls).await;
    assert!(
        switchboard_e2e::wait_until(Duration::from_secs(2), || {
            r.running.router().tcp_connections() == 2
        })
        .await
    );
    let mut extra = TcpStream::connect(r.addr_for(Proto::Tls)).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(2), extra.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "refused: {read:?}");
}

#[tokio::test]
async fn a_new_certificate_is_served_once_its_files_change() {
    let r = TestRouter::start_with_tls(|_| {}).await;
    let fresh = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert_pem, key_pem) = (fresh.cert.pem(), fresh.key_pair.serialize_pem());
    let (cert, key) = r.tls_files();
    std::fs::write(&key, &key_pem).unwrap();
    std::fs::write(&cert, &cert_pem).unwrap();
    let connector = switchboard_e2e::tls_connector_trusting(&cert_pem);
    let until = tokio::time::Instant::now() + Duration::from_secs(12);
    loop {
        let tcp = TcpStream::connect(r.addr_for(Proto::Tls)).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        if connector.connect(name, tcp).await.is_ok() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "the new certificate was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
