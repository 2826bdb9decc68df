//! Standard Base64 decoding (RFC 4648 alphabet, `=` padding optional), for
//! `$MEMORY_PRESSURE_WRITE`.
//!
//! Twenty lines here rather than a dependency: a new crate in `w4l`'s dependencies would change
//! the lock file of every application that builds it.

/// The bytes `text` encodes; `None` if it holds anything but the alphabet and trailing `=`, or
/// an impossible length.
pub(crate) fn decode(text: &str) -> Option<Vec<u8>> {
    let body = text.trim_end_matches('=');
    if body.len() % 4 == 1 || text.len() - body.len() > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let (mut bits, mut held) = (0u32, 0u32);
    for c in body.bytes() {
        bits = (bits << 6) | u32::from(sextet(c)?);
        held += 6;
        if held >= 8 {
            held -= 8;
            out.push((bits >> held) as u8);
            bits &= (1 << held) - 1;
        }
    }
    Some(out)
}

fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn decodes_what_systemd_writes() {
        // systemd's default trigger, NUL included, as set in $MEMORY_PRESSURE_WRITE.
        assert_eq!(
            decode("c29tZSAyMDAwMDAgMjAwMDAwMAA=").as_deref(),
            Some(&b"some 200000 2000000\0"[..])
        );
    }

    #[test]
    fn decodes_every_padding_length() {
        assert_eq!(decode("").as_deref(), Some(&b""[..]));
        assert_eq!(decode("Zg==").as_deref(), Some(&b"f"[..]));
        assert_eq!(decode("Zm8=").as_deref(), Some(&b"fo"[..]));
        assert_eq!(decode("Zm9v").as_deref(), Some(&b"foo"[..]));
        assert_eq!(decode("Zm9vYg").as_deref(), Some(&b"foob"[..]));
        assert_eq!(decode("+/+/").as_deref(), Some(&[0xfb, 0xff, 0xbf][..]));
    }

    #[test]
    fn refuses_what_is_not_base64() {
        assert_eq!(decode("Z"), None);
        assert_eq!(decode("Zm9v!"), None);
        assert_eq!(decode("Zg==="), None);
        assert_eq!(decode("Zm 9v"), None);
    }
}
