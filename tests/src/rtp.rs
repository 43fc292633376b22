//! The media side of a test phone: an RTP socket on loopback that offers
//! PCMU (or PCMA) and telephone-event, records the packets the router sends,
//! and sends RFC 4733 key presses back. Packets are written and read with
//! `rtp-types`, the SDP answer with `sdp-types`.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

/// The telephone-event payload type this phone offers.
pub const TELEPHONE_EVENT: u8 = 101;

/// One packet received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Marker bit.
    pub marker: bool,
    /// Payload bytes.
    pub payload_len: usize,
    /// When it arrived.
    pub at: Instant,
}

/// An RTP endpoint on 127.0.0.1.
pub struct RtpPeer {
    sock: UdpSocket,
    /// Where it receives.
    pub local: SocketAddr,
    seq: u16,
    timestamp: u32,
}

impl RtpPeer {
    /// Binds a free port.
    pub async fn bind() -> RtpPeer {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local = sock.local_addr().unwrap();
        RtpPeer {
            sock,
            local,
            seq: 1,
            timestamp: 8000,
        }
    }

    /// An offer of PCMA, PCMU and telephone-event at this port.
    pub fn offer(&self) -> String {
        self.offer_formats("8 0 101")
    }

    /// An offer with these payload types (101 is telephone-event).
    pub fn offer_formats(&self, formats: &str) -> String {
        format!(
            "v=0\r\no=- 7 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP {formats}\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n",
            port = self.local.port()
        )
    }

    /// Packets until none came for `quiet` (waiting at most `first` for the
    /// first one, and `max` in all).
    pub async fn listen(&self, first: Duration, quiet: Duration, max: Duration) -> Vec<Received> {
        let mut out = Vec::new();
        let end = Instant::now() + max;
        let mut buf = [0u8; 2048];
        loop {
            let wait = if out.is_empty() { first } else { quiet };
            let wait = wait.min(end.saturating_duration_since(Instant::now()));
            let Ok(Ok((n, _))) = tokio::time::timeout(wait, self.sock.recv_from(&mut buf)).await
            else {
                return out;
            };
            let at = Instant::now();
            if let Ok(p) = rtp_types::RtpPacket::parse(&buf[..n]) {
                out.push(Received {
                    payload_type: p.payload_type(),
                    seq: p.sequence_number(),
                    timestamp: p.timestamp(),
                    marker: p.marker_bit(),
                    payload_len: p.payload_len(),
                    at,
                });
            }
        }
    }

    /// Presses keys as RFC 4733 events: per key three packets with the
    /// same timestamp and growing durations, then three end packets, 20 ms
    /// apart, as desk phones do.
    pub async fn press(&mut self, to: SocketAddr, keys: &str) {
        for k in keys.chars() {
            let event = match k {
                '0'..='9' => k as u8 - b'0',
                '*' => 10,
                '#' => 11,
                _ => panic!("not a key: {k}"),
            };
            for i in 0..6u16 {
                let end = i >= 3;
                let duration = 160 * (i + 1);
                let payload = [
                    event,
                    if end { 0x80 | 10 } else { 10 },
                    (duration >> 8) as u8,
                    duration as u8,
                ];
                let packet = rtp_types::RtpPacketBuilder::<&[u8], &[u8]>::new()
                    .payload_type(TELEPHONE_EVENT)
                    .sequence_number(self.seq)
                    .timestamp(self.timestamp)
                    .ssrc(0x1234_5678)
                    .marker_bit(i == 0)
                    .payload(payload.as_slice())
                    .write_vec()
                    .unwrap();
                self.seq = self.seq.wrapping_add(1);
                self.sock.send_to(&packet, to).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            self.timestamp = self.timestamp.wrapping_add(1600);
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    }
}

/// Where an SDP answer receives audio.
pub fn answer_address(sdp: &str) -> SocketAddr {
    let s = sdp_types::Session::parse(sdp.as_bytes()).expect("an SDP answer");
    let m = s
        .medias
        .iter()
        .find(|m| m.media == "audio")
        .expect("an audio stream");
    let c = m
        .connections
        .first()
        .or(s.connection.as_ref())
        .expect("a c= line");
    SocketAddr::new(c.connection_address.parse().unwrap(), m.port)
}

/// A WAV file of a 440 Hz tone: `rate` Hz, mono, 16-bit, `ms` long.
pub fn tone_wav(rate: u32, ms: u32) -> Vec<u8> {
    let samples = rate * ms / 1000;
    let data_len = samples * 2;
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        let t = f64::from(i) / f64::from(rate);
        let v = (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16;
        wav.extend_from_slice(&v.to_le_bytes());
    }
    wav
}
