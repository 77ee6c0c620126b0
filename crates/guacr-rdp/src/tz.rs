//! `timezone` (an IANA name, or the client's) → the RDP client time zone.
//!
//! The current UTC offset is read from the system's tz database
//! (`/usr/share/zoneinfo`, TZif files) and sent as a fixed bias: daylight
//! saving rules are not translated to Windows' format, so a session that
//! spans a DST change keeps the offset it started with.

use ironrdp_pdu::rdp::client_info::TimezoneInfo;

const ZONEINFO: &str = "/usr/share/zoneinfo";

/// The time zone info for `name` (`None`, unknown or invalid → UTC).
pub fn timezone_info(name: Option<&str>) -> TimezoneInfo {
    let Some(name) = name.filter(|n| valid_name(n)) else {
        return TimezoneInfo::default();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let offset = std::fs::read(format!("{ZONEINFO}/{name}"))
        .ok()
        .and_then(|data| utc_offset(&data, now));
    match offset {
        Some(seconds) => TimezoneInfo {
            // Windows: UTC = local time + bias (minutes).
            bias: -(seconds / 60),
            standard_name: name.chars().take(31).collect(),
            ..TimezoneInfo::default()
        },
        None => {
            tracing::debug!("unknown time zone {name:?}: using UTC");
            TimezoneInfo::default()
        }
    }
}

/// An IANA zone name: letters, digits, `_+-/`, no `..`, no leading `/`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 64
        && !name.starts_with('/')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-/".contains(&b))
}

fn be_u32(d: &[u8], at: usize) -> Option<u32> {
    let b = d.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn be_i64(d: &[u8], at: usize) -> Option<i64> {
    let b = d.get(at..at + 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(i64::from_be_bytes(a))
}

/// The UTC offset (seconds) in effect at `now` according to a TZif file
/// (the 64-bit block of version 2+ files, else the 32-bit one).
pub fn utc_offset(d: &[u8], now: i64) -> Option<i32> {
    if d.get(..4)? != b"TZif" {
        return None;
    }
    let version = *d.get(4)?;
    let counts = |at: usize| -> Option<[usize; 6]> {
        let mut c = [0usize; 6];
        for (i, v) in c.iter_mut().enumerate() {
            *v = be_u32(d, at + 20 + i * 4)? as usize;
        }
        Some(c)
    };
    let [isut, isstd, leap, time, typ, chars] = counts(0)?;
    let (base, tsize) = if version >= b'2' {
        let v1_len = 44 + time * 5 + typ * 6 + chars + leap * 8 + isstd + isut;
        (v1_len, 8usize)
    } else {
        (0, 4usize)
    };
    let [_, _, _, time, typ, _] = counts(base)?;
    if typ == 0 {
        return None;
    }
    let times = base + 44;
    let idxs = times + time * tsize;
    let types = idxs + time;
    let mut current: Option<usize> = None;
    for i in 0..time {
        let t = if tsize == 8 {
            be_i64(d, times + i * 8)?
        } else {
            i64::from(be_u32(d, times + i * 4)? as i32)
        };
        if t > now {
            break;
        }
        current = Some(*d.get(idxs + i)? as usize);
    }
    let ty = current.unwrap_or(0);
    if ty >= typ {
        return None;
    }
    Some(be_u32(d, types + ty * 6)? as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-1 TZif file with two types (+3600 from t=0, +7200 from t=1000).
    fn tzif() -> Vec<u8> {
        let mut d = b"TZif".to_vec();
        d.push(0);
        d.extend_from_slice(&[0; 15]);
        for c in [0u32, 0, 0, 2, 2, 4] {
            d.extend_from_slice(&c.to_be_bytes());
        }
        d.extend_from_slice(&0i32.to_be_bytes());
        d.extend_from_slice(&1000i32.to_be_bytes());
        d.extend_from_slice(&[0, 1]);
        d.extend_from_slice(&3600i32.to_be_bytes());
        d.extend_from_slice(&[0, 0]);
        d.extend_from_slice(&7200i32.to_be_bytes());
        d.extend_from_slice(&[1, 0]);
        d.extend_from_slice(b"ABC\0");
        d
    }

    #[test]
    fn offsets_from_transitions() {
        let d = tzif();
        assert_eq!(utc_offset(&d, 500), Some(3600));
        assert_eq!(utc_offset(&d, 5000), Some(7200));
        assert_eq!(utc_offset(&d, -5), Some(3600));
        assert_eq!(utc_offset(b"nope", 0), None);
        // Truncated files never panic.
        for n in 0..d.len() {
            let _ = utc_offset(&d[..n], 5000);
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("Europe/Berlin"));
        assert!(valid_name("Etc/GMT+5"));
        assert!(!valid_name("../etc/passwd"));
        assert!(!valid_name("/etc/passwd"));
        assert!(!valid_name(""));
        assert_eq!(timezone_info(Some("../x")).bias, 0);
        assert_eq!(timezone_info(None).bias, 0);
    }

    #[test]
    fn system_zone_if_present() {
        // Etc/GMT-2 is UTC+2 (POSIX sign): bias -120.
        if std::path::Path::new("/usr/share/zoneinfo/Etc/GMT-2").exists() {
            assert_eq!(timezone_info(Some("Etc/GMT-2")).bias, -120);
        }
    }
}
