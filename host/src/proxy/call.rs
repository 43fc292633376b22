//! One initial INVITE from arrival to its final response: authenticate the
//! caller, decide the targets, fork (parallel or sequential, per-target
//! delays and ring times, a total ring time), pick the outcome, answer the
//! caller, and write the call to history.

use std::sync::Arc;
use std::time::Duration;

use rsip::headers::UntypedHeader;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

use super::admission::Admitted;
use super::{route, voice, Router};
use crate::directory::{is_international_number, Entry, RingStrategy, TenantDirectory};
use crate::history::{CallRecord, Leg, Outcome};
use crate::pipeline::{
    CallView, Decision, Dest as PDest, Direction, EventKind, FailureReason, Input, Mode, OnFailure,
    PartyView, RouteDecision,
};
use crate::proxy::dialog::Dialog;
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
    /// The node that holds the phone's flow, when that is another node
    /// (`peer` is then that node): the INVITE carries a Route to it with a
    /// flow token.
    pub via_node: Option<std::net::SocketAddr>,
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
    /// Whether the failure point is asked when nobody answers.
    pub on_failure: OnFailure,
    /// Caller ID to present to the callees.
    pub caller_id: Option<String>,
    /// Display name to present.
    pub caller_name: Option<String>,
    /// The hunt group whose members ring (for missed-call events).
    pub group: Option<String>,
    /// Diversion header values, newest first (RFC 5806).
    pub diversions: Vec<String>,
}

impl Plan {
    /// One target, ringing all its contacts for `ring`; the failure point is
    /// asked when nobody answers.
    fn single(label: String, dests: Vec<Dest>, ring: Duration) -> Plan {
        Plan {
            mode: RingMode::Parallel,
            targets: vec![PlanTarget {
                label,
                dests,
                delay: Duration::ZERO,
                ring,
            }],
            total_ring: ring,
            on_failure: OnFailure::AskAgain,
            caller_id: None,
            caller_name: None,
            group: None,
            diversions: Vec::new(),
        }
    }
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
    /// Further addresses of the same destination (RFC 3263: SRV targets,
    /// several A records), tried in turn when this one does not answer.
    fallbacks: Vec<Peer>,
    /// Where the INVITE went.
    peer: Peer,
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

/// Most times the failure point is asked during one call.
const MAX_FAILURE_ROUNDS: u32 = 8;

/// How a fork ended.
enum End {
    Answered,
    Cancelled,
    Failed {
        outcome: Outcome,
        code: u16,
        reason: Option<&'static str>,
    },
}

pub(super) async fn run(
    router: Arc<Router>,
    req: Request,
    from: Peer,
    txn: Arc<ServerTxn>,
    admitted: Admitted,
) {
    crate::metrics::count_call_started();
    let reply = |code: u16, reason: Option<&str>| {
        router.respond(
            &txn,
            sip::response_to(&req, code, reason, Some(&sip::random_token())),
        )
    };
    let ruri = req.uri.to_string();
    let callee = params::percent_decode(params::uri_user(&ruri).unwrap_or_default());
    let tenant = admitted.tenant;
    // In-dialog requests of this call (PRACK, a BYE overtaking the 2xx)
    // are ours while it is being set up.
    let _forking = router
        .dialogs
        .forking(sip::call_id(&req.headers).unwrap_or_default());
    let from_value = sip::header(&req.headers, "From").unwrap_or_default();
    let from_name = params::display_name_of(from_value).map(str::to_owned);
    let caller = Caller {
        id: admitted.caller_id,
        internal: admitted.internal,
    };

    // A device calls as its owner, or as whoever is logged in at it.
    let mut caller = caller;
    let mut bound_identity = None;
    let mut device = None;
    if caller.internal {
        if let Some(Entry::Device(did)) = tenant.resolve(&caller.id) {
            device = Some(caller.id.clone());
            let user = router
                .plugins
                .state()
                .binding_of(tenant.tenant.id, &caller.id)
                .or_else(|| {
                    tenant
                        .devices
                        .get(&did)
                        .and_then(|d| tenant.owner_of(d))
                        .map(|e| e.extension.to_string())
                });
            if let Some(user) = user {
                let name = tenant.employee_by_extension(&user).map(|e| e.name.clone());
                caller.id = user.clone();
                bound_identity = Some((user, name));
            }
        }
    }
    // A transfer's INVITE names the transferor: their plugins decide it
    // (`##20` back to the boss) even when the transferee is outside.
    // The claim counts only when we relayed that REFER in a call of the
    // transferor's, to this transferee and this target: anyone can write
    // the header.
    let mut transferred_from = None;
    let referred_by = sip::header(&req.headers, "Referred-By")
        .and_then(|v| extension_of(&tenant, v))
        .filter(|referrer| {
            let transferee = caller.id.clone();
            transferred_from = router.dialogs.take_transfer(&super::dialog::Transfer {
                tenant_id: tenant.tenant.id,
                referrer: referrer.clone(),
                target: callee.clone(),
                transferee,
            });
            if transferred_from.is_none() {
                tracing::info!(%referrer, %callee, "Referred-By without a REFER we relayed: ignored");
            }
            transferred_from.is_some()
        });
    let caller_logged_out = caller.internal
        && router.plugins.state().status(tenant.tenant.id, &caller.id)
            == crate::plugins::Status::LoggedOut;

    let mut cancel_rx = txn.listen_for_cancel();

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
        direction: if caller.internal {
            "internal"
        } else {
            "inbound"
        },
        started_at: now_ms(),
        answered_at: None,
        ended_at: None,
        answered_by: None,
        outcome: Outcome::Unreachable,
        status_code: None,
        annotations: String::new(),
        legs: Vec::new(),
    };
    let mut view = CallView {
        call_id: record.id.clone(),
        caller: PartyView {
            id: caller.id.clone(),
            name: from_name,
            internal: caller.internal,
        },
        dialed: callee.clone(),
        direction: if caller.internal {
            if tenant.resolve(&callee).is_some() {
                Direction::Internal
            } else {
                Direction::Outbound
            }
        } else {
            Direction::Inbound
        },
        attempt: 0,
        history: Vec::new(),
        device,
        referred_by: referred_by.clone(),
        transferred_from,
    };
    let finish_early = |mut record: CallRecord, code: u16, reason: &str, outcome: Outcome| {
        record.outcome = outcome;
        record.status_code = Some(code);
        record.ended_at = Some(now_ms());
        router.history.record(record);
        reply(code, Some(reason));
    };

