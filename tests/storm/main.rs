//! The mutation storm: 20,000 mutated datagrams and 1,000 abusive TCP
//! connections at one router, then proof that nothing broke or stayed
//! behind. Its own test binary, so its own process: a panic hook here
//! counts every panic in the router's tasks and in nothing else.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use switchboard::sip::mutate::{mutate, seeds};
use switchboard_e2e::{wait_until, Proto, TestRouter, DOMAIN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

static PANICS: AtomicUsize = AtomicUsize::new(0);

const DATAGRAMS: usize = 20_000;
const CONNECTIONS: usize = 1_000;
/// TCP connections open at once (under the per-source cap of 64).
const CONCURRENT: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutation_storm_leaves_no_panic_no_leaked_connection_and_no_growth() {
    std::panic::set_hook(Box::new(|info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        eprintln!("panic: {info}");
    }));
    let r = TestRouter::start_with(|c| {
        // Transactions are forgotten after 64*T1: keep the wait short.
        c.sip.t1_ms = 50;
        c.sip.t4_ms = 500;
        c.sip.tcp.message_secs = 1;
        c.sip.tcp.idle_secs = 2;
    })
    .await;
    let router = r.running.router().clone();
    let sip = r.sip();

    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = udp.local_addr().unwrap();
    let corpus = seeds(&sip.to_string(), &local.to_string(), DOMAIN);
    let udp = std::sync::Arc::new(udp);
    let drain = {
        let udp = udp.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            let mut n = 0usize;
            while let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_secs(2), udp.recv_from(&mut buf)).await
            {
                n += 1;
            }
            n
        })
    };
    let mut rng = StdRng::seed_from_u64(0x5707_0001);
    for i in 0..DATAGRAMS {
        let m = mutate(&mut rng, corpus[i % corpus.len()].as_bytes());
        let _ = udp.send_to(&m, sip).await;
        if i % 100 == 0 {
            // Let the router's workers keep up instead of the kernel dropping.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    let mut rng = StdRng::seed_from_u64(0x5707_0002);
    let mut done = 0;
    while done < CONNECTIONS {
        let mut batch = Vec::new();
        for _ in 0..CONCURRENT.min(CONNECTIONS - done) {
            let m = mutate(&mut rng, corpus[done % corpus.len()].as_bytes());
            let linger = rng.gen_range(0..3u8);
            batch.push(tokio::spawn(async move {
                let Ok(mut s) = TcpStream::connect(sip).await else {
                    return;
                };
                let _ = s.write_all(&m).await;
                if linger > 0 {
                    let mut buf = [0u8; 4096];
                    let _ = tokio::time::timeout(Duration::from_millis(50), s.read(&mut buf)).await;
                }
            }));
            done += 1;
        }
        for t in batch {
            let _ = t.await;
        }
    }
    let answered = drain.await.unwrap();

    assert!(
        wait_until(Duration::from_secs(10), || router.tcp_connections() == 0).await,
        "{} TCP connections still held",
        router.tcp_connections()
    );
    assert!(
        wait_until(Duration::from_secs(10), || {
            router.server_transactions() == 0 && router.client_transactions() == 0
        })
        .await,
        "transactions held: {} server, {} client",
        router.server_transactions(),
        router.client_transactions()
    );
    assert_eq!(router.dialogs().len(), 0);
    assert_eq!(
        router.registrar().location().contact_count(),
        0,
        "no stranger registered anything"
    );
    // Still serving, over both transports.
    let _udp_phone = r.phone("2001", Proto::Udp).await;
    let _tcp_phone = r.phone("2002", Proto::Tcp).await;
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "panics during the storm");
    eprintln!("storm: {DATAGRAMS} datagrams ({answered} answers), {CONNECTIONS} connections");
}
