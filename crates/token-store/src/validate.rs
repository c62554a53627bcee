//! Checks on text that people type. Names, descriptions and reasons follow the API's text rules
//! (`knowmind_api::text`, which the OpenAPI document's patterns are built from); email addresses
//! are the store's own concern.

pub(crate) use knowmind_api::text::{line, optional_line, text};

use crate::error::Error;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_plausible() {
        assert_eq!(email("Ada@Example.org").unwrap(), "ada@example.org");
        for bad in ["", "ada", "@x", "ada@", "a@b@c", "a b@c"] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }
}
