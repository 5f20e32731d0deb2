//! Normalisation of CommerceML scalar values: decimals, booleans and dates as 1C and friends
//! write them.

/// Normalise a decimal number: `"1 500,50"` → `"1500.5"`, `"0010.00"` → `"10"`, `"-0,0"` → `"0"`.
///
/// Spaces (including no-break and thin spaces) are digit-group separators; a comma is a decimal
/// separator. A leading `+` is dropped. Returns `None` for anything that is not a plain decimal
/// (empty text, letters, two separators, exponents).
pub fn decimal(raw: &str) -> Option<String> {
    let mut sign_negative = false;
    let mut int = String::new();
    let mut frac = String::new();
    let mut seen_point = false;
    let mut seen_digit = false;
    let mut seen_sign = false;
    for c in raw.trim().chars() {
        match c {
            '0'..='9' => {
                seen_digit = true;
                if seen_point {
                    frac.push(c);
                } else {
                    int.push(c);
                }
            }
            '.' | ',' if !seen_point => seen_point = true,
            '-' | '+' if !seen_sign && !seen_digit && !seen_point => {
                seen_sign = true;
                sign_negative = c == '-';
            }
            ' ' | '\u{a0}' | '\u{202f}' | '\u{2009}' | '\'' if !seen_point => {}
            _ => return None,
        }
    }
    if !seen_digit {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let mut out = String::with_capacity(int.len() + frac.len() + 2);
    if sign_negative && !(int.is_empty() && frac.is_empty()) {
        out.push('-');
    }
    if int.is_empty() {
        out.push('0');
    } else {
        out.push_str(int);
    }
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Some(out)
}

/// A decimal when it parses, otherwise the trimmed text as given (nothing is lost).
pub fn decimal_or_raw(raw: &str) -> String {
    decimal(raw).unwrap_or_else(|| raw.trim().to_string())
}

/// A boolean as 1C writes it: `true`/`false`, `истина`/`ложь`, `да`/`нет`, `1`/`0` (any case).
pub fn boolean(raw: &str) -> Option<bool> {
    let t = raw.trim();
    const TRUE: [&str; 5] = ["true", "истина", "да", "1", "yes"];
    const FALSE: [&str; 5] = ["false", "ложь", "нет", "0", "no"];
    if TRUE.iter().any(|w| eq_ci(t, w)) {
        Some(true)
    } else if FALSE.iter().any(|w| eq_ci(t, w)) {
        Some(false)
    } else {
        None
    }
}

fn eq_ci(a: &str, lower: &str) -> bool {
    if a.is_ascii() {
        a.eq_ignore_ascii_case(lower)
    } else {
        a.chars().flat_map(char::to_lowercase).eq(lower.chars())
    }
}

/// Normalise a date or date-time to `YYYY-MM-DDTHH:MM:SS`.
///
/// Accepts `2008-03-28`, `2014-06-01T0:36:33`, `2023-12-30T14:01:31.293+03:00`,
/// `2026-02-24T16:51:51+03:00`, `…Z`, a space instead of `T`, and `28.03.2008[ 10:00:00]`. The time
/// zone is dropped: 1C writes local time and so is it kept. `None` when the text is no date.
pub fn datetime(raw: &str) -> Option<String> {
    let t = raw.trim();
    let (date, time) = match t.find(['T', 't', ' ']) {
        Some(i) => (&t[..i], Some(t[i + 1..].trim())),
        None => (t, None),
    };
    let (y, m, d) = if date.contains('-') {
        let mut it = date.split('-');
        let y = it.next()?;
        let m = it.next()?;
        let d = it.next()?;
        if it.next().is_some() {
            return None;
        }
        (y, m, d)
    } else if date.contains('.') {
        let mut it = date.split('.');
        let d = it.next()?;
        let m = it.next()?;
        let y = it.next()?;
        if it.next().is_some() {
            return None;
        }
        (y, m, d)
    } else {
        return None;
    };
    let y: u32 = num(y, 4, 4)?;
    let m: u32 = num(m, 1, 2)?;
    let d: u32 = num(d, 1, 2)?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let (hh, mm, ss) = match time {
        None | Some("") => (0, 0, 0),
        Some(time) => {
            // Cut the zone (`Z`, `+03:00`, `-05:00`) and the fraction of a second.
            let time = time
                .find(['Z', 'z', '+', '-'])
                .map_or(time, |i| &time[..i])
                .trim();
            let time = time.split('.').next().unwrap_or(time);
            let mut it = time.split(':');
            let hh: u32 = num(it.next()?, 1, 2)?;
            let mm: u32 = it.next().map_or(Some(0), |s| num(s, 1, 2))?;
            let ss: u32 = it.next().map_or(Some(0), |s| num(s, 1, 2))?;
            if it.next().is_some() || hh > 24 || mm > 59 || ss > 60 {
                return None;
            }
            (hh, mm, ss)
        }
    };
    Some(format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}"))
}

fn num(s: &str, min: usize, max: usize) -> Option<u32> {
    if s.len() < min || s.len() > max || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Trimmed text, `None` when empty.
pub fn non_empty(raw: &str) -> Option<String> {
    let t = raw.trim();
    (!t.is_empty()).then(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        let cases = [
            ("1500.50", Some("1500.5")),
            ("1 500,50", Some("1500.5")),
            ("1\u{a0}500,50", Some("1500.5")),
            ("  12  ", Some("12")),
            ("0010.00", Some("10")),
            ("0.000", Some("0")),
            ("0,25", Some("0.25")),
            (".5", Some("0.5")),
            ("5.", Some("5")),
            ("-3,10", Some("-3.1")),
            ("+7", Some("7")),
            ("-0.0", Some("0")),
            ("231.7400", Some("231.74")),
            ("", None),
            ("abc", None),
            ("1.2.3", None),
            ("1e5", None),
            ("-", None),
            ("1-2", None),
        ];
        for (raw, want) in cases {
            assert_eq!(decimal(raw).as_deref(), want, "{raw:?}");
        }
        assert_eq!(decimal_or_raw(" n/a "), "n/a");
    }

    #[test]
    fn booleans() {
        for t in [
            "true",
            "TRUE",
            "True",
            "истина",
            "Истина",
            "1",
            "да",
            " true ",
        ] {
            assert_eq!(boolean(t), Some(true), "{t}");
        }
        for f in ["false", "False", "ложь", "ЛОЖЬ", "0", "нет"] {
            assert_eq!(boolean(f), Some(false), "{f}");
        }
        assert_eq!(boolean(""), None);
        assert_eq!(boolean("maybe"), None);
    }

    #[test]
    fn dates() {
        let cases = [
            ("2008-03-28", Some("2008-03-28T00:00:00")),
            ("2021-02-12T17:03:19", Some("2021-02-12T17:03:19")),
            ("2014-06-01T0:36:33", Some("2014-06-01T00:36:33")),
            ("2023-12-30T14:01:31.293+03:00", Some("2023-12-30T14:01:31")),
            ("2026-02-24T16:51:51+03:00", Some("2026-02-24T16:51:51")),
            ("2026-02-24T16:51:51Z", Some("2026-02-24T16:51:51")),
            ("2026-02-24T16:51:51-05:00", Some("2026-02-24T16:51:51")),
            ("2020-08-11 10:00:00", Some("2020-08-11T10:00:00")),
            ("28.03.2008", Some("2008-03-28T00:00:00")),
            ("28.03.2008 9:05:00", Some("2008-03-28T09:05:00")),
            ("2020-13-01", None),
            ("yesterday", None),
            ("", None),
        ];
        for (raw, want) in cases {
            assert_eq!(datetime(raw).as_deref(), want, "{raw:?}");
        }
    }
}
