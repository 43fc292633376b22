//! The registrar (RFC 3261 section 10): digest-authenticated REGISTER, the
//! location service it fills, and the authentication of other requests from
//! devices (407 challenges on INVITE).

pub mod digest;
pub mod location;

use std::sync::Arc;
use std::time::Duration;

use crate::config::RegistrarConfig;
use crate::directory::{Account, TenantDirectory};
use crate::sip::{self, params, Peer, Request, Response};
use crate::store::now_ms;

pub use digest::{Credentials, DigestAuth, Verdict};
pub use location::{Binding, Location};

/// A q-value (RFC 3261 20.10): a number from 0 to 1, at most three
/// decimals. Anything else (`nan`, `inf`, `2`) is refused, not stored.
fn parse_q(v: &str) -> Option<f32> {
    let v = v.trim();
    let ok = !v.is_empty()
        && v.len() <= 5
        && v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && v.bytes().filter(|b| *b == b'.').count() <= 1;
    let q: f32 = v.parse().ok().filter(|_| ok)?;
    (0.0..=1.0).contains(&q).then_some(q)
}

/// Whether a contact would aim calls at a public address other than the
/// one the REGISTER came from. Contacts reached over the registering flow
/// (TCP, NAT, host names, `ob`) go back to the sender whatever they say.
fn is_foreign(contact: &str, source: Peer) -> bool {
    let probe = Binding {
        contact: contact.to_owned(),
        expires_at: 0,
        source,
        user_agent: None,
        instance: None,
        call_id: String::new(),
        cseq: 0,
        q: 1.0,
        node: "".into(),
    };
    probe.destination().addr.ip() != source.addr.ip()
}

/// Result of authenticating a request.
#[derive(Debug)]
pub enum AuthOutcome {
    /// Credentials are valid for this account.
    Authenticated(Account),
    /// Send this response (401/407 challenge, or 403).
    Reply(Response),
}

/// The registrar.
#[derive(Debug)]
pub struct Registrar {
    auth: DigestAuth,
    location: Arc<Location>,
    limits: RegistrarConfig,
    /// HA1 values of no account (a random password), checked for unknown
    /// usernames so they cost what a known one costs.
    decoy: (String, String),
}

impl Registrar {
    /// A registrar over a location service.
    pub fn new(location: Arc<Location>, limits: RegistrarConfig, nonce_ttl: Duration) -> Registrar {
        let decoy_password = format!("{:032x}", rand::random::<u128>());
        Registrar {
            auth: DigestAuth::new(
                nonce_ttl,
                &limits
                    .digest_algorithms
                    .iter()
                    .filter_map(|a| digest::Algorithm::parse(a))
                    .collect::<Vec<_>>(),
            ),
            location,
            limits,
            decoy: crate::directory::ha1_pair("decoy", "decoy", &decoy_password),
        }
    }

    /// The location service.
    pub fn location(&self) -> &Arc<Location> {
        &self.location
    }

    /// The digest authenticator (for periodic sweeps).
    pub fn digest(&self) -> &DigestAuth {
        &self.auth
    }

