//! The name a rotated token gets: its name pattern carried forward. A date in the name is the
//! rotation's date (`laptop-2026-11` → `laptop-2027-02`, `ci-2026-11-30` → `ci-2027-02-28`), a
//! version suffix counts up (`deploy-v3` → `deploy-v4`), and any other name is kept as it is.

use time::OffsetDateTime;

/// The successor's name for a token named `name`, rotated at `now`.
pub(crate) fn rotated_name(name: &str, now: OffsetDateTime) -> String {
    let day = format!(
        "{:04}-{:02}-{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    );
    let renamed = replace_last(name, 10, is_day, &day)
        .or_else(|| replace_last(name, 7, is_month, &day[..7]))
        .or_else(|| next_version(name))
        .unwrap_or_else(|| name.to_owned());
    // Names are at most 100 characters; a version that grows a digit past that keeps the name.
    if renamed.chars().count() > 100 {
        name.to_owned()
    } else {
        renamed
    }
}

/// `name` with its last `len`-byte stretch that `matches` (and is not part of a longer run of
/// digits) replaced by `with`.
fn replace_last(name: &str, len: usize, matches: fn(&[u8]) -> bool, with: &str) -> Option<String> {
    let bytes = name.as_bytes();
    if bytes.len() < len {
        return None;
    }
    (0..=bytes.len() - len).rev().find_map(|start| {
        let end = start + len;
        let bounded = (start == 0 || !bytes[start - 1].is_ascii_digit())
            && (end == bytes.len() || !bytes[end].is_ascii_digit());
        (bounded && matches(&bytes[start..end]))
            .then(|| format!("{}{with}{}", &name[..start], &name[end..]))
    })
}

/// `YYYY-MM`, a plausible month.
fn is_month(b: &[u8]) -> bool {
    b.len() == 7
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..].iter().all(u8::is_ascii_digit)
        && (1..=12).contains(&((b[5] - b'0') * 10 + (b[6] - b'0')))
}

/// `YYYY-MM-DD`, a plausible day.
fn is_day(b: &[u8]) -> bool {
    b.len() == 10
        && is_month(&b[..7])
        && b[7] == b'-'
        && b[8..].iter().all(u8::is_ascii_digit)
        && (1..=31).contains(&((b[8] - b'0') * 10 + (b[9] - b'0')))
}

/// `…-v3` → `…-v4` (also after `_`, `.`, or as the whole name).
fn next_version(name: &str) -> Option<String> {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let stem = &name[..name.len() - digits];
    let prefix = stem.strip_suffix('v').or_else(|| stem.strip_suffix('V'))?;
    if digits == 0 || !(prefix.is_empty() || prefix.ends_with(['-', '_', '.'])) {
        return None;
    }
    let n: u64 = name[name.len() - digits..].parse().ok()?;
    Some(format!("{stem}{}", n.checked_add(1)?))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn dates_follow_the_rotation_and_versions_count_up() {
        let now = datetime!(2027-02-28 09:00 UTC);
        for (before, after) in [
            ("laptop-2026-11", "laptop-2027-02"),
            ("ci-2026-11-30", "ci-2027-02-28"),
            ("2026-11 backup key", "2027-02 backup key"),
            ("deploy-v3", "deploy-v4"),
            ("deploy_v9", "deploy_v10"),
            ("v1", "v2"),
            ("laptop", "laptop"),
            ("server-2", "server-2"),
            ("envoy", "envoy"),
            ("build-12345-99", "build-12345-99"),
            ("ticket-2026-13", "ticket-2026-13"),
        ] {
            assert_eq!(rotated_name(before, now), after, "{before}");
        }
        let long = format!("{}-v9", "x".repeat(97));
        assert_eq!(
            rotated_name(&long, now),
            long,
            "a name never grows past 100"
        );
    }
}
