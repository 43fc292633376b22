//! What TLS costs a registration, measured against a router running in this
//! process on 127.0.0.1 with the same test client over each transport: a
//! REGISTER with digest (401, then 200: two round trips) over UDP, over an
//! established TLS connection, and over a new TLS connection (TCP connect,
//! TLS 1.3 handshake, then the REGISTER), whose difference from the second
//! is the handshake's cost.

#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use switchboard_e2e::{password, Phone, Proto, TestRouter};

fn register(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let router = rt.block_on(TestRouter::start_with_tls(|c| {
        c.registrar.max_contacts = 64;
        // Every phone of the bench connects from 127.0.0.1.
        c.sip.tcp.max_per_source = 10_000;
    }));
    let mut group = c.benchmark_group("register");
    group.sample_size(50);
    let mut udp = rt.block_on(Phone::new(
        router.addr_for(Proto::Udp),
        "2001",
        &password("2001"),
        Proto::Udp,
    ));
    group.bench_function("udp", |b| {
        b.iter(|| rt.block_on(async { assert_eq!(udp.register(600).await.status(), Some(200)) }))
    });
    let mut tls = rt.block_on(Phone::new(
        router.addr_for(Proto::Tls),
        "2002",
        &password("2002"),
        Proto::Tls,
    ));
    group.bench_function("tls_established", |b| {
        b.iter(|| rt.block_on(async { assert_eq!(tls.register(600).await.status(), Some(200)) }))
    });
    group.bench_function("tls_new_connection", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut p = Phone::new(
                    router.addr_for(Proto::Tls),
                    "2003",
                    &password("2003"),
                    Proto::Tls,
                )
                .await;
                assert_eq!(p.register(600).await.status(), Some(200));
            })
        })
    });
    group.finish();
    drop(udp);
    drop(tls);
    // Throughput: 50 phones (the router is told to allow that many
    // connections from one address) each
    // re-register at once; REGISTER/s is 50 over the time of the batch.
    let mut group = c.benchmark_group("register_batch");
    group.sample_size(20);
    group.throughput(criterion::Throughput::Elements(PHONES as u64));
    for proto in [Proto::Udp, Proto::Tls] {
        let phones = rt.block_on(async {
            let mut v = Vec::new();
            for i in 0..PHONES {
                // The test tenant's employees are 2001-2004; a batch uses
                // each account several times (separate contacts).
                let user = format!("200{}", 1 + i % 4);
                v.push(Phone::new(router.addr_for(proto), &user, &password(&user), proto).await);
            }
            v
        });
        let phones = std::sync::Arc::new(tokio::sync::Mutex::new(phones));
        let name = if proto == Proto::Udp { "udp" } else { "tls" };
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut all = phones.lock().await;
                    let tasks = all.iter_mut().map(|p| async move {
                        assert_eq!(p.register(600).await.status(), Some(200));
                    });
                    futures_util::future::join_all(tasks).await;
                })
            })
        });
    }
    group.finish();
    rt.block_on(async move { drop(router) });
}

const PHONES: usize = 50;

criterion_group!(benches, register);
criterion_main!(benches);
