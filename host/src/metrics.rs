//! Process-wide counters, read by the admin API's `/metrics` endpoint.
//! Atomics, not a registry: counting must cost nothing on the SIP hot path.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::sip::METHODS;

static RECEIVED: AtomicU64 = AtomicU64::new(0);
static SENT: AtomicU64 = AtomicU64::new(0);
static MALFORMED: AtomicU64 = AtomicU64::new(0);
static CALLS_STARTED: AtomicU64 = AtomicU64::new(0);
static CALLS_ANSWERED: AtomicU64 = AtomicU64::new(0);
static REGISTERS_OK: AtomicU64 = AtomicU64::new(0);
static AUTH_FAILURES: AtomicU64 = AtomicU64::new(0);
static PLUGIN_FAULTS: AtomicU64 = AtomicU64::new(0);
static PLUGIN_CALLS: AtomicU64 = AtomicU64::new(0);
static TCP_REFUSED: AtomicU64 = AtomicU64::new(0);
static PLUGIN_INSTANCES: AtomicU64 = AtomicU64::new(0);
static TIMERS_FIRED: AtomicU64 = AtomicU64::new(0);
static CLUSTER_NODES_ALIVE: AtomicU64 = AtomicU64::new(0);
static MEDIA_SESSIONS: AtomicU64 = AtomicU64::new(0);
static RTP_PORTS: AtomicU64 = AtomicU64::new(0);
static RTP_SENT: AtomicU64 = AtomicU64::new(0);
static DTMF_DIGITS: AtomicU64 = AtomicU64::new(0);
static RTP_JITTER: std::sync::LazyLock<Histogram> = std::sync::LazyLock::new(Histogram::default);

/// Something counted in a gauge while this value lives: the count falls
/// however its owner ends.
#[derive(Debug)]
pub struct Held(&'static AtomicU64);

impl Held {
    /// A voice call's media session.
    pub fn media_session() -> Held {
        MEDIA_SESSIONS.fetch_add(1, Relaxed);
        Held(&MEDIA_SESSIONS)
    }

    /// An RTP port bound.
    pub fn rtp_port() -> Held {
        RTP_PORTS.fetch_add(1, Relaxed);
        Held(&RTP_PORTS)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// An RTP packet of a prompt was sent; `late` is how far its send time
/// strayed from the 20 ms packet clock.
pub fn count_rtp_sent(late: std::time::Duration) {
    RTP_SENT.fetch_add(1, Relaxed);
    RTP_JITTER.observe(late);
}

/// A DTMF digit came from a caller (RTP event or SIP INFO).
pub fn count_dtmf_digit() {
    DTMF_DIGITS.fetch_add(1, Relaxed);
}

/// A live plugin instance: counted while this value exists, so the gauge
/// falls whichever way the instance is dropped.
#[derive(Debug)]
pub struct PluginInstanceGauge(());

impl PluginInstanceGauge {
    /// Counts one more instance until the returned value drops.
    pub fn hold() -> PluginInstanceGauge {
        PLUGIN_INSTANCES.fetch_add(1, Relaxed);
        PluginInstanceGauge(())
    }
}

impl Drop for PluginInstanceGauge {
    fn drop(&mut self) {
        PLUGIN_INSTANCES.fetch_sub(1, Relaxed);
    }
}

/// A TCP connection was refused at a connection cap.
pub fn count_tcp_refused() {
    TCP_REFUSED.fetch_add(1, Relaxed);
}

/// A message was parsed.
pub fn count_received() {
    RECEIVED.fetch_add(1, Relaxed);
}
// Requests are counted by method (`sip::METHODS`); anything else is `other`.
static REQUESTS_IN: [AtomicU64; 15] = [const { AtomicU64::new(0) }; 15];
static REQUESTS_OUT: [AtomicU64; 15] = [const { AtomicU64::new(0) }; 15];
/// By status code, 100-699.
static RESPONSES_IN: [AtomicU64; 600] = [const { AtomicU64::new(0) }; 600];
static RESPONSES_OUT: [AtomicU64; 600] = [const { AtomicU64::new(0) }; 600];

fn method_index(m: &[u8]) -> usize {
    METHODS
        .iter()
        .position(|x| x.as_bytes() == m)
        .unwrap_or(METHODS.len())
}

/// A request with this method arrived.
pub fn count_request_in(method: &str) {
    REQUESTS_IN[method_index(method.as_bytes())].fetch_add(1, Relaxed);
}

/// A response with this status arrived.
pub fn count_response_in(code: u16) {
    if let Some(c) = RESPONSES_IN.get(usize::from(code).wrapping_sub(100)) {
        c.fetch_add(1, Relaxed);
    }
}

/// A message was handed to a socket: counted by the method or status on
/// its first line, read from the bytes (no parsing on the way out).
pub fn count_sent(bytes: &[u8]) {
    SENT.fetch_add(1, Relaxed);
    if let Some(status) = bytes.strip_prefix(b"SIP/2.0 ") {
        let code = status
            .get(..3)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| d.parse::<usize>().ok());
        if let Some(c) = code.and_then(|c| RESPONSES_OUT.get(c.wrapping_sub(100))) {
            c.fetch_add(1, Relaxed);
        }
    } else {
        let method = bytes.split(|b| *b == b' ').next().unwrap_or_default();
        REQUESTS_OUT[method_index(method)].fetch_add(1, Relaxed);
    }
}

/// Upper bounds of the plugin call latency buckets, in microseconds.
const LATENCY_BUCKETS_US: [u64; 12] = [
    5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 50_000,
];

/// A latency histogram, kept by whoever is measured (each loaded plugin
/// owns one): observing is two relaxed atomic adds, no lookup.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; 13],
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, d: std::time::Duration) {
        let us = d.as_micros() as u64;
        let i = LATENCY_BUCKETS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(d.as_nanos() as u64, Relaxed);
    }

    /// Prometheus lines for `name` with these labels (`plugin="x"`).
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            cumulative += b.load(Relaxed);
            let le = LATENCY_BUCKETS_US
                .get(i)
                .map(|us| format!("{}", *us as f64 / 1e6))
                .unwrap_or_else(|| "+Inf".into());
            out.push_str(&format!(
                "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}\n"
            ));
        }
        out.push_str(&format!(
            "{name}_sum{{{labels}}} {}\n{name}_count{{{labels}}} {cumulative}\n",
            self.sum_ns.load(Relaxed) as f64 / 1e9
        ));
    }
}

