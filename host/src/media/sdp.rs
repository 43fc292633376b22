//! The offer a caller's INVITE carries and the answer the router gives
//! (RFC 3264), for the one audio stream of a voice feature call. Parsing
//! and writing are `sdp-types`'; this module only chooses.

use std::net::{IpAddr, SocketAddr};

use super::MediaError;

/// The audio codecs the router speaks, by RTP payload type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// G.711 u-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
}

impl Codec {
    /// Its RTP payload type.
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }
}

/// What the router takes from an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Where the caller receives RTP.
    pub remote: SocketAddr,
    /// The codec chosen: the first of PCMU and PCMA in the offer's order.
    pub codec: Codec,
    /// The payload type of `telephone-event/8000` (RFC 4733), if offered.
    pub telephone_event: Option<u8>,
}

/// Bodies longer than this are not read as SDP (a phone's offer is a few
/// hundred bytes).
const MAX_SDP: usize = 8 * 1024;

/// Reads an offer: the first audio stream over RTP/AVP with a port, its
/// address, and the codecs in it the router can speak.
pub fn parse_offer(body: &[u8]) -> Result<Offer, MediaError> {
    if body.is_empty() {
        return Err(MediaError::NoOffer);
    }
    if body.len() > MAX_SDP {
        return Err(MediaError::BadSdp(format!("over {MAX_SDP} bytes")));
    }
    let session = sdp_types::Session::parse(body).map_err(|e| MediaError::BadSdp(e.to_string()))?;
    let audio = session
        .medias
        .iter()
        .find(|m| m.media == "audio" && m.port != 0 && m.proto.starts_with("RTP/AVP"))
        .ok_or(MediaError::NoCodec)?;
    let connection = audio
        .connections
        .first()
        .or(session.connection.as_ref())
        .ok_or_else(|| MediaError::BadSdp("no c= line for the audio stream".into()))?;
    let ip: IpAddr = connection
        .connection_address
        .split('/')
        .next()
        .unwrap_or_default()
        .parse()
        .map_err(|_| {
            MediaError::BadSdp(format!(
                "c= address `{}` is not an IP address",
                connection.connection_address
            ))
        })?;
    let formats: Vec<u8> = audio
        .fmt
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // The caller's order is its preference (RFC 3264 6.1).
    let codec = formats
        .iter()
        .find_map(|f| match f {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        })
        .ok_or(MediaError::NoCodec)?;
    let telephone_event = audio
        .attributes_typed::<sdp_types::RtpMap>()
        .filter_map(Result::ok)
        .find(|m| {
            m.encoding_name.eq_ignore_ascii_case("telephone-event")
                && m.clock_rate == 8000
                && formats.contains(&m.payload_type)
        })
        .map(|m| m.payload_type);
    Ok(Offer {
        remote: SocketAddr::new(ip, audio.port),
        codec,
        telephone_event,
    })
}

/// The answer: one audio stream at `local`, the chosen codec and, when the
/// caller offered it, telephone-event with the caller's payload type.
pub fn answer(offer: &Offer, local: SocketAddr, session_id: u64) -> String {
    let ip = local.ip();
    let mut origin = sdp_types::Origin::with_ip_addr(session_id.to_string(), 1, ip);
    origin.set_username("switchboard");
    let mut fmt = offer.codec.payload_type().to_string();
    if let Some(te) = offer.telephone_event {
        fmt.push_str(&format!(" {te}"));
    }
    let mut media = sdp_types::Media::new(
        sdp_types::MediaType::Audio,
        local.port(),
        sdp_types::TransportProto::RtpAvp,
        fmt,
    );
    media.add_attribute(sdp_types::RtpMap::new(
        offer.codec.payload_type(),
        offer.codec.name(),
        8000,
    ));
    if let Some(te) = offer.telephone_event {
        media.add_attribute(sdp_types::RtpMap::new(te, "telephone-event", 8000));
        media.add_attribute_with_value("fmtp", format!("{te} 0-15"));
    }
    media.add_attribute_with_value("ptime", "20");
    media.add_attribute_from_str("sendrecv");
    let mut session = sdp_types::Session::new(origin, "switchboard");
    session.set_connection(sdp_types::Connection::from_ip_addr(ip));
    session.add_time(sdp_types::Time::new(0, 0));
    session.add_media(media);
    session.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 9 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n";

    #[test]
    fn the_callers_first_g711_codec_is_chosen_and_telephone_event_kept() {
        let o = parse_offer(OFFER.as_bytes()).unwrap();
        assert_eq!(o.remote, "127.0.0.1:40000".parse().unwrap());
        assert_eq!(o.codec, Codec::Pcma);
        let pcmu_first = OFFER.replace("9 8 0 101", "0 8 101");
        assert_eq!(
            parse_offer(pcmu_first.as_bytes()).unwrap().codec,
            Codec::Pcmu
        );
        assert_eq!(o.telephone_event, Some(101));
    }

    #[test]
    fn an_offer_without_g711_is_refused() {
        let offer = OFFER.replace("9 8 0 101", "9 101");
        assert!(matches!(
            parse_offer(offer.as_bytes()),
            Err(MediaError::NoCodec)
        ));
    }

    #[test]
    fn no_body_is_no_offer() {
        assert!(matches!(parse_offer(b""), Err(MediaError::NoOffer)));
    }

    #[test]
    fn garbage_is_bad_sdp() {
        assert!(matches!(parse_offer(b"hello"), Err(MediaError::BadSdp(_))));
    }

    #[test]
    fn the_answer_names_our_port_the_codec_and_telephone_event() {
        let o = parse_offer(OFFER.as_bytes()).unwrap();
        let a = answer(&o, "127.0.0.1:20002".parse().unwrap(), 7);
        assert!(a.contains("m=audio 20002 RTP/AVP 8 101"), "{a}");
        assert!(a.contains("a=rtpmap:8 PCMA/8000"), "{a}");
        assert!(a.contains("a=rtpmap:101 telephone-event/8000"), "{a}");
        assert!(a.contains("c=IN IP4 127.0.0.1"), "{a}");
        let back = parse_offer(a.as_bytes()).unwrap();
        assert_eq!(back.remote.port(), 20002);
    }
}
