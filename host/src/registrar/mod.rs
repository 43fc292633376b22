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
}

impl Registrar {
    /// A registrar over a location service.
    pub fn new(location: Arc<Location>, limits: RegistrarConfig, nonce_ttl: Duration) -> Registrar {
        Registrar {
            auth: DigestAuth::new(nonce_ttl, false),
            location,
            limits,
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
        let challenge = |stale: bool| {
            let mut resp = sip::response_to(req, code, None, Some(&sip::random_token()));
            for v in self.auth.challenges(realm, stale) {
                sip::push_header(&mut resp.headers, challenge_hdr, v);
            }
            AuthOutcome::Reply(resp)
        };
        let Some(creds) = creds else {
            return challenge(false);
        };
        let Some(account) = tenant.account(&creds.username) else {
            crate::metrics::count_auth_failure();
            tracing::info!(user = %creds.username, realm, "authentication for unknown account");
            return AuthOutcome::Reply(sip::response_to(
                req,
                403,
                Some("Forbidden"),
                Some(&sip::random_token()),
            ));
        };
        match self.auth.verify(
            &creds,
            req.method.to_string().as_str(),
            &account.ha1_md5,
            &account.ha1_sha256,
        ) {
            Verdict::Valid => {}
            Verdict::Stale => return challenge(true),
            Verdict::Invalid(why) => {
                crate::metrics::count_auth_failure();
                tracing::info!(user = %creds.username, realm, why, "authentication failed");
                if why == "replayed nonce" || why == "nonce not issued here" {
                    return challenge(false);
                }
                return AuthOutcome::Reply(sip::response_to(
                    req,
                    403,
                    Some("Wrong Credentials"),
                    Some(&sip::random_token()),
                ));
            }
        }
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
        let to_tag = sip::random_token();
        let reply =
            |code: u16, reason: Option<&str>| sip::response_to(req, code, reason, Some(&to_tag));
        let Some(to) = sip::header(&req.headers, "To") else {
            return reply(400, Some("Missing To"));
        };
        let Some(user) = params::uri_user(params::uri_of(to)).map(str::to_owned) else {
            return reply(400, Some("To Has No User"));
        };
        if tenant.account(&user).is_none() {
            return reply(404, Some("Unknown Account"));
        }
        match self.authenticate(req, tenant, &user) {
            AuthOutcome::Authenticated(_) => {}
            AuthOutcome::Reply(r) => return r,
        }
        let call_id = sip::call_id(&req.headers).unwrap_or_default().to_owned();
        let cseq = sip::cseq(&req.headers).map(|c| c.0).unwrap_or(0);
        let header_expires: Option<u32> =
            sip::header(&req.headers, "Expires").and_then(|v| v.trim().parse().ok());
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
                let expires = params::header_param(c, "expires")
                    .and_then(|v| v.parse::<u32>().ok())
                    .or(header_expires)
                    .unwrap_or(self.limits.default_expires);
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
                    q: params::header_param(c, "q")
                        .and_then(|q| q.parse().ok())
                        .unwrap_or(1.0),
                });
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
