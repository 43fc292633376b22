//! One initial INVITE from arrival to its final response: authenticate the
//! caller, decide the targets, fork (parallel or sequential, per-target
//! delays and ring times, a total ring time), pick the outcome, answer the
//! caller, and write the call to history.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use super::{route, Router};
use crate::directory::{is_international_number, Entry, RingStrategy, TenantDirectory};
use crate::history::{CallRecord, Leg, Outcome};
use crate::proxy::dialog::Dialog;
use crate::registrar::AuthOutcome;
use crate::sip::{self, params, Header, Peer, Request, Response};
use crate::store::now_ms;
use crate::transaction::{self, BranchEvent, BranchFailure, ClientControl, ServerTxn};

/// How the targets of a plan ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RingMode {
    /// All at once (each after its own delay).
    Parallel,
    /// One after another.
    Sequential,
}

/// Where a branch goes.
#[derive(Debug, Clone)]
pub(crate) struct Dest {
    /// Request-URI of the forwarded INVITE.
    pub uri: String,
    /// Flow or address to send it to.
    pub peer: Peer,
}

/// A person, device or number to ring: all its contacts ring together.
#[derive(Debug, Clone)]
pub(crate) struct PlanTarget {
    /// Extension or number, for history.
    pub label: String,
    /// Contacts.
    pub dests: Vec<Dest>,
    /// Wait before ringing (after the previous target, when sequential).
    pub delay: Duration,
    /// How long it rings.
    pub ring: Duration,
}

/// Targets and how they ring.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub mode: RingMode,
    pub targets: Vec<PlanTarget>,
    pub total_ring: Duration,
}

struct BranchState {
    target: usize,
    contact: String,
    ctl: mpsc::Sender<ClientControl>,
    started_at: i64,
    ended_at: Option<i64>,
    status: Option<u16>,
    ringing: bool,
    /// Why we cancelled it, if we did.
    cancelled_as: Option<Outcome>,
    outcome: Option<Outcome>,
    no_response_at: Instant,
}

struct TargetState {
    start_at: Option<Instant>,
    ring_until: Option<Instant>,
    started: bool,
    done: bool,
}

/// Who called, as far as the tenant is concerned.
struct Caller {
    /// Extension (internal) or number/user (external).
    id: String,
    internal: bool,
}

pub(super) async fn run(router: Arc<Router>, req: Request, from: Peer, txn: Arc<ServerTxn>) {
    crate::metrics::count_call_started();
    let reply = |code: u16, reason: Option<&str>| {
        router.respond(
            &txn,
            sip::response_to(&req, code, reason, Some(&sip::random_token())),
        )
    };
    let ruri = req.uri.to_string();
    let callee = params::uri_user(&ruri).unwrap_or_default().to_owned();
    let host = params::uri_host(&ruri).unwrap_or_default().to_owned();
    let Some(tenant) = router.directory.tenant_for(&host) else {
        return reply(404, Some("Unknown Domain"));
    };
    let from_value = sip::header(&req.headers, "From").unwrap_or_default();
    let from_user = params::uri_user(params::uri_of(from_value))
        .unwrap_or_default()
        .to_owned();

    let caller = if router.is_trusted(from.addr.ip()) {
        Caller {
            internal: tenant.account(&from_user).is_some(),
            id: from_user.clone(),
        }
    } else {
        match router.registrar.authenticate(&req, &tenant, &from_user) {
            AuthOutcome::Authenticated(_) => Caller {
                id: from_user.clone(),
                internal: true,
            },
            AuthOutcome::Reply(r) => return router.respond(&txn, r),
        }
    };

    let (cancel_tx, cancel_rx) = mpsc::channel(1);
    *txn.cancel.lock() = Some(cancel_tx);

    let mut record = CallRecord {
        id: format!(
            "{:016x}{:08x}",
            rand::random::<u64>(),
            rand::random::<u32>()
        ),
        tenant_id: tenant.tenant.id,
        sip_call_id: sip::call_id(&req.headers).unwrap_or_default().to_owned(),
        caller: caller.id.clone(),
        callee: callee.clone(),
        direction: "internal",
        started_at: now_ms(),
        answered_at: None,
        ended_at: None,
        answered_by: None,
        outcome: Outcome::Unreachable,
        status_code: None,
        annotations: String::new(),
        legs: Vec::new(),
    };
    if !caller.internal {
        record.direction = "inbound";
    }

    let plan = match plan_for(&router, &tenant, &callee, &caller) {
        Ok(p) => p,
        Err((code, reason, outcome)) => {
            record.outcome = outcome;
            record.status_code = Some(code);
            record.ended_at = Some(now_ms());
            if code != 404 || caller.internal {
                router.history.record(record);
            }
            return reply(code, Some(reason));
        }
    };
    if plan.targets.iter().any(|t| t.label.starts_with("trunk:")) {
        record.direction = if caller.internal {
            "outbound"
        } else {
            "transit"
        };
    }
    Fork::new(
        router.clone(),
        req.clone(),
        from,
        txn.clone(),
        plan,
        record,
        caller,
    )
    .run(cancel_rx)
    .await;
}

