//! The wire format: framing (RFC 3261 section 18.3), the normalisations rsip
//! needs before it parses (folded lines, compact header names, several Via
//! values on one line), and serialisation with a correct Content-Length.

use bytes::{BufMut, Bytes, BytesMut};
use rsip::{Header, SipMessage, StatusCode};

use super::params::split_list;

/// Largest message accepted on any transport (bytes).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Why bytes are not a SIP message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// More bytes are needed (stream transports only).
    #[error("incomplete message")]
    Incomplete,
    /// The message exceeds [`MAX_MESSAGE`].
    #[error("message larger than {MAX_MESSAGE} bytes")]
    TooLarge,
    /// A stream message without Content-Length cannot be framed.
    #[error("missing Content-Length on a stream transport")]
    MissingContentLength,
    /// Content-Length is not a number, or promises more than was received.
    #[error("bad Content-Length: {0}")]
    BadContentLength(String),
    /// The start line or a header is malformed.
    #[error("malformed message: {0}")]
    Malformed(String),
}

fn find_header_end(buf: &[u8]) -> Option<(usize, usize)> {
    // (end of header block, start of body)
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = buf.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) if b < a => Some((b, b + 2)),
        (Some(a), _) => Some((a, a + 4)),
        (None, Some(b)) => Some((b, b + 2)),
        (None, None) => None,
    }
}

fn expand_compact(name: &str) -> &str {
    if name.len() != 1 {
        return name;
    }
    match name.as_bytes()[0].to_ascii_lowercase() {
        b'a' => "Accept-Contact",
        b'b' => "Referred-By",
        b'c' => "Content-Type",
        b'd' => "Request-Disposition",
        b'e' => "Content-Encoding",
        b'f' => "From",
        b'i' => "Call-ID",
        b'j' => "Reject-Contact",
        b'k' => "Supported",
        b'l' => "Content-Length",
        b'm' => "Contact",
        b'o' => "Event",
        b'r' => "Refer-To",
        b's' => "Subject",
        b't' => "To",
        b'u' => "Allow-Events",
        b'v' => "Via",
        b'x' => "Session-Expires",
        b'y' => "Identity",
        _ => name,
    }
}

struct Normalized {
    head: String,
    content_length: Option<usize>,
}

fn normalize(head: &[u8]) -> Result<Normalized, ParseError> {
    let text = std::str::from_utf8(head)
        .map_err(|_| ParseError::Malformed("headers are not UTF-8".into()))?;
    let mut lines: Vec<String> = Vec::with_capacity(24);
    for raw in text.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.starts_with([' ', '\t']) {
            let n_lines = lines.len();
            match lines.last_mut() {
                Some(prev) if n_lines > 1 => {
                    prev.push(' ');
                    prev.push_str(line.trim());
                }
                _ => {
                    return Err(ParseError::Malformed(
                        "continuation before any header".into(),
                    ))
                }
            }
        } else if !line.is_empty() {
            lines.push(line.to_owned());
        }
    }
    let mut out = String::with_capacity(head.len() + 64);
    let mut content_length = None;
    let mut iter = lines.into_iter();
    let start = iter
        .next()
        .ok_or_else(|| ParseError::Malformed("empty message".into()))?;
    out.push_str(start.trim_end());
    out.push_str("\r\n");
    for line in iter {
        let (name, value) = line.split_once(':').ok_or_else(|| {
            ParseError::Malformed(format!("header line without colon: {line:.40}"))
        })?;
        let name = expand_compact(name.trim());
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(ParseError::Malformed(format!(
                "bad header name: {line:.40}"
            )));
        }
        let value = value.trim();
        if name.eq_ignore_ascii_case("Content-Length") {
            let n = value
                .parse::<usize>()
                .map_err(|_| ParseError::BadContentLength(value.to_owned()))?;
            content_length = Some(n);
            continue;
        }
        if name.eq_ignore_ascii_case("Via") && value.contains(',') {
            for v in split_list(value) {
                out.push_str("Via: ");
                out.push_str(v);
                out.push_str("\r\n");
            }
            continue;
        }
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    Ok(Normalized {
        head: out,
        content_length,
    })
}

