//! Cost of a decision point: one empty plugin call, and a chain of five
//! plugins that each read their settings and look up an employee (the
//! `test-continue` guest). Run: `cargo bench -p switchboard --bench pipeline`.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use switchboard::directory::provision::{self, NewEmployee, NewTenant};
use switchboard::directory::Directory;
use switchboard::pipeline::{CallView, Direction, Input, PartyView};
use switchboard::plugins::{PluginConfig, PluginHost, Presence};
use switchboard::store::Store;

#[derive(Debug)]
struct NoPresence;

impl Presence for NoPresence {
    fn is_registered(&self, _: i64, _: &str) -> bool {
        true
    }
    fn home_registered(&self, _: i64, _: &str) -> bool {
        true
    }
    fn active_calls(&self, _: i64, _: &str) -> u32 {
        0
    }
}

fn setup(
    rt: &tokio::runtime::Runtime,
    chain_len: usize,
) -> (
    Arc<PluginHost>,
    Arc<switchboard::directory::TenantDirectory>,
    tempfile::TempDir,
) {
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("b.db").display()))
            .await
            .unwrap();
        let directory = Arc::new(Directory::load(store.clone(), None).await.unwrap());
        provision::create_tenant(
            &store,
            &NewTenant {
                domain: "bench.test".into(),
                name: "Bench".into(),
                time_zone: None,
                trunk_uri: None,
                voicemail_uri: None,
                hotdesk_first: None,
                hotdesk_last: None,
                busy_on_active_call: false,
            },
        )
        .await
        .unwrap();
        directory.reload().await.unwrap();
        let t = directory.tenant_for("bench.test").unwrap();
        provision::create_employee(
            &store,
            &t,
            &NewEmployee {
                name: "Bob".into(),
                login: None,
                password: "bench-pw".into(),
                position: None,
                role: None,
                extension: Some("2002".into()),
                email: None,
                mobile: None,
                voicemail_pin: None,
                department_id: None,
                forced_login: None,
                call_waiting: None,
            },
        )
        .await
        .unwrap();
        directory.reload().await.unwrap();
        let config = PluginConfig {
            cache_dir: Some(std::env::temp_dir().join("switchboard-bench-plugin-cache")),
            ..PluginConfig::default()
        };
        let host = PluginHost::start(config, store, directory.clone(), Arc::new(NoPresence))
            .await
            .unwrap();
        let wasm = switchboard::plugins::builtin::get("test-continue").unwrap();
        let t = directory.tenant_for("bench.test").unwrap();
        let mut chain = Vec::new();
        for i in 0..chain_len {
            let name = format!("continue-{i}");
            host.store_plugin(&name, wasm, Some(t.tenant.id))
                .await
                .unwrap();
            host.set_settings(&t, &name, "tenant", r#"{"n": 1}"#)
                .await
                .unwrap();
            chain.push((name, true));
        }
        if chain_len == 0 {
            // The product's default chain, with a no-answer divert for the
            // callee so that the last plugin decides.
            chain = switchboard::plugins::DEFAULT_CHAIN
                .iter()
                .map(|n| ((*n).to_owned(), true))
                .collect();
            host.set_settings(
                &t,
                "divert",
                "employee:2002",
                r#"{"no_answer": "voicemail", "no_answer_ring_s": 20}"#,
            )
            .await
            .unwrap();
        }
        host.set_chain(t.tenant.id, &chain).await.unwrap();
        (host, t, dir)
    })
}

fn input() -> Input {
    Input::Incoming {
        call: CallView {
            call_id: "bench".into(),
            caller: PartyView {
                id: "2001".into(),
                name: None,
                internal: true,
            },
            dialed: "2002".into(),
            direction: Direction::Internal,
            attempt: 0,
            history: Vec::new(),
            device: None,
            referred_by: None,
        },
        callee: "2002".into(),
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let input = input();
    let (one, t1, _d1) = setup(&rt, 1);
    c.bench_function("decision point, 1 plugin", |b| {
        let _g = rt.enter();
        b.iter(|| one.decide(&t1, &input))
    });
    let (five, t5, _d5) = setup(&rt, 5);
    c.bench_function("decision point, chain of 5 plugins", |b| {
        let _g = rt.enter();
        b.iter(|| five.decide(&t5, &input))
    });
    let (default, td, _dd) = setup(&rt, 0);
    c.bench_function("incoming, the default chain (divert decides)", |b| {
        let _g = rt.enter();
        b.iter(|| default.decide(&td, &input))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
