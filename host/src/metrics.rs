//! Process-wide counters, read by the admin API's `/metrics` endpoint.
//! Atomics, not a registry: counting must cost nothing on the SIP hot path.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

static RECEIVED: AtomicU64 = AtomicU64::new(0);
static SENT: AtomicU64 = AtomicU64::new(0);
static MALFORMED: AtomicU64 = AtomicU64::new(0);
static CALLS_STARTED: AtomicU64 = AtomicU64::new(0);
static CALLS_ANSWERED: AtomicU64 = AtomicU64::new(0);
static REGISTERS_OK: AtomicU64 = AtomicU64::new(0);
static AUTH_FAILURES: AtomicU64 = AtomicU64::new(0);
static PLUGIN_FAULTS: AtomicU64 = AtomicU64::new(0);
static PLUGIN_CALLS: AtomicU64 = AtomicU64::new(0);

/// A message was parsed.
pub fn count_received() {
    RECEIVED.fetch_add(1, Relaxed);
}
/// A message was handed to a socket.
pub fn count_sent() {
    SENT.fetch_add(1, Relaxed);
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
    ];
    let mut out = String::new();
    for (name, v) in rows {
        out.push_str(&format!(
            "# TYPE {name} counter\n{name} {}\n",
            v.load(Relaxed)
        ));
    }
    out
}