/// Parses one datagram (UDP): the body is what follows the headers, cut to
/// Content-Length when that is shorter; a longer Content-Length is an error.
pub fn parse_datagram(buf: &[u8]) -> Result<SipMessage, ParseError> {
    if buf.len() > MAX_MESSAGE {
        return Err(ParseError::TooLarge);
    }
    let (head_end, body_start) =
        find_header_end(buf).ok_or_else(|| ParseError::Malformed("no end of headers".into()))?;
    let n = normalize(&buf[..head_end])?;
    let available = buf.len() - body_start;
    let body_len = match n.content_length {
        Some(cl) if cl > available => {
            return Err(ParseError::BadContentLength(format!(
                "{cl} promised, {available} received"
            )))
        }
        Some(cl) => cl,
        None => available,
    };
    build(n.head, &buf[body_start..body_start + body_len])
}

/// Frames the next message of a stream (TCP). Leading CRLF keep-alives are
/// skipped. Returns the message and how many bytes it used, or
/// [`ParseError::Incomplete`] when more bytes are needed.
pub fn parse_stream(buf: &[u8]) -> Result<(SipMessage, usize), ParseError> {
    let skip = buf
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(buf.len());
    let data = &buf[skip..];
    let Some((head_end, body_start)) = find_header_end(data) else {
        return if data.len() > MAX_MESSAGE {
            Err(ParseError::TooLarge)
        } else {
            Err(ParseError::Incomplete)
        };
    };
    let n = normalize(&data[..head_end])?;
    let cl = n.content_length.ok_or(ParseError::MissingContentLength)?;
    // The length comes from the wire: no arithmetic on it may overflow.
    let end = body_start
        .checked_add(cl)
        .filter(|end| *end <= MAX_MESSAGE)
        .ok_or(ParseError::TooLarge)?;
    if data.len() < end {
        return Err(ParseError::Incomplete);
    }
    let msg = build(n.head, &data[body_start..end])?;
    Ok((msg, skip + end))
}

/// How many leading bytes of a stream buffer are keep-alive CRLFs.
pub fn keepalive_prefix(buf: &[u8]) -> usize {
    buf.iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(buf.len())
}

fn build(mut head: String, body: &[u8]) -> Result<SipMessage, ParseError> {
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    SipMessage::try_from(bytes).map_err(|e| ParseError::Malformed(e.to_string()))
}

/// The reason phrase we write for a status code.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "Unknown",
    }
}

/// Writes a message with a Content-Length that matches its body.
pub fn encode(msg: &SipMessage) -> Bytes {
    use std::fmt::Write as _;
    let (headers, body) = match msg {
        SipMessage::Request(r) => (&r.headers, &r.body),
        SipMessage::Response(r) => (&r.headers, &r.body),
    };
    let mut s = String::with_capacity(512 + body.len());
    match msg {
        SipMessage::Request(r) => {
            let _ = write!(s, "{} {} SIP/2.0\r\n", r.method, r.uri);
        }
        SipMessage::Response(r) => {
            let code = r.status_code.code();
            let reason = match &r.status_code {
                StatusCode::Other(_, reason) => reason.as_str(),
                _ => reason_phrase(code),
            };
            let _ = write!(s, "SIP/2.0 {code} {reason}\r\n");
        }
    }
    for h in headers.iter() {
        if matches!(h, Header::ContentLength(_)) {
            continue;
        }
        let _ = write!(s, "{h}\r\n");
    }
    let _ = write!(s, "Content-Length: {}\r\n\r\n", body.len());
    let mut out = BytesMut::with_capacity(s.len() + body.len());
    out.put_slice(s.as_bytes());
    out.put_slice(body);
    out.freeze()
}

