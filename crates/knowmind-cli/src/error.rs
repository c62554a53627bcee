//! Errors: one clear line, an optional hint, and the exit code — never a backtrace or a secret.

use std::fmt;

/// Exit codes.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Any error.
    pub const ERROR: u8 = 1;
    /// Bad usage (clap uses this code too).
    pub const USAGE: u8 = 2;
    /// Cancelled, or confirmation needed but not possible.
    pub const CANCELLED: u8 = 3;
    /// The server refused the token.
    pub const AUTH_REFUSED: u8 = 4;
}

/// An error for the user.
#[derive(Debug)]
pub struct CliError {
    message: String,
    hint: Option<String>,
    code: u8,
}

impl CliError {
    /// A failure already reported in full on stdout (a `--json` document): exit 1, no message.
    pub fn reported() -> Self {
        CliError::new("")
    }

    /// Whether there is a message to print (see [`CliError::reported`]).
    pub fn has_message(&self) -> bool {
        !self.message.is_empty()
    }

    /// An error (exit 1).
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            hint: None,
            code: exit::ERROR,
        }
    }

    /// A usage error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            code: exit::USAGE,
            ..Self::new(message)
        }
    }

    /// Cancelled or confirmation needed (exit 3).
    pub fn cancelled(message: impl Into<String>) -> Self {
        CliError {
            code: exit::CANCELLED,
            ..Self::new(message)
        }
    }

    /// The token was refused (exit 4).
    pub fn auth_refused(message: impl Into<String>) -> Self {
        CliError {
            code: exit::AUTH_REFUSED,
            ..Self::new(message)
        }
    }

    /// Adds a hint: what to do about it.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The exit code.
    pub fn code(&self) -> u8 {
        self.code
    }

    /// The hint, if any.
    pub fn hint_text(&self) -> Option<&str> {
        self.hint.as_deref()
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
