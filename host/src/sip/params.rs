//! Scanning of raw header values: parameters, comma lists, name-addr URIs.
//! The proxy reads a handful of fields from every message; scanning the raw
//! text avoids a full typed parse per header on the hot path.

/// Splits a header value at commas that are outside quotes and `<...>`.
pub fn split_list(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut in_quotes, mut in_angle, mut start) = (false, false, 0);
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_quotes => i += 1,
            b'"' => in_quotes = !in_quotes,
            b'<' if !in_quotes => in_angle = true,
            b'>' if !in_quotes => in_angle = false,
            b',' if !in_quotes && !in_angle => {
                let part = value[start..i].trim();
                if !part.is_empty() {
                    out.push(part);
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    let part = value[start..].trim();
    if !part.is_empty() {
        out.push(part);
    }
    out
}

/// `%23%2320` -> `##20`: what the user dialed. Works on bytes, so an
/// escape next to a multi-byte character cannot split it; a `%` not followed
/// by two hex digits stays as it is, and invalid UTF-8 after decoding is
/// replaced, never trusted.
pub fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The header parameters of a name-addr or addr-spec value: the text after
/// the closing `>`, or after the URI when there are no angle brackets.
fn header_params(value: &str) -> &str {
    match value.rfind('>') {
        Some(i) => &value[i + 1..],
        None => match value.find(';') {
            Some(i) => &value[i..],
            None => "",
        },
    }
}

/// Finds `;name=value` (or a bare `;name`, returned as `""`) in a parameter
/// string. Names compare case-insensitively; quotes around values are removed.
pub fn find_param<'a>(params: &'a str, name: &str) -> Option<&'a str> {
    for p in params.split(';').skip(1) {
        let (k, v) = match p.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (p.trim(), ""),
        };
        if k.eq_ignore_ascii_case(name) {
            return Some(v.trim_matches('"'));
        }
    }
    None
}

/// A header parameter of a From/To/Contact/Route value (`tag`, `expires`, ...).
pub fn header_param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let params = header_params(value);
    if params.is_empty() {
        return None;
    }
    find_param(params, name)
}

/// The URI of a name-addr (`"Bob" <sip:bob@h>;tag=1`) or addr-spec value.
pub fn uri_of(value: &str) -> &str {
    if let (Some(a), Some(b)) = (value.find('<'), value.rfind('>')) {
        if a < b {
            return value[a + 1..b].trim();
        }
    }
    let v = value.trim();
    match v.find(';') {
        Some(i) => &v[..i],
        None => v,
    }
}

/// Whether a From/To/Contact value is a well-formed name-addr or addr-spec
/// as far as the router reads it: quotes closed, at most one `<...>` pair,
/// opened before it is closed, and a URI with a scheme inside.
pub fn is_well_formed_name_addr(value: &str) -> bool {
    let (mut in_quotes, mut opened, mut closed) = (false, None, None);
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_quotes => i += 1,
            b'"' => in_quotes = !in_quotes,
            b'<' if !in_quotes => {
                if opened.is_some() {
                    return false;
                }
                opened = Some(i);
            }
            b'>' if !in_quotes => {
                if opened.is_none() || closed.is_some() {
                    return false;
                }
                closed = Some(i);
            }
            _ => {}
        }
        i += 1;
    }
    if in_quotes || opened.is_some() != closed.is_some() {
        return false;
    }
    let uri = uri_of(value);
    uri.split_once(':')
        .is_some_and(|(scheme, rest)| !scheme.is_empty() && !rest.is_empty())
}

/// The display name of a name-addr, without quotes.
pub fn display_name_of(value: &str) -> Option<&str> {
    let a = value.find('<')?;
    let name = value[..a].trim().trim_matches('"').trim();
    (!name.is_empty()).then_some(name)
}

