//! Dialog tracking: which calls are up, and so who is on a call. A dialog
//! starts when a 2xx to an initial INVITE passes (recorded before the 2xx is
//! relayed, so a BYE right behind it always finds it) and ends with the BYE,
//! or, for dialogs whose BYE never passes us, once no in-dialog request has
//! been seen for the configured idle bound.

use std::time::{Duration, Instant};

use dashmap::DashMap;

/// A call in progress.
#[derive(Debug, Clone)]
pub struct Dialog {
    /// Tenant.
    pub tenant_id: i64,
    /// Extensions taking part (caller's and answering callee's, when internal).
    pub parties: Vec<String>,
    /// Where each internal party's requests come from (the caller's source,
    /// the answering phone's address): a REFER names its sender by this,
    /// not by headers the sender writes.
    pub peers: Vec<(String, std::net::SocketAddr)>,
    /// History record to close at the end.
    pub record_id: String,
    /// When it was answered.
    pub since: Instant,
    /// The last in-dialog request seen (the answer, at first).
    pub last_activity: Instant,
}

/// A call starting or ending, for nodes that share who is on a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// Answered: these extensions of the tenant are on it.
    Started {
        /// SIP Call-ID.
        call_id: String,
        /// Tenant.
        tenant_id: i64,
        /// Extensions on the call.
        parties: Vec<String>,
    },
    /// Over.
    Ended {
        /// SIP Call-ID.
        call_id: String,
        /// Tenant.
        tenant_id: i64,
        /// Extensions that were on it.
        parties: Vec<String>,
    },
}

/// What other nodes know of calls, per (tenant, extension): how many
/// calls they carry now, and when the last call anywhere ended (unix ms).
#[derive(Debug, Default, Clone)]
pub struct RemoteCalls {
    /// Calls in progress on other nodes.
    pub active: std::collections::HashMap<(i64, String), u32>,
    /// When the extension's last call ended, on any node.
    pub last_ended_ms: std::collections::HashMap<(i64, String), i64>,
}

/// How long a record-routed non-call dialog stays known after its last
/// request (subscriptions refresh well within this).
pub const ROUTED_DIALOG_LIFETIME: Duration = Duration::from_secs(2 * 3600);

/// How long after its REFER the transferee's INVITE may name the
/// transferor (a phone follows a REFER at once; 64*T1 is ample).
pub const TRANSFER_LIFETIME: Duration = Duration::from_secs(32);

/// Most transfers remembered at once; more REFERs than this in 32 s are
/// relayed, but their INVITEs do not get to name a transferor.
const MAX_TRANSFERS: usize = 10_000;

/// Longest target or transferee a transfer keeps (numbers and feature
/// codes are far shorter).
const MAX_TRANSFER_NAME: usize = 32;

/// A transfer relayed in an answered call: `referrer`, a party of the
/// call, asked `transferee` to call `target`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Transfer {
    /// Tenant of the call.
    pub tenant_id: i64,
    /// The transferor's extension.
    pub referrer: String,
    /// Who the transferee was asked to call (the Refer-To user, decoded).
    pub target: String,
    /// The user the REFER was sent to.
    pub transferee: String,
}

/// An INVITE being forked; dropping it ends that (see [`Dialogs::forking`]).
#[derive(Debug)]
pub struct ForkGuard {
    dialogs: std::sync::Arc<Dialogs>,
    call_id: String,
}

impl Drop for ForkGuard {
    fn drop(&mut self) {
        if let Some(mut n) = self.dialogs.forking.get_mut(&self.call_id) {
            *n = n.saturating_sub(1);
        }
        self.dialogs
            .forking
            .remove_if(&self.call_id, |_, n| *n == 0);
    }
}

/// Live dialogs and per-extension call counts.
#[derive(Debug, Default)]
pub struct Dialogs {
    by_call_id: DashMap<String, Dialog>,
    /// BYEs that came before their dialog started (the callee hung up as it
    /// answered, and the BYE overtook the 200 on another receive worker),
    /// by Call-ID: the dialog ends as it starts.
    ended_early: DashMap<String, Instant>,
    /// INVITEs being forked now, by Call-ID (their early dialogs and a BYE
    /// overtaking the 2xx belong to us too).
    forking: DashMap<String, u32>,
    /// Other dialogs we record-routed (SUBSCRIBE, REFER), by Call-ID, until
    /// when they are known without a new request.
    routed: DashMap<String, Instant>,
    /// Transfers relayed, until when their INVITE may come.
    /// Each with its expiry and the history id of the call it was in.
    transfers: DashMap<Transfer, (Instant, String)>,
    active: DashMap<(i64, String), u32>,
    last_ended: DashMap<(i64, String), Instant>,
    /// Where starts and ends go when other nodes must know (a cluster).
    events: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<CallEvent>>,
    /// Calls on other nodes, as last read from the database.
    remote: parking_lot::RwLock<std::sync::Arc<RemoteCalls>>,
}

