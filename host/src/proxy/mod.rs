//! The stateful proxy (RFC 3261 section 16): it receives every message from
//! the transport, answers retransmissions through the transaction layer,
//! hands REGISTER to the registrar, routes in-dialog requests by their Route
//! headers, and starts a [`call`] for each initial INVITE.

mod admission;
mod call;
pub mod dialog;
mod diversion;
mod route;
mod voice;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Cidr, Config};
use crate::directory::Directory;
use crate::history::History;
use crate::pipeline::{EventKind, Input};
use crate::plugins::{PluginHost, Presence};
use crate::registrar::Registrar;
use crate::sip::{self, codec, params, Method, Peer, Request, Response, SipMessage};
use crate::store::now_ms;
use crate::transaction::{self, ServerTxn, Transactions, TxKey};
use crate::transport::{Handler, Transport};

pub use dialog::Dialogs;

/// Proxy settings derived from the configuration.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// Host we write into Via and Record-Route.
    pub host: String,
    /// Our port (UDP and TCP).
    pub port: u16,
    /// Our TLS port, when TLS is on.
    pub tls_port: Option<u16>,
    /// Our IPv6 side, when `sip.listen_v6` is set.
    pub v6: Option<Side6>,
    /// Other addresses that mean "us" in a Route header.
    pub local_ips: Vec<IpAddr>,
    /// Sources whose requests are not challenged.
    pub trusted: Vec<Cidr>,
    /// Ring time of a branch when nothing else says.
    pub default_ring: Duration,
    /// Time allowed for a first provisional response before a branch is
    /// unreachable.
    pub no_response: Duration,
    /// Timer C.
    pub timer_c: Duration,
    /// Key of the MAC in our Record-Route entries and branches (kept in the
    /// database: one key across restarts).
    pub route_key: [u8; 32],
    /// Answered calls idle this long are reaped.
    pub dialog_max_idle: Duration,
}

/// What we write into Via and Record-Route towards IPv6 peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side6 {
    /// The bracketed address (`[2001:db8::1]`).
    pub host: String,
    /// Our IPv6 port (UDP and TCP).
    pub port: u16,
}

impl ProxySettings {
    /// Settings for a router bound to `port`.
    pub fn from_config(config: &Config, port: u16) -> ProxySettings {
        let listen_ip = config.sip.listen.ip();
        let host = config.sip.advertise.clone().unwrap_or_else(|| {
            if listen_ip.is_unspecified() {
                "127.0.0.1".to_owned()
            } else {
                listen_ip.to_string()
            }
        });
        let mut local_ips = vec![listen_ip];
        if listen_ip.is_unspecified() {
            local_ips.push(IpAddr::from([127, 0, 0, 1]));
        }
        // Other nodes address us at our advertised address.
        if let Some(a) = config.cluster.advertise {
            local_ips.push(a.ip());
        }
        let v6 = config.sip.listen_v6.map(|l| {
            let ip = if l.ip().is_unspecified() {
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
            } else {
                l.ip()
            };
            local_ips.push(l.ip());
            local_ips.push(ip);
            Side6 {
                host: config
                    .sip
                    .advertise_v6
                    .map(|a| format!("[{a}]"))
                    .unwrap_or_else(|| format!("[{ip}]")),
                port: l.port(),
            }
        });
        if let Some(a) = config.sip.advertise_v6 {
            local_ips.push(IpAddr::V6(a));
        }
        ProxySettings {
            host,
            port,
            local_ips,
            trusted: config
                .sip
                .trusted
                .iter()
                .filter_map(|c| Cidr::parse(c).ok())
                .collect(),
            default_ring: Duration::from_secs(config.sip.default_ring_secs),
            no_response: Duration::from_secs(config.sip.no_response_secs),
            timer_c: Duration::from_secs(config.sip.timer_c_secs),
            route_key: rand::random(),
            tls_port: None,
            v6,
            dialog_max_idle: Duration::from_secs(config.sip.dialog_max_idle_secs.max(1)),
        }
    }
}

impl ProxySettings {
    /// The port we listen on for `proto` (what Via, Record-Route and
    /// Contact name).
    pub fn port_for(&self, proto: sip::Proto) -> u16 {
        match (proto, self.tls_port) {
            (sip::Proto::Tls, Some(p)) => p,
            _ => self.port,
        }
    }

