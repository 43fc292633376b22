//! Locating SIP servers (RFC 3263): from a URI to the transports, addresses
//! and ports to try, in order. A numeric host is used as it is; a name with
//! a port is looked up by A/AAAA; a name without one by NAPTR (SIP+D2U,
//! SIP+D2T, SIPS+D2T), then SRV (by priority, then weighted at random within
//! a priority, RFC 2782), then A/AAAA on the default port. The resolver
//! caches answers for their TTL. Knows DNS and SIP URIs, nothing of calls.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::config::{NameServerConfig, Protocol, ResolverConfig, ResolverOpts};
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioAsyncResolver;
use rand::Rng;

use crate::sip::{Peer, Proto};

/// Looks SIP URIs up in the DNS.
pub struct Locator {
    resolver: TokioAsyncResolver,
}

impl std::fmt::Debug for Locator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Locator")
    }
}

/// The default port of a transport (RFC 3261 19.1.2).
pub fn default_port(proto: Proto) -> u16 {
    match proto {
        Proto::Tls => 5061,
        Proto::Udp | Proto::Tcp => 5060,
    }
}

fn srv_prefix(proto: Proto) -> &'static str {
    match proto {
        Proto::Udp => "_sip._udp",
        Proto::Tcp => "_sip._tcp",
        Proto::Tls => "_sips._tcp",
    }
}

fn fqdn(host: &str) -> String {
    if host.ends_with('.') {
        host.to_owned()
    } else {
        format!("{host}.")
    }
}

/// SRV targets in the order RFC 2782 tries them: lowest priority first,
/// and within one priority a weighted random order.
fn srv_order<T: Clone>(mut records: Vec<(u16, u16, T)>) -> Vec<T> {
    records.sort_by_key(|r| r.0);
    let mut out = Vec::with_capacity(records.len());
    let mut rng = rand::thread_rng();
    let mut i = 0;
    while i < records.len() {
        let prio = records[i].0;
        let mut group: Vec<(u16, u16, T)> = records[i..]
            .iter()
            .take_while(|r| r.0 == prio)
            .cloned()
            .collect();
        i += group.len();
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.1)).sum();
            let pick = if total == 0 {
                0
            } else {
                let mut x = rng.gen_range(0..=total);
                group
                    .iter()
                    .position(|r| {
                        let w = u32::from(r.1);
                        if x <= w {
                            true
                        } else {
                            x -= w;
                            false
                        }
                    })
                    .unwrap_or(0)
            };
            out.push(group.remove(pick).2);
        }
    }
    out
}

impl Locator {
    /// A locator asking `servers` (UDP), or the system's resolvers
    /// (`/etc/resolv.conf`) when none are given.
    pub fn new(servers: &[SocketAddr]) -> Locator {
        let mut opts = ResolverOpts::default();
        opts.timeout = std::time::Duration::from_secs(2);
        opts.attempts = 2;
        let resolver = if servers.is_empty() {
            TokioAsyncResolver::tokio_from_system_conf().unwrap_or_else(|e| {
                tracing::warn!(error = %e, "no system DNS configuration; using defaults");
                TokioAsyncResolver::tokio(ResolverConfig::default(), opts.clone())
            })
        } else {
            let ns: Vec<NameServerConfig> = servers
                .iter()
                .map(|a| NameServerConfig::new(*a, Protocol::Udp))
                .collect();
            TokioAsyncResolver::tokio(ResolverConfig::from_parts(None, vec![], ns), opts)
        };
        Locator { resolver }
    }

