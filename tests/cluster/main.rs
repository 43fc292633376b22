//! Several routers on one PostgreSQL database, in one test process, talking
//! real SIP over loopback. The server is `SWITCHBOARD_TEST_POSTGRES`, or a
//! throwaway one this process starts (see `postgres_server`).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use switchboard::Running;
use switchboard_e2e::{password, postgres_server, wait_until, Phone, Proto, TestRouter};

const T: Duration = Duration::from_secs(5);

/// A cluster of `n` nodes: the first provisions the test directory, the
/// others join its database. Nodes are named `a`, `b`, `c`...
async fn cluster(n: usize) -> (TestRouter, Vec<Running>) {
    let server = postgres_server().await;
    let first = TestRouter::start_cluster(&server, |c| c.cluster.node_id = Some("a".into())).await;
    let mut others = Vec::new();
    for name in ["b", "c", "d"].into_iter().take(n - 1) {
        others.push(first.join(|c| c.cluster.node_id = Some(name.into())).await);
    }
    (first, others)
}

async fn phone_on(node: &Running, user: &str) -> Phone {
    let mut p = Phone::new(node.sip_addr, user, &password(user), Proto::Udp).await;
    assert_eq!(
        p.register(600).await.status(),
        Some(200),
        "{user} registers"
    );
    p
}

/// Waits until `node` has `phone`'s registration (other nodes learn of it
/// within milliseconds, but a test must not race that).
async fn known_on(node: &Running, user: &str, phone: &Phone) {
    let port = format!(":{}", phone.local.port());
    assert!(
        wait_until(T, || node
            .router()
            .registrar()
            .location()
            .lookup(1, user)
            .iter()
            .any(|b| b.contact.contains(&port)))
        .await,
        "{user}'s registration reaches the node"
    );
}

/// Places a call from `caller` to `callee`'s phone and answers it; returns
/// the call and its 200 once the caller has acknowledged it.
async fn answered_call(
    caller: &mut Phone,
    callee: &mut Phone,
    to: &str,
) -> (switchboard_e2e::Outgoing, switchboard_e2e::Msg) {
    let call = caller.call(to).await;
    let inv = callee.expect_invite(T).await.expect("the callee rings");
    callee.respond(&inv, 200, "OK", "answer").await;
    let ok = caller
        .recv_until(T, |m| m.status() == Some(200))
        .await
        .expect("the caller gets the answer");
    caller.in_dialog(&call, &ok, "ACK", call.cseq).await;
    (call, ok)
}

#[tokio::test]
async fn a_phone_registered_on_one_node_is_called_through_another() {
    let (a, others) = cluster(2).await;
    let b = &others[0];
    let mut bob = phone_on(&a.running, "2002").await;
    // Node b learns of the binding from the database, told by node a.
    assert!(
        wait_until(T, || b
            .router()
            .registrar()
            .location()
            .is_registered(1, "2002"))
        .await,
        "the registration reaches node b"
    );
    let mut alice = phone_on(b, "2001").await;
    answered_call(&mut alice, &mut bob, "2002").await;
}

#[tokio::test]
async fn a_tcp_phone_on_one_node_is_reached_from_another_through_its_node() {
    let (a, others) = cluster(2).await;
    let b = &others[0];
    let mut bob = Phone::new(a.running.sip_addr, "2002", &password("2002"), Proto::Tcp).await;
    assert_eq!(bob.register(600).await.status(), Some(200));
    assert!(
        wait_until(T, || b
            .router()
            .registrar()
            .location()
            .is_registered(1, "2002"))
        .await
    );
    let mut alice = phone_on(b, "2001").await;
    let call = alice.call("2002").await;
    let inv = bob
        .expect_invite(T)
        .await
        .expect("bob rings over his TCP flow to node a");
    assert!(
        inv.headers_all("Record-Route").count() >= 2,
        "both nodes stay on the path"
    );
    bob.respond(&inv, 180, "Ringing", "bob").await;
    assert!(alice
        .recv_until(T, |m| m.status() == Some(180))
        .await
        .is_some());
    bob.respond(&inv, 200, "OK", "bob").await;
    let ok = alice
        .recv_until(T, |m| m.status() == Some(200))
        .await
        .expect("answered");
    alice.in_dialog(&call, &ok, "ACK", call.cseq).await;
    assert!(
        bob.recv_until(T, |m| m.method() == Some("ACK"))
            .await
            .is_some(),
        "the ACK follows the route through both nodes"
    );
    alice.in_dialog(&call, &ok, "BYE", call.cseq + 1).await;
    let bye = bob
        .recv_until(T, |m| m.method() == Some("BYE"))
        .await
        .expect("the BYE reaches bob");
    bob.respond(&bye, 200, "OK", "bob").await;
    assert!(alice
        .recv_until(T, |m| m.status() == Some(200)
            && m.header("CSeq").unwrap_or("").contains("BYE"))
        .await
        .is_some());
}

