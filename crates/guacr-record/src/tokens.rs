//! Parameter tokens (`${GUAC_USERNAME}`, `${GUAC_DATE}`, `${GUAC_TIME}`).
//!
//! In Apache Guacamole these are expanded by the web application
//! (guacamole-client's `TokenFilter`/`StandardTokens`) before the parameters
//! reach guacd; guacd itself never sees them. guacr expands them itself so that
//! recordings configured with the usual `recording-name` values work whether or
//! not a Guacamole web application sits in front of it.
//!
//! Semantics follow `TokenFilter` in non-strict mode:
//! - `${NAME}` is replaced by the token's value; unknown tokens stay as they are;
//! - `$${NAME}` is an escape and produces the literal `${NAME}`;
//! - `${NAME:UPPER}` / `${NAME:LOWER}` change the case of the value
//!   (`${NAME:OPTIONAL}` is the value itself).
//!
//! `GUAC_DATE` is `YYYYMMDD` and `GUAC_TIME` is `HHMMSS`, both in the server's
//! local time zone (as Java's `SimpleDateFormat` uses): computed with
//! `localtime_r(3)`, which honours `TZ` and `/etc/localtime`.

use std::time::{SystemTime, UNIX_EPOCH};

/// A broken-down local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl LocalTime {
    /// The current local time (see the module docs).
    pub fn now() -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Self::from_unix(secs)
    }

    /// `secs` (since the Unix epoch) in the local time zone; UTC if the C
    /// library cannot convert it.
    pub fn from_unix(secs: i64) -> Self {
        local_from_unix(secs).unwrap_or_else(|| Self::utc_from_unix(secs))
    }

    /// `secs` (since the Unix epoch) in UTC.
    pub fn utc_from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        LocalTime {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem / 60 % 60) as u32,
            second: (rem % 60) as u32,
        }
    }

    /// `YYYYMMDD` (the value of `GUAC_DATE`).
    pub fn date_token(&self) -> String {
        format!("{:04}{:02}{:02}", self.year, self.month, self.day)
    }

    /// `HHMMSS` (the value of `GUAC_TIME`).
    pub fn time_token(&self) -> String {
        format!("{:02}{:02}{:02}", self.hour, self.minute, self.second)
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
pub(crate) fn civil_from_days(z: i64) -> (i32, u32, u32) {
    // Howard Hinnant's algorithm.
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = if m <= 2 { y + 1 } else { y };
    (y as i32, m, d)
}

#[allow(unsafe_code)]
fn local_from_unix(secs: i64) -> Option<LocalTime> {
    // time_t is 32 bits on some targets.
    #[allow(clippy::useless_conversion)]
    let t: libc::time_t = secs.try_into().ok()?;
    // SAFETY: `libc::tm` is a plain C struct of integers (and, on glibc, a
    // `*const c_char` zone name) for which all-zero bytes are a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: `localtime_r` is the re-entrant variant: it only reads `*t` and
    // writes `*tm`, both valid for the duration of the call, and keeps no
    // pointer to them. It returns NULL on failure.
    let r = unsafe { libc::localtime_r(&t, &mut tm) };
    if r.is_null() {
        return None;
    }
    Some(LocalTime {
        year: tm.tm_year + 1900,
        month: u32::try_from(tm.tm_mon + 1).ok()?,
        day: u32::try_from(tm.tm_mday).ok()?,
        hour: u32::try_from(tm.tm_hour).ok()?,
        minute: u32::try_from(tm.tm_min).ok()?,
        // tm_sec can be 60 on a leap second.
        second: u32::try_from(tm.tm_sec.min(59)).ok()?,
    })
}

/// Token values for [`expand_tokens`].
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    values: Vec<(String, String)>,
}

impl Tokens {
    /// No tokens.
    pub fn new() -> Self {
        Self::default()
    }

    /// `GUAC_DATE` and `GUAC_TIME` from `time`, plus `GUAC_USERNAME` when known
    /// (guacamole-client leaves the token unexpanded when there is no username).
    pub fn standard(username: Option<&str>, time: LocalTime) -> Self {
        let mut t = Tokens::new();
        if let Some(u) = username {
            t.set("GUAC_USERNAME", u);
        }
        t.set("GUAC_DATE", &time.date_token());
        t.set("GUAC_TIME", &time.time_token());
        t
    }