    /// The host and port that name us to `peer`: our IPv6 side for an
    /// IPv6 peer (when we have one), else the usual.
    pub fn sent_by(&self, peer: &sip::Peer) -> (&str, u16) {
        match &self.v6 {
            Some(v6) if peer.addr.is_ipv6() && peer.proto != sip::Proto::Tls => {
                (v6.host.as_str(), v6.port)
            }
            _ => (self.host.as_str(), self.port_for(peer.proto)),
        }
    }
}

/// The router: everything a message needs on its way through.
#[derive(Debug)]
pub struct Router {
    pub(crate) transport: Arc<Transport>,
    pub(crate) txns: Arc<Transactions>,
    pub(crate) directory: Arc<Directory>,
    pub(crate) registrar: Arc<Registrar>,
    pub(crate) history: History,
    pub(crate) dialogs: Arc<Dialogs>,
    pub(crate) settings: ProxySettings,
    /// Rotary hunt groups: who starts the next call, by group id.
    pub(crate) rotary: dashmap::DashMap<i64, usize>,
    /// The tenants' plugins.
    pub(crate) plugins: Arc<PluginHost>,
    /// RFC 3263 lookups of trunks and other destinations by name.
    pub(crate) locator: crate::locate::Locator,
    /// The router's own audio, for voice feature calls.
    pub(crate) media: Arc<crate::media::Media>,
    /// Voice calls the router answered itself.
    pub(crate) voice: voice::VoiceCalls,
}

/// Presence as plugins see it: registrations and dialogs.
#[derive(Debug)]
pub struct LivePresence {
    /// Registrations.
    pub location: Arc<crate::registrar::Location>,
    /// Calls up.
    pub dialogs: Arc<Dialogs>,
    /// Who owns which devices.
    pub directory: Arc<Directory>,
    /// Hotdesk bindings (set once the plugin runtime exists).
    pub bound: std::sync::OnceLock<std::sync::Weak<crate::plugins::PluginState>>,
}

impl Presence for LivePresence {
    fn is_registered(&self, tenant_id: i64, extension: &str) -> bool {
        self.home_registered(tenant_id, extension)
            || self.bound.get().and_then(|s| s.upgrade()).is_some_and(|s| {
                s.devices_bound_to(tenant_id, extension)
                    .iter()
                    .any(|d| self.location.is_registered(tenant_id, d))
            })
    }

    fn home_registered(&self, tenant_id: i64, extension: &str) -> bool {
        if self.location.is_registered(tenant_id, extension) {
            return true;
        }
        let snap = self.directory.snapshot();
        let Some(t) = snap.by_id(tenant_id) else {
            return false;
        };
        let Some(e) = t.employee_by_extension(extension) else {
            return false;
        };
        let registered = t
            .devices_of(e.id)
            .any(|d| self.location.is_registered(tenant_id, d.username.as_str()));
        registered
    }

    fn active_calls(&self, tenant_id: i64, extension: &str) -> u32 {
        self.dialogs.active_calls(tenant_id, extension)
    }
}

/// The transport's view of the router.
#[derive(Debug)]
pub struct RouterHandler(pub Arc<Router>);

impl Handler for RouterHandler {
    fn holds_flow(&self, peer: Peer) -> bool {
        self.0.registrar.location().has_flow(peer)
    }

    fn on_message(&self, msg: SipMessage, from: Peer) {
        crate::metrics::count_received();
        match &msg {
            SipMessage::Request(r) => crate::metrics::count_request_in(method_name(&r.method)),
            SipMessage::Response(r) => crate::metrics::count_response_in(r.status_code.code()),
        }
        match msg {
            SipMessage::Request(r) => self.0.on_request(r, from),
            SipMessage::Response(r) => self.0.on_response(r, from),
        }
    }
}