    // Decision points before anything rings: originate (the caller's
    // plugins: feature codes, caller ID), then incoming (the callee's).
    let mut decided: Option<Plan> = None;
    // Diversions so far, newest first: those the call arrived with, then ours.
    let mut diversions: Vec<String> = sip::header_all(&req.headers, "Diversion")
        .map(str::to_owned)
        .collect();
    let mut points = Vec::new();
    if caller.internal || referred_by.is_some() {
        points.push(Input::Originate { call: view.clone() });
    }
    if tenant.resolve(&callee).is_some() {
        points.push(Input::Incoming {
            call: view.clone(),
            callee: callee.clone(),
        });
    }
    for input in points {
        let v = router.plugins.decide(&tenant, &input);
        record.annotate(&v.annotations);
        if let Decision::Feature {
            success,
            message,
            announce,
        } = &v.decision
        {
            // What the phone is about to be told (logged in, status set,
            // PIN locked) is in the database first: a crash right after
            // the answer must not undo it.
            if !router.plugins.state().flush().await {
                return reply(500, Some("Not Stored"));
            }
            // Feature codes are not calls: answered, not recorded.
            if !*success {
                return reply(403, Some(message));
            }
            if !announce.is_empty() {
                let start = voice::Start::Announce {
                    message: message.clone(),
                    prompts: announce.clone(),
                };
                return voice::run(router, req, from, txn, tenant, view, start).await;
            }
            answer_feature(&router, &req, from, &txn, message);
            return;
        }
        // A question to the caller (`*88` alone): the router answers and
        // the asking plugin leads the conversation.
        if let Decision::Collect(question) = &v.decision {
            let start = voice::Start::Ask {
                plugin: v.decided_by.clone().unwrap_or_default(),
                question: question.clone(),
            };
            return voice::run(router, req, from, txn, tenant, view, start).await;
        }
        // Logged off (seed 004): no calls but feature codes (to log back in).
        if caller_logged_out && input.point() == crate::pipeline::Point::Originate {
            return finish_early(record, 403, "Logged Off", Outcome::Rejected);
        }
        match v.decision {
            Decision::Feature { .. } | Decision::Collect(_) => {}
            Decision::Reject { status, reason } => {
                return finish_early(record, status, &reason, Outcome::Rejected);
            }
            Decision::Route(r) => {
                if let Some(why) = &r.reason {
                    record.annotate(std::slice::from_ref(why));
                }
                if !add_diversion(&mut diversions, &r, &tenant.tenant.domain) {
                    return finish_early(record, 482, "Loop Detected", Outcome::Rejected);
                }
                // Calling on someone's behalf (a secretary as the boss): the
                // call is the boss's in history, as the callee sees it.
                if let (crate::pipeline::Point::Originate, Some(id)) =
                    (input.point(), r.caller_id.as_deref())
                {
                    if id != caller.id && tenant.employee_by_extension(id).is_some() {
                        record.annotate(&[format!("placed by {}", caller.id)]);
                        record.caller = id.to_owned();
                    }
                }
                let mut plan = plan_from_route(&router, &tenant, &r);
                plan.diversions = diversions.clone();
                decided = Some(plan);
                break;
            }
            Decision::Continue | Decision::Members(_) => {}
        }
    }

