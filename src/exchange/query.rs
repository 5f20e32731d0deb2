//! Request parameters as 1C sends them.
//!
//! 1C builds its URLs by plain string concatenation (`<script>?type=…&mode=…&filename=…`), so:
//! * a configured address that already has a query string gives a second `?`
//!   (`/exchange?token=abc?type=catalog&mode=checkauth`), and a doubled `??` occurs too: every `?`
//!   is treated as a parameter separator;
//! * `filename` is not URL-encoded by 1C (`import_files/ab/abc+1.jpg`), so in the query string a
//!   `+` stays a `+` (it is never a space); `%XX` escapes are decoded (the platform may encode
//!   non-ASCII bytes);
//! * decoded bytes that are not UTF-8 are read as windows-1251.
//!
//! `type`/`mode` may also come in an `application/x-www-form-urlencoded` POST body; that body is
//! decoded by the form rules (`+` is a space). Query parameters take precedence over the body.
//!
//! A key given twice with different values (`mode=init&mode=file`) is ambiguous: asking for it is
//! an error rather than a silent pick. Identical repeats are fine.

use std::borrow::Cow;

use crate::i18n::Lang;

/// The most parameters accepted in one source (query string or body).
pub const MAX_PARAMS: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamError {
    /// The same key with different values.
    Ambiguous {
        key: String,
        first: String,
        second: String,
    },
    /// More than [`MAX_PARAMS`] parameters.
    TooMany { limit: usize },
}

impl ParamError {
    pub fn describe(&self, lang: Lang) -> String {
        match (self, lang) {
            (
                ParamError::Ambiguous {
                    key, first, second, ..
                },
                Lang::Ru,
            ) => format!(
                "Неоднозначный запрос: параметр {key} указан несколько раз с разными значениями ({}, {}).",
                clip(first),
                clip(second)
            ),
            (
                ParamError::Ambiguous {
                    key, first, second, ..
                },
                Lang::En,
            ) => format!(
                "Ambiguous request: parameter {key} is given several times with different values ({}, {}).",
                clip(first),
                clip(second)
            ),
            (ParamError::TooMany { limit }, Lang::Ru) => {
                format!("Слишком много параметров в запросе (больше {limit}).")
            }
            (ParamError::TooMany { limit }, Lang::En) => {
                format!("Too many request parameters (more than {limit}).")
            }
        }
    }
}

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe(Lang::En))
    }
}

impl std::error::Error for ParamError {}

/// Values quoted in messages are shortened and kept printable.
fn clip(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(60)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > 60 {
        out.push('…');
    }
    format!("«{out}»")
}

