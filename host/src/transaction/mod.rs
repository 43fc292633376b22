//! RFC 3261 section 17 transactions, with the timers of section 17 and the
//! tables that match incoming messages to them.
//!
//! - Server transactions remember the last response so retransmitted
//!   requests are answered without reaching the proxy again (Timers G, H, I,
//!   J); an INVITE's transaction also carries the channel that tells its call
//!   about a CANCEL.
//! - Client transactions run as tasks: they retransmit (Timers A, B, D, E, F),
//!   ACK non-2xx answers hop by hop, send CANCEL once a provisional answer
//!   allows it, and report what happened as [`BranchEvent`]s.

mod client;
mod server;

pub use client::{
    non_invite, spawn_invite, spawn_non_invite, terminate_answered, BranchEvent, BranchFailure,
    ClientControl,
};
pub use server::{ServerTxn, TxKey};

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::sip::Response;

/// RFC 3261 timer values.
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    /// Round-trip estimate.
    pub t1: Duration,
    /// Cap for non-INVITE retransmissions.
    pub t2: Duration,
    /// Maximum time a message stays in the network.
    pub t4: Duration,
}

impl Timers {
    /// 64*T1: Timers B, F, H and J.
    pub fn t64(&self) -> Duration {
        self.t1 * 64
    }
}

/// The tables of live transactions.
#[derive(Debug)]
pub struct Transactions {
    /// Server transactions by (branch, method).
    pub server: DashMap<TxKey, Arc<ServerTxn>>,
    /// Client transactions by `branch|METHOD`, fed with their responses.
    pub client: DashMap<String, mpsc::Sender<Response>>,
    /// Timer values.
    pub timers: Timers,
    reap_long: Mutex<VecDeque<(Instant, TxKey)>>,
    reap_short: Mutex<VecDeque<(Instant, TxKey)>>,
}

impl Transactions {
    /// Empty tables.
    pub fn new(timers: Timers) -> Arc<Transactions> {
        Arc::new(Transactions {
            server: DashMap::new(),
            client: DashMap::new(),
            timers,
            reap_long: Mutex::new(VecDeque::new()),
            reap_short: Mutex::new(VecDeque::new()),
        })
    }

    /// Forgets a server transaction after 64*T1 (Timer J, RFC 6026 accepted
    /// state) or, when `short`, after T4 (Timer I). Both delays are fixed, so
    /// each queue stays ordered and reaping is a pop from the front.
    pub fn reap_later(&self, key: TxKey, short: bool) {
        let (q, d) = if short {
            (&self.reap_short, self.timers.t4)
        } else {
            (&self.reap_long, self.timers.t64())
        };
        q.lock().push_back((Instant::now() + d, key));
    }

    /// Removes transactions whose time is up; run every few hundred ms.
    pub fn reap(&self) {
        let now = Instant::now();
        for q in [&self.reap_long, &self.reap_short] {
            let mut due = Vec::new();
            {
                let mut q = q.lock();
                while q.front().is_some_and(|(t, _)| *t <= now) {
                    if let Some((_, k)) = q.pop_front() {
                        due.push(k);
                    }
                }
            }
            for k in due {
                self.server.remove(&k);
            }
        }
    }
}
