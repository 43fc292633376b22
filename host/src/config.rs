//! Router configuration: a TOML file, every key optional, with the embedded
//! defaults that let `switchboard` start with no arguments.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// Everything the router reads at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// SIP listener and proxy behaviour.
    pub sip: SipConfig,
    /// HTTP admin API listener.
    pub http: HttpConfig,
    /// Database location: `sqlite://path` (embedded) or `postgres://...`.
    pub database_url: String,
    /// Registrar expiry limits.
    pub registrar: RegistrarConfig,
    /// Bearer token for the bootstrap administrator; generated and printed
    /// at first start when absent.
    pub admin_token: Option<String>,
    /// Seed a demo tenant on first start (an empty database).
    pub seed_demo: bool,
    /// Plugin sandbox.
    pub plugins: PluginsConfig,
    /// This node's place among the routers sharing the database.
    pub cluster: ClusterConfig,
    /// The router's own audio for voice feature calls (`*88` by voice).
    pub media: MediaConfig,
}

/// Where the router's prompts are sent from and DTMF received.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// UDP ports for RTP, `first-last` (one per voice call).
    pub rtp_ports: String,
    /// The address put in SDP (behind NAT: the public one); default the SIP
    /// listen address, or the first local one when that is a wildcard.
    pub advertise: Option<IpAddr>,
    /// Voice calls at once at most; more are answered 503.
    pub max_sessions: usize,
    /// A tenant's uploaded prompt, at most (KiB of WAV).
    pub max_prompt_kib: usize,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            rtp_ports: "20000-20999".to_owned(),
            advertise: None,
            max_sessions: 200,
            max_prompt_kib: 512,
        }
    }
}

impl MediaConfig {
    /// The RTP port range, first to last inclusive.
    pub fn port_range(&self) -> Result<(u16, u16), String> {
        let (a, b) = self
            .rtp_ports
            .split_once('-')
            .ok_or("`first-last`, e.g. \"20000-20999\"")?;
        let a: u16 = a
            .trim()
            .parse()
            .map_err(|_| format!("`{a}` is not a port"))?;
        let b: u16 = b
            .trim()
            .parse()
            .map_err(|_| format!("`{b}` is not a port"))?;
        if a < 1024 || b < a {
            return Err("need 1024 <= first <= last".into());
        }
        Ok((a, b))
    }
}

/// A node of a cluster of routers on one PostgreSQL database. The defaults
/// make a single node.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's name, unique in the cluster (default: `node-` and the
    /// SIP port, enough for one node per host).
    pub node_id: Option<String>,
    /// The SIP address other nodes reach this one at (default: the SIP
    /// listen address).
    pub advertise: Option<SocketAddr>,
    /// How often the node writes its heartbeat (milliseconds).
    pub heartbeat_ms: u64,
    /// A node whose heartbeat is older than this is dead: the others reap
    /// its calls (milliseconds).
    pub dead_after_ms: u64,
    /// A plugin timer this late is taken over from the node that set it
    /// (milliseconds); that node fires its own timers on time.
    pub timer_takeover_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node_id: None,
            advertise: None,
            heartbeat_ms: 1000,
            dead_after_ms: 5000,
            timer_takeover_ms: 2000,
        }
    }
}

/// Plugin sandbox limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginsConfig {
    /// Longest a plugin may run per decision (milliseconds).
    pub deadline_ms: u64,
    /// Largest linear memory of a plugin (MiB).
    pub memory_mib: usize,
    /// The most memory the operator may give one tenant's plugin instances
    /// (MiB; `PUT /tenants/{id}/plugin-limits`): the instance pool reserves
    /// address space for it.
    pub memory_ceiling_mib: usize,
    /// Largest upload (KiB).
    pub max_upload_kib: usize,
    /// Where compiled plugins are cached (empty string: no cache).
    pub cache_dir: String,
    /// Faults within `fault_window_secs` that switch a plugin off.
    pub fault_limit: usize,
    /// See `fault_limit`.
    pub fault_window_secs: u64,
    /// Plugin instances that may exist at once on this node.
    pub pool_slots: u32,
    /// Core instances (and memories, tables) one plugin may create.
    pub max_core_instances: u32,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            deadline_ms: 10,
            memory_mib: 16,
            memory_ceiling_mib: 64,
            // componentize-js and componentize-py components are 12-19 MB.
            max_upload_kib: 32 * 1024,
            cache_dir: "switchboard-cache".into(),
            fault_limit: 5,
            fault_window_secs: 60,
            pool_slots: 64,
            max_core_instances: 32,
        }
    }
}

