//! Credentials and the session cookie as 1C sends them.
//!
//! 1C sends `Authorization: Basic …` preemptively on every request. How it encodes a non-ASCII
//! login or password is not documented (spec §2.1): UTF-8 is tried first, windows-1251 otherwise.
//! 1C ignores `Set-Cookie` and builds `Cookie: <name>=<value>` itself from the checkauth answer.

use base64::Engine;

/// `(login, password)` from an `Authorization: Basic …` header value; `None` if the header is
/// not Basic or cannot be decoded.
pub fn parse_basic(header: &str) -> Option<(String, String)> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(|c: char| c.is_ascii_whitespace())?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let token: String = rest.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if token.is_empty() {
        return None;
    }
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let raw = engines.iter().find_map(|e| e.decode(&token).ok())?;
    let colon = raw.iter().position(|b| *b == b':')?;
    let login = decode_text(&raw[..colon]);
    let password = decode_text(&raw[colon + 1..]);
    Some((login, password))
}

/// UTF-8, or else windows-1251 (which maps every byte).
pub fn decode_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => {
            let (s, _) = encoding_rs::WINDOWS_1251.decode_without_bom_handling(bytes);
            s.into_owned()
        }
    }
}

/// The value of cookie `name` in a `Cookie:` header (`a=1; b=2`). Names compare exactly; a
/// quoted value is unquoted; an empty value counts as absent.
pub fn cookie_value(cookie_header: &str, name: &str) -> Option<String> {
    cookie_header.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        if k.trim() != name {
            return None;
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|x| x.strip_suffix('"'))
            .unwrap_or(v);
        (!v.is_empty()).then(|| v.to_string())
    })
}

/// Compare secrets in time that depends only on their lengths, not on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn basic_ascii() {
        let h = format!("Basic {}", b64(b"1c:secret"));
        assert_eq!(parse_basic(&h), Some(("1c".into(), "secret".into())));
        // Scheme case, surrounding whitespace.
        let h = format!("  basic   {}  ", b64(b"1c:secret"));
        assert_eq!(parse_basic(&h), Some(("1c".into(), "secret".into())));
        // A colon in the password belongs to the password.
        let h = format!("Basic {}", b64(b"user:pa:ss"));
        assert_eq!(parse_basic(&h), Some(("user".into(), "pa:ss".into())));
        // Empty password.
        let h = format!("Basic {}", b64(b"user:"));
        assert_eq!(parse_basic(&h), Some(("user".into(), "".into())));
    }

    #[test]
    fn basic_without_padding() {
        let t = base64::engine::general_purpose::STANDARD_NO_PAD.encode(b"1c:pw");
        assert_eq!(
            parse_basic(&format!("Basic {t}")),
            Some(("1c".into(), "pw".into()))
        );
    }

    #[test]
    fn basic_utf8_and_windows_1251() {
        let h = format!("Basic {}", b64("Администратор:пароль".as_bytes()));
        assert_eq!(
            parse_basic(&h),
            Some(("Администратор".into(), "пароль".into()))
        );
        let (login, _, _) = encoding_rs::WINDOWS_1251.encode("Администратор");
        let (pw, _, _) = encoding_rs::WINDOWS_1251.encode("пароль");
        let mut raw = login.into_owned();
        raw.push(b':');
        raw.extend_from_slice(&pw);
        let h = format!("Basic {}", b64(&raw));
        assert_eq!(
            parse_basic(&h),
            Some(("Администратор".into(), "пароль".into()))
        );
    }

    #[test]
    fn basic_garbage() {
        assert_eq!(parse_basic(""), None);
        assert_eq!(parse_basic("Basic"), None);
        assert_eq!(parse_basic("Basic "), None);
        assert_eq!(parse_basic("Basic !!!notbase64"), None);
        assert_eq!(parse_basic(&format!("Bearer {}", b64(b"a:b"))), None);
        assert_eq!(parse_basic(&format!("Basic {}", b64(b"nocolon"))), None);
    }

    #[test]
    fn cookies() {
        assert_eq!(
            cookie_value("OBMENSID=abc123", "OBMENSID"),
            Some("abc123".into())
        );
        assert_eq!(
            cookie_value("a=1; OBMENSID=abc123; b=2", "OBMENSID"),
            Some("abc123".into())
        );
        assert_eq!(
            cookie_value("a=1;OBMENSID = \"abc\" ", "OBMENSID"),
            Some("abc".into())
        );
        assert_eq!(cookie_value("XOBMENSID=abc", "OBMENSID"), None);
        assert_eq!(cookie_value("obmensid=abc", "OBMENSID"), None);
        assert_eq!(cookie_value("OBMENSID=", "OBMENSID"), None);
        assert_eq!(cookie_value("OBMENSID", "OBMENSID"), None);
        assert_eq!(cookie_value("", "OBMENSID"), None);
        // The first non-empty occurrence wins.
        assert_eq!(
            cookie_value("OBMENSID=; OBMENSID=x", "OBMENSID"),
            Some("x".into())
        );
    }

    #[test]
    fn constant_time() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret1"));
        assert!(!constant_time_eq(b"", b"x"));
        // A shorter input padded with zero bytes is still different.
        assert!(!constant_time_eq(b"ab", b"ab\0"));
    }
}
