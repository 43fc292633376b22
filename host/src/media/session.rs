//! One voice call's audio: prompts out as 20 ms G.711 packets on the RTP
//! clock, digits in from the caller's RTP events (a receive task this
//! session owns and stops when it drops) and from SIP INFO.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use super::prompts::{Library, Samples};
use super::sdp::{Codec, Offer};
use super::{dtmf, g711, PortLease, SessionSlot};
use crate::pipeline::{EntryEnd, Prompt};

/// Samples per packet: 20 ms at 8 kHz.
const FRAME: usize = 160;
const PTIME: Duration = Duration::from_millis(20);
/// Digits queued and not yet read, at most (more are dropped: nobody
/// types faster than a prompt can be answered).
const DIGIT_QUEUE: usize = 32;
/// Silence between the digits of a number read out.
const DIGIT_GAP: usize = 800;

/// How a prompt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spoken {
    /// Played to the end.
    Finished,
    /// The caller pressed this key during it (it stopped there).
    Interrupted(char),
}

/// One voice call's media.
#[derive(Debug)]
pub struct Session {
    socket: Arc<UdpSocket>,
    remote: Arc<Mutex<SocketAddr>>,
    codec: Codec,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    marker: bool,
    digits: mpsc::Receiver<char>,
    digits_in: mpsc::Sender<char>,
    receiver: tokio::task::JoinHandle<()>,
    library: Arc<Library>,
    overrides: super::prompts::Overrides,
    local_port: u16,
    _lease: PortLease,
    _slot: SessionSlot,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}

/// Pieces of audio, played in order.
enum Piece {
    Samples(Samples),
    Silence(usize),
}

impl Session {
    pub(super) fn start(
        socket: UdpSocket,
        offer: Offer,
        also_from: [IpAddr; 1],
        library: Arc<Library>,
        lease: PortLease,
        slot: SessionSlot,
    ) -> Session {
        let socket = Arc::new(socket);
        let remote = Arc::new(Mutex::new(offer.remote));
        let (digits_in, digits) = mpsc::channel(DIGIT_QUEUE);
        let allowed = [offer.remote.ip(), also_from[0]];
        let receiver = tokio::spawn(receive(
            socket.clone(),
            remote.clone(),
            allowed,
            offer.telephone_event,
            digits_in.clone(),
        ));
        let local_port = lease.port;
        Session {
            socket,
            remote,
            codec: offer.codec,
            ssrc: rand::random(),
            seq: rand::random(),
            timestamp: rand::random(),
            marker: true,
            digits,
            digits_in,
            receiver,
            library,
            overrides: Default::default(),
            local_port,
            _lease: lease,
            _slot: slot,
        }
    }

    /// Uses the tenant's own recordings where it has them.
    pub fn use_recordings(&mut self, overrides: super::prompts::Overrides) {
        self.overrides = overrides;
    }

    fn recording(&self, name: &str) -> Option<Samples> {
        self.overrides
            .get(name)
            .cloned()
            .or_else(|| self.library.get(name))
    }

    /// The local RTP port.
    pub fn port(&self) -> u16 {
        self.local_port
    }

    /// Where digits from SIP INFO are handed in.
    pub fn digit_input(&self) -> mpsc::Sender<char> {
        self.digits_in.clone()
    }

    /// Forgets digits pressed before now (a new question starts clean).
    pub fn clear_digits(&mut self) {
        while self.digits.try_recv().is_ok() {}
    }