    let mut step: Result<Plan, PlanError> = match decided {
        Some(plan) => Ok(plan),
        None => plan_for(&router, &tenant, &callee, &caller, &view),
    };
    if let (Ok(plan), Some((user, name))) = (step.as_mut(), &bound_identity) {
        if plan.caller_id.is_none() {
            plan.caller_id = Some(user.clone());
            plan.caller_name = name.clone();
        }
    }
    let mut fork: Option<Fork> = None;
    loop {
        let (end, target) = match step {
            Ok(plan) => {
                if plan.targets.iter().any(|t| t.label.starts_with("trunk:"))
                    && record.direction == "internal"
                {
                    record.direction = "outbound";
                }
                let target = plan
                    .targets
                    .first()
                    .map(|t| t.label.clone())
                    .unwrap_or_else(|| callee.clone());
                view.history
                    .extend(plan.targets.iter().map(|t| t.label.clone()));
                let mut f = match fork.take() {
                    Some(old) => old.next(plan),
                    None => Fork::new(
                        router.clone(),
                        req.clone(),
                        from,
                        txn.clone(),
                        plan,
                        record.clone(),
                        caller.id.clone(),
                        caller.internal,
                    ),
                };
                f.view = Some(view.clone());
                let end = f.run(&mut cancel_rx).await;
                fork = Some(f);
                (end, target)
            }
            Err((code, reason, outcome)) => (
                End::Failed {
                    outcome,
                    code,
                    reason: Some(reason),
                },
                callee.clone(),
            ),
        };
        if let Some(f) = fork.as_ref() {
            f.missed_group_call_events(&tenant, &view);
        }
        let (outcome, code, reason) = match end {
            End::Answered => return,
            End::Cancelled => (Outcome::Cancelled, 487, None),
            End::Failed {
                outcome,
                code,
                reason,
            } => (outcome, code, reason),
        };
        let ask = fork
            .as_ref()
            .map(|f| f.plan.on_failure)
            .unwrap_or(OnFailure::AskAgain)
            == OnFailure::AskAgain;
        let failure = match outcome {
            Outcome::NoAnswer => Some(FailureReason::NoAnswer),
            Outcome::Busy => Some(FailureReason::Busy),
            Outcome::Unreachable => Some(FailureReason::Unreachable),
            _ => None,
        };
        if let (true, Some(reason_f)) = (ask && view.attempt < MAX_FAILURE_ROUNDS, failure) {
            let tried = fork.as_ref().map(|f| f.tried()).unwrap_or_default();
            let v = router.plugins.decide(
                &tenant,
                &Input::Failure {
                    call: view.clone(),
                    reason: reason_f,
                    target,
                    tried,
                },
            );
            match fork.as_mut() {
                Some(f) => f.record.annotate(&v.annotations),
                None => record.annotate(&v.annotations),
            }
            match v.decision {
                Decision::Route(r) if add_diversion(&mut diversions, &r, &tenant.tenant.domain) => {
                    view.attempt += 1;
                    let why = r.reason.clone();
                    let mut plan = plan_from_route(&router, &tenant, &r);
                    plan.diversions = diversions.clone();
                    if let Some(why) = why {
                        match fork.as_mut() {
                            Some(f) => f.record.annotate(&[why]),
                            None => record.annotate(&[why]),
                        }
                    }
                    step = Ok(plan);
                    continue;
                }
                Decision::Reject { status, reason } => {
                    match fork {
                        Some(f) => f.conclude(status, Some(&reason), Outcome::Rejected),
                        None => finish_early(record, status, &reason, Outcome::Rejected),
                    }
                    return;
                }
                _ => {}
            }
        }
        match fork {
            Some(f) => f.conclude(code, reason, outcome),
            None => finish_early(record, code, reason.unwrap_or("Failed"), outcome),
        }
        return;
    }
}

/// Answers a feature code that worked with a 200 (a phone shows its
/// reason phrase as the call connects) and, with nothing to say, hangs up
/// right after.
pub(super) fn answer_feature(
    router: &Arc<Router>,
    req: &Request,
    from: Peer,
    txn: &Arc<ServerTxn>,
    message: &str,
) {
    let tag = sip::random_token();
    let mut ok = sip::response_to(req, 200, Some(message), Some(&tag));
    let (host, port) = router.settings.sent_by(&from);
    sip::push_header(
        &mut ok.headers,
        "Contact",
        format!("<sip:{host}:{port}{}>", from.proto.uri_param()),
    );
    router.respond(txn, ok);
    hang_up_feature_call(router, req, from, &tag);
}

