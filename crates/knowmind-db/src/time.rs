//! Times as stored: UTC microseconds since the Unix epoch (`BIGINT`), which both backends compare
//! and index the same way.

use time::OffsetDateTime;

use crate::error::Error;

/// A time as stored: UTC microseconds since the Unix epoch.
pub fn to_micros(t: OffsetDateTime) -> i64 {
    // i64 microseconds span ±292,000 years; `time` itself stops at ±9999 years.
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// A stored time back as an [`OffsetDateTime`] in UTC.
///
/// # Errors
/// [`Error::Corrupt`] if the value is outside the representable range.
pub fn from_micros(us: i64) -> Result<OffsetDateTime, Error> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000)
        .map_err(|_| Error::Corrupt("timestamp out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_round_trip() {
        let t = time::macros::datetime!(2026-11-27 12:34:56.789012 UTC);
        assert_eq!(from_micros(to_micros(t)).unwrap(), t);
        assert!(from_micros(i64::MAX).is_err());
    }
}