    /// Authenticates `req` as an account of `tenant`. REGISTER uses
    /// 401/WWW-Authenticate, everything else 407/Proxy-Authenticate.
    /// `expected_user` (the AOR for REGISTER, the From user otherwise) must be
    /// the authenticated username, else 403.
    pub fn authenticate(
        &self,
        req: &Request,
        tenant: &TenantDirectory,
        expected_user: &str,
    ) -> AuthOutcome {
        let is_register = req.method == sip::Method::Register;
        let (hdr, code, challenge_hdr) = if is_register {
            ("Authorization", 401, "WWW-Authenticate")
        } else {
            ("Proxy-Authorization", 407, "Proxy-Authenticate")
        };
        let realm = tenant.tenant.domain.as_str();
        let creds = sip::header_all(&req.headers, hdr)
            .filter_map(Credentials::parse)
            .find(|c| c.realm.eq_ignore_ascii_case(realm));
        // The account is the one the request claims (AOR or From), so a
        // device that asks for SHA-256 is offered it on first contact.
        let offered: Vec<digest::Algorithm> = tenant
            .digest_algorithms_for(expected_user)
            .iter()
            .filter_map(|a| digest::Algorithm::parse(a))
            .collect();
        let challenge = |stale: bool| {
            let mut resp = sip::response_to(req, code, None, Some(&sip::random_token()));
            for v in self.auth.challenges_offering(realm, stale, &offered) {
                sip::push_header(&mut resp.headers, challenge_hdr, v);
            }
            AuthOutcome::Reply(resp)
        };
        let Some(creds) = creds else {
            return challenge(false);
        };
        // An unknown account is checked against secrets nobody knows, with
        // the same work and the same answers as a known one: the responses
        // must not tell which accounts exist.
        let account = tenant.account(&creds.username);
        let (ha1_md5, ha1_sha256) = match &account {
            Some(a) => (a.ha1_md5.as_str(), a.ha1_sha256.as_str()),
            None => (self.decoy.0.as_str(), self.decoy.1.as_str()),
        };
        let verdict =
            self.auth
                .verify(&creds, req.method.to_string().as_str(), ha1_md5, ha1_sha256);
        let account = match (verdict, account) {
            // Right, but with an algorithm this account is not offered.
            (Verdict::Valid, Some(_)) if !self.auth.uses_offered(&creds, &offered) => {
                return challenge(false)
            }
            (Verdict::Valid, Some(a)) => a,
            (Verdict::Stale, _) => return challenge(true),
            (v, _) => {
                let why = match v {
                    Verdict::Invalid(why) => why,
                    _ => "unknown account",
                };
                crate::metrics::count_auth_failure();
                tracing::info!(user = %creds.username, realm, why, "authentication failed");
                if why == "replayed nonce" || why == "nonce not issued here" {
                    return challenge(false);
                }
                return AuthOutcome::Reply(sip::response_to(
                    req,
                    403,
                    Some("Forbidden"),
                    Some(&sip::random_token()),
                ));
            }
        };
        if creds.username != expected_user {
            return AuthOutcome::Reply(sip::response_to(
                req,
                403,
                Some("Authentication User Mismatch"),
                Some(&sip::random_token()),
            ));
        }
        AuthOutcome::Authenticated(account)
    }

    /// Handles a REGISTER for `tenant` arriving from `source`.
    pub async fn register(
        &self,
        req: &Request,
        source: Peer,
        tenant: &TenantDirectory,
    ) -> Response {
        match self.authenticate_register(req, tenant) {
            Ok(user) => {
                self.register_authenticated(req, source, tenant, &user)
                    .await
            }
            Err(r) => r,
        }
    }

    /// The first half of a REGISTER, which keeps no state: the AOR's user
    /// once the credentials are right, else the response (a challenge, 400
    /// or 403) to send statelessly.
    pub fn authenticate_register(
        &self,
        req: &Request,
        tenant: &TenantDirectory,
    ) -> Result<String, Response> {
        let reply = |code: u16, reason: Option<&str>| {
            sip::response_to(req, code, reason, Some(&sip::random_token()))
        };
        let Some(to) = sip::header(&req.headers, "To") else {
            return Err(reply(400, Some("Missing To")));
        };
        let Some(user) = params::uri_user(params::uri_of(to)).map(str::to_owned) else {
            return Err(reply(400, Some("To Has No User")));
        };
        match self.authenticate(req, tenant, &user) {
            AuthOutcome::Authenticated(_) => Ok(user),
            AuthOutcome::Reply(r) => Err(r),
        }
    }