    /// Says the prompts. With `barge_in`, a key pressed meanwhile stops
    /// them and is returned, for the entry that follows.
    pub async fn say(&mut self, prompts: &[Prompt], barge_in: bool) -> Spoken {
        let pieces = self.pieces(prompts);
        let mut samples =
            pieces
                .iter()
                .flat_map(|p| -> Box<dyn Iterator<Item = i16> + Send + '_> {
                    match p {
                        Piece::Samples(s) => Box::new(s.iter().copied()),
                        Piece::Silence(n) => Box::new(std::iter::repeat_n(0, *n)),
                    }
                });
        let mut tick = tokio::time::interval(PTIME);
        tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let mut packet = Vec::with_capacity(12 + FRAME);
        let mut due: Option<Instant> = None;
        loop {
            let mut frame = [0i16; FRAME];
            let mut filled = 0;
            for (slot, v) in frame.iter_mut().zip(&mut samples) {
                *slot = v;
                filled += 1;
            }
            if filled == 0 {
                return Spoken::Finished;
            }
            if barge_in {
                if let Ok(d) = self.digits.try_recv() {
                    return Spoken::Interrupted(d);
                }
            }
            tick.tick().await;
            // How far this packet strays from its place on the 20 ms clock
            // that started with the first one.
            let now = Instant::now();
            let late = due
                .map(|d| now.saturating_duration_since(d))
                .unwrap_or_default();
            due = Some(due.unwrap_or(now) + PTIME);
            if !self.send_frame(&frame, &mut packet, late).await {
                return Spoken::Finished;
            }
        }
    }

    /// Collects an entry: digits until `max` came, `#` (when it ends the
    /// entry) or `timeout` passed since the last one. `first` is a key that
    /// interrupted the prompt.
    pub async fn collect(
        &mut self,
        first: Option<char>,
        max: u8,
        hash_ends: bool,
        timeout: Duration,
    ) -> (String, EntryEnd) {
        let mut digits = String::new();
        let mut next = first;
        loop {
            let d = match next.take() {
                Some(d) => d,
                None => match tokio::time::timeout(timeout, self.digits.recv()).await {
                    Ok(Some(d)) => d,
                    Ok(None) | Err(_) => return (digits, EntryEnd::Timeout),
                },
            };
            if d == '#' && hash_ends {
                return (digits, EntryEnd::Terminator);
            }
            digits.push(d);
            if digits.len() >= usize::from(max) {
                return (digits, EntryEnd::MaxDigits);
            }
        }
    }

    fn pieces(&self, prompts: &[Prompt]) -> Vec<Piece> {
        let mut out = Vec::new();
        for p in prompts {
            match p {
                Prompt::Recording(name) => {
                    if let Some(s) = self.recording(name) {
                        out.push(Piece::Samples(s));
                    }
                }
                Prompt::Digits(d) => {
                    for c in d.chars() {
                        if let Some(s) = self.recording(&format!("digit-{c}")) {
                            out.push(Piece::Samples(s));
                            out.push(Piece::Silence(DIGIT_GAP));
                        }
                    }
                }
                Prompt::Pause(t) => {
                    out.push(Piece::Silence((t.as_millis() as usize).saturating_mul(8)));
                }
            }
        }
        out
    }

    /// Sends one frame; false when the socket refuses (the caller is gone).
    async fn send_frame(
        &mut self,
        frame: &[i16; FRAME],
        packet: &mut Vec<u8>,
        late: Duration,
    ) -> bool {
        let mut payload = [0u8; FRAME];
        for (o, s) in payload.iter_mut().zip(frame) {
            *o = match self.codec {
                Codec::Pcmu => g711::ulaw(*s),
                Codec::Pcma => g711::alaw(*s),
            };
        }
        packet.clear();
        let built = rtp_types::RtpPacketBuilder::<&[u8], &[u8]>::new()
            .payload_type(self.codec.payload_type())
            .sequence_number(self.seq)
            .timestamp(self.timestamp)
            .ssrc(self.ssrc)
            .marker_bit(self.marker)
            .payload(payload.as_slice())
            .write_into_vec(packet);
        self.marker = false;
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(FRAME as u32);
        if built.is_err() {
            return false;
        }
        let to = *self.remote.lock();
        crate::metrics::count_rtp_sent(late);
        self.socket.send_to(packet, to).await.is_ok()
    }
}

/// Reads the caller's RTP: telephone-events become digits; the first
/// packet from an allowed address fixes where prompts go (symmetric RTP,
/// for phones behind NAT). Packets from any other address are dropped.
async fn receive(
    socket: Arc<UdpSocket>,
    remote: Arc<Mutex<SocketAddr>>,
    allowed: [IpAddr; 2],
    telephone_event: Option<u8>,
    digits: mpsc::Sender<char>,
) {
    let mut buf = [0u8; 2048];
    let mut dedup = dtmf::Dedup::default();
    let mut latched = false;
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(_) => {
                // An ICMP error from an earlier send; keep listening, slowly.
                tokio::time::sleep(PTIME).await;
                continue;
            }
        };
        if !allowed.contains(&from.ip()) {
            continue;
        }
        let Some(data) = buf.get(..n) else { continue };
        let Ok(packet) = rtp_types::RtpPacket::parse(data) else {
            continue;
        };
        if !latched {
            *remote.lock() = from;
            latched = true;
        }
        if Some(packet.payload_type()) != telephone_event {
            continue;
        }
        if let Some(event) = dtmf::parse_event(packet.payload()) {
            if let Some(d) = dedup.digit(packet.timestamp(), event) {
                crate::metrics::count_dtmf_digit();
                let _ = digits.try_send(d);
            }
        }
    }
}
