//! What text people may type into the API — names, descriptions, reasons, note titles — written
//! once: the server checks with these functions, and the OpenAPI document's patterns are built
//! from the same character tests (feature `openapi`), so the two cannot disagree.
//!
//! Refused everywhere: control characters (except newline and tab in free text) and format
//! characters (Unicode category Cf: bidi overrides such as U+202E, zero-width spaces and joiners)
//! and the line and paragraph separators (Zl, Zp), which make a name display as something it is
//! not — `laptop\u{202E}pot` — in a list, a terminal or an audit log. Lengths count characters
//! (code points) as sent, surrounding spaces included.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// A refused text: which field, and why (no echo of the text itself).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct TextError {
    /// The field, e.g. `name`.
    pub field: &'static str,
    /// Why, e.g. `must not be empty`.
    pub reason: String,
}

fn refuse(field: &'static str, reason: impl Into<String>) -> TextError {
    TextError {
        field,
        reason: reason.into(),
    }
}

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

/// Refused in a single line (after surrounding whitespace is removed).
fn refused_in_line(c: char) -> bool {
    c.is_control() || is_format(c)
}

/// Refused in free text.
fn refused_in_text(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || is_format(c)
}

fn check_length(field: &'static str, value: &str, max: usize) -> Result<(), TextError> {
    let count = value.chars().count();
    if count > max {
        return Err(refuse(
            field,
            format!("must be at most {max} characters, got {count}"),
        ));
    }
    Ok(())
}

fn check_chars(
    field: &'static str,
    value: &str,
    refused: fn(char) -> bool,
    what: &str,
) -> Result<(), TextError> {
    match value.chars().find(|&c| refused(c)) {
        Some(c) if is_format(c) => Err(refuse(
            field,
            format!(
                "must not contain invisible formatting characters (found U+{:04X})",
                u32::from(c)
            ),
        )),
        Some(_) => Err(refuse(field, format!("must not contain {what}"))),
        None => Ok(()),
    }
}

/// A required single line of at most `max` characters; surrounding whitespace is removed.
///
/// # Errors
/// Empty (or only whitespace), too long, or with a refused character.
pub fn line(field: &'static str, value: &str, max: usize) -> Result<String, TextError> {
    let value = optional_line(field, value, max)?;
    if value.is_empty() {
        return Err(refuse(field, "must not be empty"));
    }
    Ok(value)
}

/// A single line of at most `max` characters, possibly empty; surrounding whitespace is removed.
///
/// # Errors
/// Too long, or with a refused character.
pub fn optional_line(field: &'static str, value: &str, max: usize) -> Result<String, TextError> {
    check_length(field, value, max)?;
    let trimmed = value.trim();
    check_chars(field, trimmed, refused_in_line, "control characters")?;
    Ok(trimmed.to_owned())
}

/// Free text of at most `max` characters: newlines and tabs allowed, other control characters
/// not.
///
/// # Errors
/// Too long, or with a refused character.
pub fn text(field: &'static str, value: &str, max: usize) -> Result<String, TextError> {
    check_length(field, value, max)?;
    check_chars(
        field,
        value,
        refused_in_text,
        "control characters other than newlines and tabs",
    )?;
    Ok(value.to_owned())
}

/// Regular expressions for the rules above, built from the same character tests: every
/// character is classified once, at the first call.
#[cfg(feature = "openapi")]
pub mod patterns {
    use std::fmt::Write;
    use std::sync::OnceLock;

    use super::{refused_in_line, refused_in_text};

