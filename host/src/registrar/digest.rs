//! HTTP Digest for SIP (RFC 3261 section 22, RFC 7616 algorithms MD5 and
//! SHA-256, qop=auth). Nonces are stateless (a timestamp and a MAC under a
//! per-process secret) so they expire on their own; the nonce counts seen are
//! remembered until the nonce expires, which stops replays.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use md5::Digest as _;
use sha2::Sha256;

/// Digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// RFC 2617 MD5 (what most deployed phones speak).
    Md5,
    /// RFC 7616 SHA-256.
    Sha256,
}

impl Algorithm {
    /// Parses `MD5` or `SHA-256` (case-insensitive).
    pub fn parse(name: &str) -> Option<Algorithm> {
        if name.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if name.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    fn hash(self, input: &str) -> String {
        match self {
            Algorithm::Md5 => hex::encode(md5::Md5::digest(input.as_bytes())),
            Algorithm::Sha256 => hex::encode(Sha256::digest(input.as_bytes())),
        }
    }
}

/// The fields of an Authorization / Proxy-Authorization header.
#[derive(Debug, Default, Clone)]
pub struct Credentials {
    /// username=
    pub username: String,
    /// realm=
    pub realm: String,
    /// nonce=
    pub nonce: String,
    /// uri=
    pub uri: String,
    /// response=
    pub response: String,
    /// algorithm= (default MD5)
    pub algorithm: Option<String>,
    /// cnonce=
    pub cnonce: Option<String>,
    /// qop=
    pub qop: Option<String>,
    /// nc= (hex)
    pub nc: Option<String>,
}

impl Credentials {
    /// Parses `Digest k=v, k="v", ...`; `None` for other schemes or garbage.
    pub fn parse(value: &str) -> Option<Credentials> {
        let rest = value.trim();
        let (scheme, rest) = rest.split_once(char::is_whitespace)?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let mut c = Credentials::default();
        for part in super::super::sip::params::split_list(rest) {
            let (k, v) = part.split_once('=')?;
            let v = v.trim().trim_matches('"').to_owned();
            match k.trim().to_ascii_lowercase().as_str() {
                "username" => c.username = v,
                "realm" => c.realm = v,
                "nonce" => c.nonce = v,
                "uri" => c.uri = v,
                "response" => c.response = v,
                "algorithm" => c.algorithm = Some(v),
                "cnonce" => c.cnonce = Some(v),
                "qop" => c.qop = Some(v),
                "nc" => c.nc = Some(v),
                _ => {}
            }
        }
        (!c.username.is_empty() && !c.nonce.is_empty() && !c.response.is_empty()).then_some(c)
    }
}

/// What checking credentials found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The response matches and the nonce is fresh and not replayed.
    Valid,
    /// The response matched an expired nonce: challenge again with stale=true.
    Stale,
    /// Wrong password, foreign nonce, replayed nonce count, bad algorithm.
    Invalid(&'static str),
}

/// Issues challenges and checks responses.
#[derive(Debug)]
pub struct DigestAuth {
    secret: [u8; 32],
    ttl: Duration,
    /// nonce -> highest nc accepted (u32::MAX: a qop-less nonce, used once).
    seen: DashMap<String, u32>,
    /// Offered in challenges, most preferred first (RFC 8760).
    offered: Vec<Algorithm>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl DigestAuth {
    /// A new authenticator; `ttl` is the nonce lifetime, `offered` the
    /// algorithms challenges name, most preferred first (MD5 when empty).
    pub fn new(ttl: Duration, offered: &[Algorithm]) -> DigestAuth {
        DigestAuth {
            secret: rand::random(),
            ttl,
            seen: DashMap::new(),
            offered: if offered.is_empty() {
                vec![Algorithm::Md5]
            } else {
                offered.to_vec()
            },
        }
    }

    fn mac(&self, base: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(base.as_bytes());
        hex::encode(&h.finalize()[..12])
    }

    fn new_nonce(&self) -> String {
        let base = format!("{:x}.{:016x}", now_secs(), rand::random::<u64>());
        let mac = self.mac(&base);
        format!("{base}.{mac}")
    }

    /// Ok(age) if we issued the nonce; Err if forged.
    fn nonce_age(&self, nonce: &str) -> Result<Duration, ()> {
        let (base, mac) = nonce.rsplit_once('.').ok_or(())?;
        if self.mac(base) != mac {
            return Err(());
        }
        let ts = u64::from_str_radix(base.split('.').next().ok_or(())?, 16).map_err(|_| ())?;
        Ok(Duration::from_secs(now_secs().saturating_sub(ts)))
    }

    /// Challenge header values (for WWW-Authenticate or Proxy-Authenticate),
    /// one per offered algorithm, the preferred first. Only MD5 by default:
    /// many deployed phones give up on a challenge whose algorithm they do
    /// not know instead of reading the next one.
    pub fn challenges(&self, realm: &str, stale: bool) -> Vec<String> {
        self.challenges_offering(realm, stale, &self.offered)
    }

    /// Whether credentials use one of `offered` (the default when empty):
    /// an account limited to SHA-256 does not take an MD5 answer.
    pub fn uses_offered(&self, c: &Credentials, offered: &[Algorithm]) -> bool {
        let offered = if offered.is_empty() {
            &self.offered
        } else {
            offered
        };
        let used = match c.algorithm.as_deref() {
            None => Some(Algorithm::Md5),
            Some(a) => Algorithm::parse(a),
        };
        used.is_some_and(|u| offered.contains(&u))
    }

    /// Like [`DigestAuth::challenges`], offering `offered` instead of the
    /// default (a tenant's own choice); the default when it is empty.
    pub fn challenges_offering(
        &self,
        realm: &str,
        stale: bool,
        offered: &[Algorithm],
    ) -> Vec<String> {
        let offered = if offered.is_empty() {
            &self.offered
        } else {
            offered
        };
        let nonce = self.new_nonce();
        offered
            .iter()
            .map(|a| {
                format!(
                    "Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{}",
                    a.name(),
                    if stale { ", stale=true" } else { "" }
                )
            })
            .collect()
    }

    /// Checks credentials against the account's HA1 values.
    pub fn verify(
        &self,
        c: &Credentials,
        method: &str,
        ha1_md5: &str,
        ha1_sha256: &str,
    ) -> Verdict {
        let alg = match c.algorithm.as_deref() {
            None => Algorithm::Md5,
            Some(a) if a.eq_ignore_ascii_case("MD5") => Algorithm::Md5,
            Some(a) if a.eq_ignore_ascii_case("SHA-256") => Algorithm::Sha256,
            Some(_) => return Verdict::Invalid("unsupported algorithm"),
        };
        let Ok(age) = self.nonce_age(&c.nonce) else {
            return Verdict::Invalid("nonce not issued here");
        };
        let ha1 = match alg {
            Algorithm::Md5 => ha1_md5,
            Algorithm::Sha256 => ha1_sha256,
        };
        let ha2 = alg.hash(&format!("{method}:{}", c.uri));
        let (expected, nc) = match c.qop.as_deref() {
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let (Some(nc), Some(cnonce)) = (c.nc.as_deref(), c.cnonce.as_deref()) else {
                    return Verdict::Invalid("qop without nc or cnonce");
                };
                let Ok(n) = u32::from_str_radix(nc, 16) else {
                    return Verdict::Invalid("bad nc");
                };
                (
                    alg.hash(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", c.nonce)),
                    Some(n),
                )
            }
            Some(_) => return Verdict::Invalid("unsupported qop"),
            None => (alg.hash(&format!("{ha1}:{}:{ha2}", c.nonce)), None),
        };
        if !crate::credentials::constant_time_eq(
            expected.as_bytes(),
            c.response.to_ascii_lowercase().as_bytes(),
        ) {
            return Verdict::Invalid("wrong credentials");
        }
        if age > self.ttl {
            return Verdict::Stale;
        }
        // Replay protection: nc must grow; a qop-less nonce is single use.
        let mut entry = self.seen.entry(c.nonce.clone()).or_insert(0);
        let accept = match nc {
            Some(n) => *entry != u32::MAX && n > *entry,
            None => *entry == 0,
        };
        if !accept {
            return Verdict::Invalid("replayed nonce");
        }
        *entry = nc.unwrap_or(u32::MAX);
        Verdict::Valid
    }

    /// Forgets nonce counts of expired nonces.
    pub fn sweep(&self) {
        self.seen
            .retain(|nonce, _| matches!(self.nonce_age(nonce), Ok(age) if age <= self.ttl));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::ha1_pair;

    fn answer(auth: &DigestAuth, alg: Algorithm, nc: &str) -> Credentials {
        let ch = auth.challenges("demo.test", false);
        let nonce = ch[0]
            .split("nonce=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let (md5, sha) = ha1_pair("2001", "demo.test", "secret-pw");
        let ha1 = if alg == Algorithm::Md5 { md5 } else { sha };
        let ha2 = alg.hash("REGISTER:sip:demo.test");
        let response = alg.hash(&format!("{ha1}:{nonce}:{nc}:abc:auth:{ha2}"));
        Credentials {
            username: "2001".into(),
            realm: "demo.test".into(),
            nonce: nonce.into(),
            uri: "sip:demo.test".into(),
            response,
            algorithm: Some(alg.name().into()),
            cnonce: Some("abc".into()),
            qop: Some("auth".into()),
            nc: Some(nc.into()),
        }
    }

    #[test]
    fn md5_and_sha256_responses_verify_and_replays_do_not() {
        let auth = DigestAuth::new(
            Duration::from_secs(60),
            &[Algorithm::Md5, Algorithm::Sha256],
        );
        let (md5, sha) = ha1_pair("2001", "demo.test", "secret-pw");
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let c = answer(&auth, alg, "00000001");
            assert_eq!(auth.verify(&c, "REGISTER", &md5, &sha), Verdict::Valid);
            assert!(matches!(
                auth.verify(&c, "REGISTER", &md5, &sha),
                Verdict::Invalid(_)
            ));
        }
    }

    #[test]
    fn wrong_password_is_invalid() {
        let auth = DigestAuth::new(
            Duration::from_secs(60),
            &[Algorithm::Md5, Algorithm::Sha256],
        );
        let (md5, sha) = ha1_pair("2001", "demo.test", "other-pw");
        let c = answer(&auth, Algorithm::Md5, "00000001");
        assert_eq!(
            auth.verify(&c, "REGISTER", &md5, &sha),
            Verdict::Invalid("wrong credentials")
        );
    }

    #[test]
    fn expired_nonce_is_stale() {
        let auth = DigestAuth::new(Duration::from_secs(0), &[Algorithm::Md5, Algorithm::Sha256]);
        let (md5, sha) = ha1_pair("2001", "demo.test", "secret-pw");
        let mut c = answer(&auth, Algorithm::Md5, "00000001");
        // Forge an old timestamp with a valid MAC.
        let base = format!("{:x}.{:016x}", now_secs() - 10, 7u64);
        c.nonce = format!("{base}.{}", auth.mac(&base));
        let ha2 = Algorithm::Md5.hash("REGISTER:sip:demo.test");
        c.response = Algorithm::Md5.hash(&format!("{md5}:{}:00000001:abc:auth:{ha2}", c.nonce));
        assert_eq!(auth.verify(&c, "REGISTER", &md5, &sha), Verdict::Stale);
    }
}
