//! Header surgery for relaying: Via (RFC 3581 received/rport), Route and
//! Record-Route, Max-Forwards, and choosing the next hop.

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use rsip::headers::UntypedHeader;
use tokio::sync::mpsc;

use super::Router;
use crate::sip::{self, params, Header, Headers, Peer, Proto, Request, Response};
use crate::transaction::{self, BranchEvent, BranchFailure, ServerTxn};

pub(crate) fn insert_top(headers: &mut Headers, h: Header) {
    let mut v: Vec<Header> = std::mem::take(headers).into();
    v.insert(0, h);
    *headers = v.into();
}

/// Adds `received` and fills `rport` on the top Via (RFC 3261 18.2.1, RFC 3581).
pub(crate) fn fix_top_via(req: &mut Request, from: Peer) {
    for h in req.headers.iter_mut() {
        if let Header::Via(via) = h {
            let Some(f) = params::ViaFields::parse(via.value()) else {
                return;
            };
            let ip = from.addr.ip().to_string();
            let mut value = via.value().to_owned();
            let has_rport = f.param("rport").is_some();
            if has_rport {
                // Drop any old rport/received and write ours.
                let base: Vec<&str> = value
                    .split(';')
                    .filter(|p| {
                        let k = p.split('=').next().unwrap_or("").trim();
                        !k.eq_ignore_ascii_case("rport") && !k.eq_ignore_ascii_case("received")
                    })
                    .collect();
                value = format!(
                    "{};received={ip};rport={}",
                    base.join(";"),
                    from.addr.port()
                );
            } else if f.host != ip && f.param("received").is_none() {
                value.push_str(&format!(";received={ip}"));
            }
            via.replace(value);
            return;
        }
    }
}

/// Removes the top Via (ours, on a response going upstream).
pub(crate) fn pop_top_via(headers: &mut Headers) {
    let mut v: Vec<Header> = std::mem::take(headers).into();
    if let Some(i) = v.iter().position(|h| matches!(h, Header::Via(_))) {
        v.remove(i);
    }
    *headers = v.into();
}

/// Where a response goes: received/rport of the top Via, else its sent-by.
pub(crate) fn peer_from_top_via(headers: &Headers) -> Option<Peer> {
    let f = params::ViaFields::parse(sip::header(headers, "Via")?)?;
    let proto = Proto::parse(f.transport)?;
    let host = f.param("received").unwrap_or(f.host);
    let ip: IpAddr = host.trim_matches(['[', ']']).parse().ok()?;
    let port = f
        .param("rport")
        .and_then(|p| p.parse().ok())
        .or(f.port)
        .unwrap_or(5060);
    Some(Peer {
        proto,
        addr: SocketAddr::new(ip, port),
    })
}

/// What the Route set of an in-dialog request says about us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteCheck {
    /// Our entries led the set, each with the MAC for this Call-ID; they
    /// are popped.
    Verified,
    /// No Route names us.
    NotOurs,
    /// A Route names us without a valid MAC: a set we did not record, or
    /// one copied from another dialog.
    Forged,
}

/// The MAC of our Record-Route entry: it ties the entry to one dialog (by
/// Call-ID, the one identifier both directions share) so an in-dialog
/// request can prove it belongs to a dialog we record-routed.
pub(crate) fn route_mac(key: &[u8; 32], call_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(key);
    h.update(call_id.as_bytes());
    hex::encode(&h.finalize()[..10])
}

/// A new branch for a request we send: random, with a MAC under the route
/// key, so a response naming it later can be told from a forgery even when
/// its transaction is gone.
pub(crate) fn new_branch(router: &Router) -> String {
    let token = sip::random_token();
    let mac = route_mac(&router.settings.route_key, &token);
    format!("{}{token}.{}", sip::BRANCH_COOKIE, &mac[..12])
}

/// Whether `branch` was made by [`new_branch`] with our key.
pub(crate) fn is_our_branch(router: &Router, branch: &str) -> bool {
    let Some((token, mac)) = branch
        .strip_prefix(sip::BRANCH_COOKIE)
        .and_then(|b| b.split_once('.'))
    else {
        return false;
    };
    let expected = route_mac(&router.settings.route_key, token);
    crate::credentials::constant_time_eq(mac.as_bytes(), &expected.as_bytes()[..12])
}

/// The URI parameter that carries [`route_mac`].
const MAC_PARAM: &str = "sb";