/// Sends BYE for a feature call we answered (UAS side of the dialog).
pub(super) fn hang_up_feature_call(
    router: &Arc<Router>,
    invite: &Request,
    to: Peer,
    our_tag: &str,
) {
    let Some(target) = sip::header(&invite.headers, "Contact")
        .map(|c| params::uri_of(c).to_owned())
        .and_then(|u| rsip::Uri::try_from(u.as_str()).ok())
    else {
        return;
    };
    let (Some(from), Some(to_hdr), Some(call_id)) = (
        sip::header(&invite.headers, "From"),
        sip::header(&invite.headers, "To"),
        sip::call_id(&invite.headers),
    ) else {
        return;
    };
    let mut headers = rsip::Headers::default();
    let branch = route::new_branch(router);
    route::push_via(router, &mut headers, to, &branch);
    sip::push_header(&mut headers, "Max-Forwards", "70");
    headers.push(Header::From(rsip::headers::From::new(format!(
        "{to_hdr};tag={our_tag}"
    ))));
    headers.push(Header::To(rsip::headers::To::new(from.to_owned())));
    sip::push_header(&mut headers, "Call-ID", call_id.to_owned());
    sip::push_header(&mut headers, "CSeq", "1 BYE");
    sip::push_header(&mut headers, "Content-Length", "0");
    let bye = Request {
        method: rsip::Method::Bye,
        uri: target,
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    };
    let (transport, txns) = (router.transport.clone(), router.txns.clone());
    tokio::spawn(async move {
        // Leave the phone time to ACK the 200 first.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = crate::transaction::non_invite(&transport, &txns, bye, to).await;
    });
}

/// The extension a name-addr (`<sip:2005@d>`, a Referred-By) names: an
/// employee's, or the owner's of a device account.
pub(super) fn extension_of(tenant: &TenantDirectory, name_addr: &str) -> Option<String> {
    let user = params::uri_user(params::uri_of(name_addr))?;
    match tenant.resolve(user) {
        Some(Entry::Employee(_)) => Some(user.to_owned()),
        Some(Entry::Device(d)) => tenant
            .devices
            .get(&d)
            .and_then(|d| tenant.owner_of(d))
            .map(|e| e.extension.to_string()),
        _ => None,
    }
}

/// Records a route's diversion as a Diversion header value (RFC 5806),
/// newest first; false when the call has had too many.
fn add_diversion(diversions: &mut Vec<String>, r: &RouteDecision, domain: &str) -> bool {
    let Some(d) = &r.diversion else {
        return true;
    };
    if diversions.len() >= crate::pipeline::MAX_DIVERSIONS {
        return false;
    }
    diversions.insert(
        0,
        format!(
            "<sip:{}@{domain}>;reason={};counter=1",
            d.from,
            d.reason.as_str()
        ),
    );
    true
}

/// Turns a plugin's route into a plan: destinations become contacts.
fn plan_from_route(router: &Router, tenant: &TenantDirectory, r: &RouteDecision) -> Plan {
    let default_ring = router.settings.default_ring;
    let mut targets = Vec::new();
    for t in &r.targets {
        let (label, dests) = match &t.dest {
            PDest::Extension(e) => (
                e.to_string(),
                contacts_for_extension(router, tenant, e.as_str()),
            ),
            PDest::Device(e) => (e.to_string(), contacts_of(router, tenant, e.as_str())),
            PDest::External(n) => (
                format!("trunk:{n}"),
                tenant
                    .tenant
                    .trunk_uri
                    .as_deref()
                    .and_then(|t| trunk_uri_for(t, n))
                    .map(unresolved)
                    .into_iter()
                    .collect(),
            ),
            PDest::Voicemail(e) => (
                format!("voicemail:{e}"),
                tenant
                    .tenant
                    .voicemail_uri
                    .as_deref()
                    .and_then(|v| trunk_uri_for(v, e.as_str()))
                    .map(unresolved)
                    .into_iter()
                    .collect(),
            ),
            PDest::Uri(u) => (u.clone(), vec![unresolved(u.clone())]),
        };
        targets.push(PlanTarget {
            label,
            dests,
            delay: t.delay,
            ring: t.ring.unwrap_or(default_ring),
        });
    }
    let mode = match r.mode {
        Mode::Parallel => RingMode::Parallel,
        Mode::Sequential => RingMode::Sequential,
    };
    let total_ring = r.total_ring.unwrap_or_else(|| match mode {
        RingMode::Parallel => targets
            .iter()
            .map(|t| t.delay + t.ring)
            .max()
            .unwrap_or(default_ring),
        RingMode::Sequential => targets.iter().map(|t| t.delay + t.ring).sum(),
    });
    Plan {
        mode,
        targets,
        total_ring,
        on_failure: r.on_failure,
        caller_id: r.caller_id.clone(),
        caller_name: r.caller_name.clone(),
        group: None,
        diversions: Vec::new(),
    }
}

