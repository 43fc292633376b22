//! SIP messages on the wire: rsip's message types behind the project's own
//! framing ([`codec`]) and field access ([`params`]). Nothing here knows about
//! tenants, calls or the database.

pub mod codec;
pub mod mutate;
pub mod params;

use std::fmt;
use std::net::SocketAddr;

pub use rsip::{Header, Headers, Method, Request, Response, SipMessage, StatusCode};

use rsip::headers::UntypedHeader;

/// Transport protocol of a message or a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// Datagrams; the transaction layer retransmits.
    Udp,
    /// A stream; no retransmissions.
    Tcp,
    /// A TLS stream over TCP (RFC 3261 section 26).
    Tls,
}

impl Proto {
    /// Name as written in a Via header.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Udp => "UDP",
            Proto::Tcp => "TCP",
            Proto::Tls => "TLS",
        }
    }

    /// Parses a Via transport or a `transport=` URI parameter.
    pub fn parse(s: &str) -> Option<Proto> {
        if s.eq_ignore_ascii_case("udp") {
            Some(Proto::Udp)
        } else if s.eq_ignore_ascii_case("tcp") {
            Some(Proto::Tcp)
        } else if s.eq_ignore_ascii_case("tls") {
            Some(Proto::Tls)
        } else {
            None
        }
    }

    /// Whether messages may be lost (timers A, E, G retransmit).
    pub fn is_unreliable(self) -> bool {
        self == Proto::Udp
    }

    /// Whether this is a connection (TCP or TLS): requests to a phone go
    /// back over the connection it registered on.
    pub fn is_stream(self) -> bool {
        self != Proto::Udp
    }

    /// The `transport=` URI parameter that names this protocol in a
    /// Contact or Record-Route (`""` for UDP, the default).
    pub fn uri_param(self) -> &'static str {
        match self {
            Proto::Udp => "",
            Proto::Tcp => ";transport=tcp",
            Proto::Tls => ";transport=tls",
        }
    }
}

/// Where a message came from or goes to: a flow in RFC 5626's sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// Transport.
    pub proto: Proto,
    /// Remote address.
    pub addr: SocketAddr,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}",
            self.proto.as_str().to_ascii_lowercase(),
            self.addr
        )
    }
}

impl Peer {
    /// Parses the [`Display`](fmt::Display) form (`udp:1.2.3.4:5060`).
    pub fn parse(s: &str) -> Option<Peer> {
        let (proto, addr) = s.split_once(':')?;
        Some(Peer {
            proto: Proto::parse(proto)?,
            addr: addr.parse().ok()?,
        })
    }
}

/// The request methods the router knows (RFC 3261 and its extensions),
/// in the order metrics list them.
pub const METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "REGISTER",
    "OPTIONS",
    "INFO",
    "UPDATE",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "REFER",
    "MESSAGE",
    "PUBLISH",
];

/// The value of the first header with this name (case-insensitive).
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers.iter().find_map(|h| value_if(h, name))
}

/// Values of every header with this name, in order.
pub fn header_all<'a>(headers: &'a Headers, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers.iter().filter_map(move |h| value_if(h, name))
}

fn value_if<'a>(h: &'a Header, name: &str) -> Option<&'a str> {
    let (n, v): (&str, &str) = match h {
        Header::Via(v) => ("Via", v.value()),
        Header::From(v) => ("From", v.value()),
        Header::To(v) => ("To", v.value()),
        Header::CallId(v) => ("Call-ID", v.value()),
        Header::CSeq(v) => ("CSeq", v.value()),
        Header::Contact(v) => ("Contact", v.value()),
        Header::MaxForwards(v) => ("Max-Forwards", v.value()),
        Header::Route(v) => ("Route", v.value()),
        Header::RecordRoute(v) => ("Record-Route", v.value()),
        Header::Authorization(v) => ("Authorization", v.value()),
        Header::ProxyAuthorization(v) => ("Proxy-Authorization", v.value()),
        Header::Expires(v) => ("Expires", v.value()),
        Header::UserAgent(v) => ("User-Agent", v.value()),
        Header::ContentType(v) => ("Content-Type", v.value()),
        Header::Require(v) => ("Require", v.value()),
        Header::ProxyRequire(v) => ("Proxy-Require", v.value()),
        Header::Other(n, v) => (n.as_str(), v.as_str()),
        _ => return None,
    };
    n.eq_ignore_ascii_case(name).then_some(v)
}

/// Call-ID.
pub fn call_id(headers: &Headers) -> Option<&str> {
    header(headers, "Call-ID")
}

/// CSeq number and method.
pub fn cseq(headers: &Headers) -> Option<(u32, &str)> {
    let v = header(headers, "CSeq")?;
    let (n, m) = v.trim().split_once(char::is_whitespace)?;
    Some((n.parse().ok()?, m.trim()))
}

/// The branch of the top Via.
pub fn top_branch(headers: &Headers) -> Option<&str> {
    params::ViaFields::parse(header(headers, "Via")?)?.branch()
}

/// The tag parameter of From or To.
pub fn tag<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    params::header_param(header(headers, name)?, "tag").filter(|t| !t.is_empty())
}

/// Max-Forwards, if present and numeric.
pub fn max_forwards(headers: &Headers) -> Option<u32> {
    header(headers, "Max-Forwards")?.trim().parse().ok()
}

/// Builds a response to `req` (RFC 3261 section 8.2.6): Via, From, To,
/// Call-ID and CSeq copied; `to_tag` added to To unless it already has one.
pub fn response_to(
    req: &Request,
    code: u16,
    reason: Option<&str>,
    to_tag: Option<&str>,
) -> Response {
    let mut headers = Headers::default();
    for h in req.headers.iter() {
        match h {
            Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => {
                headers.push(h.clone())
            }
            Header::To(to) => {
                let v = to.value();
                match to_tag {
                    Some(t) if code > 100 && params::header_param(v, "tag").is_none() => {
                        headers.push(Header::To(rsip::headers::To::new(format!("{v};tag={t}"))))
                    }
                    _ => headers.push(h.clone()),
                }
            }
            _ => {}
        }
    }
    let status_code = match reason {
        Some(r) => StatusCode::Other(code, r.to_owned()),
        None => StatusCode::from(code),
    };
    Response {
        status_code,
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// Adds a header by name and value.
pub fn push_header(headers: &mut Headers, name: &str, value: impl Into<String>) {
    headers.push(Header::Other(name.to_owned(), value.into()));
}

/// Removes every header with this name (case-insensitive).
pub fn remove_headers(headers: &mut Headers, name: &str) {
    let kept: Vec<Header> = headers
        .iter()
        .filter(|h| value_if(h, name).is_none())
        .cloned()
        .collect();
    *headers = kept.into();
}

/// A random token for tags and branches (hex, 64 bits of entropy).
pub fn random_token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The RFC 3261 magic cookie every branch we create starts with.
pub const BRANCH_COOKIE: &str = "z9hG4bK";

/// The canonical text of a URI (rsip's rendering), so that the same URI
/// written two ways compares equal.
pub fn canonical_uri(uri: &str) -> String {
    rsip::Uri::try_from(uri)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| uri.to_owned())
}
