//! What the router lets in, decided before any state is kept for a request:
//! strict checks of the fields the proxy relies on (RFC 4475 torture cases
//! get 400, not a transaction), who may start something (authenticated
//! accounts and trusted networks), and which in-dialog requests belong to a
//! dialog we record-routed.
//!
//! Every refusal here is answered statelessly: an unauthenticated sender
//! gets one response per request and no retransmissions, so the router
//! cannot be used to reflect traffic at a spoofed address.

use std::sync::Arc;

use super::route::{self, RouteCheck};
use super::Router;
use crate::directory::TenantDirectory;
use crate::registrar::AuthOutcome;
use crate::sip::{self, params, Method, Peer, Request, Response};

/// The sender of an initial request, once let in.
#[derive(Debug, Clone)]
pub(crate) struct Admitted {
    /// The tenant the Request-URI names.
    pub tenant: Arc<TenantDirectory>,
    /// The From user: the authenticated account, or what a trusted
    /// network claims.
    pub caller_id: String,
    /// Whether the caller is one of the tenant's accounts.
    pub internal: bool,
}

/// Why a request is refused before processing: status and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// Status code (400 or 501).
    pub code: u16,
    /// Reason phrase naming the offending field.
    pub reason: &'static str,
}

const fn refuse(code: u16, reason: &'static str) -> Refusal {
    Refusal { code, reason }
}

/// Checks the fields every later step reads, so nothing downstream meets a
/// value it would have to guess about.
pub(crate) fn check_request(req: &Request) -> Result<(), Refusal> {
    let h = &req.headers;
    let Some(via) = sip::header(h, "Via") else {
        return Err(refuse(400, "Missing Via"));
    };
    let Some(fields) = params::ViaFields::parse(via) else {
        return Err(refuse(400, "Bad Via"));
    };
    if fields.host.is_empty() || !fields.host.bytes().all(is_host_char) {
        return Err(refuse(400, "Bad Via Sent-By"));
    }
    let Some(from) = sip::header(h, "From") else {
        return Err(refuse(400, "Missing From"));
    };
    if !params::is_well_formed_name_addr(from) {
        return Err(refuse(400, "Bad From"));
    }
    let Some(to) = sip::header(h, "To") else {
        return Err(refuse(400, "Missing To"));
    };
    if !params::is_well_formed_name_addr(to) {
        return Err(refuse(400, "Bad To"));
    }
    if sip::call_id(h).is_none_or(|c| c.trim().is_empty()) {
        return Err(refuse(400, "Missing Call-ID"));
    }
    let method = super::method_name(&req.method);
    if !sip::cseq(h).is_some_and(|(_, m)| m.eq_ignore_ascii_case(method)) {
        return Err(refuse(400, "Bad CSeq"));
    }
    if sip::header(h, "Max-Forwards").is_some() && sip::max_forwards(h).is_none() {
        return Err(refuse(400, "Bad Max-Forwards"));
    }
    let ruri = req.uri.to_string();
    if ruri.starts_with('<') || ruri.contains(char::is_whitespace) {
        return Err(refuse(400, "Bad Request-URI"));
    }
    Ok(())
}

fn is_host_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
}

impl Router {
    /// Lets in the sender of an initial request (INVITE, MESSAGE, OPTIONS to
    /// a user, SUBSCRIBE, REFER...): a trusted network, or an account of the
    /// tenant the Request-URI names that answered the digest challenge.
    /// `Err` is the response to send statelessly.
    pub(crate) fn admit(&self, req: &Request, from: Peer) -> Result<Admitted, Response> {
        let ruri = req.uri.to_string();
        let host = params::uri_host(&ruri).unwrap_or_default();
        let Some(tenant) = self.directory.tenant_for(host) else {
            return Err(sip::response_to(
                req,
                404,
                Some("Unknown Domain"),
                Some(&sip::random_token()),
            ));
        };
        let from_user = sip::header(&req.headers, "From")
            .map(params::uri_of)
            .and_then(params::uri_user)
            .unwrap_or_default()
            .to_owned();
        if self.is_trusted(from.addr.ip()) {
            return Ok(Admitted {
                internal: tenant.account(&from_user).is_some(),
                caller_id: from_user,
                tenant,
            });
        }
        match self.registrar.authenticate(req, &tenant, &from_user) {
            AuthOutcome::Authenticated(_) => Ok(Admitted {
                caller_id: from_user,
                internal: true,
                tenant,
            }),
            AuthOutcome::Reply(r) => Err(r),
        }
    }

    /// Decides whether an in-dialog request (To-tag present) may be relayed:
    /// it must carry our Record-Route entry signed for its Call-ID, or come
    /// from a trusted network. Pops our Route entries when it may. `Err` is
    /// the status to answer (nothing is relayed); ACKs are never answered.
    pub(crate) fn admit_in_dialog(&self, req: &mut Request, from: Peer) -> Result<(), u16> {
        let call_id = sip::call_id(&req.headers).unwrap_or_default().to_owned();
        let trusted = self.is_trusted(from.addr.ip());
        match route::pop_our_routes(self, &mut req.headers, &call_id, !trusted) {
            // A signature outlives its dialog: it must also be one that is
            // up (or being set up) now.
            RouteCheck::Verified if trusted || self.dialogs.knows(&call_id) => Ok(()),
            RouteCheck::Verified => {
                tracing::info!(peer = %from, %call_id, "in-dialog request for a dialog that is over");
                Err(481)
            }
            RouteCheck::Forged if trusted => Ok(()),
            RouteCheck::Forged => {
                tracing::info!(peer = %from, %call_id, "in-dialog request with a route we did not sign");
                Err(403)
            }
            // Addressed to us with no route: a dialog we are an endpoint of
            // (the feature code's answer) or none at all.
            RouteCheck::NotOurs if self.is_us(&req.uri.to_string()) => Err(481),
            RouteCheck::NotOurs if trusted => Ok(()),
            RouteCheck::NotOurs => {
                tracing::info!(peer = %from, %call_id, "in-dialog request outside any dialog of ours");
                Err(403)
            }
        }
    }

    /// Answers statelessly: no transaction, no retransmission.
    pub(crate) fn refuse_stateless(&self, req: &Request, resp: Response, to: Peer) {
        if req.method == Method::Ack {
            return;
        }
        self.transport
            .send(to, sip::codec::encode(&sip::SipMessage::Response(resp)));
    }
}