impl Dialogs {
    /// Records an answered call. `false`: its BYE already passed, so the
    /// call is over as it starts (nothing is recorded as live).
    pub fn start(&self, call_id: &str, d: Dialog) -> bool {
        // The tombstone's entry is held while the dialog goes in, and
        // `end_by_bye` holds it while it looks: one of the two sees the
        // other, whatever the interleaving.
        let early = match self.ended_early.entry(call_id.to_owned()) {
            dashmap::mapref::entry::Entry::Occupied(e) => {
                e.remove();
                return false;
            }
            dashmap::mapref::entry::Entry::Vacant(v) => v,
        };
        for p in &d.parties {
            *self.active.entry((d.tenant_id, p.clone())).or_insert(0) += 1;
        }
        if let Some(tx) = self.events.get() {
            let _ = tx.send(CallEvent::Started {
                call_id: call_id.to_owned(),
                tenant_id: d.tenant_id,
                parties: d.parties.clone(),
            });
        }
        if let Some(old) = self.by_call_id.insert(call_id.to_owned(), d) {
            self.release(&old);
        }
        drop(early);
        true
    }

    /// Ends a call; returns it if it was known.
    pub fn end(&self, call_id: &str) -> Option<Dialog> {
        let (_, d) = self.by_call_id.remove(call_id)?;
        self.release(&d);
        if let Some(tx) = self.events.get() {
            let _ = tx.send(CallEvent::Ended {
                call_id: call_id.to_owned(),
                tenant_id: d.tenant_id,
                parties: d.parties.clone(),
            });
        }
        Some(d)
    }

    /// Sends every call start and end to `tx` from now on (once).
    pub fn report_to(&self, tx: tokio::sync::mpsc::UnboundedSender<CallEvent>) {
        let _ = self.events.set(tx);
    }

    /// Replaces what is known of the calls other nodes carry.
    pub fn set_remote(&self, remote: RemoteCalls) {
        *self.remote.write() = std::sync::Arc::new(remote);
    }

    /// Ends a call on its BYE; a BYE for a dialog not started yet is kept
    /// so that [`Dialogs::start`] does not start it.
    pub fn end_by_bye(&self, call_id: &str) -> Option<Dialog> {
        let early = self.ended_early.entry(call_id.to_owned());
        if let Some(d) = self.end(call_id) {
            return Some(d);
        }
        early.insert(Instant::now());
        None
    }

    fn release(&self, d: &Dialog) {
        for p in &d.parties {
            let key = (d.tenant_id, p.clone());
            if let Some(mut n) = self.active.get_mut(&key) {
                *n = n.saturating_sub(1);
            }
            self.active.remove_if(&key, |_, n| *n == 0);
            self.last_ended.insert(key, Instant::now());
        }
    }

    /// Notes an in-dialog request (a re-INVITE, UPDATE, INFO...): the call
    /// (or record-routed subscription) is still alive.
    pub fn touch(&self, call_id: &str) {
        if let Some(mut d) = self.by_call_id.get_mut(call_id) {
            d.last_activity = Instant::now();
        }
        if let Some(mut until) = self.routed.get_mut(call_id) {
            *until = (*until).max(Instant::now() + ROUTED_DIALOG_LIFETIME);
        }
    }

    /// Marks an INVITE with this Call-ID as being forked until the returned
    /// guard drops (on every path out of the call).
    pub fn forking(self: &std::sync::Arc<Self>, call_id: &str) -> ForkGuard {
        *self.forking.entry(call_id.to_owned()).or_insert(0) += 1;
        ForkGuard {
            dialogs: self.clone(),
            call_id: call_id.to_owned(),
        }
    }

    /// Remembers a transfer asked for in the answered call `call_id` by
    /// the party whose requests come from `sender`; false when it is not
    /// remembered (not a party, names too long, too many pending).
    pub fn note_transfer(
        &self,
        call_id: &str,
        sender: std::net::SocketAddr,
        target: &str,
        transferee: &str,
    ) -> bool {
        if target.len() > MAX_TRANSFER_NAME || transferee.len() > MAX_TRANSFER_NAME {
            return false;
        }
        let Some((tenant_id, referrer, record_id)) = self.by_call_id.get(call_id).and_then(|d| {
            d.peers
                .iter()
                .find(|(_, addr)| *addr == sender)
                .map(|(ext, _)| (d.tenant_id, ext.clone(), d.record_id.clone()))
        }) else {
            return false;
        };
        let now = Instant::now();
        if self.transfers.len() >= MAX_TRANSFERS {
            self.transfers.retain(|_, (until, _)| *until > now);
            if self.transfers.len() >= MAX_TRANSFERS {
                return false;
            }
        }
        self.transfers.insert(
            Transfer {
                tenant_id,
                referrer,
                target: target.to_owned(),
                transferee: transferee.to_owned(),
            },
            (now + TRANSFER_LIFETIME, record_id),
        );
        true
    }

