use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use super::Transactions;
use crate::sip::{self, codec, Header, Headers, Method, Peer, Request, Response, SipMessage};
use crate::transport::Transport;

/// What a forwarded INVITE branch reports to its call.
#[derive(Debug)]
pub enum BranchEvent {
    /// 101-199 from the callee.
    Provisional(Response),
    /// 200-699; for 300-699 the ACK has been sent.
    Final(Response),
    /// No answer at all.
    Failed(BranchFailure),
}

/// Why a branch produced no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BranchFailure {
    /// The request could not be sent (connection refused, no route).
    Transport,
    /// Timer B (or the wait after a CANCEL) expired without a final response.
    Timeout,
}

/// Instructions from the call to a branch.
#[derive(Debug, Clone, Copy)]
pub enum ClientControl {
    /// Stop ringing: CANCEL now, or as soon as a provisional response
    /// allows it (RFC 3261 section 9.1).
    Cancel,
}

fn copy_headers(src: &Headers, names: &[&str]) -> Vec<Header> {
    src.iter()
        .filter(|h| {
            let s = h.to_string();
            names.iter().any(|n| {
                s.len() > n.len()
                    && s.as_bytes()[n.len()] == b':'
                    && s[..n.len()].eq_ignore_ascii_case(n)
            })
        })
        .cloned()
        .collect()
}

