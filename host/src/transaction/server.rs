use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, Notify};

use super::Transactions;
use crate::sip::{codec, Peer, Response, SipMessage};
use crate::transport::Transport;

/// Server transaction key: top Via branch and method (ACK and CANCEL match
/// the INVITE's key through their branch, with the method given explicitly).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TxKey {
    /// Top Via branch of the request.
    pub branch: String,
    /// `INVITE` for INVITE transactions, else the request method.
    pub method: String,
}

#[derive(Debug, Default)]
struct State {
    last: Option<Bytes>,
    final_code: Option<u16>,
    acked: bool,
}

/// A server transaction: where responses go and what was last sent.
#[derive(Debug)]
pub struct ServerTxn {
    /// Key in the table.
    pub key: TxKey,
    /// The flow the request came on.
    pub peer: Peer,
    state: Mutex<State>,
    ack: Notify,
    /// Tells the call handling this INVITE that the caller cancelled.
    cancel: Mutex<Option<mpsc::Sender<()>>>,
    /// Set by a CANCEL, so one that comes before the handler listens (see
    /// [`ServerTxn::listen_for_cancel`]) is not lost.
    cancelled: std::sync::atomic::AtomicBool,
}

impl ServerTxn {
    /// A new transaction.
    pub fn new(key: TxKey, peer: Peer) -> Arc<ServerTxn> {
        Arc::new(ServerTxn {
            key,
            peer,
            state: Mutex::new(State::default()),
            ack: Notify::new(),
            cancel: Mutex::new(None),
            cancelled: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// A receiver that yields once the caller cancels this INVITE, even if
    /// the CANCEL came before this call.
    pub fn listen_for_cancel(&self) -> mpsc::Receiver<()> {
        let (tx, rx) = mpsc::channel(1);
        *self.cancel.lock() = Some(tx.clone());
        if self.cancelled.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = tx.try_send(());
        }
        rx
    }

    /// Records a CANCEL and tells the handler, if one listens yet.
    pub fn cancelled_by_caller(&self) {
        self.cancelled
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let tx = self.cancel.lock().clone();
        if let Some(tx) = tx {
            let _ = tx.try_send(());
        }
    }

    /// Whether a final response has been sent.
    pub fn final_code(&self) -> Option<u16> {
        self.state.lock().final_code
    }

    /// Answers a retransmitted request with the last response, if any.
    pub fn retransmit(&self, transport: &Arc<Transport>) {
        let last = self.state.lock().last.clone();
        if let Some(b) = last {
            transport.send(self.peer, b);
        }
    }

    /// An ACK for a non-2xx final response arrived (stops Timer G).
    pub fn acked(&self, txns: &Transactions) {
        let first = {
            let mut s = self.state.lock();
            !std::mem::replace(&mut s.acked, true)
        };
        if first {
            self.ack.notify_one();
            txns.reap_later(self.key.clone(), true);
        }
    }

    /// Sends a response and moves the state machine: a final non-2xx answer
    /// to an INVITE over UDP is retransmitted (Timer G) until ACKed or Timer H.
    pub fn respond(
        self: &Arc<Self>,
        resp: Response,
        transport: &Arc<Transport>,
        txns: &Arc<Transactions>,
    ) {
        let code = resp.status_code.code();
        let bytes = codec::encode(&SipMessage::Response(resp));
        {
            let mut s = self.state.lock();
            if s.final_code.is_some() {
                return; // one final response per transaction
            }
            s.last = Some(bytes.clone());
            if code >= 200 {
                s.final_code = Some(code);
            }
        }
        transport.send(self.peer, bytes.clone());
        if code < 200 {
            return;
        }
        let is_invite = self.key.method == "INVITE";
        if !is_invite || (200..300).contains(&code) {
            if self.peer.proto.is_unreliable() || is_invite {
                txns.reap_later(self.key.clone(), false);
            } else {
                txns.server.remove(&self.key);
            }
            return;
        }
        // INVITE, non-2xx final: wait for the ACK.
        let me = self.clone();
        let transport = transport.clone();
        let txns = txns.clone();
        tokio::spawn(async move {
            let t = txns.timers;
            let deadline = tokio::time::Instant::now() + t.t64();
            let mut g = t.t1;
            loop {
                let wait = if me.peer.proto.is_unreliable() {
                    g
                } else {
                    t.t64()
                };
                tokio::select! {
                    _ = me.ack.notified() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                if tokio::time::Instant::now() >= deadline {
                    // Timer H: the ACK never came.
                    txns.server.remove(&me.key);
                    return;
                }
                if me.state.lock().acked {
                    return;
                }
                transport.send(me.peer, bytes.clone());
                g = (g * 2).min(t.t2);
            }
        });
    }
}