/// What identifies a request's server transaction (RFC 3261 17.2.3): the
/// top Via's branch together with its sent-by, so two clients that pick
/// the same branch do not share a transaction. RFC 2543 peers without a
/// magic-cookie branch are matched by the dialog identifiers instead.
fn transaction_id(req: &Request) -> String {
    let via = sip::header(&req.headers, "Via").and_then(params::ViaFields::parse);
    match via {
        Some(v)
            if v.branch()
                .is_some_and(|b| b.starts_with(sip::BRANCH_COOKIE)) =>
        {
            format!(
                "{}|{}:{}",
                v.branch().unwrap_or_default(),
                v.host,
                v.port.unwrap_or(0)
            )
        }
        _ => format!(
            "{}|{}|{}",
            sip::call_id(&req.headers).unwrap_or_default(),
            sip::cseq(&req.headers).map(|c| c.0).unwrap_or(0),
            sip::tag(&req.headers, "From").unwrap_or_default()
        ),
    }
}

/// The method's name without allocating (metrics on the hot path).
fn method_name(m: &rsip::Method) -> &'static str {
    use rsip::Method::*;
    match m {
        Ack => "ACK",
        Bye => "BYE",
        Cancel => "CANCEL",
        Info => "INFO",
        Invite => "INVITE",
        Message => "MESSAGE",
        Notify => "NOTIFY",
        Options => "OPTIONS",
        PRack => "PRACK",
        Publish => "PUBLISH",
        Refer => "REFER",
        Register => "REGISTER",
        Subscribe => "SUBSCRIBE",
        Update => "UPDATE",
    }
}

