//! The router's own audio, for voice feature calls: it answers a caller's
//! offer (`sdp`), sends prompts as RTP from its port range (`session`,
//! `g711`, `prompts`) and hears digits (`dtmf`: RFC 4733 events, and SIP
//! INFO bodies handed in by the proxy). It knows no SIP and no plugins:
//! the proxy owns the dialog and asks a [`Session`] to speak and listen.
//! Nothing here blocks: each session is one task's business plus one
//! receive task that it owns.

pub mod dtmf;
pub mod g711;
pub mod prompts;
pub mod sdp;
mod session;

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

pub use self::session::{Session, Spoken};
use crate::config::MediaConfig;

/// Why a voice call cannot have audio.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The INVITE has no SDP offer.
    #[error("no SDP offer")]
    NoOffer,
    /// The offer is not SDP the router reads.
    #[error("bad SDP: {0}")]
    BadSdp(String),
    /// No audio stream with PCMU or PCMA.
    #[error("no PCMU or PCMA audio offered")]
    NoCodec,
    /// `media.max_sessions` voice calls are up.
    #[error("too many voice calls")]
    Busy,
    /// No port of `media.rtp_ports` could be bound.
    #[error("no free RTP port")]
    NoPort,
}

/// RTP ports of the configured range not in use, even ones only (RTP's
/// convention; the odd one above is RTCP's, never bound here).
#[derive(Debug)]
struct PortPool {
    free: Mutex<VecDeque<u16>>,
    total: usize,
}

/// A port taken from the pool: back in it when this drops.
#[derive(Debug)]
struct PortLease {
    pool: Arc<PortPool>,
    port: u16,
    _gauge: crate::metrics::Held,
}

impl Drop for PortLease {
    fn drop(&mut self) {
        self.pool.free.lock().push_back(self.port);
    }
}

/// A place among `media.max_sessions`.
#[derive(Debug)]
struct SessionSlot {
    count: Arc<AtomicUsize>,
    _gauge: crate::metrics::Held,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The router's media endpoint.
#[derive(Debug)]
pub struct Media {
    pool: Arc<PortPool>,
    library: Arc<prompts::Library>,
    listen: IpAddr,
    advertise: Option<IpAddr>,
    max_sessions: usize,
    max_prompt_kib: usize,
    sessions: Arc<AtomicUsize>,
    db: crate::store::Store,
}

impl Media {
    /// The endpoint for this configuration; `listen` is the SIP listen
    /// address (RTP is bound there when it is a specific address).
    pub fn new(config: &MediaConfig, listen: IpAddr, db: crate::store::Store) -> Media {
        let (first, last) = config.port_range().unwrap_or((20000, 20999));
        let free: VecDeque<u16> = (first..=last).filter(|p| p % 2 == 0).collect();
        Media {
            pool: Arc::new(PortPool {
                total: free.len(),
                free: Mutex::new(free),
            }),
            library: Arc::new(prompts::Library::built_in()),
            listen,
            advertise: config.advertise,
            max_sessions: config.max_sessions,
            max_prompt_kib: config.max_prompt_kib,
            sessions: Arc::new(AtomicUsize::new(0)),
            db,
        }
    }

    /// Voice calls with audio now.
    pub fn sessions(&self) -> usize {
        self.sessions.load(Ordering::Relaxed)
    }

    /// Stores a tenant's recording of a prompt (checked: a prompt name, an
    /// 8 kHz mono 16-bit WAV within `media.max_prompt_kib`).
    pub async fn upload_prompt(
        &self,
        tenant_id: i64,
        name: &str,
        wav: &[u8],
    ) -> Result<prompts::TenantPrompt, prompts::PromptError> {
        self.library
            .upload(&self.db, tenant_id, name, wav, self.max_prompt_kib)
            .await
    }

    /// Deletes a tenant's recording (the router's own is used again).
    pub async fn remove_prompt(&self, tenant_id: i64, name: &str) -> Result<bool, sqlx::Error> {
        self.library.remove(&self.db, tenant_id, name).await
    }

    /// A tenant's uploaded recordings.
    pub async fn tenant_prompts(
        &self,
        tenant_id: i64,
    ) -> Result<Vec<prompts::TenantPrompt>, sqlx::Error> {
        self.library.list(&self.db, tenant_id).await
    }

    /// The largest upload, bytes.
    pub fn max_prompt_bytes(&self) -> usize {
        self.max_prompt_kib * 1024
    }

    /// The tenant's recordings for a call that starts now.
    pub async fn recordings_for(&self, tenant_id: i64) -> prompts::Overrides {
        self.library.overrides(&self.db, tenant_id).await
    }

    /// RTP ports of the range bound now.
    pub fn ports_in_use(&self) -> usize {
        self.pool.total - self.pool.free.lock().len()
    }

    /// Answers an offer: a session on a port of the range, and the SDP
    /// answer to send. `reached_at` is the address the caller reached the
    /// router at (put in the answer unless `media.advertise` says
    /// otherwise); `signalling` is where the INVITE came from: RTP is
    /// heard only from there and from the offer's address.
    pub async fn answer(
        &self,
        offer: &[u8],
        reached_at: IpAddr,
        signalling: IpAddr,
    ) -> Result<(Session, String), MediaError> {
        let offer = sdp::parse_offer(offer)?;
        let slot = self.take_slot()?;
        let bind_ip = match (self.listen, offer.remote) {
            (ip, SocketAddr::V4(_)) if ip.is_ipv4() && !ip.is_unspecified() => ip,
            (ip, SocketAddr::V6(_)) if ip.is_ipv6() && !ip.is_unspecified() => ip,
            (_, SocketAddr::V4(_)) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            (_, SocketAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let (socket, lease) = self.bind(bind_ip).await?;
        let advertise = self.advertise.unwrap_or(reached_at);
        let local = SocketAddr::new(advertise, lease.port);
        let answer = sdp::answer(&offer, local, rand::random::<u32>().into());
        let session = Session::start(
            socket,
            offer,
            [signalling],
            self.library.clone(),
            lease,
            slot,
        );
        Ok((session, answer))
    }

    fn take_slot(&self) -> Result<SessionSlot, MediaError> {
        let n = self.sessions.fetch_add(1, Ordering::Relaxed);
        let slot = SessionSlot {
            count: self.sessions.clone(),
            _gauge: crate::metrics::Held::media_session(),
        };
        if n >= self.max_sessions {
            return Err(MediaError::Busy);
        }
        Ok(slot)
    }

    /// Binds the next free port that the system lets us have (another
    /// program, or another router in the same test process, may hold
    /// some); a port that fails goes to the back of the queue.
    async fn bind(&self, ip: IpAddr) -> Result<(tokio::net::UdpSocket, PortLease), MediaError> {
        let tries = self.pool.free.lock().len().min(64);
        for _ in 0..tries {
            let Some(port) = self.pool.free.lock().pop_front() else {
                break;
            };
            match tokio::net::UdpSocket::bind(SocketAddr::new(ip, port)).await {
                Ok(socket) => {
                    let lease = PortLease {
                        pool: self.pool.clone(),
                        port,
                        _gauge: crate::metrics::Held::rtp_port(),
                    };
                    return Ok((socket, lease));
                }
                Err(_) => self.pool.free.lock().push_back(port),
            }
        }
        Err(MediaError::NoPort)
    }
}