    /// A character class listing the characters for which `pick` holds, as ranges: `\uXXXX`
    /// escapes in the Basic Multilingual Plane, the characters themselves beyond it (which both
    /// ECMA-262 with the `u` flag and Python read as one character).
    fn class(pick: impl Fn(char) -> bool) -> String {
        let mut out = String::new();
        let mut start: Option<char> = None;
        let mut previous = '\0';
        let push = |out: &mut String, c: char| {
            if u32::from(c) <= 0xFFFF {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            } else {
                out.push(c);
            }
        };
        let close = |out: &mut String, from: char, to: char| {
            push(out, from);
            if to != from {
                out.push('-');
                push(out, to);
            }
        };
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let contiguous = u32::from(c) == u32::from(previous) + 1;
            match (pick(c), start) {
                (true, None) => start = Some(c),
                (true, Some(from)) if !contiguous => {
                    close(&mut out, from, previous);
                    start = Some(c);
                }
                (false, Some(from)) => {
                    close(&mut out, from, previous);
                    start = None;
                }
                _ => {}
            }
            previous = c;
        }
        if let Some(from) = start {
            close(&mut out, from, previous);
        }
        out
    }

    struct Classes {
        space: String,
        line_bad: String,
        text_bad: String,
    }

    fn classes() -> &'static Classes {
        static CLASSES: OnceLock<Classes> = OnceLock::new();
        CLASSES.get_or_init(|| Classes {
            space: class(char::is_whitespace),
            line_bad: class(refused_in_line),
            text_bad: class(refused_in_text),
        })
    }

    /// What [`super::line`] accepts (lengths aside): at least one character that is neither
    /// whitespace nor refused, nothing refused between the surrounding whitespace.
    pub fn line() -> String {
        let Classes {
            space, line_bad, ..
        } = classes();
        format!("^[{space}]*[^{space}{line_bad}](?:[^{line_bad}]*[^{space}{line_bad}])?[{space}]*$")
    }

    /// What [`super::optional_line`] accepts (lengths aside): [`line()`], or only whitespace.
    pub fn optional_line() -> String {
        let Classes {
            space, line_bad, ..
        } = classes();
        format!(
            "^[{space}]*(?:[^{space}{line_bad}](?:[^{line_bad}]*[^{space}{line_bad}])?[{space}]*)?$"
        )
    }

    /// What [`super::text`] accepts (lengths aside).
    pub fn text() -> String {
        format!("^[^{}]*$", classes().text_bad)
    }
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
        assert_eq!(line("name", "\tlaptop\n", 10).unwrap(), "laptop");
        let err = line("name", &"x".repeat(10_240), 100)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "invalid name: must be at most 100 characters, got 10240"
        );
        // Lengths count the text as sent.
        assert!(line("name", &format!(" {}", "x".repeat(100)), 100).is_err());
        assert_eq!(optional_line("client", "", 10).unwrap(), "");
        assert_eq!(optional_line("client", "  ", 10).unwrap(), "");
    }

    #[test]
    fn text_allows_newlines_only() {
        assert!(text("description", "one\ntwo\tthree", 100).is_ok());
        assert!(text("description", "bell\u{7}", 100).is_err());
        assert!(text("description", "esc\u{1b}[31m", 100).is_err());
        assert!(text("description", "cr\r\n", 100).is_err());
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
            "tag\u{E0041}",
        ] {
            let err = line("name", spoof, 100).unwrap_err().to_string();
            assert!(err.contains("U+"), "{err}");
            assert!(text("description", spoof, 100).is_err(), "{spoof:?}");
            assert!(optional_line("client", spoof, 100).is_err(), "{spoof:?}");
        }
        assert_eq!(line("name", "café ☕ 東京", 100).unwrap(), "café ☕ 東京");
    }

    /// The document's patterns accept exactly what the functions accept: strings drawn from
    /// letters, spaces of every kind, controls and format characters, in any order.
    #[cfg(feature = "openapi")]
    mod patterns_agree {
        use proptest::prelude::*;

        use super::super::{line, optional_line, patterns, text};

        fn tricky() -> impl Strategy<Value = String> {
            let chars = prop::sample::select(vec![
                'a',
                'Z',
                '7',
                'é',
                '東',
                '☕',
                '\u{1F600}',
                ' ',
                '\t',
                '\n',
                '\r',
                '\u{B}',
                '\u{C}',
                '\u{85}',
                '\u{A0}',
                '\u{2003}',
                '\u{3000}',
                '\u{2028}',
                '\u{2029}',
                '\0',
                '\u{7}',
                '\u{1B}',
                '\u{1F}',
                '\u{7F}',
                '\u{9F}',
                '\u{AD}',
                '\u{200B}',
                '\u{200D}',
                '\u{202E}',
                '\u{2066}',
                '\u{FEFF}',
                '\u{E0041}',
                '\u{110BD}',
                '-',
                ']',
                '^',
                '\\',
            ]);
            prop::collection::vec(chars, 0..8).prop_map(|v| v.into_iter().collect())
        }

        proptest! {
            #[test]
            fn line_pattern(s in tricky()) {
                let re = regex::Regex::new(&patterns::line()).unwrap();
                prop_assert_eq!(re.is_match(&s), line("f", &s, 100).is_ok(), "{:?}", s);
            }

            #[test]
            fn optional_line_pattern(s in tricky()) {
                let re = regex::Regex::new(&patterns::optional_line()).unwrap();
                prop_assert_eq!(re.is_match(&s), optional_line("f", &s, 100).is_ok(), "{:?}", s);
            }

            #[test]
            fn text_pattern(s in tricky()) {
                let re = regex::Regex::new(&patterns::text()).unwrap();
                prop_assert_eq!(re.is_match(&s), text("f", &s, 100).is_ok(), "{:?}", s);
            }
        }
    }
}