impl PluginsConfig {
    /// The runtime's settings.
    pub fn runtime(&self) -> crate::plugins::PluginConfig {
        crate::plugins::PluginConfig {
            deadline: Duration::from_millis(self.deadline_ms.max(1)),
            memory_limit: self.memory_mib.max(1) << 20,
            memory_ceiling: self.memory_ceiling_mib.max(self.memory_mib).max(1) << 20,
            max_upload: self.max_upload_kib.max(1) << 10,
            // wasmtime wants an absolute cache path.
            cache_dir: (!self.cache_dir.is_empty()).then(|| {
                std::path::absolute(&self.cache_dir)
                    .unwrap_or_else(|_| self.cache_dir.clone().into())
            }),
            fault_limit: self.fault_limit.max(1),
            fault_window: Duration::from_secs(self.fault_window_secs.max(1)),
            timer_takeover: Duration::from_secs(2),
            pool_slots: self.pool_slots.max(1),
            max_core_instances: self.max_core_instances.max(1),
        }
    }
}

/// SIP transport and proxy settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    /// Address for both UDP and TCP.
    pub listen: SocketAddr,
    /// Host written into Via and Record-Route; defaults to the listen IP, or
    /// 127.0.0.1 when listening on the unspecified address.
    pub advertise: Option<String>,
    /// IPv6 address for both UDP and TCP as well (`[::]:5060`); absent:
    /// IPv4 only. IPv6 peers are answered from here and see it in Via and
    /// Record-Route.
    pub listen_v6: Option<SocketAddr>,
    /// IPv6 address written into Via and Record-Route towards IPv6 peers;
    /// defaults to the `listen_v6` IP, or `::1` when that is unspecified.
    pub advertise_v6: Option<std::net::Ipv6Addr>,
    /// Domain of the tenant that takes requests whose domain matches no
    /// tenant (phones that register to the router's IP address).
    pub default_domain: Option<String>,
    /// Source networks whose requests are not challenged (trunks, SBCs, load
    /// generators): CIDR strings such as `10.0.0.0/8`.
    pub trusted: Vec<String>,
    /// RFC 3261 T1 in milliseconds (round-trip estimate, default 500).
    pub t1_ms: u64,
    /// RFC 3261 T2 in milliseconds (non-INVITE retransmit cap, default 4000).
    pub t2_ms: u64,
    /// RFC 3261 T4 in milliseconds (maximum message lifetime, default 5000).
    pub t4_ms: u64,
    /// Timer C in seconds: a proxied INVITE branch with no final answer.
    pub timer_c_secs: u64,
    /// Ring time of a branch when nothing else says (seconds).
    pub default_ring_secs: u64,
    /// How long a branch may go without any provisional response before it
    /// counts as unreachable (seconds).
    pub no_response_secs: u64,
    /// Lifetime of a digest nonce (seconds).
    pub nonce_ttl_secs: u64,
    /// An answered call with no in-dialog request for this long is taken
    /// as ended (its BYE never reached us): the last resort against calls
    /// that stay "live" forever (seconds).
    pub dialog_max_idle_secs: u64,
    /// TCP connections: limits on what a peer may hold open (TLS too).
    pub tcp: TcpLimits,
    /// Address for SIP over TLS (`0.0.0.0:5061`); off when absent.
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for TLS, leaf first (reloaded on SIGHUP or
    /// when the file changes).
    pub tls_cert: Option<String>,
    /// PEM private key for TLS.
    pub tls_key: Option<String>,
    /// PEM CA certificates that outbound TLS trusts; absent: the usual web
    /// roots.
    pub tls_ca: Option<String>,
    /// DNS servers for RFC 3263 lookups of trunks (`["10.0.0.2:53"]`);
    /// empty: the system's (`/etc/resolv.conf`).
    pub dns_servers: Vec<SocketAddr>,
}