    /// Whether `t` was relayed in the last [`TRANSFER_LIFETIME`], as the
    /// history id of the call it was relayed in; it is used up (one INVITE
    /// per REFER).
    pub fn take_transfer(&self, t: &Transfer) -> Option<String> {
        self.transfers
            .remove(t)
            .filter(|(_, (until, _))| *until > Instant::now())
            .map(|(_, (_, record_id))| record_id)
    }

    /// The tenant of an answered call.
    pub fn tenant_of_call(&self, call_id: &str) -> Option<i64> {
        self.by_call_id.get(call_id).map(|d| d.tenant_id)
    }

    /// Transfers remembered now (a gauge).
    pub fn pending_transfers(&self) -> usize {
        self.transfers.len()
    }

    /// Remembers a dialog we record-routed other than a call (SUBSCRIBE,
    /// REFER): its in-dialog requests are ours for a while.
    pub fn routed(&self, call_id: &str) {
        self.routed
            .insert(call_id.to_owned(), Instant::now() + ROUTED_DIALOG_LIFETIME);
    }

    /// Whether a Call-ID belongs to a dialog of ours that is up, being set
    /// up, or record-routed recently.
    pub fn knows(&self, call_id: &str) -> bool {
        self.by_call_id.contains_key(call_id)
            || self.forking.contains_key(call_id)
            || self
                .routed
                .get(call_id)
                .is_some_and(|until| *until > Instant::now())
    }

    /// How many calls an extension is on, through this node or another.
    pub fn active_calls(&self, tenant_id: i64, ext: &str) -> u32 {
        let key = (tenant_id, ext.to_owned());
        let here = self.active.get(&key).map(|n| *n).unwrap_or(0);
        let remote = self.remote.read().active.get(&key).copied().unwrap_or(0);
        here + remote
    }

    /// How long since the extension's last call ended (`None`: never, so
    /// idle the longest).
    pub fn idle_for(&self, tenant_id: i64, ext: &str) -> Option<Duration> {
        let key = (tenant_id, ext.to_owned());
        let here = self.last_ended.get(&key).map(|t| t.elapsed());
        let elsewhere = self.remote.read().last_ended_ms.get(&key).map(|at| {
            Duration::from_millis(u64::try_from(crate::store::now_ms() - at).unwrap_or(0))
        });
        // The most recent end, wherever it was.
        match (here, elsewhere) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Ends dialogs with no in-dialog request for longer than `max_idle`
    /// (their BYE was lost); returns them.
    pub fn sweep(&self, max_idle: Duration) -> Vec<Dialog> {
        // A BYE that overtakes its 200 does so by milliseconds.
        self.ended_early
            .retain(|_, t| t.elapsed() < Duration::from_secs(32));
        let now = Instant::now();
        self.routed.retain(|_, until| *until > now);
        let stale: Vec<String> = self
            .by_call_id
            .iter()
            .filter(|e| e.last_activity.elapsed() > max_idle)
            .map(|e| e.key().clone())
            .collect();
        stale.into_iter().filter_map(|k| self.end(&k)).collect()
    }

    /// A tenant's answered calls in progress: (call record id, parties,
    /// seconds since the answer).
    pub fn of_tenant(&self, tenant_id: i64) -> Vec<(String, Vec<String>, u64)> {
        let mut v: Vec<(String, Vec<String>, u64)> = self
            .by_call_id
            .iter()
            .filter(|d| d.tenant_id == tenant_id)
            .map(|d| {
                (
                    d.record_id.clone(),
                    d.parties.clone(),
                    d.since.elapsed().as_secs(),
                )
            })
            .collect();
        v.sort();
        v
    }

    /// INVITEs being forked now (a gauge).
    pub fn forking_count(&self) -> usize {
        self.forking.len()
    }

    /// Number of live dialogs.
    pub fn len(&self) -> usize {
        self.by_call_id.len()
    }

    /// Whether no dialog is live.
    pub fn is_empty(&self) -> bool {
        self.by_call_id.is_empty()
    }
}