    /// Every destination for `uri`, most preferred first; empty when
    /// nothing resolves. A `sips:` URI only ever yields TLS.
    pub async fn locate(&self, uri: &rsip::Uri) -> Vec<Peer> {
        let sips = matches!(uri.scheme, Some(rsip::Scheme::Sips));
        let transport = uri.params.iter().find_map(|p| match p {
            rsip::Param::Transport(t) => Proto::parse(&t.to_string()),
            _ => None,
        });
        if sips && transport.is_some_and(|t| t != Proto::Tls) {
            return Vec::new();
        }
        let host = uri.host_with_port.host.to_string();
        let host = host.trim_matches(['[', ']']).to_owned();
        let port = uri.host_with_port.port.map(|p| *p.value());
        let fallback = transport.unwrap_or(if sips { Proto::Tls } else { Proto::Udp });
        if let Ok(ip) = host.parse::<IpAddr>() {
            let addr = SocketAddr::new(ip, port.unwrap_or(default_port(fallback)));
            return vec![Peer {
                proto: fallback,
                addr,
            }];
        }
        if let Some(port) = port {
            return self.addresses(&host, port, fallback).await;
        }
        for (proto, name) in self.srv_names(&host, transport, sips).await {
            let Ok(srv) = self.resolver.srv_lookup(name.as_str()).await else {
                continue;
            };
            let records: Vec<(u16, u16, (String, u16))> = srv
                .iter()
                .map(|r| (r.priority(), r.weight(), (r.target().to_ascii(), r.port())))
                .collect();
            let mut out = Vec::new();
            for (target, port) in srv_order(records) {
                out.extend(self.addresses(&target, port, proto).await);
            }
            if !out.is_empty() {
                return out;
            }
        }
        self.addresses(&host, default_port(fallback), fallback)
            .await
    }

    /// The SRV names to try: from NAPTR when the URI names no transport,
    /// else (or when NAPTR has nothing) the usual ones per transport.
    async fn srv_names(
        &self,
        host: &str,
        transport: Option<Proto>,
        sips: bool,
    ) -> Vec<(Proto, String)> {
        let mut names = Vec::new();
        if transport.is_none() {
            if let Ok(lookup) = self.resolver.lookup(fqdn(host), RecordType::NAPTR).await {
                let mut records: Vec<_> = lookup
                    .record_iter()
                    .filter_map(|r| match r.data() {
                        Some(RData::NAPTR(n)) => Some(n.clone()),
                        _ => None,
                    })
                    .collect();
                records.sort_by_key(|n| (n.order(), n.preference()));
                for n in records {
                    let service = String::from_utf8_lossy(n.services()).to_ascii_uppercase();
                    let proto = match service.as_str() {
                        "SIP+D2U" => Proto::Udp,
                        "SIP+D2T" => Proto::Tcp,
                        "SIPS+D2T" => Proto::Tls,
                        _ => continue,
                    };
                    let terminal_srv = n.flags().eq_ignore_ascii_case(b"s");
                    if !terminal_srv || (sips && proto != Proto::Tls) {
                        continue;
                    }
                    names.push((proto, n.replacement().to_ascii()));
                }
            }
        }
        if names.is_empty() {
            let candidates = match transport {
                Some(p) => vec![p],
                None if sips => vec![Proto::Tls],
                None => vec![Proto::Udp, Proto::Tcp],
            };
            for p in candidates {
                names.push((p, fqdn(&format!("{}.{host}", srv_prefix(p)))));
            }
        }
        names
    }

    async fn addresses(&self, host: &str, port: u16, proto: Proto) -> Vec<Peer> {
        match self.resolver.lookup_ip(fqdn(host)).await {
            Ok(ips) => ips
                .iter()
                .map(|ip| Peer {
                    proto,
                    addr: SocketAddr::new(ip, port),
                })
                .collect(),
            Err(e) => {
                tracing::debug!(%host, error = %e, "no address");
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srv_targets_go_by_priority_first() {
        let order = srv_order(vec![(20, 100, "b"), (10, 0, "a"), (30, 5, "c")]);
        assert_eq!(order, vec!["a", "b", "c"]);
    }

    #[test]
    fn within_a_priority_every_target_is_tried_once() {
        let mut order = srv_order(vec![(10, 60, "x"), (10, 40, "y"), (10, 0, "z")]);
        order.sort_unstable();
        assert_eq!(order, vec!["x", "y", "z"]);
    }
}