/// The user part of a SIP URI string (`sip:2001@host;x` -> `2001`).
pub fn uri_user(uri: &str) -> Option<&str> {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))
        .or_else(|| uri.strip_prefix("tel:"))?;
    if uri.starts_with("tel:") {
        return Some(rest.split(';').next().unwrap_or(rest));
    }
    let at = rest.find('@')?;
    let user = &rest[..at];
    Some(user.split(':').next().unwrap_or(user))
}

/// The host part of a SIP URI string, without port or parameters.
pub fn uri_host(uri: &str) -> Option<&str> {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))?;
    let rest = match rest.find('@') {
        Some(i) => &rest[i + 1..],
        None => rest,
    };
    let end = rest.find([';', '?', '>']).unwrap_or(rest.len());
    let hostport = &rest[..end];
    if let Some(v6) = hostport.strip_prefix('[') {
        return v6.split(']').next();
    }
    Some(hostport.split(':').next().unwrap_or(hostport))
}

/// The top Via's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaFields<'a> {
    /// `UDP`, `TCP`, ...
    pub transport: &'a str,
    /// sent-by host.
    pub host: &'a str,
    /// sent-by port.
    pub port: Option<u16>,
    /// The whole parameter string, starting at the first `;`.
    pub params: &'a str,
}

impl<'a> ViaFields<'a> {
    /// Parses `SIP/2.0/UDP host:port;params`.
    pub fn parse(value: &'a str) -> Option<ViaFields<'a>> {
        let value = value.trim();
        let rest = value.strip_prefix("SIP/2.0/").or_else(|| {
            let (proto, rest) = value.split_once('/')?;
            proto.eq_ignore_ascii_case("SIP").then_some(rest)?;
            rest.split_once('/').map(|(_, r)| r)
        })?;
        let (transport, rest) = rest.split_once(|c: char| c.is_ascii_whitespace())?;
        let rest = rest.trim_start();
        let (sent_by, params) = match rest.find(';') {
            Some(i) => (rest[..i].trim(), &rest[i..]),
            None => (rest.trim(), ""),
        };
        let (host, port) = if let Some(v6) = sent_by.strip_prefix('[') {
            let (h, tail) = v6.split_once(']')?;
            (h, tail.strip_prefix(':').and_then(|p| p.parse().ok()))
        } else {
            match sent_by.split_once(':') {
                Some((h, p)) => (h, Some(p.trim().parse().ok()?)),
                None => (sent_by, None),
            }
        };
        if host.is_empty() {
            return None;
        }
        Some(ViaFields {
            transport,
            host,
            port,
            params,
        })
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&'a str> {
        find_param(self.params, "branch")
    }

    /// A Via parameter.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        find_param(self.params, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_outside_quotes_and_brackets_only() {
        let v = r#""Doe, John" <sip:a@h;x=1,2>;q=1, <sip:b@h>"#;
        assert_eq!(split_list(v).len(), 2);
    }

    #[test]
    fn tag_is_read_from_header_params_not_uri_params() {
        let v = "<sip:2001@h;tag=wrong>;tag=right";
        assert_eq!(header_param(v, "tag"), Some("right"));
        assert_eq!(header_param("sip:a@h;tag=x", "tag"), Some("x"));
        assert_eq!(uri_of(v), "sip:2001@h;tag=wrong");
    }

    #[test]
    fn via_fields_parse_sent_by_and_params() {
        let v = ViaFields::parse("SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKx;rport").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, "10.0.0.1");
        assert_eq!(v.port, Some(5062));
        assert_eq!(v.branch(), Some("z9hG4bKx"));
        assert_eq!(v.param("rport"), Some(""));
    }

    #[test]
    fn uri_user_and_host() {
        assert_eq!(
            uri_user("sip:2001@demo.test:5060;transport=tcp"),
            Some("2001")
        );
        assert_eq!(
            uri_host("sip:2001@demo.test:5060;transport=tcp"),
            Some("demo.test")
        );
        assert_eq!(uri_host("sip:10.0.0.1"), Some("10.0.0.1"));
    }
}
