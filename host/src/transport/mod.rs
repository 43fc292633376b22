//! UDP and TCP on one address, TLS on another ([`tls`]). Every parsed
//! message goes to a [`Handler`];
//! bytes that do not parse get a 400 when a response can be built from them
//! and are dropped otherwise, and the listener keeps serving either way.

pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use dashmap::DashMap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use crate::sip::codec::{self, ParseError};
use crate::sip::{Peer, Proto, SipMessage};

/// Receives every message the transport parses.
pub trait Handler: Send + Sync + 'static {
    /// Called on the receiving task: must not block.
    fn on_message(&self, msg: SipMessage, from: Peer);

    /// Whether something upstream still needs this connection (a phone
    /// registered over it), so an idle connection must stay open.
    fn holds_flow(&self, _peer: Peer) -> bool {
        false
    }
}

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Socket error.
    #[error("send to {peer}: {source}")]
    Io {
        /// Destination.
        peer: Peer,
        /// Cause.
        source: std::io::Error,
    },
    /// No TCP connection could be made in time.
    #[error("connect to {0} timed out")]
    ConnectTimeout(Peer),
    /// The connection's queue is full or closed.
    #[error("connection to {0} is closed or congested")]
    Closed(Peer),
}

const TCP_QUEUE: usize = 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Bounds on TCP peers (see [`crate::config::TcpLimits`]).
#[derive(Debug, Clone, Copy)]
pub struct TcpPolicy {
    /// Connections at once, all peers.
    pub max_connections: usize,
    /// Connections at once from one IP.
    pub max_per_source: usize,
    /// Idle connections without a registration flow close after this.
    pub idle: Duration,
    /// Time allowed from a message's first byte to its last.
    pub message: Duration,
}

impl From<&crate::config::TcpLimits> for TcpPolicy {
    fn from(l: &crate::config::TcpLimits) -> Self {
        TcpPolicy {
            max_connections: l.max_connections.max(1),
            max_per_source: l.max_per_source.max(1),
            idle: Duration::from_secs(l.idle_secs.max(1)),
            message: Duration::from_secs(l.message_secs.max(1)),
        }
    }
}

/// Counts of open connections, in total and per source IP. A [`ConnSlot`]
/// is taken before a connection is served and given back when it drops,
/// whichever way the connection ends.
#[derive(Debug, Default)]
struct ConnCounts {
    total: std::sync::atomic::AtomicUsize,
    per_ip: DashMap<std::net::IpAddr, usize>,
}

/// One counted connection, from the accept (or connect) on; dropping it
/// releases the count and forgets the connection.
#[derive(Debug)]
struct ConnSlot {
    transport: std::sync::Weak<Transport>,
    addr: SocketAddr,
    /// Its sending side once it serves messages.
    tx: Option<mpsc::Sender<Bytes>>,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let Some(t) = self.transport.upgrade() else {
            return;
        };
        if let Some(tx) = &self.tx {
            t.conns.remove_if(&self.addr, |_, v| v.same_channel(tx));
        }
        t.counts
            .total
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        let ip = source_key(self.addr.ip());
        if let Some(mut n) = t.counts.per_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
        }
        t.counts.per_ip.remove_if(&ip, |_, n| *n == 0);
    }
}

/// The router's sockets.
#[derive(Debug)]
pub struct Transport {
    udp: Arc<UdpSocket>,
    tcp: TcpListenerSlot,
    local: SocketAddr,
    /// UDP and TCP on IPv6, when configured.
    v6: Option<V6Side>,
    /// The TLS listener and configuration, when TLS is on.
    tls: Option<TlsSide>,
    conns: DashMap<SocketAddr, mpsc::Sender<Bytes>>,
    counts: ConnCounts,
    policy: TcpPolicy,
    handler: std::sync::OnceLock<Arc<dyn Handler>>,
    tasks: parking_lot::Mutex<Vec<tokio::task::AbortHandle>>,
}

impl std::fmt::Debug for dyn Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handler")
    }
}

#[derive(Debug)]
struct TcpListenerSlot(parking_lot::Mutex<Option<TcpListener>>);

#[derive(Debug)]
struct V6Side {
    udp: Arc<UdpSocket>,
    tcp: TcpListenerSlot,
    local: SocketAddr,
}