type PlanError = (u16, &'static str, Outcome);

fn contacts_of(router: &Router, tenant: &TenantDirectory, user: &str) -> Vec<Dest> {
    router
        .registrar
        .location()
        .lookup(tenant.tenant.id, user)
        .into_iter()
        .map(|b| Dest {
            peer: b.destination(),
            uri: b.contact,
        })
        .collect()
}

/// The default routing decision (what happens when no plugin decides).
fn plan_for(
    router: &Router,
    tenant: &TenantDirectory,
    callee: &str,
    caller: &Caller,
) -> Result<Plan, PlanError> {
    let ring = router.settings.default_ring;
    let single = |label: &str, dests: Vec<Dest>| Plan {
        mode: RingMode::Parallel,
        targets: vec![PlanTarget {
            label: label.to_owned(),
            dests,
            delay: Duration::ZERO,
            ring,
        }],
        total_ring: ring,
    };
    match tenant.resolve(callee) {
        Some(Entry::Employee(id)) => {
            if tenant.tenant.busy_on_active_call
                && router.dialogs.active_calls(tenant.tenant.id, callee) > 0
            {
                return Err((486, "Busy Here", Outcome::Busy));
            }
            let mut dests = contacts_of(router, tenant, callee);
            for d in tenant.devices_of(id) {
                dests.extend(contacts_of(router, tenant, d.username.as_str()));
            }
            Ok(single(callee, dests))
        }
        Some(Entry::Device(_)) => Ok(single(callee, contacts_of(router, tenant, callee))),
        Some(Entry::Group(gid)) => {
            let Some(group) = tenant.groups.get(&gid) else {
                return Err((404, "Not Found", Outcome::Rejected));
            };
            let tid = tenant.tenant.id;
            let mut members: Vec<(String, Vec<Dest>)> = group
                .members
                .iter()
                .filter(|m| m.enabled)
                .filter_map(|m| tenant.employees.get(&m.employee_id))
                .map(|e| e.extension.as_str().to_owned())
                .filter(|ext| router.dialogs.active_calls(tid, ext) == 0)
                .map(|ext| {
                    let mut dests = contacts_of(router, tenant, &ext);
                    if let Some(e) = tenant.employee_by_extension(&ext) {
                        for d in tenant.devices_of(e.id) {
                            dests.extend(contacts_of(router, tenant, d.username.as_str()));
                        }
                    }
                    (ext, dests)
                })
                .filter(|(_, d)| !d.is_empty())
                .collect();
            let mode = match group.strategy {
                RingStrategy::RingAll => RingMode::Parallel,
                RingStrategy::Sequential => RingMode::Sequential,
                RingStrategy::Rotary => {
                    if !members.is_empty() {
                        let mut next = router.rotary.entry(gid).or_insert(0);
                        let start = *next % members.len();
                        *next = next.wrapping_add(1);
                        members.rotate_left(start);
                    }
                    RingMode::Sequential
                }
                RingStrategy::LongestIdle => {
                    // Never-used members first, then the longest idle.
                    members.sort_by_key(|(ext, _)| {
                        std::cmp::Reverse(
                            router.dialogs.idle_for(tid, ext).unwrap_or(Duration::MAX),
                        )
                    });
                    RingMode::Sequential
                }
            };
            let member_ring = Duration::from_secs(u64::from(group.member_ring_secs));
            let total = Duration::from_secs(u64::from(group.total_ring_secs));
            Ok(Plan {
                mode,
                targets: members
                    .into_iter()
                    .map(|(ext, dests)| PlanTarget {
                        label: ext,
                        dests,
                        delay: Duration::ZERO,
                        ring: if mode == RingMode::Parallel {
                            total
                        } else {
                            member_ring
                        },
                    })
                    .collect(),
                total_ring: total,
            })
        }
        None => {
            let dialable = is_international_number(callee)
                || (callee.len() >= 3
                    && callee.bytes().all(|b| b.is_ascii_digit())
                    && callee.len() > 8);
            if !(dialable && caller.internal) {
                return Err((404, "Not Found", Outcome::Rejected));
            }
            let Some(trunk) = tenant.tenant.trunk_uri.as_deref() else {
                return Err((404, "No Trunk For External Numbers", Outcome::Rejected));
            };
            let Some(uri) = trunk_uri_for(trunk, callee) else {
                return Err((500, "Bad Trunk URI", Outcome::Unreachable));
            };
            // The trunk's address is resolved when the branch starts.
            Ok(Plan {
                mode: RingMode::Parallel,
                targets: vec![PlanTarget {
                    label: format!("trunk:{callee}"),
                    dests: vec![Dest {
                        uri,
                        peer: Peer {
                            proto: sip::Proto::Udp,
                            addr: ([0, 0, 0, 0], 0).into(),
                        },
                    }],
                    delay: Duration::ZERO,
                    ring: Duration::from_secs(120),
                }],
                total_ring: Duration::from_secs(120),
            })
        }
    }
}

/// `sip:gw.example:5060` + `441234567890` -> `sip:441234567890@gw.example:5060`.
fn trunk_uri_for(trunk: &str, number: &str) -> Option<String> {
    let rest = trunk.strip_prefix("sip:")?;
    let hostpart = match rest.find('@') {
        Some(i) => &rest[i + 1..],
        None => rest,
    };
    Some(format!("sip:{number}@{hostpart}"))
}

struct Fork {
    router: Arc<Router>,
    req: Request,
    from: Peer,
    txn: Arc<ServerTxn>,
    plan: Plan,
    record: CallRecord,
    caller: Caller,
    branches: Vec<BranchState>,
    targets: Vec<TargetState>,
    events_tx: mpsc::Sender<(usize, BranchEvent)>,
    events_rx: mpsc::Receiver<(usize, BranchEvent)>,
    answered: bool,
    cancelled: bool,
    /// Forwarded INVITEs by branch (for ACK/BYE of a stray 2xx).
    sent: Vec<(Request, Peer)>,
}

impl Fork {
    fn new(
        router: Arc<Router>,
        req: Request,
        from: Peer,
        txn: Arc<ServerTxn>,
        plan: Plan,
        record: CallRecord,
        caller: Caller,
    ) -> Fork {
        let (events_tx, events_rx) = mpsc::channel(64);
        let now = Instant::now();
        let targets = plan
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| TargetState {
                start_at: match plan.mode {
                    RingMode::Parallel => Some(now + t.delay),
                    RingMode::Sequential if i == 0 => Some(now + t.delay),
                    RingMode::Sequential => None,
                },
                ring_until: None,
                started: false,
                done: false,
            })
            .collect();
        Fork {
            router,
            req,
            from,
            txn,
            plan,
            record,
            caller,
            branches: Vec::new(),
            targets,
            events_tx,
            events_rx,
            answered: false,
            cancelled: false,
            sent: Vec::new(),
        }
    }

    async fn run(mut self, mut cancel_rx: mpsc::Receiver<()>) {
        let total_until = Instant::now() + self.plan.total_ring;
        if self.plan.targets.iter().all(|t| t.dests.is_empty()) {
            return self.finish();
        }
        loop {
            self.start_due_targets().await;
            self.expire(total_until);
            if self.all_done() {
                return self.finish();
            }
            let wake = self.next_wake(total_until);
            tokio::select! {
                ev = self.events_rx.recv() => {
                    let Some((idx, ev)) = ev else { return self.finish() };
                    if self.on_event(idx, ev) {
                        return; // answered
                    }
                }
                c = cancel_rx.recv(), if !self.cancelled => {
                    if c.is_some() {
                        self.cancelled = true;
                        self.cancel_all(Outcome::Cancelled);
                    }
                }
                _ = sleep_until(wake) => {}
            }
        }
    }

    fn next_wake(&self, total_until: Instant) -> Instant {
        let mut wake = total_until;
        for t in &self.targets {
            if !t.started {
                if let Some(s) = t.start_at {
                    wake = wake.min(s);
                }
            } else if !t.done {
                if let Some(r) = t.ring_until {
                    wake = wake.min(r);
                }
            }
        }
        for b in &self.branches {
            if b.outcome.is_none() && !b.ringing {
                wake = wake.min(b.no_response_at);
            }
        }
        wake
    }

    async fn start_due_targets(&mut self) {
        let now = Instant::now();
        for ti in 0..self.targets.len() {
            let due = !self.targets[ti].started
                && !self.cancelled
                && self.targets[ti].start_at.is_some_and(|s| s <= now);
            if !due {
                continue;
            }
            self.targets[ti].started = true;
            self.targets[ti].ring_until = Some(now + self.plan.targets[ti].ring);
            let dests = self.plan.targets[ti].dests.clone();
            let mut any = false;
            for d in dests {
                any |= self.start_branch(ti, d).await;
            }
            if !any {
                self.target_finished(ti);
            }
        }
    }

    async fn start_branch(&mut self, ti: usize, mut dest: Dest) -> bool {
        if dest.peer.addr.port() == 0 {
            match route::resolve_uri(&self.router, &dest.uri).await {
                Some(p) => dest.peer = p,
                None => {
                    self.record.legs.push(Leg {
                        target: self.plan.targets[ti].label.clone(),
                        contact: dest.uri.clone(),
                        started_at: now_ms(),
                        ended_at: Some(now_ms()),
                        status_code: None,
                        outcome: Outcome::Unreachable,
                    });
                    return false;
                }
            }
        }
        let Ok(uri) = rsip::Uri::try_from(dest.uri.as_str()) else {
            return false;
        };
        let mut out = self.req.clone();
        out.uri = uri;
        let mf = sip::max_forwards(&out.headers).unwrap_or(70);
        route::set_max_forwards(&mut out.headers, mf.saturating_sub(1));
        // Credentials were for us, not for the callee.
        out.headers
            .retain(|h| !matches!(h, Header::ProxyAuthorization(_)));
        route::record_route(
            &self.router,
            &mut out.headers,
            self.from.proto,
            dest.peer.proto,
        );
        let branch = format!("{}{}", sip::BRANCH_COOKIE, sip::random_token());
        route::push_via(&self.router, &mut out.headers, dest.peer.proto, &branch);
        let idx = self.branches.len();
        let ctl = transaction::spawn_invite(
            self.router.transport.clone(),
            self.router.txns.clone(),
            out.clone(),
            branch,
            dest.peer,
            self.router.settings.timer_c,
            idx,
            self.events_tx.clone(),
        );
        self.sent.push((out, dest.peer));
        self.branches.push(BranchState {
            target: ti,
            contact: dest.uri,
            ctl,
            started_at: now_ms(),
            ended_at: None,
            status: None,
            ringing: false,
            cancelled_as: None,
            outcome: None,
            no_response_at: Instant::now() + self.router.settings.no_response,
        });
        true
    }

    /// Applies ring, no-response and total timers.
    fn expire(&mut self, total_until: Instant) {
        let now = Instant::now();
        if now >= total_until {
            self.cancel_all(Outcome::NoAnswer);
            for t in &mut self.targets {
                if !t.started {
                    t.started = true;
                    t.done = true;
                }
            }
            return;
        }
        for ti in 0..self.targets.len() {
            let t = &self.targets[ti];
            if t.started && !t.done && t.ring_until.is_some_and(|r| r <= now) {
                for bi in 0..self.branches.len() {
                    if self.branches[bi].target == ti {
                        self.cancel_branch(bi, Outcome::NoAnswer);
                    }
                }
            }
        }
        for bi in 0..self.branches.len() {
            let b = &self.branches[bi];
            if b.outcome.is_none() && !b.ringing && b.no_response_at <= now {
                self.cancel_branch(bi, Outcome::Unreachable);
            }
        }
    }

    /// Stops a branch: its leg ends now with `why`; the transaction sends
    /// CANCEL when it can and cleans up on its own.
    fn cancel_branch(&mut self, bi: usize, why: Outcome) {
        let b = &mut self.branches[bi];
        if b.outcome.is_some() {
            return;
        }
        let _ = b.ctl.try_send(ClientControl::Cancel);
        b.cancelled_as = Some(why);
        b.outcome = Some(why);
        b.ended_at = Some(now_ms());
        let ti = b.target;
        self.check_target(ti);
    }

    fn cancel_all(&mut self, why: Outcome) {
        for bi in 0..self.branches.len() {
            self.cancel_branch(bi, why);
        }
        if why == Outcome::Cancelled {
            for t in &mut self.targets {
                if !t.started {
                    t.started = true;
                    t.done = true;
                }
            }
        }
    }

    fn check_target(&mut self, ti: usize) {
        let all_done = self
            .branches
            .iter()
            .filter(|b| b.target == ti)
            .all(|b| b.outcome.is_some());
        if all_done && !self.targets[ti].done {
            self.target_finished(ti);
        }
    }

    fn target_finished(&mut self, ti: usize) {
        self.targets[ti].done = true;
        if self.plan.mode == RingMode::Sequential && !self.cancelled {
            if let Some(next) = self.targets.get_mut(ti + 1) {
                if next.start_at.is_none() {
                    next.start_at = Some(Instant::now() + self.plan.targets[ti + 1].delay);
                }
            }
        }
    }

    fn all_done(&self) -> bool {
        self.targets
            .iter()
            .all(|t| t.done || (!t.started && t.start_at.is_none() && self.cancelled))
            && self.branches.iter().all(|b| b.outcome.is_some())
            && !self
                .targets
                .iter()
                .any(|t| !t.started && t.start_at.is_some() && !self.cancelled)
    }

    /// Returns true when the call is answered (the fork is over).
    fn on_event(&mut self, idx: usize, ev: BranchEvent) -> bool {
        if idx >= self.branches.len() {
            return false;
        }
        match ev {
            BranchEvent::Provisional(mut resp) => {
                self.branches[idx].ringing = true;
                if self.branches[idx].outcome.is_none() {
                    route::pop_top_via(&mut resp.headers);
                    self.router.respond(&self.txn, resp);
                }
                false
            }
            BranchEvent::Final(resp) => {
                let code = resp.status_code.code();
                if (200..300).contains(&code) {
                    if self.answered
                        || self.branches[idx].outcome.is_some()
                            && self.branches[idx].cancelled_as != Some(Outcome::NoAnswer)
                    {
                        self.hang_up_stray(idx, &resp);
                        return false;
                    }
                    self.answer(idx, resp);
                    return true;
                }
                let b = &mut self.branches[idx];
                b.status = Some(code);
                if b.outcome.is_none() {
                    b.ended_at = Some(now_ms());
                    b.outcome = Some(classify(code, b.ringing));
                }
                if code >= 600 {
                    // A 6xx ends the whole search (RFC 3261 16.7).
                    self.cancel_all(classify(code, true));
                }
                let ti = self.branches[idx].target;
                self.check_target(ti);
                false
            }
            BranchEvent::Failed(f) => {
                let b = &mut self.branches[idx];
                if b.outcome.is_none() {
                    b.ended_at = Some(now_ms());
                    b.outcome = Some(match f {
                        BranchFailure::Transport | BranchFailure::Timeout => Outcome::Unreachable,
                    });
                    b.status = Some(if f == BranchFailure::Transport {
                        503
                    } else {
                        408
                    });
                }
                let ti = self.branches[idx].target;
                self.check_target(ti);
                false
            }
        }
    }

    fn hang_up_stray(&self, idx: usize, resp: &Response) {
        if let Some((invite, peer)) = self.sent.get(idx) {
            transaction::terminate_answered(
                &self.router.transport,
                &self.router.txns,
                invite,
                resp,
                *peer,
            );
        }
    }

    fn answer(&mut self, idx: usize, mut resp: Response) {
        self.answered = true;
        crate::metrics::count_call_answered();
        let now = now_ms();
        for bi in 0..self.branches.len() {
            if bi != idx {
                // Others rang while someone answered: not a missed call.
                self.cancel_branch(bi, Outcome::Cancelled);
            }
        }
        let b = &mut self.branches[idx];
        b.outcome = Some(Outcome::Answered);
        b.status = Some(resp.status_code.code());
        b.ended_at = Some(now);
        let label = self.plan.targets[b.target].label.clone();
        route::pop_top_via(&mut resp.headers);
        self.router.respond(&self.txn, resp);
        self.record.answered_at = Some(now);
        self.record.answered_by = Some(label.clone());
        self.record.outcome = Outcome::Answered;
        self.record.status_code = Some(200);
        let mut parties = Vec::new();
        if self.caller.internal {
            parties.push(self.caller.id.clone());
        }
        if !label.starts_with("trunk:") {
            parties.push(label);
        }
        self.router.dialogs.start(
            &self.record.sip_call_id,
            Dialog {
                tenant_id: self.record.tenant_id,
                parties,
                record_id: self.record.id.clone(),
                since: std::time::Instant::now(),
            },
        );
        self.write_record();
    }

    fn write_record(&mut self) {
        let legs = self
            .branches
            .iter()
            .map(|b| Leg {
                target: self.plan.targets[b.target].label.clone(),
                contact: b.contact.clone(),
                started_at: b.started_at,
                ended_at: b.ended_at,
                status_code: b.status,
                outcome: b.outcome.unwrap_or(Outcome::Unreachable),
            })
            .collect::<Vec<_>>();
        let mut rec = self.record.clone();
        rec.legs.extend(legs);
        self.router.history.record(rec);
    }

    fn finish(mut self) {
        let outcomes: Vec<Outcome> = self.branches.iter().filter_map(|b| b.outcome).collect();
        let statuses: Vec<u16> = self.branches.iter().filter_map(|b| b.status).collect();
        let (outcome, code, reason): (Outcome, u16, Option<&str>) = if self.cancelled {
            (Outcome::Cancelled, 487, None)
        } else if outcomes.contains(&Outcome::Busy) {
            (Outcome::Busy, 486, None)
        } else if let Some(c) = statuses.iter().copied().filter(|c| *c >= 600).min() {
            (Outcome::Rejected, c, None)
        } else if outcomes.contains(&Outcome::NoAnswer) {
            (Outcome::NoAnswer, 480, Some("No Answer"))
        } else if outcomes.contains(&Outcome::Rejected) {
            let c = statuses
                .iter()
                .copied()
                .filter(|c| (400..500).contains(c) && *c != 408 && *c != 480)
                .min()
                .unwrap_or(403);
            (Outcome::Rejected, c, None)
        } else if statuses.contains(&408) && !statuses.contains(&503) {
            (Outcome::Unreachable, 408, None)
        } else if statuses.contains(&503) {
            (Outcome::Unreachable, 503, Some("Unreachable"))
        } else {
            (Outcome::Unreachable, 480, None)
        };
        self.record.outcome = outcome;
        self.record.status_code = Some(code);
        self.record.ended_at = Some(now_ms());
        self.router.respond(
            &self.txn,
            sip::response_to(&self.req, code, reason, Some(&sip::random_token())),
        );
        self.write_record();
    }
}

/// What a branch's final status means.
fn classify(code: u16, rang: bool) -> Outcome {
    match code {
        486 | 600 => Outcome::Busy,
        487 => Outcome::NoAnswer,
        408 | 480 if rang => Outcome::NoAnswer,
        408 | 480 | 410 | 404 | 502 | 503 | 504 => Outcome::Unreachable,
        _ => Outcome::Rejected,
    }
}