/// Removes the leading Route entries that name us. With `require_mac`,
/// every one of them must carry this dialog's MAC, else nothing is popped
/// and the set is [`RouteCheck::Forged`].
pub(crate) fn pop_our_routes(
    router: &Router,
    headers: &mut Headers,
    call_id: &str,
    require_mac: bool,
) -> RouteCheck {
    let routes: Vec<String> = sip::header_all(headers, "Route")
        .flat_map(params::split_list)
        .map(str::to_owned)
        .collect();
    let mut popped = 0;
    while popped < routes.len() && router.is_us(params::uri_of(&routes[popped])) {
        popped += 1;
    }
    if popped == 0 {
        return RouteCheck::NotOurs;
    }
    let expected = route_mac(&router.settings.route_key, call_id);
    let signed = routes[..popped].iter().all(|r| {
        params::find_param(params::uri_of(r), MAC_PARAM).is_some_and(|m| {
            crate::credentials::constant_time_eq(m.as_bytes(), expected.as_bytes())
        })
    });
    if require_mac && !signed {
        return RouteCheck::Forged;
    }
    headers.retain(|h| !matches!(h, Header::Route(_)));
    for r in &routes[popped..] {
        headers.push(Header::Route(rsip::headers::Route::new(r.clone())));
    }
    if signed {
        RouteCheck::Verified
    } else {
        RouteCheck::Forged
    }
}

/// Route parameter asking the node it names to send a request on over the
/// flow it holds to the phone: `<valid until, unix ms>.<MAC>`, the MAC
/// under a key derived from the route key (shared by every node) over the
/// time, the Request-URI and the Call-ID, so a token opens one contact for
/// one call for one transaction's time.
const FLOW_PARAM: &str = "sbf";
/// How long a flow token is good for (an INVITE transaction's lifetime).
const FLOW_TOKEN_MS: i64 = 32_000;

/// The flow token's MAC: under a key of its own derived from the route key,
/// so that no `sb=` value (whose input, the Call-ID, callers choose) can
/// ever pass for a flow token.
fn flow_mac(router: &Router, until: i64, uri: &str, call_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let key: [u8; 32] = Sha256::new()
        .chain_update(router.settings.route_key)
        .chain_update(b"switchboard flow token v1")
        .finalize()
        .into();
    route_mac(&key, &format!("{until}\n{uri}\n{call_id}"))
}

/// The Route entry that asks the node at `addr` to send a request for
/// `contact` over the flow it holds (RFC 3327 style: the node that
/// accepted the registration is on the path to the phone).
pub(crate) fn flow_route(
    router: &Router,
    addr: std::net::SocketAddr,
    contact: &str,
    call_id: &str,
) -> String {
    // The URI as the receiving node will read it back.
    let uri = rsip::Uri::try_from(contact)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| contact.to_owned());
    let until = crate::store::now_ms() + FLOW_TOKEN_MS;
    format!(
        "<sip:{addr};lr;{FLOW_PARAM}={until}.{}>",
        flow_mac(router, until, &uri, call_id)
    )
}

/// Whether the request's top Route is ours with a valid flow token for its
/// Request-URI (another node sends it through us to a phone whose flow we
/// hold); if so, that Route entry is removed.
pub(crate) fn take_flow_route(
    router: &Router,
    headers: &mut Headers,
    ruri: &str,
    call_id: &str,
) -> bool {
    let routes: Vec<String> = sip::header_all(headers, "Route")
        .flat_map(params::split_list)
        .map(str::to_owned)
        .collect();
    let Some(first) = routes.first() else {
        return false;
    };
    let uri = params::uri_of(first);
    if !router.is_us(uri) {
        return false;
    }
    let Some((until, mac)) = params::find_param(uri, FLOW_PARAM).and_then(|t| t.split_once('.'))
    else {
        return false;
    };
    let Ok(until) = until.parse::<i64>() else {
        return false;
    };
    let now = crate::store::now_ms();
    // A few seconds of clock difference between nodes are allowed.
    if until < now - 5000 || until > now + FLOW_TOKEN_MS + 5000 {
        return false;
    }
    let expected = flow_mac(router, until, ruri, call_id);
    if !crate::credentials::constant_time_eq(mac.as_bytes(), expected.as_bytes()) {
        return false;
    }
    headers.retain(|h| !matches!(h, Header::Route(_)));
    for r in &routes[1..] {
        headers.push(Header::Route(rsip::headers::Route::new(r.clone())));
    }
    true
}

/// Sets Max-Forwards.
pub(crate) fn set_max_forwards(headers: &mut Headers, n: u32) {
    headers.retain(|h| !matches!(h, Header::MaxForwards(_)));
    headers.push(Header::MaxForwards(rsip::headers::MaxForwards::new(
        n.to_string(),
    )));
}