/// What TCP peers may hold: every connection costs a descriptor and two
/// tasks, so counts and lifetimes are bounded.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TcpLimits {
    /// Connections open at once, all peers together.
    pub max_connections: usize,
    /// Connections open at once from one IP address.
    pub max_per_source: usize,
    /// A connection that carries nothing for this long, and over which no
    /// phone is registered, is closed (seconds).
    pub idle_secs: u64,
    /// A message must be complete this long after its first byte
    /// (seconds); slower senders are disconnected.
    pub message_secs: u64,
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits {
            max_connections: 8192,
            max_per_source: 64,
            idle_secs: 90,
            message_secs: 5,
        }
    }
}

/// HTTP admin listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the admin API and the web console.
    pub listen: SocketAddr,
    /// Mark the console's session cookie `Secure`: set it when browsers
    /// reach the console over HTTPS (a TLS-terminating proxy in front).
    pub secure_cookies: bool,
    /// Most live-update streams (server-sent events) the console may hold
    /// open at once on this node; more are refused with 503.
    pub max_console_streams: usize,
}

/// Expiry bounds applied to REGISTER (seconds).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrarConfig {
    /// Shorter requests get 423 Interval Too Brief.
    pub min_expires: u32,
    /// Longer requests are cut down to this.
    pub max_expires: u32,
    /// Used when the request names no expiry.
    pub default_expires: u32,
    /// Most contacts one address of record may hold; a REGISTER naming
    /// more is refused, and older contacts make room for newer ones.
    pub max_contacts: usize,
    /// Whether a Contact may name a public address other than the one the
    /// REGISTER came from (registering on behalf of another host). Off, a
    /// registration cannot aim calls at a third party.
    pub allow_foreign_contacts: bool,
    /// Digest algorithms offered in challenges, most preferred first
    /// (RFC 8760): `MD5`, `SHA-256`. MD5 alone by default, since phones
    /// that meet an algorithm they do not know often give up.
    pub digest_algorithms: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sip: SipConfig::default(),
            http: HttpConfig::default(),
            database_url: "sqlite://switchboard.db".to_owned(),
            registrar: RegistrarConfig::default(),
            admin_token: None,
            seed_demo: true,
            plugins: PluginsConfig::default(),
            cluster: ClusterConfig::default(),
            media: MediaConfig::default(),
        }
    }
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 5060)),
            advertise: None,
            listen_v6: None,
            advertise_v6: None,
            default_domain: None,
            trusted: Vec::new(),
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            timer_c_secs: 180,
            default_ring_secs: 30,
            no_response_secs: 8,
            nonce_ttl_secs: 300,
            dialog_max_idle_secs: 4 * 3600,
            tcp: TcpLimits::default(),
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            dns_servers: Vec::new(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            secure_cookies: false,
            max_console_streams: 256,
        }
    }
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires: 60,
            max_expires: 7200,
            default_expires: 3600,
            max_contacts: 10,
            allow_foreign_contacts: false,
            digest_algorithms: vec!["MD5".into()],
        }
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file named on the command line.
        path: String,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The TOML did not match [`Config`].
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file named on the command line.
        path: String,
        /// What the parser said, with the key.
        source: toml::de::Error,
    },
    /// A value parsed but cannot be used.
    #[error("invalid config value `{field}`: {reason}")]
    Invalid {
        /// Dotted key, e.g. `sip.trusted`.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

impl Config {
    /// Reads a TOML file; keys it leaves out keep their defaults.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.display().to_string(),
            source,
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(id) = &self.cluster.node_id {
            if id.is_empty()
                || id.len() > 64
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            {
                return Err(ConfigError::Invalid {
                    field: "cluster.node_id",
                    reason: "1-64 of A-Z, a-z, 0-9, '-', '_', '.'".into(),
                });
            }
        }
        self.media
            .port_range()
            .map_err(|reason| ConfigError::Invalid {
                field: "media.rtp_ports",
                reason,
            })?;
        if self.media.max_sessions == 0 {
            return Err(ConfigError::Invalid {
                field: "media.max_sessions",
                reason: "must be at least 1".into(),
            });
        }
        let c = &self.cluster;
        if c.heartbeat_ms == 0 || c.dead_after_ms < 2 * c.heartbeat_ms {
            return Err(ConfigError::Invalid {
                field: "cluster.dead_after_ms",
                reason: "must be at least twice cluster.heartbeat_ms (and that above 0)".into(),
            });
        }
        for cidr in &self.sip.trusted {
            Cidr::parse(cidr).map_err(|reason| ConfigError::Invalid {
                field: "sip.trusted",
                reason,
            })?;
        }
        let r = &self.registrar;
        if r.min_expires > r.default_expires || r.default_expires > r.max_expires {
            return Err(ConfigError::Invalid {
                field: "registrar",
                reason: "need min_expires <= default_expires <= max_expires".into(),
            });
        }
        if r.digest_algorithms.is_empty()
            || r.digest_algorithms
                .iter()
                .any(|a| crate::registrar::digest::Algorithm::parse(a).is_none())
        {
            return Err(ConfigError::Invalid {
                field: "registrar.digest_algorithms",
                reason: "one or more of \"MD5\", \"SHA-256\"".into(),
            });
        }
        if r.max_contacts == 0 {
            return Err(ConfigError::Invalid {
                field: "registrar.max_contacts",
                reason: "must be at least 1".into(),
            });
        }
        let tcp = &self.sip.tcp;
        if tcp.max_connections == 0 || tcp.max_per_source == 0 {
            return Err(ConfigError::Invalid {
                field: "sip.tcp",
                reason: "max_connections and max_per_source must be at least 1".into(),
            });
        }
        if tcp.message_secs == 0 || tcp.idle_secs == 0 {
            return Err(ConfigError::Invalid {
                field: "sip.tcp",
                reason: "idle_secs and message_secs must be at least 1".into(),
            });
        }
        if self.sip.listen.is_ipv6() {
            return Err(ConfigError::Invalid {
                field: "sip.listen",
                reason: "takes an IPv4 address; IPv6 goes in sip.listen_v6 (`[::]:5060`)".into(),
            });
        }
        if self.sip.listen_v6.is_some_and(|a| !a.is_ipv6()) {
            return Err(ConfigError::Invalid {
                field: "sip.listen_v6",
                reason: "takes an IPv6 address, like `[::]:5060`".into(),
            });
        }
        if self.sip.tls_listen.is_some()
            && (self.sip.tls_cert.is_none() || self.sip.tls_key.is_none())
        {
            return Err(ConfigError::Invalid {
                field: "sip.tls_listen",
                reason: "needs sip.tls_cert and sip.tls_key".into(),
            });
        }
        if self.sip.t1_ms == 0 {
            return Err(ConfigError::Invalid {
                field: "sip.t1_ms",
                reason: "must be positive".into(),
            });
        }
        Ok(())
    }

    /// The TLS side, when `sip.tls_listen` is set: its address and files.
    pub fn tls(&self) -> Option<(SocketAddr, crate::transport::tls::TlsFiles)> {
        let s = &self.sip;
        Some((
            s.tls_listen?,
            crate::transport::tls::TlsFiles {
                cert: s.tls_cert.clone()?.into(),
                key: s.tls_key.clone()?.into(),
                ca: s.tls_ca.clone().map(Into::into),
            },
        ))
    }

    /// T1 as a duration.
    pub fn t1(&self) -> Duration {
        Duration::from_millis(self.sip.t1_ms)
    }
}