fn render_labelled(out: &mut String) {
    out.push_str("# TYPE switchboard_sip_requests_total counter\n");
    for (direction, table) in [("in", &REQUESTS_IN), ("out", &REQUESTS_OUT)] {
        for (i, c) in table.iter().enumerate() {
            let n = c.load(Relaxed);
            if n > 0 {
                let method = METHODS.get(i).copied().unwrap_or("other");
                out.push_str(&format!(
                    "switchboard_sip_requests_total{{direction=\"{direction}\",method=\"{method}\"}} {n}\n"
                ));
            }
        }
    }
    out.push_str("# TYPE switchboard_sip_responses_total counter\n");
    for (direction, table) in [("in", &RESPONSES_IN), ("out", &RESPONSES_OUT)] {
        for (i, c) in table.iter().enumerate() {
            let n = c.load(Relaxed);
            if n > 0 {
                out.push_str(&format!(
                    "switchboard_sip_responses_total{{direction=\"{direction}\",status=\"{}\"}} {n}\n",
                    i + 100
                ));
            }
        }
    }
}

/// Bytes did not parse as SIP.
pub fn count_malformed() {
    MALFORMED.fetch_add(1, Relaxed);
}
/// An INVITE started a call.
pub fn count_call_started() {
    CALLS_STARTED.fetch_add(1, Relaxed);
}
/// A call was answered.
pub fn count_call_answered() {
    CALLS_ANSWERED.fetch_add(1, Relaxed);
}
/// A REGISTER succeeded.
pub fn count_register_ok() {
    REGISTERS_OK.fetch_add(1, Relaxed);
}
/// Credentials were wrong.
pub fn count_auth_failure() {
    AUTH_FAILURES.fetch_add(1, Relaxed);
}

/// A plugin trapped, timed out or decided something invalid.
pub fn count_plugin_fault() {
    PLUGIN_FAULTS.fetch_add(1, Relaxed);
}
/// A decision point ran a plugin.
pub fn count_plugin_call() {
    PLUGIN_CALLS.fetch_add(1, Relaxed);
}

/// Counts a plugin timer fired on this node.
pub fn count_timer_fired() {
    TIMERS_FIRED.fetch_add(1, Relaxed);
}

/// Nodes of the cluster whose heartbeat is fresh (this one included).
pub fn set_cluster_nodes_alive(n: i64) {
    CLUSTER_NODES_ALIVE.store(u64::try_from(n).unwrap_or(0), Relaxed);
}

/// Prometheus text exposition of every counter.
pub fn render() -> String {
    let rows = [
        ("switchboard_sip_messages_received_total", &RECEIVED),
        ("switchboard_sip_messages_sent_total", &SENT),
        ("switchboard_sip_malformed_total", &MALFORMED),
        ("switchboard_calls_started_total", &CALLS_STARTED),
        ("switchboard_calls_answered_total", &CALLS_ANSWERED),
        ("switchboard_registrations_total", &REGISTERS_OK),
        ("switchboard_auth_failures_total", &AUTH_FAILURES),
        ("switchboard_plugin_calls_total", &PLUGIN_CALLS),
        ("switchboard_plugin_faults_total", &PLUGIN_FAULTS),
        ("switchboard_plugin_timers_fired_total", &TIMERS_FIRED),
        ("switchboard_tcp_connections_refused_total", &TCP_REFUSED),
        ("switchboard_rtp_packets_sent_total", &RTP_SENT),
        ("switchboard_dtmf_digits_total", &DTMF_DIGITS),
    ];
    let mut out = String::new();
    for (name, v) in rows {
        out.push_str(&format!(
            "# TYPE {name} counter\n{name} {}\n",
            v.load(Relaxed)
        ));
    }
    render_labelled(&mut out);
    out.push_str(&format!(
        "# TYPE switchboard_plugin_instances gauge\nswitchboard_plugin_instances {}\n",
        PLUGIN_INSTANCES.load(Relaxed)
    ));
    for (name, v) in [
        ("switchboard_media_sessions", &MEDIA_SESSIONS),
        ("switchboard_rtp_ports_in_use", &RTP_PORTS),
    ] {
        out.push_str(&format!(
            "# TYPE {name} gauge\n{name} {}\n",
            v.load(Relaxed)
        ));
    }
    out.push_str("# TYPE switchboard_rtp_send_jitter_seconds histogram\n");
    RTP_JITTER.render(
        &mut out,
        "switchboard_rtp_send_jitter_seconds",
        "stream=\"prompts\"",
    );
    out.push_str(&format!(
        "# TYPE switchboard_cluster_nodes_alive gauge
switchboard_cluster_nodes_alive {}
",
        CLUSTER_NODES_ALIVE.load(Relaxed)
    ));
    out
}