/// A destination whose address is looked up when its branch starts.
fn unresolved(uri: String) -> Dest {
    Dest {
        via_node: None,
        uri,
        peer: Peer {
            proto: sip::Proto::Udp,
            addr: ([0, 0, 0, 0], 0).into(),
        },
    }
}

/// Contacts that ring for an extension: an employee's own and their
/// devices', a device's, or a hunt group's available members'.
fn contacts_for_extension(router: &Router, tenant: &TenantDirectory, ext: &str) -> Vec<Dest> {
    match tenant.resolve(ext) {
        Some(Entry::Employee(id)) => {
            if router.plugins.state().status(tenant.tenant.id, ext)
                != crate::plugins::Status::Available
            {
                return Vec::new();
            }
            let mut dests = contacts_of(router, tenant, ext);
            for d in tenant.devices_of(id) {
                dests.extend(contacts_of(router, tenant, d.username.as_str()));
            }
            // Hotdesk devices the employee is logged in at.
            for d in router
                .plugins
                .state()
                .devices_bound_to(tenant.tenant.id, ext)
            {
                dests.extend(contacts_of(router, tenant, &d));
            }
            dests
        }
        Some(Entry::Device(_)) => contacts_of(router, tenant, ext),
        Some(Entry::Group(gid)) => tenant
            .groups
            .get(&gid)
            .map(|g| {
                g.members
                    .iter()
                    .filter(|m| m.enabled)
                    .filter_map(|m| tenant.employees.get(&m.employee_id))
                    .filter(|e| {
                        router
                            .dialogs
                            .active_calls(tenant.tenant.id, e.extension.as_str())
                            == 0
                    })
                    .flat_map(|e| contacts_for_extension(router, tenant, e.extension.as_str()))
                    .collect()
            })
            .unwrap_or_default(),
        None => Vec::new(),
    }
}