#[tokio::test]
async fn an_invite_with_a_forged_flow_token_is_not_carried_to_the_flow() {
    let (a, _others) = cluster(2).await;
    let mut bob = Phone::new(a.running.sip_addr, "2002", &password("2002"), Proto::Tcp).await;
    assert_eq!(bob.register(600).await.status(), Some(200));
    let contact = bob.contact();
    let contact = contact.trim_matches(['<', '>']);
    let mut stranger = Phone::new(a.running.sip_addr, "2001", "not-the-password", Proto::Udp).await;
    let until = switchboard::store::now_ms() + 10_000;
    let text = format!(
        "INVITE {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKforged1;rport\r\n\
         Route: <sip:{node};lr;sbf={until}.00112233445566778899>\r\nMax-Forwards: 70\r\n\
         From: <sip:x@evil.example>;tag=f\r\nTo: <sip:2002@{DOMAIN}>\r\nCall-ID: forged-flow\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:x@{me}>\r\nContent-Length: 0\r\n\r\n",
        me = stranger.local,
        node = a.running.sip_addr,
        DOMAIN = switchboard_e2e::DOMAIN,
    );
    stranger.send_raw(&text).await;
    let answer = stranger.recv(T).await.expect("an answer");
    assert!(
        matches!(answer.status(), Some(403..=407)),
        "refused or challenged, got {:?}",
        answer.status()
    );
    assert!(
        bob.expect_invite(Duration::from_millis(500))
            .await
            .is_none(),
        "nothing reaches the phone"
    );
}

#[tokio::test]
async fn an_employee_created_on_one_node_is_known_to_the_others() {
    let (a, others) = cluster(3).await;
    let started = Instant::now();
    a.add_employee("2005", serde_json::json!({})).await;
    for node in &others {
        assert!(
            wait_until(T, || node
                .directory()
                .tenant_for(switchboard_e2e::DOMAIN)
                .is_some_and(|t| t.employee_by_extension("2005").is_some()))
            .await,
            "the new employee reaches every node"
        );
    }
    eprintln!(
        "directory change applied on 2 other nodes in {:?}",
        started.elapsed()
    );
    // And the new employee can register and be called through another node.
    let mut eve = phone_on(&others[1], "2005").await;
    assert!(
        wait_until(T, || others[0]
            .router()
            .registrar()
            .location()
            .is_registered(1, "2005"))
        .await
    );
    let mut alice = phone_on(&others[0], "2001").await;
    answered_call(&mut alice, &mut eve, "2005").await;
}

