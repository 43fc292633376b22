//! Mutations of SIP messages for robustness tests: the unit tests' fuzz
//! loops over the parsers and the end-to-end mutation storm share them, so
//! both exercise the same kinds of damage. Deterministic for a given RNG.

use rand::Rng;

/// Fragments that have broken SIP parsers before: escapes, multi-byte
/// characters, unbalanced brackets and quotes, lengths at the limits of
/// their types, folded lines, separators and NULs.
const TOKENS: &[&str] = &[
    "%",
    "%a",
    "%e9",
    "\u{e9}",
    "\u{1F600}",
    "<",
    ">",
    "\"",
    "\\",
    ";",
    ":",
    ",",
    "@",
    "=",
    "\r\n",
    "\n",
    "\r\n ",
    "\r\n\r\n",
    "\0",
    "Content-Length: 18446744073709551615\r\n",
    "Content-Length: -1\r\n",
    "Content-Length: 99999999999999999999999\r\n",
    "Max-Forwards: seventy\r\n",
    "Max-Forwards: 4294967296\r\n",
    "CSeq: 4294967296 INVITE\r\n",
    "Expires: 4294967295\r\n",
    ";q=nan",
    ";expires=-5",
    ";tag=",
    ";branch=",
    "sip:",
    "sips:[::1",
    "tel:+",
    "Via: SIP/2.0/UDP ;branch=z9hG4bK\r\n",
    "Route: <sip:198.51.100.1;lr>\r\n",
    "Contact: *\r\n",
    "Proxy-Authorization: Digest username=\"",
    "nc=ffffffffff, ",
    "4294967295",
    "-1",
];

/// One random mutation of `msg`: flips, deletions, duplications, insertions
/// of [`TOKENS`] and truncations, one to eight of them.
pub fn mutate(rng: &mut impl Rng, msg: &[u8]) -> Vec<u8> {
    let mut out = msg.to_vec();
    for _ in 0..rng.gen_range(1..=8) {
        let len = out.len();
        let at = if len == 0 { 0 } else { rng.gen_range(0..=len) };
        match rng.gen_range(0..6) {
            0 if at < len => out[at] = rng.gen(),
            1 if at < len => {
                let end = (at + rng.gen_range(1..16)).min(len);
                out.drain(at..end);
            }
            2 if at < len => {
                let end = (at + rng.gen_range(1..64)).min(len);
                let copy = out[at..end].to_vec();
                out.splice(at..at, copy);
            }
            3 => {
                let t = TOKENS[rng.gen_range(0..TOKENS.len())].as_bytes();
                out.splice(at..at, t.iter().copied());
            }
            4 => out.truncate(at),
            _ => {
                let t = TOKENS[rng.gen_range(0..TOKENS.len())].as_bytes();
                let end = (at + t.len()).min(len);
                out.splice(at..end, t.iter().copied());
            }
        }
    }
    out
}

/// Well-formed messages to start mutating from, as a router on
/// `router` receiving from `local` would see them.
pub fn seeds(router: &str, local: &str, domain: &str) -> Vec<String> {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    vec![
        format!(
            "REGISTER sip:{domain} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKm1;rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:2001@{domain}>;tag=a\r\nTo: <sip:2001@{domain}>\r\n\
             Call-ID: m1@{local}\r\nCSeq: 1 REGISTER\r\nContact: <sip:2001@{local}>;expires=600;q=0.5\r\n\
             Authorization: Digest username=\"2001\", realm=\"{domain}\", nonce=\"1.2.3\", \
             uri=\"sip:{domain}\", response=\"00\", qop=auth, nc=00000001, cnonce=\"x\"\r\n\
             Content-Length: 0\r\n\r\n"
        ),
        format!(
            "INVITE sip:%23%2320@{domain} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKm2\r\n\
             Max-Forwards: 70\r\nFrom: \"Alice\" <sip:2001@{domain}>;tag=b\r\nTo: <sip:2002@{domain}>\r\n\
             Call-ID: m2@{local}\r\nCSeq: 1 INVITE\r\nContact: <sip:2001@{local}>\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
            sdp.len()
        ),
        format!(
            "BYE sip:2002@{local} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKm3\r\n\
             Route: <sip:{router};lr;sb=0011223344>\r\nMax-Forwards: 70\r\n\
             From: <sip:2001@{domain}>;tag=c\r\nTo: <sip:2002@{domain}>;tag=d\r\n\
             Call-ID: m3@{local}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
        ),
        format!(
            "MESSAGE sip:2002@{domain} SIP/2.0\r\nv: SIP/2.0/UDP {local};branch=z9hG4bKm4, \
             SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKm5\r\nf: <sip:2001@{domain}>;tag=e\r\n\
             t: <sip:2002@{domain}>\r\ni: m4@{local}\r\nCSeq: 1 MESSAGE\r\nSubject: folded\r\n line\r\n\
             c: text/plain\r\nl: 5\r\n\r\nhello"
        ),
        format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {router};branch=z9hG4bKm6\r\n\
             From: <sip:2001@{domain}>;tag=f\r\nTo: <sip:2002@{domain}>;tag=g\r\n\
             Call-ID: m6@{local}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        ),
    ]
}