type PlanError = (u16, &'static str, Outcome);

fn contacts_of(router: &Router, tenant: &TenantDirectory, user: &str) -> Vec<Dest> {
    let location = router.registrar.location();
    location
        .lookup(tenant.tenant.id, user)
        .into_iter()
        .filter_map(|b| {
            if b.needs_flow() && !location.is_local(&b) {
                // Only the node holding the flow reaches the phone: send
                // the INVITE through it (a dead node's phones re-register).
                let addr = location.node_address(&b.node)?;
                return Some(Dest {
                    via_node: Some(addr),
                    peer: Peer {
                        proto: crate::sip::Proto::Udp,
                        addr,
                    },
                    uri: b.contact,
                });
            }
            Some(Dest {
                peer: b.destination(),
                uri: b.contact,
                via_node: None,
            })
        })
        .collect()
}

/// The default routing decision (what happens when no plugin decides), with
/// the group-members point asked for hunt groups.
fn plan_for(
    router: &Router,
    tenant: &Arc<TenantDirectory>,
    callee: &str,
    caller: &Caller,
    view: &CallView,
) -> Result<Plan, PlanError> {
    let ring = router.settings.default_ring;
    let tid = tenant.tenant.id;
    let status = |ext: &str| router.plugins.state().status(tid, ext);
    let single = |label: &str, dests: Vec<Dest>| Plan::single(label.to_owned(), dests, ring);
    match tenant.resolve(callee) {
        Some(Entry::Employee(id)) => {
            // Do not disturb and logged off both mean busy for personal calls.
            if status(callee) != crate::plugins::Status::Available {
                return Err((486, "Busy Here", Outcome::Busy));
            }
            let waiting = tenant.employees.get(&id).is_some_and(|e| e.call_waiting);
            if tenant.tenant.busy_on_active_call
                && !waiting
                && router.dialogs.active_calls(tid, callee) > 0
            {
                return Err((486, "Busy Here", Outcome::Busy));
            }
            let dests = contacts_for_extension(router, tenant, callee);
            if dests.is_empty() {
                return Err((480, "Temporarily Unavailable", Outcome::Unreachable));
            }
            Ok(single(callee, dests))
        }
        Some(Entry::Device(_)) => {
            let dests = contacts_of(router, tenant, callee);
            if dests.is_empty() {
                return Err((480, "Temporarily Unavailable", Outcome::Unreachable));
            }
            Ok(single(callee, dests))
        }
        Some(Entry::Group(gid)) => {
            let Some(group) = tenant.groups.get(&gid) else {
                return Err((404, "Not Found", Outcome::Rejected));
            };
            let enabled: Vec<String> = group
                .members
                .iter()
                .filter(|m| m.enabled)
                .filter_map(|m| tenant.employees.get(&m.employee_id))
                .map(|e| e.extension.as_str().to_owned())
                .collect();
            let verdict = router.plugins.decide(
                tenant,
                &Input::GroupMembers {
                    call: view.clone(),
                    group: callee.to_owned(),
                    members: enabled.clone(),
                },
            );
            let chosen = match verdict.decision {
                Decision::Members(m) => m,
                _ => enabled,
            };
            // Only members who are available, not on a call, and reachable.
            let mut members: Vec<(String, Vec<Dest>)> = chosen
                .into_iter()
                .filter(|ext| status(ext) == crate::plugins::Status::Available)
                .filter(|ext| router.dialogs.active_calls(tid, ext) == 0)
                .map(|ext| {
                    let dests = contacts_for_extension(router, tenant, &ext);
                    (ext, dests)
                })
                .filter(|(_, d)| !d.is_empty())
                .collect();
            if members.is_empty() {
                return Err((480, "No Member Available", Outcome::Unreachable));
            }
            let mode = match group.strategy {
                RingStrategy::RingAll => RingMode::Parallel,
                RingStrategy::Sequential => RingMode::Sequential,
                RingStrategy::Rotary => {
                    let mut next = router.rotary.entry(gid).or_insert(0);
                    let start = *next % members.len();
                    *next = next.wrapping_add(1);
                    members.rotate_left(start);
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
                on_failure: OnFailure::AskAgain,
                caller_id: None,
                caller_name: None,
                group: Some(callee.to_owned()),
                diversions: Vec::new(),
            })
        }
        None => {
            let dialable = is_international_number(callee);
            if !(dialable && caller.internal) {
                return Err((404, "Not Found", Outcome::Rejected));
            }
            if status(&caller.id) == crate::plugins::Status::LoggedOut {
                return Err((403, "Logged Off", Outcome::Rejected));
            }
            let Some(trunk) = tenant.tenant.trunk_uri.as_deref() else {
                return Err((404, "No Trunk For External Numbers", Outcome::Rejected));
            };
            let Some(uri) = trunk_uri_for(trunk, callee) else {
                return Err((500, "Bad Trunk URI", Outcome::Unreachable));
            };
            Ok(Plan::single(
                format!("trunk:{callee}"),
                vec![unresolved(uri)],
                Duration::from_secs(120),
            ))
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
    caller_id: String,
    caller_internal: bool,
    branches: Vec<BranchState>,
    targets: Vec<TargetState>,
    events_tx: mpsc::Sender<(usize, BranchEvent)>,
    events_rx: mpsc::Receiver<(usize, BranchEvent)>,
    answered: bool,
    cancelled: bool,
    /// Forwarded INVITEs by branch (for ACK/BYE of a stray 2xx).
    sent: Vec<(Request, Peer)>,
    /// The call as plugins see it (for the answered event).
    view: Option<CallView>,
    /// Destinations whose address did not answer, waiting to be tried at
    /// their next address: (target, destination, addresses after it).
    failovers: Vec<(usize, Dest, Vec<Peer>)>,
}

impl Fork {
    #[allow(clippy::too_many_arguments)]
    fn new(
        router: Arc<Router>,
        req: Request,
        from: Peer,
        txn: Arc<ServerTxn>,
        plan: Plan,
        record: CallRecord,
        caller_id: String,
        caller_internal: bool,
    ) -> Fork {
        let (events_tx, events_rx) = mpsc::channel(64);
        let targets = target_states(&plan);
        Fork {
            router,
            req,
            from,
            txn,
            plan,
            record,
            caller_id,
            caller_internal,
            branches: Vec::new(),
            targets,
            events_tx,
            events_rx,
            answered: false,
            cancelled: false,
            sent: Vec::new(),
            view: None,
            failovers: Vec::new(),
        }
    }

    /// The same call, forked anew to another plan (after the failure
    /// point decided): the legs so far stay in the record.
    fn next(mut self, plan: Plan) -> Fork {
        self.keep_legs();
        let (events_tx, events_rx) = mpsc::channel(64);
        self.targets = target_states(&plan);
        self.plan = plan;
        self.events_tx = events_tx;
        self.events_rx = events_rx;
        self.sent.clear();
        self.failovers.clear();
        self
    }

    /// Members of a hunt group who let the call ring out (their ring time,
    /// or the group's, ran out while they rang). Members whose phones rang
    /// while someone else answered, or when the caller hung up, missed
    /// nothing: their legs end as cancelled, not as no answer.
    fn missed_group_call_events(&self, tenant: &Arc<TenantDirectory>, view: &CallView) {
        let Some(group) = &self.plan.group else {
            return;
        };
        let mut missed: Vec<&str> = self
            .branches
            .iter()
            .filter(|b| b.outcome == Some(Outcome::NoAnswer) && b.ringing)
            .map(|b| self.plan.targets[b.target].label.as_str())
            .collect();
        missed.dedup();
        for m in missed {
            self.router.plugins.event(
                tenant,
                &Input::Event {
                    kind: EventKind::MissedGroupCall,
                    subject: Some(m.to_owned()),
                    group: Some(group.clone()),
                    call: Some(view.clone()),
                    payload: None,
                },
            );
        }
    }

    /// What was rung in this fork.
    fn tried(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .branches
            .iter()
            .map(|b| self.plan.targets[b.target].label.clone())
            .collect();
        v.dedup();
        v
    }

    fn keep_legs(&mut self) {
        let legs: Vec<Leg> = self.branches.drain(..).map(|b| b.leg(&self.plan)).collect();
        self.record.legs.extend(legs);
    }

    async fn run(&mut self, cancel_rx: &mut mpsc::Receiver<()>) -> End {
        let total_until = Instant::now() + self.plan.total_ring;
        if self.plan.targets.iter().all(|t| t.dests.is_empty()) {
            return self.outcome();
        }
        loop {
            self.start_due_targets().await;
            self.start_failovers().await;
            self.expire(total_until);
            if !self.failovers.is_empty() {
                // An address just failed: try the next one now.
                continue;
            }
            if self.all_done() {
                return self.outcome();
            }
            let wake = self.next_wake(total_until);
            tokio::select! {
                ev = self.events_rx.recv() => {
                    let Some((idx, ev)) = ev else { return self.outcome() };
                    if self.on_event(idx, ev) {
                        return End::Answered;
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

    /// Tries the next address of destinations whose address failed.
    async fn start_failovers(&mut self) {
        for (ti, dest, rest) in std::mem::take(&mut self.failovers) {
            if self.cancelled || self.answered || self.targets[ti].done {
                continue;
            }
            tracing::info!(uri = %dest.uri, next = %dest.peer, "destination unreachable; trying its next address");
            if !self.start_branch_at(ti, dest, rest).await {
                self.check_target(ti);
            }
        }
    }

    /// Queues the next address of branch `bi`'s destination, if it has one
    /// and the branch never got a response.
    fn fail_over(&mut self, bi: usize) -> bool {
        let b = &mut self.branches[bi];
        if b.ringing || b.status.is_some_and(|s| s < 500) || b.fallbacks.is_empty() {
            return false;
        }
        let mut rest = std::mem::take(&mut b.fallbacks);
        let peer = rest.remove(0);
        let dest = Dest {
            uri: b.contact.clone(),
            peer,
            via_node: None,
        };
        self.failovers.push((b.target, dest, rest));
        true
    }

    async fn start_branch(&mut self, ti: usize, mut dest: Dest) -> bool {
        let mut fallbacks = Vec::new();
        if dest.peer.addr.port() == 0 {
            let mut all = route::resolve_all(&self.router, &dest.uri).await;
            match (!all.is_empty()).then(|| all.remove(0)) {
                Some(p) => {
                    dest.peer = p;
                    fallbacks = all;
                }
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
        self.start_branch_at(ti, dest, fallbacks).await
    }

    async fn start_branch_at(&mut self, ti: usize, dest: Dest, fallbacks: Vec<Peer>) -> bool {
        let Ok(uri) = rsip::Uri::try_from(dest.uri.as_str()) else {
            return false;
        };
        let mut out = self.req.clone();
        out.uri = uri;
        let mf = sip::max_forwards(&out.headers).unwrap_or(70);
        route::set_max_forwards(&mut out.headers, mf.saturating_sub(1));
        if self.plan.caller_id.is_some() || self.plan.caller_name.is_some() {
            present_caller(
                &mut out,
                self.plan.caller_id.as_deref(),
                self.plan.caller_name.as_deref(),
            );
        }
        if !self.plan.diversions.is_empty() {
            sip::remove_headers(&mut out.headers, "Diversion");
            for d in &self.plan.diversions {
                sip::push_header(&mut out.headers, "Diversion", d.clone());
            }
            // The diverted-to user as an address of record, not a contact.
            let label = &self.plan.targets[ti].label;
            let target = match params::uri_host(&self.req.uri.to_string()) {
                Some(host) if label.bytes().all(|b| b.is_ascii_digit()) => {
                    if host.contains(':') {
                        format!("sip:{label}@[{host}]")
                    } else {
                        format!("sip:{label}@{host}")
                    }
                }
                _ => dest.uri.clone(),
            };
            sip::remove_headers(&mut out.headers, "History-Info");
            for h in super::diversion::history_info(&self.plan.diversions, &target) {
                sip::push_header(&mut out.headers, "History-Info", h);
            }
        }
        // Credentials were for us, not for the callee.
        out.headers
            .retain(|h| !matches!(h, Header::ProxyAuthorization(_)));
        route::record_route(
            &self.router,
            &mut out.headers,
            &self.record.sip_call_id,
            self.from,
            dest.peer,
        );
        if let Some(node) = dest.via_node {
            let route = route::flow_route(&self.router, node, &dest.uri, &self.record.sip_call_id);
            route::insert_top(
                &mut out.headers,
                Header::Route(rsip::headers::Route::new(route)),
            );
        }
        let branch = route::new_branch(&self.router);
        route::push_via(&self.router, &mut out.headers, dest.peer, &branch);
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
            peer: dest.peer,
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
            fallbacks,
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
        if why == Outcome::Unreachable {
            self.fail_over(bi);
        }
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
            .all(|b| b.outcome.is_some())
            && !self.failovers.iter().any(|f| f.0 == ti);
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
            && self.failovers.is_empty()
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
                if !self.answered && !self.cancelled {
                    self.fail_over(idx);
                }
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
        self.record.answered_at = Some(now);
        self.record.answered_by = Some(label.clone());
        self.record.outcome = Outcome::Answered;
        self.record.status_code = Some(200);
        let mut parties = Vec::new();
        let mut peers = Vec::new();
        if self.caller_internal {
            parties.push(self.caller_id.clone());
            peers.push((self.caller_id.clone(), self.from.addr));
        }
        if !label.starts_with("trunk:") {
            peers.push((label.clone(), b.peer.addr));
            parties.push(label);
        }
        // The dialog and its record exist before the caller hears the 2xx:
        // a BYE sent the moment the 200 arrives must find both.
        let started = std::time::Instant::now();
        let dialog = Dialog {
            tenant_id: self.record.tenant_id,
            parties: parties.clone(),
            peers,
            record_id: self.record.id.clone(),
            since: started,
            last_activity: started,
        };
        let live = self
            .router
            .dialogs
            .start(&self.record.sip_call_id, dialog.clone());
        if !live {
            self.record.ended_at = Some(now_ms());
        }
        self.write_record();
        route::pop_top_via(&mut resp.headers);
        self.router.respond(&self.txn, resp);
        if let Some(tenant) = self
            .router
            .directory
            .snapshot()
            .by_id(self.record.tenant_id)
            .cloned()
        {
            self.router.plugins.event(
                &tenant,
                &Input::Event {
                    kind: EventKind::Answered,
                    subject: parties.last().cloned(),
                    group: self.plan.group.clone(),
                    call: self.view.clone(),
                    payload: None,
                },
            );
        }
        if !live {
            self.router.call_ended(&dialog);
        }
    }

    fn write_record(&mut self) {
        let mut rec = self.record.clone();
        rec.legs
            .extend(self.branches.iter().map(|b| b.leg(&self.plan)));
        self.router.history.record(rec);
    }

    /// Why nobody answered, and what the caller would be told.
    fn outcome(&self) -> End {
        let outcomes: Vec<Outcome> = self.branches.iter().filter_map(|b| b.outcome).collect();
        let statuses: Vec<u16> = self.branches.iter().filter_map(|b| b.status).collect();
        let (outcome, code, reason): (Outcome, u16, Option<&'static str>) = if self.cancelled {
            return End::Cancelled;
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
        End::Failed {
            outcome,
            code,
            reason,
        }
    }

    /// Answers the caller with the final failure and writes the record.
    fn conclude(mut self, code: u16, reason: Option<&str>, outcome: Outcome) {
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

/// Shows the callee another identity: From's user and display name (the
/// tag stays, so the dialog is the same) and P-Asserted-Identity.
fn present_caller(req: &mut Request, id: Option<&str>, name: Option<&str>) {
    let Some(from) = sip::header(&req.headers, "From").map(str::to_owned) else {
        return;
    };
    let uri = params::uri_of(&from).to_owned();
    let tag = params::header_param(&from, "tag")
        .unwrap_or_default()
        .to_owned();
    let user = params::uri_user(&uri).unwrap_or_default().to_owned();
    let host = match params::uri_host(&uri).unwrap_or_default() {
        h if h.contains(':') => format!("[{h}]"),
        h => h.to_owned(),
    };
    let new_user = id.unwrap_or(&user);
    let new_name = name
        .map(str::to_owned)
        .or_else(|| params::display_name_of(&from).map(str::to_owned));
    let shown = match &new_name {
        Some(n) => format!("\"{n}\" <sip:{new_user}@{host}>"),
        None => format!("<sip:{new_user}@{host}>"),
    };
    req.headers.retain(|h| !matches!(h, Header::From(_)));
    req.headers
        .push(Header::From(rsip::headers::From::new(format!(
            "{shown};tag={tag}"
        ))));
    sip::push_header(&mut req.headers, "P-Asserted-Identity", shown);
}

fn target_states(plan: &Plan) -> Vec<TargetState> {
    let now = Instant::now();
    plan.targets
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
        .collect()
}

impl BranchState {
    fn leg(&self, plan: &Plan) -> Leg {
        Leg {
            target: plan.targets[self.target].label.clone(),
            contact: self.contact.clone(),
            started_at: self.started_at,
            ended_at: self.ended_at,
            status_code: self.status,
            outcome: self.outcome.unwrap_or(Outcome::Unreachable),
        }
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