/// A 400 Bad Request for bytes that failed to parse, when the headers a
/// response needs (Via, From, To, Call-ID, CSeq) can still be found in them
/// and the first line is a request line; `None` means drop the bytes.
pub fn bad_request_reply(buf: &[u8], err: &ParseError) -> Option<Bytes> {
    let text = String::from_utf8_lossy(buf.get(..buf.len().min(MAX_MESSAGE))?);
    let mut lines = text.lines();
    let first = lines.next()?;
    let mut parts = first.split_whitespace();
    let method = parts.next()?;
    let is_request = method.bytes().all(|b| b.is_ascii_uppercase())
        && parts.next().is_some()
        && parts
            .next()
            .is_some_and(|v| v.eq_ignore_ascii_case("SIP/2.0"));
    if !is_request || method == "ACK" {
        return None;
    }
    let mut kept: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = expand_compact(name.trim());
        for wanted in ["Via", "From", "To", "Call-ID", "CSeq"] {
            if name.eq_ignore_ascii_case(wanted) {
                kept.push((wanted.to_owned(), value.trim().to_owned()));
            }
        }
    }
    for wanted in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if !kept.iter().any(|(n, _)| n == wanted) {
            return None;
        }
    }
    let reason: String = err
        .to_string()
        .chars()
        .filter(|c| !c.is_control() && *c != '"')
        .take(120)
        .collect();
    // A well-formed request with a method we do not know is not a bad
    // request: RFC 3261 8.2.1 answers it 501.
    let mut out = if super::METHODS.contains(&method) {
        String::from("SIP/2.0 400 Bad Request\r\n")
    } else {
        String::from("SIP/2.0 501 Not Implemented\r\n")
    };
    for (n, v) in kept {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Warning: 399 switchboard \"{reason}\"\r\nContent-Length: 0\r\n\r\n"
    ));
    Some(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:2002@demo.test SIP/2.0\r\n\
        v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK2\r\n\
        f: <sip:2001@demo.test>;tag=a\r\n\
        t: <sip:2002@demo.test>\r\n\
        i: abc@host\r\n\
        CSeq: 1 INVITE\r\n\
        Subject: folded\r\n  line\r\n\
        l: 4\r\n\r\nbodyEXTRA";

    #[test]
    fn compact_names_folding_and_via_lists_are_normalised() {
        let msg = parse_datagram(INVITE.as_bytes()).unwrap();
        let SipMessage::Request(r) = msg else {
            panic!("not a request")
        };
        assert_eq!(r.body, b"body");
        let vias = r
            .headers
            .iter()
            .filter(|h| matches!(h, Header::Via(_)))
            .count();
        assert_eq!(vias, 2);
        let text = String::from_utf8(encode(&SipMessage::Request(r)).to_vec()).unwrap();
        assert!(text.contains("Subject: folded line\r\n"));
        assert!(text.contains("Call-ID: abc@host\r\n"));
        assert!(text.ends_with("Content-Length: 4\r\n\r\nbody"));
    }

    #[test]
    fn stream_framing_waits_for_the_whole_body() {
        let full = INVITE.replace("bodyEXTRA", "body");
        let bytes = format!("\r\n\r\n{full}");
        assert_eq!(
            parse_stream(&bytes.as_bytes()[..bytes.len() - 2]).unwrap_err(),
            ParseError::Incomplete
        );
        let (_, used) = parse_stream(bytes.as_bytes()).unwrap();
        assert_eq!(used, bytes.len());
    }

    #[test]
    fn content_length_beyond_the_datagram_is_an_error() {
        let bad = INVITE.replace("l: 4", "l: 400");
        assert!(matches!(
            parse_datagram(bad.as_bytes()),
            Err(ParseError::BadContentLength(_))
        ));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        assert!(parse_datagram(b"\x00\x01hello\r\n\r\n").is_err());
        assert!(parse_datagram(b"INVITE\r\n\r\n").is_err());
    }
}