impl Router {
    /// Builds the router.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        transport: Arc<Transport>,
        txns: Arc<Transactions>,
        directory: Arc<Directory>,
        registrar: Arc<Registrar>,
        history: History,
        dialogs: Arc<Dialogs>,
        plugins: Arc<PluginHost>,
        settings: ProxySettings,
        locator: crate::locate::Locator,
        media: Arc<crate::media::Media>,
    ) -> Arc<Router> {
        Arc::new(Router {
            transport,
            txns,
            directory,
            registrar,
            history,
            dialogs,
            settings,
            rotary: dashmap::DashMap::new(),
            plugins,
            locator,
            media,
            voice: voice::VoiceCalls::default(),
        })
    }

    /// The media endpoint of voice feature calls.
    pub fn media(&self) -> &Arc<crate::media::Media> {
        &self.media
    }

    /// The tenants' plugins.
    pub fn plugins(&self) -> &Arc<PluginHost> {
        &self.plugins
    }

    /// Live dialogs (who is on a call).
    pub fn dialogs(&self) -> &Arc<Dialogs> {
        &self.dialogs
    }

    /// The registrar.
    pub fn registrar(&self) -> &Arc<Registrar> {
        &self.registrar
    }

    /// Server transactions held now.
    pub fn server_transactions(&self) -> usize {
        self.txns.server.len()
    }

    /// Client transactions running now.
    pub fn client_transactions(&self) -> usize {
        self.txns.client.len()
    }

    /// TCP connections open now.
    pub fn tcp_connections(&self) -> usize {
        self.transport.connection_count()
    }

    fn reply_stateless(&self, req: &Request, code: u16, reason: Option<&str>, to: Peer) {
        let resp = sip::response_to(req, code, reason, Some(&sip::random_token()));
        self.transport
            .send(to, codec::encode(&SipMessage::Response(resp)));
    }

    pub(crate) fn is_trusted(&self, ip: IpAddr) -> bool {
        self.settings.trusted.iter().any(|c| c.contains(ip))
    }

    /// Whether a URI names this router.
    pub(crate) fn is_us(&self, uri: &str) -> bool {
        let Ok(u) = rsip::Uri::try_from(uri) else {
            return false;
        };
        let host = u.host_with_port.host.to_string();
        let tls = matches!(u.scheme, Some(rsip::Scheme::Sips))
            || u.params.iter().any(
                |p| matches!(p, rsip::Param::Transport(t) if t.to_string().eq_ignore_ascii_case("tls")),
            );
        let default_port = if tls { 5061 } else { 5060 };
        let port = u
            .host_with_port
            .port
            .map(|p| *p.value())
            .unwrap_or(default_port);
        let host = host.trim_matches(['[', ']']);
        let host_ok = host.eq_ignore_ascii_case(&self.settings.host)
            || host
                .parse::<IpAddr>()
                .is_ok_and(|ip| self.settings.local_ips.contains(&ip));
        host_ok
            && (port == self.settings.port
                || Some(port) == self.settings.tls_port
                || self.settings.v6.as_ref().is_some_and(|v6| v6.port == port))
    }

    fn on_request(self: &Arc<Self>, mut req: Request, from: Peer) {
        let method = req.method;
        if let Err(why) = admission::check_request(&req) {
            crate::metrics::count_malformed();
            tracing::debug!(peer = %from, reason = why.reason, "request refused before processing");
            if method != Method::Ack {
                self.reply_stateless(&req, why.code, Some(why.reason), from);
            }
            return;
        }
        route::fix_top_via(&mut req, from);
        let branch = transaction_id(&req);
        match method {
            Method::Ack => {
                let key = TxKey {
                    branch,
                    method: "INVITE".into(),
                };
                if let Some(t) = self.txns.server.get(&key).map(|t| t.clone()) {
                    if t.final_code().is_some_and(|c| c >= 300) {
                        t.acked(&self.txns);
                        return;
                    }
                }
                if self.take_voice_request(&req, from) {
                    return;
                }
                // An ACK for a 2xx travels the dialog's route; one outside
                // any dialog of ours (or for a stateless challenge) ends here.
                if self.admit_in_dialog(&mut req, from).is_ok() {
                    self.clone().forward_in_dialog(req, from, None);
                }
            }
            Method::Cancel => {
                let key = TxKey {
                    branch,
                    method: "INVITE".into(),
                };
                match self.txns.server.get(&key).map(|t| t.clone()) {
                    Some(t) => {
                        self.reply_stateless(&req, 200, None, from);
                        t.cancelled_by_caller();
                    }
                    None => self.reply_stateless(&req, 481, None, from),
                }
            }
            _ => {
                let key = TxKey {
                    branch,
                    method: method.to_string(),
                };
                if let Some(t) = self.txns.server.get(&key).map(|t| t.clone()) {
                    t.retransmit(&self.transport);
                    return;
                }
                if sip::max_forwards(&req.headers) == Some(0) {
                    self.reply_stateless(&req, 483, None, from);
                    return;
                }
                let in_dialog = sip::tag(&req.headers, "To").is_some();
                match method {
                    Method::Register => {
                        let (tenant, user) = match self.admit_register(&req) {
                            Ok(x) => x,
                            Err(resp) => return self.refuse_stateless(&req, resp, from),
                        };
                        let txn = self.new_txn(key, from);
                        let me = self.clone();
                        tokio::spawn(async move {
                            let resp = me.register(&req, from, tenant, user).await;
                            me.respond(&txn, resp);
                        });
                    }
                    _ if in_dialog && self.take_voice_request(&req, from) => {}
                    _ if in_dialog => match self.admit_in_dialog(&mut req, from) {
                        Ok(()) => {
                            let txn = self.new_txn(key, from);
                            self.clone().forward_in_dialog(req, from, Some(txn));
                        }
                        Err(code) => self.reply_stateless(&req, code, None, from),
                    },
                    Method::Options if params::uri_user(&req.uri.to_string()).is_none() => {
                        let mut r = sip::response_to(&req, 200, None, Some(&sip::random_token()));
                        sip::push_header(
                            &mut r.headers,
                            "Allow",
                            "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, MESSAGE, UPDATE, REFER, NOTIFY",
                        );
                        self.refuse_stateless(&req, r, from);
                    }
                    Method::Invite if self.is_flow_relay(&mut req, from) => {
                        let txn = self.new_txn(key, from);
                        self.respond(&txn, sip::response_to(&req, 100, None, None));
                        self.relay_to_flow(req, from, txn);
                    }
                    _ => {
                        // Nothing is kept for a sender we have not let in:
                        // challenges and refusals go out statelessly.
                        let admitted = match self.admit(&req, from) {
                            Ok(a) => a,
                            Err(resp) => return self.refuse_stateless(&req, resp, from),
                        };
                        let txn = self.new_txn(key, from);
                        if method == Method::Invite {
                            self.respond(&txn, sip::response_to(&req, 100, None, None));
                            let me = self.clone();
                            tokio::spawn(
                                async move { call::run(me, req, from, txn, admitted).await },
                            );
                        } else {
                            self.clone().forward_out_of_dialog(req, from, txn, admitted);
                        }
                    }
                }
            }
        }
    }

    fn new_txn(&self, key: TxKey, from: Peer) -> Arc<ServerTxn> {
        let txn = ServerTxn::new(key.clone(), from);
        self.txns.server.insert(key, txn.clone());
        txn
    }

    pub(crate) fn respond(self: &Arc<Self>, txn: &Arc<ServerTxn>, resp: Response) {
        txn.respond(resp, &self.transport, &self.txns);
    }

    /// Lets a REGISTER in: its tenant (by the To domain) and authenticated
    /// user, or the response to send statelessly.
    fn admit_register(
        &self,
        req: &Request,
    ) -> Result<(Arc<crate::directory::TenantDirectory>, String), Response> {
        let to_host = sip::header(&req.headers, "To")
            .map(params::uri_of)
            .and_then(params::uri_host)
            .unwrap_or_default();
        let Some(tenant) = self.directory.tenant_for(to_host) else {
            return Err(sip::response_to(
                req,
                404,
                Some("Unknown Domain"),
                Some(&sip::random_token()),
            ));
        };
        let user = self.registrar.authenticate_register(req, &tenant)?;
        Ok((tenant, user))
    }

    async fn register(
        self: &Arc<Self>,
        req: &Request,
        from: Peer,
        tenant: Arc<crate::directory::TenantDirectory>,
        user: String,
    ) -> Response {
        // A contact naming the router would make every call to this AOR
        // loop back into it.
        let loops = sip::header_all(&req.headers, "Contact")
            .flat_map(params::split_list)
            .any(|c| self.is_us(params::uri_of(c)));
        if loops {
            return sip::response_to(
                req,
                403,
                Some("Contact Points At The Router"),
                Some(&sip::random_token()),
            );
        }
        let location = self.registrar.location();
        let before = location.is_registered(tenant.tenant.id, &user);
        let resp = self
            .registrar
            .register_authenticated(req, from, &tenant, &user)
            .await;
        let after = location.is_registered(tenant.tenant.id, &user);
        if resp.status_code.code() == 200 && before != after {
            let kind = if after {
                EventKind::Registered
            } else {
                EventKind::Unregistered
            };
            self.plugins.event(
                &tenant,
                &Input::Event {
                    kind,
                    subject: Some(user),
                    group: None,
                    call: None,
                    payload: None,
                },
            );
        }
        resp
    }

    /// Tells plugins about accounts whose last registration expired.
    pub fn registrations_expired(&self, aors: Vec<(i64, String)>) {
        if aors.is_empty() {
            return;
        }
        let snap = self.directory.snapshot();
        for (tenant_id, user) in aors {
            let Some(tenant) = snap.by_id(tenant_id).cloned() else {
                continue;
            };
            self.plugins.event(
                &tenant,
                &Input::Event {
                    kind: EventKind::Unregistered,
                    subject: Some(user),
                    group: None,
                    call: None,
                    payload: None,
                },
            );
        }
    }

    /// Tells the tenant's plugins that an answered call ended.
    pub(crate) fn call_ended(&self, d: &dialog::Dialog) {
        let Some(tenant) = self.directory.snapshot().by_id(d.tenant_id).cloned() else {
            return;
        };
        for p in &d.parties {
            self.plugins.event(
                &tenant,
                &Input::Event {
                    kind: EventKind::Ended,
                    subject: Some(p.clone()),
                    group: None,
                    call: None,
                    payload: None,
                },
            );
        }
    }

    fn on_response(self: &Arc<Self>, resp: Response, _from: Peer) {
        let Some(via) = sip::header(&resp.headers, "Via") else {
            return;
        };
        let Some(fields) = params::ViaFields::parse(via) else {
            return;
        };
        let Some(branch) = fields.branch() else {
            return;
        };
        if !branch.starts_with(sip::BRANCH_COOKIE) {
            return;
        }
        let Some((_, method)) = sip::cseq(&resp.headers) else {
            return;
        };
        let key = format!("{branch}|{method}");
        if let Some(tx) = self.txns.client.get(&key).map(|t| t.clone()) {
            let _ = tx.try_send(resp);
            return;
        }
        // A retransmitted 2xx to an INVITE whose client transaction is gone:
        // forward it statelessly so the caller's UA gets it (RFC 3261 16.7).
        // Only for a branch we made (a forged "2xx" would otherwise turn us
        // into a relay for whatever its second Via names), and only where a
        // flow exists: no connection is opened for it.
        let code = resp.status_code.code();
        if method.eq_ignore_ascii_case("INVITE")
            && (200..300).contains(&code)
            && route::is_our_branch(self, branch)
        {
            let mut resp = resp;
            route::pop_top_via(&mut resp.headers);
            if let Some(peer) = route::peer_from_top_via(&resp.headers) {
                if peer.proto.is_stream() && !self.transport.has_connection(peer.addr) {
                    return;
                }
                self.transport
                    .send(peer, codec::encode(&SipMessage::Response(resp)));
            }
        }
    }

    /// Relays a request within a dialog (or an ACK for a 2xx) that
    /// [`Router::admit_in_dialog`] let in (our Route entries are popped): to
    /// the next route or the Request-URI.
    fn forward_in_dialog(self: Arc<Self>, req: Request, from: Peer, txn: Option<Arc<ServerTxn>>) {
        if let Some(call_id) = sip::call_id(&req.headers) {
            if req.method == Method::Refer {
                self.note_transfer(&req, call_id, from);
            }
            if req.method == Method::Bye {
                if let Some(d) = self.dialogs.end_by_bye(call_id) {
                    self.history.ended(&d.record_id, now_ms());
                    self.call_ended(&d);
                }
            } else {
                self.dialogs.touch(call_id);
            }
        }
        let me = self.clone();
        tokio::spawn(async move {
            let Some(peer) = route::next_hop(&me, &req).await else {
                if let Some(t) = txn {
                    me.respond(
                        &t,
                        sip::response_to(
                            &req,
                            404,
                            Some("No Route To Target"),
                            Some(&sip::random_token()),
                        ),
                    );
                }
                return;
            };
            me.relay(req, from, peer, txn).await;
        });
    }

    /// Remembers a REFER in an answered call, so the transferee's INVITE
    /// may name the transferor: the party of the call the REFER came from
    /// (by address; what the sender writes in its headers is not trusted).
    fn note_transfer(&self, req: &Request, call_id: &str, from: Peer) {
        let Some(tenant_id) = self.dialogs.tenant_of_call(call_id) else {
            return;
        };
        let Some(tenant) = self.directory.snapshot().by_id(tenant_id).cloned() else {
            return;
        };
        let target = sip::header(&req.headers, "Refer-To")
            .map(params::uri_of)
            .and_then(params::uri_user)
            .map(params::percent_decode);
        // The transferee as its INVITE will name it: an employee (a device
        // account counts as its owner), else the user part as written.
        let transferee = sip::header(&req.headers, "To").and_then(|v| {
            call::extension_of(&tenant, v)
                .or_else(|| params::uri_user(params::uri_of(v)).map(params::percent_decode))
        });
        if let (Some(t), Some(e)) = (target, transferee) {
            self.dialogs.note_transfer(call_id, from.addr, &t, &e);
        }
    }

    /// Whether another node of the cluster sends this INVITE through us to
    /// a phone whose flow we hold (it comes from a live node's address and
    /// its top Route is ours with a valid flow token for this Call-ID and
    /// Request-URI, which only a node with the shared route key can make);
    /// that Route is then removed. The other node authenticated the caller and
    /// ran the plugins; we only carry the call onto the flow.
    fn is_flow_relay(&self, req: &mut Request, from: Peer) -> bool {
        // Only with a Route (most INVITEs stop here), from a live node of
        // the cluster, and with its token.
        if sip::header(&req.headers, "Route").is_none()
            || !self.registrar.location().is_node_ip(from.addr.ip())
        {
            return false;
        }
        let ruri = req.uri.to_string();
        let call_id = sip::call_id(&req.headers).unwrap_or_default().to_owned();
        route::take_flow_route(self, &mut req.headers, &ruri, &call_id)
    }

    /// Sends an INVITE another node routed through us onto the phone's
    /// flow, record-routing so that the dialog's requests pass here too.
    fn relay_to_flow(self: &Arc<Self>, mut req: Request, from: Peer, txn: Arc<ServerTxn>) {
        let flow = self
            .registrar
            .location()
            .flow_of_contact(&sip::canonical_uri(&req.uri.to_string()));
        let Some(peer) = flow else {
            self.respond(
                &txn,
                sip::response_to(&req, 480, Some("Flow Gone"), Some(&sip::random_token())),
            );
            return;
        };
        let call_id = sip::call_id(&req.headers).unwrap_or_default().to_owned();
        route::record_route(self, &mut req.headers, &call_id, from, peer);
        self.dialogs.routed(&call_id);
        let me = self.clone();
        tokio::spawn(async move { me.relay(req, from, peer, Some(txn)).await });
    }

    /// Out-of-dialog requests other than INVITE and REGISTER (MESSAGE,
    /// OPTIONS to a user, SUBSCRIBE, ...): to the callee's best contact.
    fn forward_out_of_dialog(
        self: Arc<Self>,
        req: Request,
        from: Peer,
        txn: Arc<ServerTxn>,
        admitted: admission::Admitted,
    ) {
        let ruri = req.uri.to_string();
        let user = params::uri_user(&ruri).unwrap_or_default().to_owned();
        let tenant = admitted.tenant;
        if tenant.resolve(&user).is_none() {
            self.respond(
                &txn,
                sip::response_to(&req, 404, None, Some(&sip::random_token())),
            );
            return;
        }
        let Some(binding) = self
            .registrar
            .location()
            .lookup_routable(tenant.tenant.id, &user)
            .into_iter()
            .next()
        else {
            self.respond(
                &txn,
                sip::response_to(&req, 480, None, Some(&sip::random_token())),
            );
            return;
        };
        let mut req = req;
        if let Ok(u) = rsip::Uri::try_from(binding.contact.as_str()) {
            req.uri = u;
        }
        let me = self.clone();
        let peer = binding.destination();
        if matches!(req.method, Method::Subscribe | Method::Refer) {
            // Dialog-creating: later requests (NOTIFY, refreshes) come back
            // through us like a call's, and are recognised the same way.
            let call_id = sip::call_id(&req.headers).unwrap_or_default().to_owned();
            route::record_route(&self, &mut req.headers, &call_id, from, peer);
            self.dialogs.routed(&call_id);
        }
        tokio::spawn(async move { me.relay(req, from, peer, Some(txn)).await });
    }

    /// Sends a request on (statelessly for ACK) and its final response back.
    async fn relay(
        self: Arc<Self>,
        mut req: Request,
        _from: Peer,
        peer: Peer,
        txn: Option<Arc<ServerTxn>>,
    ) {
        let orig = if txn.is_some() {
            Some(req.clone())
        } else {
            None
        };
        let mf = sip::max_forwards(&req.headers).unwrap_or(70);
        if mf == 0 {
            if let Some(t) = txn {
                self.respond(
                    &t,
                    sip::response_to(&req, 483, None, Some(&sip::random_token())),
                );
            }
            return;
        }
        route::set_max_forwards(&mut req.headers, mf - 1);
        let branch = if req.method == Method::Ack {
            // Stateless: the same incoming ACK always gets the same branch.
            route::derived_branch(sip::top_branch(&req.headers).unwrap_or_default())
        } else {
            route::new_branch(&self)
        };
        route::push_via(&self, &mut req.headers, peer, &branch);
        if req.method == Method::Ack {
            self.transport
                .send(peer, codec::encode(&SipMessage::Request(req)));
            return;
        }
        let (Some(txn), Some(orig)) = (txn, orig) else {
            return;
        };
        let result = if req.method == Method::Invite {
            route::relay_reinvite(&self, req.clone(), branch, peer, &txn).await
        } else {
            transaction::spawn_non_invite(
                self.transport.clone(),
                self.txns.clone(),
                req.clone(),
                peer,
            )
            .await
            .unwrap_or(Err(transaction::BranchFailure::Transport))
        };
        match result {
            Ok(mut resp) => {
                route::pop_top_via(&mut resp.headers);
                self.respond(&txn, resp);
            }
            Err(transaction::BranchFailure::Timeout) => self.respond(
                &txn,
                sip::response_to(&orig, 408, None, Some(&sip::random_token())),
            ),
            Err(transaction::BranchFailure::Transport) => self.respond(
                &txn,
                sip::response_to(
                    &orig,
                    503,
                    Some("Next Hop Unreachable"),
                    Some(&sip::random_token()),
                ),
            ),
        }
    }
}