    /// Sets (or replaces) one token.
    pub fn set(&mut self, name: &str, value: &str) {
        if let Some(slot) = self.values.iter_mut().find(|(n, _)| n == name) {
            slot.1 = value.to_owned();
        } else {
            self.values.push((name.to_owned(), value.to_owned()));
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Expands `${NAME}` tokens in `input` (see the module docs).
pub fn expand_tokens(input: &str, tokens: &Tokens) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            break;
        };
        let body = &after[..end];
        let whole = &rest[start..start + 2 + end + 1];
        let escaped = rest[..start].ends_with('$');
        if escaped {
            // `$${X}`: drop the escaping `$`, keep `${X}` literally.
            out.push_str(&rest[..start - 1]);
            out.push_str(whole);
        } else {
            out.push_str(&rest[..start]);
            let (name, modifier) = match body.rsplit_once(':') {
                Some((n, m @ ("UPPER" | "LOWER" | "OPTIONAL"))) => (n, Some(m)),
                _ => (body, None),
            };
            match tokens.get(name) {
                Some(v) => match modifier {
                    Some("UPPER") => out.push_str(&v.to_uppercase()),
                    Some("LOWER") => out.push_str(&v.to_lowercase()),
                    _ => out.push_str(v),
                },
                None => out.push_str(whole),
            }
        }
        rest = &rest[start + 2 + end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Tokens {
        Tokens::standard(
            Some("alice"),
            LocalTime {
                year: 2024,
                month: 3,
                day: 7,
                hour: 9,
                minute: 5,
                second: 1,
            },
        )
    }

    #[test]
    fn expands_standard_tokens() {
        assert_eq!(
            expand_tokens("${GUAC_USERNAME}-${GUAC_DATE}-${GUAC_TIME}.guac", &t()),
            "alice-20240307-090501.guac"
        );
        assert_eq!(expand_tokens("recording", &t()), "recording");
    }

    #[test]
    fn unknown_tokens_escapes_and_modifiers() {
        assert_eq!(
            expand_tokens("${NOPE}_${GUAC_DATE}", &t()),
            "${NOPE}_20240307"
        );
        assert_eq!(expand_tokens("$${GUAC_DATE}", &t()), "${GUAC_DATE}");
        assert_eq!(expand_tokens("a$${GUAC_DATE}b", &t()), "a${GUAC_DATE}b");
        assert_eq!(expand_tokens("${GUAC_USERNAME:UPPER}", &t()), "ALICE");
        assert_eq!(expand_tokens("${GUAC_USERNAME:LOWER}", &t()), "alice");
        assert_eq!(expand_tokens("${unterminated", &t()), "${unterminated");
        assert_eq!(expand_tokens("$$", &t()), "$$");
        // No username known: the token stays.
        let no_user = Tokens::standard(None, LocalTime::utc_from_unix(0));
        assert_eq!(
            expand_tokens("${GUAC_USERNAME}/${GUAC_DATE}", &no_user),
            "${GUAC_USERNAME}/19700101"
        );
    }

    #[test]
    fn utc_conversion() {
        // 2021-02-28T23:59:59Z and a leap day.
        let t = LocalTime::utc_from_unix(1_614_556_799);
        assert_eq!(
            (t.date_token(), t.time_token()),
            ("20210228".into(), "235959".into())
        );
        let t = LocalTime::utc_from_unix(951_782_400); // 2000-02-29T00:00:00Z
        assert_eq!(t.date_token(), "20000229");
        let t = LocalTime::utc_from_unix(-1);
        assert_eq!(
            (t.date_token(), t.time_token()),
            ("19691231".into(), "235959".into())
        );
    }

    #[test]
    fn local_time_is_sane() {
        let now = LocalTime::now();
        assert!((2020..3000).contains(&now.year));
        assert!((1..=12).contains(&now.month) && (1..=31).contains(&now.day));
        assert_eq!(now.date_token().len(), 8);
        assert_eq!(now.time_token().len(), 6);
    }
}
