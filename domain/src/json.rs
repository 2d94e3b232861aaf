//! Reading back, by hand, JSON that this crate wrote itself with serde (token payloads): the
//! fields in their order, strings without escapes, integers. Anything else is `None`, and the
//! caller reads it with serde instead, so these readers are a shortcut, never the only way.

/// A string's contents up to its closing quote (the opening one already read), if it holds no
/// escape; and what follows the quote.
pub(crate) fn plain_string(input: &[u8]) -> Option<(&str, &[u8])> {
    let end = memchr::memchr2(b'"', b'\\', input)?;
    if input[end] != b'"' {
        return None;
    }
    let text = std::str::from_utf8(&input[..end]).ok()?;
    Some((text, &input[end + 1..]))
}

/// An integer as serde writes an `i64` (an optional minus, then digits); and what follows.
pub(crate) fn integer(input: &[u8]) -> Option<(i64, &[u8])> {
    let (negative, digits) = match input.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, input),
    };
    let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || len > 19 || (len > 1 && digits[0] == b'0') {
        return None;
    }
    let mut value: i64 = 0;
    for &digit in &digits[..len] {
        value = value.checked_mul(10)?.checked_add(i64::from(digit - b'0'))?;
    }
    Some((if negative { -value } else { value }, &digits[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_serde_writes_and_refuses_the_rest() {
        assert_eq!(
            plain_string(b"room-ticket\",x"),
            Some(("room-ticket", &b",x"[..]))
        );
        assert_eq!(plain_string(b"\""), Some(("", &b""[..])));
        assert_eq!(plain_string(b"a\\\"b\""), None, "escapes go to serde");
        assert_eq!(plain_string(b"unterminated"), None);
        assert_eq!(plain_string(b"\xff\""), None);
        for n in [0, 7, -7, 1_796_153_290, i64::MAX, i64::MIN + 1] {
            let written = serde_json::to_string(&n).unwrap() + ",";
            assert_eq!(integer(written.as_bytes()), Some((n, &b","[..])), "{n}");
        }
        for bad in [&b""[..], b"-", b"x1", b"01", b"99999999999999999999", b"+1"] {
            assert_eq!(integer(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