/// ACK for a non-2xx final response, or CANCEL: same Request-URI, Call-ID,
/// From, CSeq number, top Via and Route as the INVITE.
fn hop_request(invite: &Request, method: Method, to_from: Option<&Response>) -> Request {
    let mut headers = Headers::default();
    if let Some(via) = invite.headers.iter().find(|h| matches!(h, Header::Via(_))) {
        headers.push(via.clone());
    }
    for h in copy_headers(&invite.headers, &["Route", "From", "Call-ID"]) {
        headers.push(h);
    }
    let to = to_from
        .and_then(|r| r.headers.iter().find(|h| matches!(h, Header::To(_))))
        .or_else(|| invite.headers.iter().find(|h| matches!(h, Header::To(_))));
    if let Some(to) = to {
        headers.push(to.clone());
    }
    let n = sip::cseq(&invite.headers).map(|c| c.0).unwrap_or(1);
    sip::push_header(&mut headers, "CSeq", format!("{n} {method}"));
    sip::push_header(&mut headers, "Max-Forwards", "70");
    Request {
        method,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// Starts an INVITE client transaction towards `peer`. Its events arrive on
/// `events` tagged with `idx`; the returned sender controls it.
#[allow(clippy::too_many_arguments)]
pub fn spawn_invite(
    transport: Arc<Transport>,
    txns: Arc<Transactions>,
    request: Request,
    branch: String,
    peer: Peer,
    timer_c: Duration,
    idx: usize,
    events: mpsc::Sender<(usize, BranchEvent)>,
) -> mpsc::Sender<ClientControl> {
    let (ctl_tx, ctl_rx) = mpsc::channel(4);
    let key = format!("{branch}|INVITE");
    let (resp_tx, resp_rx) = mpsc::channel(16);
    txns.client.insert(key.clone(), resp_tx);
    tokio::spawn(async move {
        run_invite(
            &transport, &txns, request, peer, timer_c, idx, &events, ctl_rx, resp_rx,
        )
        .await;
        txns.client.remove(&key);
    });
    ctl_tx
}

#[derive(PartialEq, Eq)]
enum Phase {
    Calling,
    Proceeding,
}

#[allow(clippy::too_many_arguments)]
async fn run_invite(
    transport: &Arc<Transport>,
    txns: &Arc<Transactions>,
    request: Request,
    peer: Peer,
    timer_c: Duration,
    idx: usize,
    events: &mpsc::Sender<(usize, BranchEvent)>,
    mut ctl: mpsc::Receiver<ClientControl>,
    mut responses: mpsc::Receiver<Response>,
) {
    let t = txns.timers;
    let bytes = codec::encode(&SipMessage::Request(request.clone()));
    if let Err(e) = transport.send_async(peer, bytes.clone()).await {
        tracing::debug!(error = %e, "INVITE branch not sent");
        let _ = events
            .send((idx, BranchEvent::Failed(BranchFailure::Transport)))
            .await;
        return;
    }
    let udp = peer.proto.is_unreliable();
    let mut phase = Phase::Calling;
    let mut interval_a = t.t1;
    let mut next_a = Instant::now() + interval_a;
    // Timer B while calling; after a CANCEL (or Timer C), how long to wait
    // for the final response before giving up on the branch.
    let mut deadline = Instant::now() + t.t64();
    let mut cancel_wanted = false;
    let mut cancel_sent = false;
    let far_future = Instant::now() + Duration::from_secs(86_400 * 365);
    loop {
        let a_at = if udp && phase == Phase::Calling {
            next_a
        } else {
            far_future
        };
        tokio::select! {
            resp = responses.recv() => {
                let Some(resp) = resp else { return };
                let code = resp.status_code.code();
                if code < 200 {
                    if phase == Phase::Calling {
                        phase = Phase::Proceeding;
                    }
                    if cancel_wanted && !cancel_sent {
                        send_cancel(transport, txns, &request, peer);
                        cancel_sent = true;
                        deadline = Instant::now() + t.t64();
                    } else if !cancel_sent {
                        deadline = Instant::now() + timer_c; // Timer C restarts
                    }
                    if code > 100 {
                        let _ = events.send((idx, BranchEvent::Provisional(resp))).await;
                    }
                    continue;
                }
                if code < 300 {
                    if events.send((idx, BranchEvent::Final(resp.clone()))).await.is_err() {
                        terminate_answered(transport, txns, &request, &resp, peer);
                    }
                    return;
                }
                let ack = codec::encode(&SipMessage::Request(hop_request(&request, Method::Ack, Some(&resp))));
                transport.send(peer, ack.clone());
                let _ = events.send((idx, BranchEvent::Final(resp))).await;
                if udp {
                    // Timer D: absorb retransmitted finals, ACK each again.
                    let d = Instant::now() + Duration::from_secs(32);
                    loop {
                        tokio::select! {
                            r = responses.recv() => match r {
                                Some(r) if r.status_code.code() >= 300 => transport.send(peer, ack.clone()),
                                Some(_) => {}
                                None => return,
                            },
                            _ = sleep_until(d) => return,
                        }
                    }
                }
                return;
            }
            c = ctl.recv(), if !cancel_wanted => {
                if let Some(ClientControl::Cancel) = c {
                    cancel_wanted = true;
                    if phase == Phase::Proceeding && !cancel_sent {
                        send_cancel(transport, txns, &request, peer);
                        cancel_sent = true;
                        deadline = Instant::now() + t.t64();
                    }
                } else {
                    cancel_wanted = true; // the call is gone: stop ringing
                }
            }
            _ = sleep_until(a_at) => {
                transport.send(peer, bytes.clone());
                interval_a *= 2;
                next_a = Instant::now() + interval_a;
            }
            _ = sleep_until(deadline) => {
                if phase == Phase::Proceeding && !cancel_sent {
                    // Timer C: the callee rang too long without a final answer.
                    send_cancel(transport, txns, &request, peer);
                    cancel_sent = true;
                    deadline = Instant::now() + t.t64();
                    continue;
                }
                let _ = events.send((idx, BranchEvent::Failed(BranchFailure::Timeout))).await;
                return;
            }
        }
    }
}

fn send_cancel(transport: &Arc<Transport>, txns: &Arc<Transactions>, invite: &Request, peer: Peer) {
    let cancel = hop_request(invite, Method::Cancel, None);
    let transport = transport.clone();
    let txns = txns.clone();
    tokio::spawn(async move {
        let _ = non_invite(&transport, &txns, cancel, peer).await;
    });
}

/// Ends a dialog that a callee answered after the call no longer wanted it:
/// ACK the 2xx, then BYE.
pub fn terminate_answered(
    transport: &Arc<Transport>,
    txns: &Arc<Transactions>,
    invite: &Request,
    ok: &Response,
    peer: Peer,
) {
    let target = sip::header(&ok.headers, "Contact")
        .map(|c| sip::params::uri_of(c).to_owned())
        .and_then(|u| rsip::Uri::try_from(u.as_str()).ok())
        .unwrap_or_else(|| invite.uri.clone());
    let via_host = sip::header(&invite.headers, "Via")
        .and_then(sip::params::ViaFields::parse)
        .map(|v| (v.transport.to_owned(), v.host.to_owned(), v.port));
    let Some((proto, host, port)) = via_host else {
        return;
    };
    let n = sip::cseq(&invite.headers).map(|c| c.0).unwrap_or(1);
    let build = |method: Method, cseq: u32| {
        let mut headers = Headers::default();
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        // ViaFields gives an IPv6 host without its brackets.
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        sip::push_header(
            &mut headers,
            "Via",
            format!(
                "SIP/2.0/{proto} {host}{port};branch={}{}",
                sip::BRANCH_COOKIE,
                sip::random_token()
            ),
        );
        for h in copy_headers(&invite.headers, &["From", "Call-ID"]) {
            headers.push(h);
        }
        if let Some(to) = ok.headers.iter().find(|h| matches!(h, Header::To(_))) {
            headers.push(to.clone());
        }
        sip::push_header(&mut headers, "CSeq", format!("{cseq} {method}"));
        sip::push_header(&mut headers, "Max-Forwards", "70");
        Request {
            method,
            uri: target.clone(),
            version: rsip::Version::V2,
            headers,
            body: Vec::new(),
        }
    };
    let ack = build(Method::Ack, n);
    transport.send(peer, codec::encode(&SipMessage::Request(ack)));
    let bye = build(Method::Bye, n + 1);
    let transport = transport.clone();
    let txns = txns.clone();
    tokio::spawn(async move {
        let _ = non_invite(&transport, &txns, bye, peer).await;
    });
}

/// Starts a non-INVITE client transaction and returns its final response
/// through the join handle (408 made up locally on Timer F).
pub fn spawn_non_invite(
    transport: Arc<Transport>,
    txns: Arc<Transactions>,
    request: Request,
    peer: Peer,
) -> tokio::task::JoinHandle<Result<Response, BranchFailure>> {
    tokio::spawn(async move { non_invite(&transport, &txns, request, peer).await })
}

/// Runs a non-INVITE client transaction to its final response.
pub async fn non_invite(
    transport: &Arc<Transport>,
    txns: &Arc<Transactions>,
    request: Request,
    peer: Peer,
) -> Result<Response, BranchFailure> {
    let t = txns.timers;
    let Some(branch) = sip::top_branch(&request.headers).map(str::to_owned) else {
        return Err(BranchFailure::Transport);
    };
    let key = format!("{branch}|{}", request.method);
    let (tx, mut rx) = mpsc::channel(8);
    txns.client.insert(key.clone(), tx);
    let bytes = codec::encode(&SipMessage::Request(request));
    let result = async {
        transport
            .send_async(peer, bytes.clone())
            .await
            .map_err(|_| BranchFailure::Transport)?;
        let deadline = Instant::now() + t.t64(); // Timer F
        let mut e = t.t1;
        let mut next_e = Instant::now() + e;
        loop {
            let e_at = if peer.proto.is_unreliable() {
                next_e
            } else {
                deadline
            };
            tokio::select! {
                r = rx.recv() => match r {
                    Some(r) if r.status_code.code() >= 200 => return Ok(r),
                    Some(_) => e = t.t2, // proceeding: retransmit every T2
                    None => return Err(BranchFailure::Timeout),
                },
                _ = sleep_until(e_at) => {
                    transport.send(peer, bytes.clone());
                    e = (e * 2).min(t.t2);
                    next_e = Instant::now() + e;
                }
                _ = sleep_until(deadline) => return Err(BranchFailure::Timeout),
            }
        }
    }
    .await;
    txns.client.remove(&key);
    result
}
