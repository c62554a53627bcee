//! Checks on text that people type: bounded length, no control characters, and no format
//! characters (Unicode category Cf: bidi overrides such as U+202E, zero-width spaces and joiners),
//! which make a name display as something it is not — `laptop\u{202E}pot` — in a list, a terminal
//! or an audit log.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::error::Error;

/// Format characters (Cf), and the line and paragraph separators (Zl, Zp) that break a line
/// where no newline is visible.
fn is_format(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    )
}

fn check_format(field: &'static str, value: &str) -> Result<(), Error> {
    match value.chars().find(|&c| is_format(c)) {
        Some(c) => Err(Error::invalid(
            field,
            format!(
                "must not contain invisible formatting characters (found U+{:04X})",
                u32::from(c)
            ),
        )),
        None => Ok(()),
    }
}

/// A required single-line text of at most `max` characters.
pub(crate) fn line(field: &'static str, value: &str, max: usize) -> Result<String, Error> {
    let value = optional_line(field, value, max)?;
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    Ok(value)
}

/// A single-line text of at most `max` characters; may be empty. Surrounding spaces are removed.
pub(crate) fn optional_line(field: &'static str, value: &str, max: usize) -> Result<String, Error> {
    let trimmed = value.trim();
    if trimmed.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    check_format(field, trimmed)?;
    check_length(field, trimmed, max)?;
    Ok(trimmed.to_owned())
}

/// Free text of at most `max` characters; newlines and tabs allowed, other control characters
/// not.
pub(crate) fn text(field: &'static str, value: &str, max: usize) -> Result<String, Error> {
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(Error::invalid(
            field,
            "must not contain control characters other than newlines and tabs",
        ));
    }
    check_format(field, value)?;
    check_length(field, value, max)?;
    Ok(value.to_owned())
}

/// An email address: one `@` with text on both sides, no spaces, at most 254 characters.
pub(crate) fn email(value: &str) -> Result<String, Error> {
    let value = line("email", value, 254)?;
    let valid = value
        .split_once('@')
        .is_some_and(|(user, host)| !user.is_empty() && !host.is_empty() && !host.contains('@'))
        && !value.chars().any(char::is_whitespace);
    if valid {
        Ok(value.to_lowercase())
    } else {
        Err(Error::invalid("email", "is not an email address"))
    }
}

fn check_length(field: &'static str, value: &str, max: usize) -> Result<(), Error> {
    let count = value.chars().count();
    if count > max {
        return Err(Error::invalid(
            field,
            format!("must be at most {max} characters, got {count}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_bounded_and_clean() {
        assert_eq!(line("name", "  laptop ", 10).unwrap(), "laptop");
        assert!(line("name", "   ", 10).is_err());
        assert!(line("name", "a\u{7}b", 10).is_err());
        assert!(line("name", "a\nb", 10).is_err());
        let err = line("name", &"x".repeat(10_240), 100)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid name: must be at most 100 characters, got 10240"
        );
        assert_eq!(optional_line("client", "", 10).unwrap(), "");
    }

    #[test]
    fn text_allows_newlines_only() {
        assert!(text("description", "one\ntwo\tthree", 100).is_ok());
        assert!(text("description", "bell\u{7}", 100).is_err());
        assert!(text("description", "esc\u{1b}[31m", 100).is_err());
    }

    #[test]
    fn invisible_formatting_characters_are_refused_everywhere() {
        for spoof in [
            "laptop\u{202E}pot",
            "ad\u{200B}min",
            "a\u{200D}b",
            "\u{FEFF}bom",
            "x\u{2066}y",
            "soft\u{AD}hyphen",
            "line\u{2028}break",
            "para\u{2029}graph",
        ] {
            let err = line("name", spoof, 100).unwrap_err().to_string();
            assert!(err.contains("U+"), "{err}");
            assert!(text("description", spoof, 100).is_err(), "{spoof:?}");
            assert!(optional_line("client", spoof, 100).is_err(), "{spoof:?}");
        }
        assert_eq!(line("name", "café ☕ 東京", 100).unwrap(), "café ☕ 東京");
    }

    #[test]
    fn emails_are_plausible() {
        assert_eq!(email("Ada@Example.org").unwrap(), "ada@example.org");
        for bad in ["", "ada", "@x", "ada@", "a@b@c", "a b@c"] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }
}
