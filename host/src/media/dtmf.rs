//! Digits from the caller: RFC 4733 telephone-events in RTP, and SIP INFO
//! bodies (`application/dtmf-relay`, `application/dtmf`), which many desk
//! phones send instead.

/// The digit of an RFC 4733 event code (0-9, `*`, `#`; A-D and the rest
/// are not digits a feature entry uses).
fn digit_of(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        _ => None,
    }
}

/// One telephone-event payload (RFC 4733 section 2.3): the event, and
/// whether this packet ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// The digit.
    pub digit: char,
    /// The E bit.
    pub end: bool,
}

/// Reads a telephone-event payload; `None` for anything that is not a
/// digit event of at least the 4 bytes the RFC defines.
pub fn parse_event(payload: &[u8]) -> Option<Event> {
    let [event, flags, ..] = payload else {
        return None;
    };
    if payload.len() < 4 {
        return None;
    }
    Some(Event {
        digit: digit_of(*event)?,
        end: flags & 0x80 != 0,
    })
}

/// One key press is many packets with the same RTP timestamp (and the end
/// packet three times): this turns them into one digit.
#[derive(Debug, Default)]
pub struct Dedup {
    last: Option<u32>,
}

impl Dedup {
    /// The digit of a packet that starts a new event, else `None`.
    pub fn digit(&mut self, timestamp: u32, event: Event) -> Option<char> {
        if self.last == Some(timestamp) {
            return None;
        }
        self.last = Some(timestamp);
        Some(event.digit)
    }
}

/// The digit of a SIP INFO body: `Signal=5` lines (`application/dtmf-relay`)
/// or a bare digit (`application/dtmf`).
pub fn parse_info(content_type: &str, body: &[u8]) -> Option<char> {
    let text = std::str::from_utf8(body.get(..body.len().min(512))?).ok()?;
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let value = match ct.as_str() {
        "application/dtmf-relay" => text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })?,
        "application/dtmf" => text.trim(),
        _ => return None,
    };
    match value {
        "10" => Some('*'),
        "11" => Some('#'),
        v if v.len() == 1 => {
            let c = v.chars().next()?;
            (c.is_ascii_digit() || c == '*' || c == '#').then_some(c)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_payload_gives_its_digit_and_end_bit() {
        assert_eq!(
            parse_event(&[5, 0x0a, 0, 160]),
            Some(Event {
                digit: '5',
                end: false
            })
        );
        assert_eq!(
            parse_event(&[11, 0x8a, 3, 32]).map(|e| (e.digit, e.end)),
            Some(('#', true))
        );
        assert_eq!(parse_event(&[10, 0, 0, 0]).map(|e| e.digit), Some('*'));
    }

    #[test]
    fn short_or_non_digit_payloads_are_ignored() {
        assert_eq!(parse_event(&[5, 0]), None);
        assert_eq!(parse_event(&[16, 0, 0, 0]), None);
        assert_eq!(parse_event(&[]), None);
    }

    #[test]
    fn the_packets_of_one_press_make_one_digit() {
        let mut d = Dedup::default();
        let e = parse_event(&[3, 0, 0, 160]).unwrap();
        assert_eq!(d.digit(1000, e), Some('3'));
        assert_eq!(d.digit(1000, e), None);
        assert_eq!(d.digit(1000, Event { end: true, ..e }), None);
        assert_eq!(d.digit(2000, e), Some('3'), "the same key again");
    }

    #[test]
    fn info_bodies_give_their_digit() {
        assert_eq!(
            parse_info("application/dtmf-relay", b"Signal=7\r\nDuration=160\r\n"),
            Some('7')
        );
        assert_eq!(
            parse_info("Application/DTMF-Relay", b"signal= #\r\n"),
            Some('#')
        );
        assert_eq!(parse_info("application/dtmf", b"4"), Some('4'));
        assert_eq!(
            parse_info("application/dtmf-relay", b"Signal=11"),
            Some('#')
        );
    }

    #[test]
    fn other_info_bodies_give_nothing() {
        assert_eq!(parse_info("text/plain", b"Signal=7"), None);
        assert_eq!(parse_info("application/dtmf-relay", b"Signal=77"), None);
        assert_eq!(parse_info("application/dtmf-relay", b"Duration=160"), None);
        assert_eq!(parse_info("application/dtmf-relay", &[0xff, 0xfe]), None);
    }
}
