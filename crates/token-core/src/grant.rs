//! What a token allows, and the check that a request is within it.

use time::OffsetDateTime;

use crate::error::Error;
use crate::scope::Scopes;

/// The scopes a token carries and when it stops being valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grant {
    /// The scopes as issued (implications are applied when checking).
    pub scopes: Scopes,
    /// When the token stops working; `None` means never.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

impl Grant {
    /// Whether the token has expired at `now` ([`is_expired`]).
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        is_expired(self.expires_at, now)
    }

    /// Checks that at `now` the token is unexpired and grants every scope of `required`.
    ///
    /// # Errors
    /// [`Error::Expired`] first if expired, else [`Error::MissingScopes`] naming what is missing.
    pub fn check(&self, required: Scopes, now: OffsetDateTime) -> Result<(), Error> {
        if let Some(at) = self.expires_at.filter(|_| self.is_expired(now)) {
            return Err(Error::Expired { at });
        }
        let missing = self.scopes.missing(required);
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Error::MissingScopes { missing })
        }
    }
}

/// Whether something that expires at `expires_at` (`None`: never) has expired at `now`: it is
/// valid while `now < expires_at`. The one place this rule is written (the SQL filters of
/// `token-store` say the same, `expires_at_us > now`).
pub fn is_expired(expires_at: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    expires_at.is_some_and(|at| now >= at)
}

/// Parses a duration written like `45s`, `30m`, `12h`, `90d` or `2w`: how token lifetimes and
/// grace periods are written in the API and the CLI. At most 100 years.
///
/// # Errors
/// [`Error::InvalidDuration`], quoting (a shortened copy of) the input.
pub fn parse_duration(text: &str) -> Result<time::Duration, Error> {
    let invalid = || Error::InvalidDuration(text.chars().take(24).collect());
    let unit = text.chars().last().ok_or_else(invalid)?;
    let number = &text[..text.len() - unit.len_utf8()];
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let n: i64 = number.parse().map_err(|_| invalid())?;
    let seconds_per_unit = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return Err(invalid()),
    };
    let seconds = n.checked_mul(seconds_per_unit).ok_or_else(invalid)?;
    if seconds > 100 * 366 * 86_400 {
        return Err(invalid());
    }
    Ok(time::Duration::seconds(seconds))
}

#[cfg(test)]
mod tests {
    use time::Duration;
    use time::macros::datetime;

    use super::*;
    use crate::scope::Scope;

    const NOW: OffsetDateTime = datetime!(2026-11-27 12:00 UTC);

    #[test]
    fn expiry_is_exclusive() {
        let grant = Grant {
            scopes: Scope::Read.into(),
            expires_at: Some(NOW),
        };
        assert_eq!(
            grant.check(Scope::Read.into(), NOW - Duration::nanoseconds(1)),
            Ok(())
        );
        assert_eq!(
            grant.check(Scope::Read.into(), NOW),
            Err(Error::Expired { at: NOW })
        );
        assert!(grant.is_expired(NOW + Duration::days(1)));
    }

    #[test]
    fn no_expiry_means_never() {
        let grant = Grant {
            scopes: Scope::Read.into(),
            expires_at: None,
        };
        assert_eq!(
            grant.check(Scope::Read.into(), datetime!(9999-12-31 23:59 UTC)),
            Ok(())
        );
    }

    #[test]
    fn missing_scopes_are_named() {
        let grant = Grant {
            scopes: Scope::Write.into(),
            expires_at: None,
        };
        assert_eq!(
            grant.check(Scopes::of(&[Scope::Read, Scope::Write]), NOW),
            Ok(())
        );
        let err = grant
            .check(Scopes::of(&[Scope::Read, Scope::Admin]), NOW)
            .unwrap_err();
        assert_eq!(
            err,
            Error::MissingScopes {
                missing: Scope::Admin.into()
            }
        );
        assert_eq!(err.to_string(), "token lacks the required scope: admin");
    }

    #[test]
    fn expiry_wins_over_scope() {
        let grant = Grant {
            scopes: Scope::Read.into(),
            expires_at: Some(NOW),
        };
        assert!(matches!(
            grant.check(Scope::Admin.into(), NOW),
            Err(Error::Expired { .. })
        ));
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90d").unwrap(), Duration::days(90));
        assert_eq!(parse_duration("1h").unwrap(), Duration::hours(1));
        assert_eq!(parse_duration("30m").unwrap(), Duration::minutes(30));
        assert_eq!(parse_duration("2w").unwrap(), Duration::weeks(2));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        for bad in [
            "",
            "d",
            "90",
            "-1d",
            "1.5h",
            "90 d",
            "1y",
            "99999999999999999999d",
            "40000d",
            "٣d",
        ] {
            assert!(
                matches!(parse_duration(bad), Err(Error::InvalidDuration(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn serde_round_trip() {
        let grant = Grant {
            scopes: Scopes::of(&[Scope::Read, Scope::Write]),
            expires_at: Some(NOW),
        };
        let json = serde_json::to_string(&grant).unwrap();
        assert_eq!(
            json,
            r#"{"scopes":["read","write"],"expires_at":"2026-11-27T12:00:00Z"}"#
        );
        assert_eq!(serde_json::from_str::<Grant>(&json).unwrap(), grant);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::parse_duration;

    proptest! {
        #[test]
        fn any_text_is_a_bounded_duration_or_refused(s in any::<String>()) {
            if let Ok(d) = parse_duration(&s) {
                prop_assert!(!d.is_negative() && d.whole_days() <= 100 * 366);
            }
        }

        #[test]
        fn written_durations_read_back(n in 0i64..36_500, unit in "[smhdw]") {
            let seconds = match unit.as_str() { "s" => 1, "m" => 60, "h" => 3_600, "d" => 86_400, _ => 604_800 };
            match parse_duration(&format!("{n}{unit}")) {
                Ok(d) => prop_assert_eq!(d.whole_seconds(), n * seconds),
                Err(_) => prop_assert!(n * seconds > 100 * 366 * 86_400),
            }
        }
    }
}
