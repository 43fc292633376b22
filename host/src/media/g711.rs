//! G.711 encoding (ITU-T G.711, the segment tables of its reference
//! implementation, as CPython's `audioop` has it; the tests hold its values):
//! 16-bit linear samples to the 8-bit u-law (PCMU,
//! payload type 0) and A-law (PCMA, 8) bytes every SIP phone decodes.

/// Encodes one sample as u-law.
pub fn ulaw(sample: i16) -> u8 {
    const SEG_END: [i32; 8] = [0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff, 0x1fff];
    const BIAS: i32 = 0x84 >> 2;
    const CLIP: i32 = 8159;
    let mut s = i32::from(sample) >> 2;
    let mask = if s < 0 {
        s = -s;
        0x7f
    } else {
        0xff
    };
    s = s.min(CLIP) + BIAS;
    match SEG_END.iter().position(|end| s <= *end) {
        Some(seg) => (((seg as i32) << 4 | ((s >> (seg + 1)) & 0x0f)) ^ mask) as u8,
        None => (0x7f ^ mask) as u8,
    }
}

/// Encodes one sample as A-law.
pub fn alaw(sample: i16) -> u8 {
    let mut s = i32::from(sample) >> 3;
    let mask = if s >= 0 {
        0xd5
    } else {
        s = -s - 1;
        0x55
    };
    let seg = match s {
        0..=0x1f => 0,
        0x20..=0x3f => 1,
        0x40..=0x7f => 2,
        0x80..=0xff => 3,
        0x100..=0x1ff => 4,
        0x200..=0x3ff => 5,
        0x400..=0x7ff => 6,
        0x800..=0xfff => 7,
        _ => 8,
    };
    if seg >= 8 {
        return (0x7f ^ mask) as u8;
    }
    let mut aval = seg << 4;
    aval |= if seg < 2 {
        (s >> 1) & 0x0f
    } else {
        (s >> seg) & 0x0f
    };
    (aval ^ mask) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_matches_the_reference_values() {
        assert_eq!(ulaw(0), 0xff);
        assert_eq!(ulaw(-1), 0x7e);
        assert_eq!(ulaw(-8), 0x7e);
        assert_eq!(ulaw(i16::MAX), 0x80);
        assert_eq!(ulaw(i16::MIN), 0x00);
        assert_eq!(ulaw(1000), 0xce);
    }

    #[test]
    fn alaw_matches_the_reference_values() {
        assert_eq!(alaw(0), 0xd5);
        assert_eq!(alaw(-8), 0x55);
        assert_eq!(alaw(i16::MAX), 0xaa);
        assert_eq!(alaw(i16::MIN), 0x2a);
        assert_eq!(alaw(1000), 0xfa);
    }
}
