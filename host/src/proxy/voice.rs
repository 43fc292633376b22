//! A voice feature call: the router answers the caller itself (it is the
//! UAS of this dialog), says what the plugin asks, collects digits and
//! gives them to that plugin, until the plugin has a result; then it hangs
//! up. The media endpoint (`crate::media`) does the audio; this module
//! does the SIP: the 200 with SDP and its retransmissions, the ACK, BYE in
//! both directions, and digits sent as SIP INFO.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::Router;
use crate::directory::TenantDirectory;
use crate::media::{dtmf, MediaError, Spoken};
use crate::pipeline::{CallView, Collect, Decision, Input, Prompt, MAX_QUESTIONS};
use crate::sip::{self, Method, Peer, Request};
use crate::transaction::ServerTxn;

/// A voice call lasts at most this long, whatever the plugin asks.
const MAX_VOICE_CALL: Duration = Duration::from_secs(300);
/// The 2xx is retransmitted until the ACK for at most this long (64*T1).
const ACK_WAIT: Duration = Duration::from_secs(32);

/// What the caller's side of the dialog did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FromCaller {
    Ack,
    Bye,
}

/// A voice call the router answered, as in-dialog requests find it.
#[derive(Debug)]
struct Entry {
    our_tag: String,
    their_tag: String,
    peer_ip: IpAddr,
    events: mpsc::Sender<FromCaller>,
    digits: mpsc::Sender<char>,
}

/// The router's own dialogs (voice calls), by Call-ID.
#[derive(Debug, Default)]
pub struct VoiceCalls(dashmap::DashMap<String, Entry>);

/// Keeps a voice call findable; removes it when the call ends, however.
struct Registered<'a> {
    calls: &'a VoiceCalls,
    call_id: String,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.calls.0.remove(&self.call_id);
    }
}

impl Router {
    /// Takes an in-dialog request of one of the router's own voice calls:
    /// same Call-ID, both tags and the caller's address. Anything else is
    /// not ours (false) and goes the proxy's way.
    pub(super) fn take_voice_request(&self, req: &Request, from: Peer) -> bool {
        let Some(call_id) = sip::call_id(&req.headers) else {
            return false;
        };
        let (events, digits) = {
            let Some(e) = self.voice.0.get(call_id) else {
                return false;
            };
            let ours = sip::tag(&req.headers, "To") == Some(e.our_tag.as_str())
                && sip::tag(&req.headers, "From") == Some(e.their_tag.as_str())
                && from.addr.ip() == e.peer_ip;
            if !ours {
                return false;
            }
            (e.events.clone(), e.digits.clone())
        };
        match req.method {
            Method::Ack => {
                let _ = events.try_send(FromCaller::Ack);
            }
            Method::Bye => {
                self.reply_stateless(req, 200, None, from);
                let _ = events.try_send(FromCaller::Bye);
            }
            Method::Info => {
                let ct = sip::header(&req.headers, "Content-Type").unwrap_or_default();
                match dtmf::parse_info(ct, &req.body) {
                    Some(d) => {
                        crate::metrics::count_dtmf_digit();
                        let _ = digits.try_send(d);
                        self.reply_stateless(req, 200, None, from);
                    }
                    None => {
                        let mut r = sip::response_to(req, 415, None, None);
                        sip::push_header(
                            &mut r.headers,
                            "Accept",
                            "application/dtmf-relay, application/dtmf",
                        );
                        self.refuse_stateless(req, r, from);
                    }
                }
            }
            Method::Invite | Method::Update => {
                self.reply_stateless(req, 488, None, from);
            }
            _ => {
                let mut r = sip::response_to(req, 405, None, None);
                sip::push_header(&mut r.headers, "Allow", "ACK, BYE, INFO");
                self.refuse_stateless(req, r, from);
            }
        }
        true
    }
}

/// How a voice call starts.
#[derive(Debug)]
pub(super) enum Start {
    /// A plugin asked a question at `originate`.
    Ask {
        /// The plugin that asks, and gets the answers.
        plugin: String,
        /// The question.
        question: Collect,
    },
    /// A feature code worked and the plugin has something to say.
    Announce {
        /// The reason phrase of the 200.
        message: String,
        /// What is said.
        prompts: Vec<Prompt>,
    },
}

