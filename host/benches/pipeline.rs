//! Cost of a decision point: one plugin call, a chain of five plugins that
//! each read their settings and look up an employee (the `test-continue`
//! guest), the default chain, and the same two plugins (one that continues
//! at once, the blocklist) in Rust, JavaScript and Python.
//! Run: `cargo bench -p switchboard --bench pipeline`. The JavaScript and
//! Python components are measured when built (`npm ci && npm run build &&
//! npm run build:empty` in `plugins/examples/js-blocklist`, `./build.sh &&
//! ./build.sh empty` in `plugins/examples/py-blocklist`). Besides
//! criterion's estimates it prints, per language, the median and p99 of
//! 20,000 decisions, the peak memory of an instance, and the time from
//! upload (compile, no cache) to the first decided call.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

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
        // No compile cache: the upload times printed are first uploads'.
        let config = PluginConfig::default();
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
            transferred_from: None,
        },
        callee: "2002".into(),
    }
}

/// A tenant with one uploaded plugin, compiled without a cache so the
/// upload time is a first upload's; returns the time the upload took.
fn setup_one(
    rt: &tokio::runtime::Runtime,
    wasm: &[u8],
    settings: Option<&str>,
) -> (
    Arc<PluginHost>,
    Arc<switchboard::directory::TenantDirectory>,
    tempfile::TempDir,
    Duration,
) {
    let (host, t, dir) = setup(rt, 1);
    let started = Instant::now();
    rt.block_on(async {
        host.store_plugin("measured", wasm, Some(t.tenant.id))
            .await
            .unwrap();
        if let Some(json) = settings {
            host.set_settings(&t, "measured", "tenant", json)
                .await
                .unwrap();
        }
        host.set_chain(t.tenant.id, &[("measured".to_owned(), true)])
            .await
            .unwrap();
    });
    (host, t, dir, started.elapsed())
}

/// Median and p99 of `n` decisions, timed one by one.
fn percentiles(
    host: &PluginHost,
    t: &Arc<switchboard::directory::TenantDirectory>,
    input: &Input,
    n: usize,
) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(host.decide(t, input));
            started.elapsed()
        })
        .collect();
    times.sort();
    (times[n / 2], times[n * 99 / 100])
}

/// The plugins compared across languages: (label, wasm, settings).
fn languages() -> Vec<(String, Vec<u8>, Option<&'static str>)> {
    let blocklist = Some(r#"{"blocked": ["441234567890", "2003"]}"#);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/examples");
    let mut all = vec![
        (
            "rust, empty".to_owned(),
            switchboard::plugins::builtin::get("test-empty")
                .unwrap()
                .to_vec(),
            None,
        ),
        (
            "rust, blocklist".to_owned(),
            switchboard::plugins::builtin::get("example-blocklist")
                .unwrap()
                .to_vec(),
            blocklist,
        ),
    ];
    for (lang, dir) in [("javascript", "js-blocklist"), ("python", "py-blocklist")] {
        for (kind, file, settings) in [
            ("empty", "empty.wasm", None),
            ("blocklist", "blocklist.wasm", blocklist),
        ] {
            match std::fs::read(root.join(dir).join("dist").join(file)) {
                Ok(wasm) => all.push((format!("{lang}, {kind}"), wasm, settings)),
                Err(_) => eprintln!("{lang} {kind}: not built, not measured"),
            }
        }
    }
    all
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
    {
        let _g = rt.enter();
        let (p50, p99) = percentiles(&default, &td, &input, 20_000);
        println!("the default chain: median {p50:?}, p99 {p99:?} over 20000 decisions");
    }
    let mut summary = Vec::new();
    for (label, wasm, settings) in languages() {
        let (host, t, _d, upload) = setup_one(&rt, &wasm, settings);
        let _g = rt.enter();
        let first = Instant::now();
        host.decide(&t, &input);
        let first = first.elapsed();
        c.bench_function(&format!("one decision, {label}"), |b| {
            b.iter(|| host.decide(&t, &input))
        });
        let (p50, p99) = percentiles(&host, &t, &input, 20_000);
        let memory = host
            .available(t.tenant.id)
            .iter()
            .find(|p| p.name == "measured")
            .map_or(0, |p| {
                p.memory_peak.load(std::sync::atomic::Ordering::Relaxed)
            });
        let recent = host.recent_faults(t.tenant.id, "measured");
        let faults = recent.len();
        if let Some(f) = recent.last() {
            eprintln!("{label}: last fault: {}", f.reason);
        }
        summary.push(format!(
            "{label:<22} {:>9} B  median {p50:>10.2?}  p99 {p99:>10.2?}  instance memory {:>6} KiB  upload {upload:>8.2?}  first call {first:>8.2?}  faults {faults}",
            wasm.len(),
            memory >> 10
        ));
    }
    println!("\nper decision over 20000 decisions, one plugin in the chain:");
    for line in summary {
        println!("{line}");
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
