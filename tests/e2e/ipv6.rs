//! IPv6 (RFC 3261 section 25.1 bracketed references): with `sip.listen_v6`
//! the router takes phones on `[::1]`, writes its IPv6 address in brackets
//! into Via and Record-Route towards them, and carries calls between IPv4
//! and IPv6 phones with two Record-Route entries, one per family.

use std::time::Duration;

use switchboard_e2e::{password, Phone, Proto, TestRouter};

const T: Duration = Duration::from_secs(4);

/// A router on 127.0.0.1 and [::1], or `None` (the test says NOT RUN) on
/// a machine without IPv6 loopback.
async fn dual_stack() -> Option<TestRouter> {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("NOT RUN: this machine has no IPv6 loopback (::1)");
        return None;
    }
    Some(TestRouter::start_with(|c| c.sip.listen_v6 = Some("[::1]:0".parse().unwrap())).await)
}

async fn v6_phone(r: &TestRouter, user: &str) -> Phone {
    let addr = r.running.sip_addr_v6.expect("the router listens on IPv6");
    let mut p = Phone::new(addr, user, &password(user), Proto::Udp).await;
    let resp = p.register(3600).await;
    assert_eq!(resp.status(), Some(200), "{}", resp.raw);
    p
}

#[tokio::test]
async fn a_phone_on_ipv6_registers_with_a_bracketed_contact() {
    let Some(r) = dual_stack().await else {
        return;
    };
    let p = v6_phone(&r, "2002").await;
    let (status, body) = r.api("GET", "/tenants/1/registrations", None).await;
    assert_eq!(status, 200, "{body}");
    let contact = format!("sip:2002@{}", p.local);
    assert!(contact.contains("[::1]:"), "{contact}");
    assert!(
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["contact"].as_str().is_some_and(|c| c.contains(&contact))),
        "{body}"
    );
}

#[tokio::test]
async fn an_ipv4_phone_calls_an_ipv6_phone_through_one_record_route_per_family() {
    let Some(r) = dual_stack().await else {
        return;
    };
    let mut alice = r.phone("2001", Proto::Udp).await;
    let mut bob = v6_phone(&r, "2002").await;
    let call = alice.call("2002").await;
    let inv = bob.expect_invite(T).await.expect("INVITE over IPv6");
    let v6_port = r.running.sip_addr_v6.unwrap().port();
    assert!(
        inv.header("Via")
            .unwrap()
            .starts_with(&format!("SIP/2.0/UDP [::1]:{v6_port};")),
        "{}",
        inv.raw
    );
    let rr: Vec<&str> = inv.headers_all("Record-Route").collect();
    assert_eq!(rr.len(), 2, "{rr:?}");
    assert!(
        rr[0].contains(&format!("[::1]:{v6_port};")),
        "the entry facing the IPv6 callee: {rr:?}"
    );
    assert!(
        rr[1].contains(&format!("127.0.0.1:{};", r.sip().port())),
        "the entry facing the IPv4 caller: {rr:?}"
    );
    let ok = alice.answered_by(&call, &mut bob, &inv).await;
    alice.hang_up(&call, &ok, &mut bob).await;
}

#[tokio::test]
async fn an_ipv6_phone_calls_an_ipv4_phone_and_hangs_up() {
    let Some(r) = dual_stack().await else {
        return;
    };
    let mut alice = v6_phone(&r, "2001").await;
    let mut bob = r.phone("2002", Proto::Udp).await;
    let call = alice.call("2002").await;
    let inv = bob.expect_invite(T).await.expect("INVITE over IPv4");
    assert!(
        inv.header("Via")
            .unwrap()
            .starts_with(&format!("SIP/2.0/UDP 127.0.0.1:{};", r.sip().port())),
        "{}",
        inv.raw
    );
    let ok = alice.answered_by(&call, &mut bob, &inv).await;
    alice.hang_up(&call, &ok, &mut bob).await;
}

#[tokio::test]
async fn a_phone_on_ipv6_over_tcp_is_called_over_its_connection() {
    let Some(r) = dual_stack().await else {
        return;
    };
    let mut alice = r.phone("2001", Proto::Udp).await;
    let addr = r.running.sip_addr_v6.unwrap();
    let mut bob = Phone::new(addr, "2002", &password("2002"), Proto::Tcp).await;
    assert!(bob.local.is_ipv6());
    assert_eq!(bob.register(3600).await.status(), Some(200));
    alice.call("2002").await;
    let inv = bob.expect_invite(T).await.expect("INVITE over IPv6 TCP");
    assert!(
        inv.header("Via")
            .unwrap()
            .starts_with(&format!("SIP/2.0/TCP [::1]:{};", addr.port())),
        "{}",
        inv.raw
    );
    bob.respond(&inv, 486, "Busy Here", "b").await;
    let busy = alice
        .recv_until(T, |m| m.status().is_some_and(|s| s >= 300))
        .await
        .expect("the callee's answer relayed");
    assert_eq!(busy.status(), Some(486));
}