#[tokio::test]
async fn a_plugin_setting_changed_on_one_node_applies_to_the_next_call_on_another() {
    let (a, others) = cluster(2).await;
    let b = &others[0];
    a.chain(&["divert"]).await;
    let started = Instant::now();
    let (status, body) = a
        .settings(
            "divert",
            "employee:2002",
            serde_json::json!({"always": {"extension": "2003"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let divert_known = || {
        !b.router().plugins().chain(1).is_empty()
            && b.router()
                .plugins()
                .state()
                .setting(1, "divert", "employee:2002")
                .is_some()
    };
    assert!(wait_until(T, divert_known).await);
    eprintln!(
        "plugin setting applied on the other node in {:?}",
        started.elapsed()
    );
    // How long a change on node a takes to apply on node b, over a few.
    let mut took = Vec::new();
    for n in 0..10 {
        let ring = 10 + n;
        let started = Instant::now();
        let (status, _) = a
            .settings(
                "divert",
                "employee:2004",
                serde_json::json!({"no_answer": {"extension": "2003"}, "no_answer_ring_s": ring}),
            )
            .await;
        assert_eq!(status, 200);
        let written = started.elapsed();
        let applied = || {
            b.router()
                .plugins()
                .state()
                .setting(1, "divert", "employee:2004")
                .is_some_and(|j| j.contains(&format!(":{ring}")))
        };
        // Polled every millisecond: the figure is for the note.
        while !applied() && started.elapsed() < T {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(applied(), "applied on node b");
        took.push((started.elapsed() - written, written));
    }
    took.sort();
    eprintln!(
        "setting change visible on b after the write's answer on a: median {:?}, max {:?} \
         (the write itself: median {:?})",
        took[took.len() / 2].0,
        took[took.len() - 1].0,
        took[took.len() / 2].1,
    );
    let mut bob = phone_on(b, "2002").await;
    let mut carol = phone_on(b, "2003").await;
    let mut alice = phone_on(b, "2001").await;
    let call = alice.call("2002").await;
    assert!(carol.expect_invite(T).await.is_some(), "diverted to 2003");
    if let Some(inv) = bob.expect_invite(Duration::from_millis(300)).await {
        panic!(
            "bob rang too: Call-ID {:?} (the call's is {}), From {:?}",
            inv.header("Call-ID"),
            call.call_id,
            inv.header("From")
        );
    }
}

#[tokio::test]
async fn a_plugin_timer_fires_exactly_once_with_three_nodes() {
    let (a, others) = cluster(3).await;
    a.upload_guest("timer", "test-timer").await;
    a.chain(&["timer"]).await;
    let chained = |n: &Running| !n.router().plugins().chain(1).is_empty();
    for node in &others {
        assert!(wait_until(T, || chained(node)).await);
    }
    // The call sets a 100 ms timer on node b; every node looks for timers
    // to take over, and node b fires its own.
    let mut alice = phone_on(&others[0], "2001").await;
    let _bob = phone_on(&others[0], "2002").await;
    alice.call("2002").await;
    let fired = |nodes: &[&Running]| {
        nodes
            .iter()
            .map(|n| n.router().plugins().timers_fired())
            .sum::<u64>()
    };
    let all = [&a.running, &others[0], &others[1]];
    assert!(wait_until(T, || fired(&all) >= 1).await, "the timer fires");
    // Long enough for any other node to have taken it over as well
    // (takeover after 2 s, a scan every 0.5 s), with a margin.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(fired(&all), 1, "fired once in the whole cluster");
    assert_eq!(
        others[0].router().plugins().timers_fired(),
        1,
        "by its node"
    );
    // What the plugin wrote to its store on node b is read on node a.
    assert!(
        wait_until(T, || a
            .running
            .router()
            .plugins()
            .state()
            .kv_get(1, "timer", "fired")
            .as_deref()
            == Some("2002"))
        .await
    );
}

#[tokio::test]
async fn the_timers_of_a_dead_node_fire_on_another() {
    let (a, mut others) = cluster(3).await;
    a.upload_guest("timer", "test-timer").await;
    a.chain(&["timer"]).await;
    // Long enough to see the timer stored before node c is stopped.
    let (status, body) = a.settings("timer", "delay", serde_json::json!(1500)).await;
    assert_eq!(status, 200, "{body}");
    let c = others.pop().unwrap();
    assert!(
        wait_until(T, || c
            .router()
            .plugins()
            .state()
            .setting(1, "timer", "delay")
            .is_some())
        .await
    );
    let mut alice = phone_on(&c, "2001").await;
    let _bob = phone_on(&c, "2002").await;
    alice.call("2002").await;
    // Node c stores the timer, then dies before it is due.
    let stored = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM plugin_timers")
            .fetch_one(a.running.store().pool())
            .await
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(1);
    while stored().await == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stored().await, 1, "the timer is stored");
    let c_plugins = c.router().plugins().clone();
    let died = Instant::now();
    c.shutdown().await;
    assert_eq!(
        c_plugins.timers_fired(),
        0,
        "node c died before its 100 ms timer was due"
    );
    let b = &others[0];
    let fired =
        || a.running.router().plugins().timers_fired() + b.router().plugins().timers_fired();
    assert!(
        wait_until(Duration::from_secs(8), || fired() == 1).await,
        "another node takes the timer over"
    );
    eprintln!("timer of the dead node fired after {:?}", died.elapsed());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(fired(), 1, "once");
    assert_eq!(stored().await, 0, "and is gone");
}

#[tokio::test]
async fn a_call_through_one_node_makes_the_callee_busy_on_another() {
    let (a, others) = cluster(2).await;
    let b = &others[0];
    a.patch_tenant(serde_json::json!({"busy_on_active_call": true}))
        .await;
    let mut alice = phone_on(&a.running, "2001").await;
    let mut bob = phone_on(&a.running, "2002").await;
    answered_call(&mut alice, &mut bob, "2002").await;
    assert!(
        wait_until(T, || b.router().dialogs().active_calls(1, "2002") == 1).await,
        "node b knows bob is on a call"
    );
    known_on(b, "2002", &bob).await;
    let mut carol = phone_on(b, "2003").await;
    carol.call("2002").await;
    assert_eq!(carol.final_response(T).await.unwrap().status(), Some(486));
}

#[tokio::test]
async fn a_hunt_group_on_one_node_skips_a_member_on_a_call_through_another() {
    let (a, others) = cluster(2).await;
    let b = &others[0];
    // 2100 rings 2003 and 2004 at once; 2003 is on a call through node b.
    let mut carol = phone_on(b, "2003").await;
    let mut dave = phone_on(&a.running, "2004").await;
    let mut alice = phone_on(b, "2001").await;
    answered_call(&mut alice, &mut carol, "2003").await;
    assert!(
        wait_until(T, || a.running.router().dialogs().active_calls(1, "2003")
            == 1)
        .await
    );
    let mut bob = phone_on(&a.running, "2002").await;
    bob.call("2100").await;
    assert!(
        dave.expect_invite(T).await.is_some(),
        "the free member rings"
    );
    assert!(
        carol
            .expect_invite(Duration::from_millis(500))
            .await
            .is_none(),
        "the busy member is skipped"
    );
}

#[tokio::test]
async fn longest_idle_counts_calls_that_ended_on_another_node() {
    let (a, others) = cluster(2).await;
    let b = &others[0];
    sqlx::query("UPDATE hunt_groups SET strategy = 'longest_idle' WHERE extension = '2101'")
        .execute(a.running.store().pool())
        .await
        .unwrap();
    a.running.directory().changed().await.unwrap();
    // 2003 has just had a call through node b; 2004 never had one.
    let mut carol = phone_on(b, "2003").await;
    let mut dave = phone_on(&a.running, "2004").await;
    let mut alice = phone_on(b, "2001").await;
    let (call, ok) = answered_call(&mut alice, &mut carol, "2003").await;
    alice.in_dialog(&call, &ok, "BYE", call.cseq + 1).await;
    let bye = carol
        .recv_until(T, |m| m.method() == Some("BYE"))
        .await
        .unwrap();
    carol.respond(&bye, 200, "OK", "c").await;
    assert!(
        wait_until(T, || a
            .running
            .router()
            .dialogs()
            .idle_for(1, "2003")
            .is_some())
        .await,
        "node a knows when 2003's call ended"
    );
    // Through node a, the group starts with 2004, idle the longest.
    let mut bob = phone_on(&a.running, "2002").await;
    bob.call("2101").await;
    assert!(
        dave.expect_invite(T).await.is_some(),
        "the longest idle rings first"
    );
    assert!(carol
        .expect_invite(Duration::from_millis(500))
        .await
        .is_none());
}

#[tokio::test]
async fn a_dead_nodes_calls_are_reaped_and_its_phones_register_elsewhere() {
    let (a, mut others) = cluster(3).await;
    let c = others.pop().unwrap();
    let mut alice = phone_on(&c, "2001").await;
    let mut bob = phone_on(&c, "2002").await;
    answered_call(&mut alice, &mut bob, "2002").await;
    assert!(
        wait_until(T, || a.running.router().dialogs().active_calls(1, "2002")
            == 1)
        .await
    );
    let died = Instant::now();
    c.shutdown().await;
    // Dead after `dead_after_ms` (5 s) without a heartbeat.
    assert!(
        wait_until(Duration::from_secs(9), || a
            .running
            .router()
            .dialogs()
            .active_calls(1, "2002")
            == 0)
        .await,
        "the dead node's call is reaped"
    );
    eprintln!("dead node's calls reaped after {:?}", died.elapsed());
    // What c acknowledged is in the database: its registrations are still
    // served, and the phones re-register on a live node.
    assert!(a
        .running
        .router()
        .registrar()
        .location()
        .is_registered(1, "2002"));
    let mut bob = phone_on(&others[0], "2002").await;
    known_on(&a.running, "2002", &bob).await;
    let mut alice = phone_on(&a.running, "2001").await;
    answered_call(&mut alice, &mut bob, "2002").await;
}

#[tokio::test]
async fn wrong_pins_on_two_nodes_add_up_to_one_lock() {
    let (a, others) = cluster(2).await;
    let b = &others[0];
    a.add_device("5401").await;
    a.patch_employee("2003", serde_json::json!({"voicemail_pin": "1234"}))
        .await;
    a.chain(&["hotdesk"]).await;
    let ready = || {
        !b.router().plugins().chain(1).is_empty()
            && b.directory()
                .tenant_for(switchboard_e2e::DOMAIN)
                .is_some_and(|t| {
                    t.employee_by_extension("2003")
                        .is_some_and(|e| e.voicemail_pin.is_some())
                })
    };
    assert!(wait_until(T, ready).await);
    let mut desk_a = phone_on(&a.running, "5401").await;
    for _ in 0..3 {
        assert_eq!(desk_a.feature("*88*2003*0000").await.reason(), "Wrong PIN");
    }
    let mut desk_b = phone_on(b, "5401").await;
    for _ in 0..2 {
        assert_eq!(desk_b.feature("*88*2003*0000").await.reason(), "Wrong PIN");
    }
    // Five in all: locked on both nodes, even for the right PIN.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for desk in [&mut desk_a, &mut desk_b] {
        assert_eq!(
            desk.feature("*88*2003*1234").await.reason(),
            "Too many wrong PINs, try later"
        );
    }
}

async fn login(http: std::net::SocketAddr, password: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("http://{http}/api/v1/login"))
        .json(&serde_json::json!({
            "domain": switchboard_e2e::DOMAIN,
            "login": "2003",
            "password": password,
        }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn failed_logins_on_two_nodes_add_up_to_one_account_limit() {
    let (a, others) = cluster(2).await;
    let b = &others[0];
    for _ in 0..3 {
        assert_eq!(login(a.running.http_addr, "wrong").await, 401);
    }
    for _ in 0..2 {
        assert_eq!(login(b.http_addr, "wrong").await, 401);
    }
    let right = password("2003");
    assert_eq!(login(a.running.http_addr, &right).await, 429);
    assert_eq!(login(b.http_addr, &right).await, 429);
}

#[tokio::test]
async fn a_second_live_node_with_the_same_name_is_refused() {
    let (a, _others) = cluster(2).await;
    let mut config = switchboard_e2e::test_config(&a.database_url);
    config.cluster.node_id = Some("b".into());
    let err = switchboard::run(config).await.expect_err("refused");
    assert!(
        err.to_string().contains("cluster.node_id `b` is in use"),
        "{err}"
    );
}

#[tokio::test]
async fn nodes_starting_together_share_one_route_key_and_admin_token() {
    let server = postgres_server().await;
    let url = switchboard_e2e::fresh_postgres_database(&server).await;
    let start = |name: &'static str| {
        let url = url.clone();
        async move {
            let mut c = switchboard_e2e::test_config(&url);
            c.admin_token = None;
            c.seed_demo = true;
            c.cluster.node_id = Some(name.into());
            switchboard::run(c).await.unwrap()
        }
    };
    let (x, y, z) = tokio::join!(start("x"), start("y"), start("z"));
    assert_eq!(x.admin_token, y.admin_token);
    assert_eq!(y.admin_token, z.admin_token);
    let tenants: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tenants")
        .fetch_one(x.store().pool())
        .await
        .unwrap();
    assert_eq!(tenants, 1, "the demo tenant is made once");
    let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM settings WHERE key = 'route_key'")
        .fetch_one(x.store().pool())
        .await
        .unwrap();
    assert_eq!(keys, 1);
    for r in [x, y, z] {
        r.shutdown().await;
    }
}