/// Runs a voice call to its end. Feature calls are not calls: nothing of
/// it goes to history.
pub(super) async fn run(
    router: Arc<Router>,
    req: Request,
    from: Peer,
    txn: Arc<ServerTxn>,
    tenant: Arc<TenantDirectory>,
    view: CallView,
    start: Start,
) {
    let (host, port) = router.settings.sent_by(&from);
    let reached_at = host
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
        .ok()
        .or_else(|| router.settings.local_ips.first().copied())
        .unwrap_or(from.addr.ip());
    let contact = format!("<sip:{host}:{port}{}>", from.proto.uri_param());
    let answered = router
        .media
        .answer(&req.body, reached_at, from.addr.ip())
        .await;
    let (mut session, sdp) = match answered {
        Ok(x) => x,
        Err(e) => {
            tracing::info!(peer = %from, error = %e, "voice call without audio");
            match start {
                // Nothing to say it with: the phone still gets its answer.
                Start::Announce { message, .. } => {
                    super::call::answer_feature(&router, &req, from, &txn, &message)
                }
                Start::Ask { .. } => {
                    let (code, reason) = match e {
                        MediaError::Busy | MediaError::NoPort => (503, "Voice Busy"),
                        _ => (488, "Audio Needed"),
                    };
                    router.respond(&txn, sip::response_to(&req, code, Some(reason), None));
                }
            }
            return;
        }
    };
    let (Some(call_id), Some(their_tag)) = (
        sip::call_id(&req.headers).map(str::to_owned),
        sip::tag(&req.headers, "From").map(str::to_owned),
    ) else {
        return router.respond(&txn, sip::response_to(&req, 400, Some("Missing Tag"), None));
    };
    let our_tag = sip::random_token();
    let reason = match &start {
        Start::Announce { message, .. } => message.clone(),
        Start::Ask { .. } => "OK".to_owned(),
    };
    let mut ok = sip::response_to(&req, 200, Some(&reason), Some(&our_tag));
    sip::push_header(&mut ok.headers, "Contact", contact);
    sip::push_header(&mut ok.headers, "Content-Type", "application/sdp");
    ok.body = sdp.into_bytes();
    let (events_tx, mut events) = mpsc::channel(16);
    router.voice.0.insert(
        call_id.clone(),
        Entry {
            our_tag: our_tag.clone(),
            their_tag,
            peer_ip: from.addr.ip(),
            events: events_tx,
            digits: session.digit_input(),
        },
    );
    let _registered = Registered {
        calls: &router.voice,
        call_id,
    };
    let bytes = crate::sip::codec::encode(&crate::sip::SipMessage::Response(ok.clone()));
    router.respond(&txn, ok);
    if !ack_arrives(&router, from, bytes, &mut events).await {
        // No ACK (or a BYE first): the dialog never came up.
        if events.is_closed() {
            return;
        }
        super::call::hang_up_feature_call(&router, &req, from, &our_tag);
        return;
    }
    session.use_recordings(router.media.recordings_for(tenant.tenant.id).await);
    let talk = converse(&router, &tenant, &view, &mut session, &mut events, start);
    let hung_up_by_caller = matches!(
        tokio::time::timeout(MAX_VOICE_CALL, talk).await,
        Ok(Ended::ByCaller)
    );
    if !hung_up_by_caller {
        super::call::hang_up_feature_call(&router, &req, from, &our_tag);
    }
}

/// Waits for the ACK of our 2xx, sending it again over UDP at T1, 2*T1
/// ... T2 (RFC 3261 13.3.1.4); false on a BYE or when none came.
async fn ack_arrives(
    router: &Router,
    to: Peer,
    bytes: bytes::Bytes,
    events: &mut mpsc::Receiver<FromCaller>,
) -> bool {
    let t1 = router.txns.timers.t1;
    let t2 = router.txns.timers.t2;
    let give_up = tokio::time::Instant::now() + ACK_WAIT;
    let mut wait = t1;
    loop {
        let next = tokio::time::Instant::now() + wait;
        tokio::select! {
            ev = events.recv() => return ev == Some(FromCaller::Ack),
            _ = tokio::time::sleep_until(next.min(give_up)) => {
                if tokio::time::Instant::now() >= give_up {
                    return false;
                }
                if to.proto.is_unreliable() {
                    router.transport.send(to, bytes.clone());
                }
                wait = (wait * 2).min(t2);
            }
        }
    }
}

/// Why the conversation ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// The caller sent BYE.
    ByCaller,
    /// The plugin finished (or stopped answering): the router hangs up.
    Done,
}

/// Runs `work` unless the caller hangs up first.
async fn unless_hung_up<F: std::future::Future>(
    events: &mut mpsc::Receiver<FromCaller>,
    work: F,
) -> Option<F::Output> {
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return Some(out),
            ev = events.recv() => match ev {
                Some(FromCaller::Ack) => continue,
                Some(FromCaller::Bye) | None => return None,
            },
        }
    }
}

async fn converse(
    router: &Router,
    tenant: &Arc<TenantDirectory>,
    view: &CallView,
    session: &mut crate::media::Session,
    events: &mut mpsc::Receiver<FromCaller>,
    start: Start,
) -> Ended {
    let (plugin, mut question) = match start {
        Start::Announce { prompts, .. } => {
            return match unless_hung_up(events, session.say(&prompts, false)).await {
                Some(_) => Ended::Done,
                None => Ended::ByCaller,
            };
        }
        Start::Ask { plugin, question } => (plugin, question),
    };
    for _ in 0..MAX_QUESTIONS {
        let Some(spoken) = unless_hung_up(events, session.say(&question.prompts, true)).await
        else {
            return Ended::ByCaller;
        };
        let first = match spoken {
            Spoken::Interrupted(d) => Some(d),
            Spoken::Finished => None,
        };
        let entry = session.collect(
            first,
            question.max_digits,
            question.hash_ends,
            question.timeout,
        );
        let Some((digits, ended_by)) = unless_hung_up(events, entry).await else {
            return Ended::ByCaller;
        };
        let verdict = router.plugins.decide_by(
            tenant,
            &plugin,
            &Input::Collected {
                call: view.clone(),
                context: std::mem::take(&mut question.context),
                digits,
                ended_by,
            },
        );
        match verdict.decision {
            Decision::Collect(next) => question = next,
            Decision::Feature { announce, .. } => {
                // What the caller is about to hear was done is stored
                // first; if it cannot be, they hear that instead.
                let said = if router.plugins.state().flush().await {
                    announce
                } else {
                    vec![Prompt::Recording("try-again")]
                };
                return match unless_hung_up(events, session.say(&said, false)).await {
                    Some(_) => Ended::Done,
                    None => Ended::ByCaller,
                };
            }
            _ => return Ended::Done,
        }
    }
    Ended::Done
}