#[derive(Debug)]
struct TlsSide {
    listener: TcpListenerSlot,
    local: SocketAddr,
    config: tls::Tls,
    /// Host names that TLS destinations were resolved from, so their
    /// certificates are checked against the name, not the address.
    names: DashMap<SocketAddr, String>,
}

impl Transport {
    /// Binds UDP and TCP on `addr` (port 0 picks a free port, the same for
    /// both), UDP and TCP on the IPv6 `addr6` as well when given, and TLS
    /// on `tls`'s address when given.
    pub async fn bind(
        addr: SocketAddr,
        addr6: Option<SocketAddr>,
        policy: TcpPolicy,
        tls: Option<(SocketAddr, tls::Tls)>,
    ) -> std::io::Result<Arc<Transport>> {
        let mut v6 = match addr6 {
            Some(a) => Some(bind_v6(a)?),
            None => None,
        };
        let tls = match tls {
            Some((tls_addr, config)) => {
                let listener = TcpListener::bind(tls_addr).await?;
                Some(TlsSide {
                    local: listener.local_addr()?,
                    listener: TcpListenerSlot(parking_lot::Mutex::new(Some(listener))),
                    config,
                    names: DashMap::new(),
                })
            }
            None => None,
        };
        let mut tls = tls;
        // With port 0, retry until one port is free on both protocols.
        for _ in 0..16 {
            let udp = bind_udp(addr)?;
            let local = udp.local_addr()?;
            match TcpListener::bind(local).await {
                Ok(tcp) => {
                    return Ok(Arc::new(Transport {
                        udp: Arc::new(udp),
                        tcp: TcpListenerSlot(parking_lot::Mutex::new(Some(tcp))),
                        local,
                        v6: v6.take(),
                        tls: tls.take(),
                        conns: DashMap::new(),
                        counts: ConnCounts::default(),
                        policy,
                        handler: std::sync::OnceLock::new(),
                        tasks: parking_lot::Mutex::new(Vec::new()),
                    }));
                }
                Err(e) if addr.port() != 0 => return Err(e),
                Err(_) => continue,
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "no port free on both UDP and TCP",
        ))
    }

    /// The bound address (both protocols).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The IPv6 address (both protocols), when IPv6 is on.
    pub fn local_addr_v6(&self) -> Option<SocketAddr> {
        self.v6.as_ref().map(|v| v.local)
    }

    /// The UDP socket that reaches `addr`: the IPv6 one for an IPv6
    /// address, when there is one.
    fn udp_for(&self, addr: SocketAddr) -> &Arc<UdpSocket> {
        match &self.v6 {
            Some(v6) if canonical(addr).is_ipv6() => &v6.udp,
            _ => &self.udp,
        }
    }