    /// The second half of a REGISTER from `user`, already authenticated:
    /// validates the contacts and stores the bindings before answering.
    pub async fn register_authenticated(
        &self,
        req: &Request,
        source: Peer,
        tenant: &TenantDirectory,
        user: &str,
    ) -> Response {
        let to_tag = sip::random_token();
        let reply =
            |code: u16, reason: Option<&str>| sip::response_to(req, code, reason, Some(&to_tag));
        let user = user.to_owned();
        let call_id = sip::call_id(&req.headers).unwrap_or_default().to_owned();
        let cseq = sip::cseq(&req.headers).map(|c| c.0).unwrap_or(0);
        let header_expires: Option<u32> = match sip::header(&req.headers, "Expires") {
            Some(v) => match v.trim().parse() {
                Ok(e) => Some(e),
                Err(_) => return reply(400, Some("Bad Expires")),
            },
            None => None,
        };
        let contacts: Vec<&str> = sip::header_all(&req.headers, "Contact")
            .flat_map(params::split_list)
            .collect();
        let aor = (tenant.tenant.id, user.clone());
        let existing = self.location.lookup(aor.0, &aor.1);
        let mut upserts = Vec::new();
        let mut removals = Vec::new();
        let mut remove_all = false;
        if contacts.iter().any(|c| c.trim() == "*") {
            if contacts.len() != 1 || header_expires != Some(0) {
                return reply(400, Some("Wildcard Contact Needs Expires 0"));
            }
            remove_all = true;
        } else {
            let now = now_ms();
            let user_agent = sip::header(&req.headers, "User-Agent").map(str::to_owned);
            for c in &contacts {
                let uri = params::uri_of(c).to_owned();
                if rsip::Uri::try_from(uri.as_str()).is_err() {
                    return reply(400, Some("Bad Contact URI"));
                }
                // RFC 5630: a sips: contact is only reachable over TLS.
                if uri.starts_with("sips:") && source.proto != crate::sip::Proto::Tls {
                    return reply(400, Some("SIPS Contact Over A Plain Transport"));
                }
                if !self.limits.allow_foreign_contacts && is_foreign(&uri, source) {
                    return reply(403, Some("Contact Not At The Registering Address"));
                }
                let expires = match params::header_param(c, "expires") {
                    Some(v) => match v.trim().parse::<u32>() {
                        Ok(e) => Some(e),
                        Err(_) => return reply(400, Some("Bad Contact expires")),
                    },
                    None => header_expires,
                }
                .unwrap_or(self.limits.default_expires);
                let q = match params::header_param(c, "q") {
                    Some(v) => match parse_q(v) {
                        Some(q) => q,
                        None => return reply(400, Some("Bad Contact q")),
                    },
                    None => 1.0,
                };
                // An older REGISTER of the same Call-ID is out of order.
                if existing
                    .iter()
                    .any(|b| b.contact == uri && b.call_id == call_id && b.cseq >= cseq)
                {
                    return reply(500, Some("Out Of Order Register"));
                }
                if expires == 0 {
                    removals.push(uri);
                    continue;
                }
                if expires < self.limits.min_expires {
                    let mut r = reply(423, None);
                    sip::push_header(
                        &mut r.headers,
                        "Min-Expires",
                        self.limits.min_expires.to_string(),
                    );
                    return r;
                }
                let expires = expires.min(self.limits.max_expires);
                upserts.push(Binding {
                    contact: uri,
                    expires_at: now + i64::from(expires) * 1000,
                    source,
                    user_agent: user_agent.clone(),
                    instance: params::header_param(c, "+sip.instance").map(str::to_owned),
                    call_id: call_id.clone(),
                    cseq,
                    q,
                    node: "".into(),
                });
            }
        }
        // Each contact is a branch of every call to this AOR: their number
        // is bounded, and the oldest make room for new ones.
        if upserts.len() > self.limits.max_contacts {
            return reply(403, Some("Too Many Contacts"));
        }
        if !remove_all {
            let mut kept: Vec<&Binding> = existing
                .iter()
                .filter(|b| {
                    !removals.contains(&b.contact)
                        && !upserts.iter().any(|u| u.contact == b.contact)
                })
                .collect();
            let excess = (kept.len() + upserts.len()).saturating_sub(self.limits.max_contacts);
            kept.sort_by_key(|b| b.expires_at);
            for b in kept.into_iter().take(excess) {
                removals.push(b.contact.clone());
            }
        }
        let bindings = match self
            .location
            .update(aor, upserts, removals, remove_all)
            .await
        {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "registration not stored");
                return reply(500, Some("Registration Not Stored"));
            }
        };
        crate::metrics::count_register_ok();
        let mut resp = reply(200, None);
        let now = now_ms();
        for b in &bindings {
            let left = ((b.expires_at - now) / 1000).max(0);
            sip::push_header(
                &mut resp.headers,
                "Contact",
                format!("<{}>;expires={left}", b.contact),
            );
        }
        resp
    }
}