#[cfg(test)]
mod tests {
    //! Fuzz loops in `cargo test`: a fixed seed and a bounded number of
    //! iterations, so a failure reproduces and the run ends.

    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;
    use crate::sip::{codec, params};

    const ITERATIONS: usize = 20_000;

    fn corpus() -> Vec<String> {
        seeds("192.0.2.1:5060", "127.0.0.1:5062", "demo.test")
    }

    #[test]
    fn framing_never_panics_and_never_reads_past_the_buffer() {
        let mut rng = StdRng::seed_from_u64(0x5eed_0001);
        let corpus = corpus();
        for i in 0..ITERATIONS {
            let seed = corpus[i % corpus.len()].as_bytes();
            let m = mutate(&mut rng, seed);
            let _ = codec::parse_datagram(&m);
            if let Ok((_, used)) = codec::parse_stream(&m) {
                assert!(used <= m.len());
            }
            if let Err(e) = codec::parse_datagram(&m) {
                if let Some(reply) = codec::bad_request_reply(&m, &e) {
                    assert!(reply.len() <= codec::MAX_MESSAGE + 512);
                }
            }
        }
    }

    #[test]
    fn header_and_uri_helpers_never_panic() {
        let mut rng = StdRng::seed_from_u64(0x5eed_0002);
        let values = [
            "\"Alice, A\" <sip:2001@demo.test;transport=tcp>;tag=1;q=0.5",
            "sip:%a\u{e9}@demo.test;user=phone",
            "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1;received=1.2.3.4;rport=5",
            "Digest username=\"2001\", realm=\"demo.test\", nonce=\"a.b.c\", uri=\"sip:x\", response=\"0\"",
            "<sip:192.0.2.1:5060;lr;sb=00112233>, <sip:b@h>",
        ];
        for i in 0..ITERATIONS {
            let m = mutate(&mut rng, values[i % values.len()].as_bytes());
            let v = String::from_utf8_lossy(&m);
            let v = v.as_ref();
            let _ = params::split_list(v);
            let _ = params::header_param(v, "tag");
            let uri = params::uri_of(v);
            let _ = params::uri_user(uri);
            let _ = params::uri_host(uri);
            let _ = params::display_name_of(v);
            let _ = params::is_well_formed_name_addr(v);
            let _ = params::percent_decode(v);
            if let Some(via) = params::ViaFields::parse(v) {
                let _ = via.branch();
            }
            let _ = crate::registrar::Credentials::parse(v);
        }
    }

    #[test]
    fn percent_decoding_never_grows_the_text_and_keeps_it_utf8() {
        let mut rng = StdRng::seed_from_u64(0x5eed_0003);
        for _ in 0..ITERATIONS {
            let m = mutate(&mut rng, "%23%2320%a\u{e9}%zz%".as_bytes());
            let v = String::from_utf8_lossy(&m);
            let d = params::percent_decode(&v);
            // Replacement characters may be longer than the bytes they
            // replace, but never more than three times.
            assert!(d.len() <= v.len() * 3);
        }
    }
}