/// An IP network in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `::1/128` or a bare address (a host route).
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}` has an invalid prefix length"))?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }

    /// Whether `ip` lies in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_matches_addresses_inside_the_prefix_only() {
        let net = Cidr::parse("127.0.0.0/8").unwrap();
        assert!(net.contains("127.1.2.3".parse().unwrap()));
        assert!(!net.contains("10.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("1.2.3.4/33").is_err());
    }

    #[test]
    fn the_example_config_parses_and_validates() {
        let c: Config = toml::from_str(include_str!("../../switchboard.example.toml")).unwrap();
        c.validate().unwrap();
        assert_eq!(c.registrar.max_contacts, 10);
        assert_eq!(c.sip.tcp.max_per_source, 64);
    }

    #[test]
    fn an_ipv4_address_for_listen_v6_is_refused_naming_the_field() {
        let c: Config = toml::from_str("[sip]\nlisten_v6 = \"0.0.0.0:5060\"").unwrap();
        match c.validate() {
            Err(ConfigError::Invalid { field, .. }) => assert_eq!(field, "sip.listen_v6"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_config_keys_are_refused() {
        assert!(toml::from_str::<Config>("nonsense = 1").is_err());
        let c: Config = toml::from_str("[sip]\nlisten = \"127.0.0.1:5070\"").unwrap();
        assert_eq!(c.sip.listen.port(), 5070);
        assert_eq!(c.http.listen.port(), 8080);
    }
}