/// Decoded parameters in the order received (keys compared ASCII case-insensitively).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parse a raw query string (without the leading `?` that separates it from the path; any
    /// further `?` is a separator). `+` is literal.
    pub fn parse(raw: &str) -> Result<Params, ParamError> {
        Self::parse_with(raw.as_bytes(), |b| b == b'&' || b == b'?', false)
    }

    /// Parse an `application/x-www-form-urlencoded` body (`+` is a space).
    pub fn parse_body(body: &[u8]) -> Result<Params, ParamError> {
        Self::parse_with(body, |b| b == b'&', true)
    }

    fn parse_with(
        raw: &[u8],
        is_sep: impl Fn(u8) -> bool,
        plus_is_space: bool,
    ) -> Result<Params, ParamError> {
        let mut out = Vec::new();
        for seg in raw.split(|b| is_sep(*b)) {
            if seg.is_empty() {
                continue;
            }
            if out.len() >= MAX_PARAMS {
                return Err(ParamError::TooMany { limit: MAX_PARAMS });
            }
            let (k, v) = match seg.iter().position(|b| *b == b'=') {
                Some(i) => (&seg[..i], &seg[i + 1..]),
                None => (seg, &b""[..]),
            };
            let key = decode(k, plus_is_space);
            let key = key.trim();
            if key.is_empty() {
                continue;
            }
            out.push((key.to_string(), decode(v, plus_is_space)));
        }
        Ok(Params(out))
    }

    /// Add the parameters of `other` (a form body) for keys this set (the query string) does not
    /// have: the query string comes first.
    pub fn merge(mut self, other: Params) -> Params {
        for (k, v) in other.0 {
            if !self.0.iter().any(|(sk, _)| sk.eq_ignore_ascii_case(&k)) {
                self.0.push((k, v));
            }
        }
        self
    }

    /// The value of `key`; `Err(Ambiguous)` when it was given with different values.
    pub fn get(&self, key: &str) -> Result<Option<&str>, ParamError> {
        let mut found: Option<&str> = None;
        for (k, v) in &self.0 {
            if !k.eq_ignore_ascii_case(key) {
                continue;
            }
            match found {
                None => found = Some(v),
                Some(f) if f == v => {}
                Some(f) => {
                    return Err(ParamError::Ambiguous {
                        key: key.to_string(),
                        first: f.to_string(),
                        second: v.to_string(),
                    })
                }
            }
        }
        Ok(found)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Percent-decode; the bytes are UTF-8 or else windows-1251.
fn decode(raw: &[u8], plus_is_space: bool) -> String {
    let bytes: Cow<'_, [u8]> = if plus_is_space && raw.contains(&b'+') {
        Cow::Owned(
            raw.iter()
                .map(|b| if *b == b'+' { b' ' } else { *b })
                .collect(),
        )
    } else {
        Cow::Borrowed(raw)
    };
    let decoded: Vec<u8> = percent_encoding::percent_decode(&bytes).collect();
    match String::from_utf8(decoded) {
        Ok(s) => s,
        Err(e) => {
            let (s, _) = encoding_rs::WINDOWS_1251.decode_without_bom_handling(e.as_bytes());
            s.into_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g<'a>(p: &'a Params, k: &str) -> Option<&'a str> {
        p.get(k).unwrap()
    }

    #[test]
    fn plain_query() {
        let p = Params::parse("type=catalog&mode=file&filename=import0_1.xml").unwrap();
        assert_eq!(g(&p, "type"), Some("catalog"));
        assert_eq!(g(&p, "mode"), Some("file"));
        assert_eq!(g(&p, "filename"), Some("import0_1.xml"));
        assert_eq!(g(&p, "sessid"), None);
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn doubled_question_marks_are_separators() {
        // `/1c_exchange.php??type=catalog&mode=checkauth`: actix hands over `?type=…`.
        let p = Params::parse("?type=catalog&mode=checkauth").unwrap();
        assert_eq!(g(&p, "type"), Some("catalog"));
        assert_eq!(g(&p, "mode"), Some("checkauth"));
        // `?type=catalog?mode=init`
        let p = Params::parse("type=catalog?mode=init").unwrap();
        assert_eq!(g(&p, "type"), Some("catalog"));
        assert_eq!(g(&p, "mode"), Some("init"));
        // A configured URL with its own query string.
        let p = Params::parse("token=abc?type=catalog&mode=checkauth").unwrap();
        assert_eq!(g(&p, "token"), Some("abc"));
        assert_eq!(g(&p, "type"), Some("catalog"));
        // wc1c's `get_param?type` case.
        let p = Params::parse("get_param?type=sale&mode=query").unwrap();
        assert_eq!(g(&p, "type"), Some("sale"));
        assert_eq!(g(&p, "get_param"), Some(""));
        // Empty segments are ignored.
        let p = Params::parse("&&type=catalog&&").unwrap();
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn plus_stays_literal_in_the_query_string() {
        let p = Params::parse("mode=file&filename=import_files/ab/abc+1.jpg").unwrap();
        assert_eq!(g(&p, "filename"), Some("import_files/ab/abc+1.jpg"));
        // An encoded space is still a space; an encoded plus a plus.
        let p = Params::parse("filename=a%20b%2Bc.xml").unwrap();
        assert_eq!(g(&p, "filename"), Some("a b+c.xml"));
        // An encoded `?` or `&` inside a value does not split it.
        let p = Params::parse("filename=a%3Fb%26c.xml&mode=file").unwrap();
        assert_eq!(g(&p, "filename"), Some("a?b&c.xml"));
    }

    #[test]
    fn form_body_uses_form_rules() {
        let p = Params::parse_body(b"type=catalog&mode=checkauth&note=a+b%2Bc").unwrap();
        assert_eq!(g(&p, "type"), Some("catalog"));
        assert_eq!(g(&p, "note"), Some("a b+c"));
        // `?` is not a separator in a body.
        let p = Params::parse_body(b"x=a?b").unwrap();
        assert_eq!(g(&p, "x"), Some("a?b"));
    }

    #[test]
    fn utf8_and_windows_1251_percent_encodings() {
        // "Товар.xml" in UTF-8.
        let p = Params::parse("filename=%D0%A2%D0%BE%D0%B2%D0%B0%D1%80.xml").unwrap();
        assert_eq!(g(&p, "filename"), Some("Товар.xml"));
        // "Товар.xml" in windows-1251.
        let p = Params::parse("filename=%D2%EE%E2%E0%F0.xml").unwrap();
        assert_eq!(g(&p, "filename"), Some("Товар.xml"));
        // Raw (unencoded) UTF-8 as some clients send it.
        let p = Params::parse("filename=Фото 1.jpg").unwrap();
        assert_eq!(g(&p, "filename"), Some("Фото 1.jpg"));
        // A broken escape is kept as is.
        let p = Params::parse("filename=100%zz.xml").unwrap();
        assert_eq!(g(&p, "filename"), Some("100%zz.xml"));
    }

    #[test]
    fn duplicates() {
        let p = Params::parse("mode=init&mode=init&type=catalog").unwrap();
        assert_eq!(g(&p, "mode"), Some("init"));
        let p = Params::parse("mode=init&type=catalog&mode=file").unwrap();
        let e = p.get("mode").unwrap_err();
        assert!(matches!(e, ParamError::Ambiguous { ref key, .. } if key == "mode"));
        assert!(e.describe(Lang::Ru).contains("Неоднозначный запрос"));
        assert!(e.describe(Lang::En).contains("Ambiguous"));
        // Other keys stay readable.
        assert_eq!(g(&p, "type"), Some("catalog"));
        // Keys compare case-insensitively.
        let p = Params::parse("Mode=init&mode=file").unwrap();
        assert!(p.get("mode").is_err());
        let p = Params::parse("cmlversion=2.10").unwrap();
        assert_eq!(g(&p, "cmlVersion"), Some("2.10"));
    }

    #[test]
    fn too_many() {
        let q: Vec<String> = (0..MAX_PARAMS).map(|i| format!("k{i}=v")).collect();
        assert!(Params::parse(&q.join("&")).is_ok());
        let q: Vec<String> = (0..=MAX_PARAMS).map(|i| format!("k{i}=v")).collect();
        let e = Params::parse(&q.join("&")).unwrap_err();
        assert_eq!(e, ParamError::TooMany { limit: MAX_PARAMS });
        assert!(e.describe(Lang::Ru).contains("Слишком много"));
        assert!(Params::parse_body(q.join("&").as_bytes()).is_err());
    }

    #[test]
    fn merge_prefers_the_query_string() {
        let q = Params::parse("type=catalog").unwrap();
        let b = Params::parse_body(b"type=sale&mode=checkauth").unwrap();
        let m = q.merge(b);
        assert_eq!(g(&m, "type"), Some("catalog"));
        assert_eq!(g(&m, "mode"), Some("checkauth"));
    }

    #[test]
    fn keys_without_values_and_empty_input() {
        let p = Params::parse("").unwrap();
        assert!(p.is_empty());
        let p = Params::parse("flag&=novalue&mode=").unwrap();
        assert_eq!(g(&p, "flag"), Some(""));
        assert_eq!(g(&p, "mode"), Some(""));
        assert_eq!(p.len(), 2);
    }
}
