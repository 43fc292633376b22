//! Trunks found by DNS (RFC 3263) through a real DNS server (Debian's
//! dnsmasq, started and stopped by the test): NAPTR leads to SRV, SRV names
//! two trunks by priority, the first is dead, and the call fails over to
//! the second.

use std::process::Stdio;
use std::time::Duration;

use switchboard_e2e::{Phone, Proto, TestRouter};
use tokio::process::{Child, Command};

const T: Duration = Duration::from_secs(8);

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// dnsmasq answering for `trunk.test` only: a NAPTR to the UDP SRV name,
/// two SRV records (priority 10 on `dead`, 20 on `live`), one address.
async fn dns_server(port: u16, dead: u16, live: u16) -> Child {
    let child = Command::new("dnsmasq")
        .args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--pid-file=",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--log-facility=-",
        ])
        .arg(format!("--port={port}"))
        .arg("--host-record=gw.trunk.test,127.0.0.1")
        .arg(format!(
            "--srv-host=_sip._udp.trunk.test,gw.trunk.test,{dead},10,10"
        ))
        .arg(format!(
            "--srv-host=_sip._udp.trunk.test,gw.trunk.test,{live},20,10"
        ))
        .arg("--naptr-record=trunk.test,10,10,S,SIP+D2U,,_sip._udp.trunk.test")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("dnsmasq starts");
    // Ready when it answers a query (a fixed sleep is not enough on a busy
    // machine, and the router's first lookups would time out).
    let probe = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // A standard query, id 0x5b5b, recursion desired: gw.trunk.test IN A.
    let mut query = vec![0x5b, 0x5b, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["gw", "trunk", "test"] {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut buf = [0u8; 512];
    for _ in 0..50 {
        let _ = probe.send_to(&query, ("127.0.0.1", port)).await;
        let answered =
            tokio::time::timeout(Duration::from_millis(100), probe.recv_from(&mut buf)).await;
        if matches!(answered, Ok(Ok(_))) {
            return child;
        }
    }
    panic!("dnsmasq did not answer within 5 s")
}

#[tokio::test]
async fn a_call_to_the_trunk_fails_over_to_the_next_srv_target() {
    if !switchboard_e2e::tool_available("dnsmasq", "--version", "dnsmasq-base") {
        return;
    }
    let dns_port = free_udp_port();
    let dead = free_udp_port();
    let r = TestRouter::start_with(|c| {
        c.sip.dns_servers = vec![format!("127.0.0.1:{dns_port}").parse().unwrap()];
    })
    .await;
    let mut live = Phone::new(r.sip(), "trunk", "unused-pw", Proto::Udp).await;
    let _dns = dns_server(dns_port, dead, live.local.port()).await;
    r.patch_tenant(serde_json::json!({"trunk_uri": "sip:trunk.test"}))
        .await;
    let mut alice = r.phone("2001", Proto::Udp).await;
    alice.call("441234567890").await;
    let inv = live
        .expect_invite(T)
        .await
        .expect("the second trunk gets the call after the first did not answer");
    assert!(
        inv.first.starts_with("INVITE sip:441234567890@trunk.test"),
        "{}",
        inv.first
    );
    live.respond(&inv, 200, "OK", "gw").await;
    assert!(alice
        .recv_until(T, |m| m.status() == Some(200))
        .await
        .is_some());
    // History is written behind the call: wait for the record.
    let mut calls = serde_json::Value::Null;
    let mut outcomes: Vec<String> = Vec::new();
    for _ in 0..50 {
        calls = r.api("GET", "/tenants/1/calls?limit=1", None).await.1;
        outcomes = calls["items"][0]["legs"]
            .as_array()
            .map(|legs| {
                legs.iter()
                    .filter_map(|l| l["outcome"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if outcomes.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(outcomes, vec!["unreachable", "answered"], "{calls}");
}