/// A branch derived from another (stateless forwarding of ACK).
pub(crate) fn derived_branch(incoming: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    incoming.hash(&mut h);
    format!("{}{:016x}s", sip::BRANCH_COOKIE, h.finish())
}

/// Pushes our Via.
pub(crate) fn push_via(router: &Router, headers: &mut Headers, to: Peer, branch: &str) {
    let (host, port) = router.settings.sent_by(&to);
    let value = format!(
        "SIP/2.0/{} {host}:{port};branch={branch}",
        to.proto.as_str()
    );
    insert_top(headers, Header::Via(rsip::headers::Via::new(value)));
}

/// Adds our Record-Route; two entries when the two sides use different
/// transports or address families (RFC 5658), so each side reaches us the
/// way it talks.
pub(crate) fn record_route(
    router: &Router,
    headers: &mut Headers,
    call_id: &str,
    inbound: Peer,
    outbound: Peer,
) {
    let s = &router.settings;
    let mac = route_mac(&s.route_key, call_id);
    let rr = |p: &Peer| {
        let (host, port) = s.sent_by(p);
        Header::RecordRoute(rsip::headers::RecordRoute::new(format!(
            "<sip:{host}:{port};lr{};{MAC_PARAM}={mac}>",
            p.proto.uri_param()
        )))
    };
    // The top entry faces the callee; a second one only when the caller
    // reaches us another way (transport or address family).
    if inbound.proto != outbound.proto || s.sent_by(&inbound) != s.sent_by(&outbound) {
        insert_top(headers, rr(&inbound));
    }
    insert_top(headers, rr(&outbound));
}

/// Resolves a SIP URI to an address: a registered contact's flow first,
/// then the URI's host by RFC 3263 (the most preferred destination).
pub(crate) async fn resolve_uri(router: &Router, uri: &str) -> Option<Peer> {
    resolve_all(router, uri).await.into_iter().next()
}

/// Every destination of a SIP URI, most preferred first: a registered
/// contact's flow, else what DNS says (NAPTR, SRV, A/AAAA). A `sips:` URI
/// yields TLS destinations only.
pub(crate) async fn resolve_all(router: &Router, uri: &str) -> Vec<Peer> {
    let sips = uri.starts_with("sips:");
    if let Some(p) = router
        .registrar
        .location()
        .flow_of_contact(&sip::canonical_uri(uri))
    {
        if sips && p.proto != Proto::Tls {
            return Vec::new();
        }
        return vec![p];
    }
    let Ok(u) = rsip::Uri::try_from(uri) else {
        return Vec::new();
    };
    let peers = router.locator.locate(&u).await;
    if let rsip::Host::Domain(host) = &u.host_with_port.host {
        let host = host.to_string();
        // TLS peers found by name are verified against that name.
        for p in peers.iter().filter(|p| p.proto == Proto::Tls) {
            router.transport.note_tls_name(p.addr, &host);
        }
    }
    peers
}

/// The next hop of an in-dialog request: the first Route, else the
/// Request-URI.
pub(crate) async fn next_hop(router: &Router, req: &Request) -> Option<Peer> {
    let target = match sip::header(&req.headers, "Route") {
        Some(r) => params::uri_of(params::split_list(r).first()?).to_owned(),
        None => req.uri.to_string(),
    };
    resolve_uri(router, &target).await
}

/// Relays a re-INVITE (or an INVITE another node sends through us to a
/// flow): provisional answers go upstream as they come, a CANCEL cancels
/// it, the final answer is returned.
pub(crate) async fn relay_reinvite(
    router: &Arc<Router>,
    req: Request,
    branch: String,
    peer: Peer,
    txn: &Arc<ServerTxn>,
) -> Result<Response, BranchFailure> {
    let (tx, mut rx) = mpsc::channel(8);
    let ctl = transaction::spawn_invite(
        router.transport.clone(),
        router.txns.clone(),
        req,
        branch,
        peer,
        router.settings.timer_c,
        0,
        tx,
    );
    // A CANCEL for this INVITE cancels the branch we sent.
    let mut cancel_rx = txn.listen_for_cancel();
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some((_, BranchEvent::Provisional(mut r))) => {
                    pop_top_via(&mut r.headers);
                    router.respond(txn, r);
                }
                Some((_, BranchEvent::Final(r))) => return Ok(r),
                Some((_, BranchEvent::Failed(f))) => return Err(f),
                None => return Err(BranchFailure::Timeout),
            },
            Some(()) = cancel_rx.recv() => {
                let _ = ctl.try_send(transaction::ClientControl::Cancel);
            }
        }
    }
}