    /// The TLS address, when TLS is on.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().map(|t| t.local)
    }

    /// Remembers the host name a TLS destination was resolved from.
    pub fn note_tls_name(&self, addr: SocketAddr, host: &str) {
        if let Some(t) = &self.tls {
            if t.names.len() > 10_000 {
                t.names.clear();
            }
            t.names.insert(addr, host.to_owned());
        }
    }

    /// Whether a TCP or TLS connection to `addr` is open.
    pub fn has_connection(&self, addr: SocketAddr) -> bool {
        self.conns.contains_key(&addr)
    }

    /// TCP and TLS connections open now (accepted and opened by us).
    pub fn connection_count(&self) -> usize {
        self.counts.total.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Takes a connection slot for `addr`, or says which cap is reached.
    /// Connections we open count in the total only: the per-source cap is
    /// about what others make us hold.
    fn admit(self: &Arc<Self>, addr: SocketAddr, inbound: bool) -> Result<ConnSlot, &'static str> {
        use std::sync::atomic::Ordering;
        let total = self.counts.total.fetch_add(1, Ordering::Relaxed);
        if total >= self.policy.max_connections {
            self.counts.total.fetch_sub(1, Ordering::Relaxed);
            return Err("total TCP connection limit reached");
        }
        let source = source_key(addr.ip());
        let mut n = self.counts.per_ip.entry(source).or_insert(0);
        if inbound && *n >= self.policy.max_per_source {
            drop(n);
            self.counts.total.fetch_sub(1, Ordering::Relaxed);
            self.counts.per_ip.remove_if(&source, |_, n| *n == 0);
            return Err("per-source TCP connection limit reached");
        }
        *n += 1;
        Ok(ConnSlot {
            transport: Arc::downgrade(self),
            addr,
            tx: None,
        })
    }

    /// Starts the receive loops.
    pub fn start(self: &Arc<Self>, handler: Arc<dyn Handler>) {
        let _ = self.handler.set(handler.clone());
        let mut tasks = self.tasks.lock();
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(1, 4);
        let mut sockets = vec![self.udp.clone()];
        sockets.extend(self.v6.as_ref().map(|v| v.udp.clone()));
        for sock in sockets {
            for _ in 0..workers {
                let me = self.clone();
                let h = handler.clone();
                let sock = sock.clone();
                tasks.push(tokio::spawn(async move { me.udp_loop(sock, h).await }).abort_handle());
            }
        }
        if let Some(listener) = self.v6.as_ref().and_then(|v| v.tcp.0.lock().take()) {
            let me = self.clone();
            let h = handler.clone();
            tasks.push(
                tokio::spawn(async move { me.accept_loop(listener, h, false).await })
                    .abort_handle(),
            );
        }
        if let Some(listener) = self.tcp.0.lock().take() {
            let me = self.clone();
            let h = handler.clone();
            tasks.push(
                tokio::spawn(async move { me.accept_loop(listener, h, false).await })
                    .abort_handle(),
            );
        }
        if let Some(t) = &self.tls {
            if let Some(listener) = t.listener.0.lock().take() {
                let me = self.clone();
                tasks.push(
                    tokio::spawn(async move { me.accept_loop(listener, handler, true).await })
                        .abort_handle(),
                );
            }
            tasks.push(t.config.watch().abort_handle());
        }
    }

    /// Stops receiving; connections drain and close.
    pub fn shutdown(&self) {
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
        self.conns.clear();
    }

    async fn udp_loop(self: Arc<Self>, sock: Arc<UdpSocket>, handler: Arc<dyn Handler>) {
        let mut buf = vec![0u8; codec::MAX_MESSAGE + 1];
        loop {
            let (n, from) = match sock.recv_from(&mut buf).await {
                Ok(x) => x,
                Err(e) => {
                    // ICMP errors from earlier sends surface here on Linux.
                    tracing::trace!(error = %e, "udp recv");
                    continue;
                }
            };
            let peer = Peer {
                proto: Proto::Udp,
                addr: from,
            };
            let data = &buf[..n];
            if codec::keepalive_prefix(data) == n {
                continue; // CRLF keep-alive
            }
            match codec::parse_datagram(data) {
                Ok(msg) => handler.on_message(msg, peer),
                Err(e) => self.reject(data, &e, peer),
            }
        }
    }

    fn reject(self: &Arc<Self>, data: &[u8], err: &ParseError, peer: Peer) {
        crate::metrics::count_malformed();
        tracing::debug!(%peer, error = %err, "malformed SIP message");
        if let Some(reply) = codec::bad_request_reply(data, err) {
            self.send(peer, reply);
        }
    }

    async fn accept_loop(
        self: Arc<Self>,
        listener: TcpListener,
        handler: Arc<dyn Handler>,
        tls: bool,
    ) {
        loop {
            match listener.accept().await {
                Ok((stream, addr)) => {
                    let slot = match self.admit(addr, true) {
                        Ok(slot) => slot,
                        Err(why) => {
                            // Dropping the stream closes it at once.
                            tracing::warn!(%addr, limit = why, "tcp connection refused");
                            crate::metrics::count_tcp_refused();
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    if !tls {
                        let (rd, wr) = stream.into_split();
                        self.clone()
                            .adopt(rd, wr, slot, Proto::Tcp, handler.clone());
                        continue;
                    }
                    let Some(side) = &self.tls else {
                        continue;
                    };
                    // The handshake runs on its own task, bounded like a
                    // message, holding the connection's slot.
                    let acceptor = side.config.acceptor.clone();
                    let (me, h, limit) = (self.clone(), handler.clone(), self.policy.message);
                    tokio::spawn(async move {
                        match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => {
                                let (rd, wr) = tokio::io::split(stream);
                                me.adopt(rd, wr, slot, Proto::Tls, h);
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%addr, error = %e, "tls handshake failed")
                            }
                            Err(_) => tracing::info!(%addr, "tls handshake not completed in time"),
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "tcp accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Registers a connection (its slot already taken) and starts its
    /// reader and writer. The reader owns the slot: every way it ends
    /// (peer closed, idle, slow message, bad framing, panic) drops the slot,
    /// which forgets the connection, and with the last sender gone the
    /// writer ends and the socket closes.
    fn adopt<R, W>(
        self: Arc<Self>,
        mut rd: R,
        mut wr: W,
        mut slot: ConnSlot,
        proto: Proto,
        handler: Arc<dyn Handler>,
    ) -> mpsc::Sender<Bytes>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let addr = slot.addr;
        let (tx, mut rx) = mpsc::channel::<Bytes>(TCP_QUEUE);
        self.conns.insert(addr, tx.clone());
        slot.tx = Some(tx.clone());
        let peer = Peer { proto, addr };
        let write_limit = self.policy.message;
        tokio::spawn(async move {
            // A peer that stops reading must not hold this task and its
            // socket forever: each write gets as long as a message may take.
            while let Some(b) = rx.recv().await {
                match tokio::time::timeout(write_limit, wr.write_all(&b)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) | Err(_) => break,
                }
            }
        });
        let policy = self.policy;
        let me = self;
        tokio::spawn(async move {
            let _slot = slot;
            let mut buf = BytesMut::with_capacity(8192);
            // When the first byte of an unfinished message arrived.
            let mut started: Option<tokio::time::Instant> = None;
            loop {
                let wait = match started {
                    Some(t) => policy.message.saturating_sub(t.elapsed()),
                    None => policy.idle,
                };
                match tokio::time::timeout(wait, rd.read_buf(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return,
                    Ok(Ok(_)) => {}
                    Err(_) if started.is_some() => {
                        tracing::info!(%peer, "tcp message not completed in time; closing");
                        crate::metrics::count_malformed();
                        return;
                    }
                    Err(_) => {
                        if handler.holds_flow(peer) {
                            continue;
                        }
                        tracing::debug!(%peer, "idle tcp connection closed");
                        return;
                    }
                }
                loop {
                    match codec::parse_stream(&buf) {
                        Ok((msg, used)) => {
                            let _ = buf.split_to(used);
                            started = None;
                            handler.on_message(msg, peer);
                        }
                        Err(ParseError::Incomplete) => {
                            let skip = codec::keepalive_prefix(&buf);
                            let _ = buf.split_to(skip);
                            if buf.is_empty() {
                                started = None;
                            } else if started.is_none() {
                                started = Some(tokio::time::Instant::now());
                            }
                            break;
                        }
                        Err(e) => {
                            // A stream cannot be resynchronised after bad framing.
                            me.reject(&buf, &e, peer);
                            buf.clear();
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            return;
                        }
                    }
                }
            }
        });
        tx
    }

    /// Sends without waiting: UDP directly, TCP on an existing connection
    /// (or a new one, connected in the background). Failures are logged.
    pub fn send(self: &Arc<Self>, peer: Peer, bytes: Bytes) {
        crate::metrics::count_sent(&bytes);
        match peer.proto {
            Proto::Udp => match self
                .udp_for(peer.addr)
                .try_send_to(&bytes, canonical(peer.addr))
            {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let udp = self.udp_for(peer.addr).clone();
                    tokio::spawn(async move {
                        let _ = udp.send_to(&bytes, canonical(peer.addr)).await;
                    });
                }
                Err(e) => tracing::debug!(%peer, error = %e, "udp send"),
            },
            Proto::Tcp | Proto::Tls => {
                if let Some(tx) = self.conns.get(&peer.addr).map(|c| c.clone()) {
                    if tx.try_send(bytes).is_err() {
                        tracing::debug!(%peer, "tcp queue full or closed");
                    }
                    return;
                }
                let me = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = me.send_async(peer, bytes).await {
                        tracing::debug!(error = %e, "tcp send");
                    }
                });
            }
        }
    }

    /// Sends, connecting first when a TCP peer has no connection; the error
    /// tells the transaction layer that the destination is unreachable.
    pub async fn send_async(self: &Arc<Self>, peer: Peer, bytes: Bytes) -> Result<(), SendError> {
        match peer.proto {
            Proto::Udp => {
                crate::metrics::count_sent(&bytes);
                self.udp_for(peer.addr)
                    .send_to(&bytes, canonical(peer.addr))
                    .await
                    .map(|_| ())
                    .map_err(|source| SendError::Io { peer, source })
            }
            Proto::Tcp | Proto::Tls => {
                let existing = self.conns.get(&peer.addr).map(|c| c.clone());
                let tx = match existing {
                    Some(tx) => tx,
                    None => self.connect(peer).await?,
                };
                crate::metrics::count_sent(&bytes);
                tx.try_send(bytes).map_err(|_| SendError::Closed(peer))
            }
        }
    }

    /// Opens a connection to `peer` (TLS: verified against the roots and
    /// the name it was resolved from) and serves it like an accepted one.
    async fn connect(self: &Arc<Self>, peer: Peer) -> Result<mpsc::Sender<Bytes>, SendError> {
        let handler = self.handler_for_outbound()?;
        let slot = self.admit(peer.addr, false).map_err(|why| {
            tracing::warn!(%peer, limit = why, "tcp connection not opened");
            SendError::Closed(peer)
        })?;
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(peer.addr))
            .await
            .map_err(|_| SendError::ConnectTimeout(peer))?
            .map_err(|source| SendError::Io { peer, source })?;
        let _ = stream.set_nodelay(true);
        if peer.proto == Proto::Tcp {
            let (rd, wr) = stream.into_split();
            return Ok(self.clone().adopt(rd, wr, slot, Proto::Tcp, handler));
        }
        let Some(side) = &self.tls else {
            tracing::warn!(%peer, "TLS destination but TLS is not configured");
            return Err(SendError::Closed(peer));
        };
        let name = side.names.get(&peer.addr).map(|n| n.clone());
        let server_name = tls::server_name(name.as_deref(), peer.addr);
        let stream = tokio::time::timeout(
            CONNECT_TIMEOUT,
            side.config.connector.connect(server_name, stream),
        )
        .await
        .map_err(|_| SendError::ConnectTimeout(peer))?
        .map_err(|source| SendError::Io { peer, source })?;
        let (rd, wr) = tokio::io::split(stream);
        Ok(self.clone().adopt(rd, wr, slot, Proto::Tls, handler))
    }

    fn handler_for_outbound(&self) -> Result<Arc<dyn Handler>, SendError> {
        // Connections we open deliver to the same handler as accepted ones.
        self.handler.get().cloned().ok_or(SendError::Closed(Peer {
            proto: Proto::Tcp,
            addr: self.local,
        }))
    }
}

/// `[::ffff:10.0.0.5]:5060` is `10.0.0.5:5060`: an IPv4 peer, reached
/// from the IPv4 socket.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// What the per-source connection cap counts by: an IPv4 address, or an
/// IPv6 /64 (one host is usually given a whole /64 and can pick any address
/// in it).
fn source_key(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip.to_canonical() {
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            std::net::IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// Binds UDP and TCP on the IPv6 `addr` (IPv6 only, so `[::]` and
/// `0.0.0.0` can share a port and IPv4 peers never appear as mapped
/// addresses); port 0 picks one free on both.
fn bind_v6(addr: SocketAddr) -> std::io::Result<V6Side> {
    use socket2::{Domain, Protocol, Socket, Type};
    for _ in 0..16 {
        let udp = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
        udp.set_only_v6(true)?;
        let _ = udp.set_recv_buffer_size(8 * 1024 * 1024);
        let _ = udp.set_send_buffer_size(8 * 1024 * 1024);
        udp.set_nonblocking(true)?;
        udp.bind(&addr.into())?;
        let udp = UdpSocket::from_std(udp.into())?;
        let local = udp.local_addr()?;
        let tcp = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))?;
        tcp.set_only_v6(true)?;
        tcp.set_reuse_address(true)?;
        tcp.set_nonblocking(true)?;
        match tcp.bind(&local.into()) {
            Ok(()) => {
                tcp.listen(1024)?;
                return Ok(V6Side {
                    udp: Arc::new(udp),
                    tcp: TcpListenerSlot(parking_lot::Mutex::new(Some(TcpListener::from_std(
                        tcp.into(),
                    )?))),
                    local,
                });
            }
            Err(e) if addr.port() != 0 => return Err(e),
            Err(_) => continue,
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no IPv6 port free on both UDP and TCP",
    ))
}

/// Binds UDP with large socket buffers: a burst of thousands of
/// datagrams must wait in the kernel, not be dropped, while workers parse.
fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = socket.set_recv_buffer_size(8 * 1024 * 1024);
    let _ = socket.set_send_buffer_size(8 * 1024 * 1024);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}
