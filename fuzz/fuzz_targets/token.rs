//! Token and token-id parsing: never panics; whatever parses round-trips exactly, and a token's
//! `Debug` never shows its secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_core::{Token, TokenId};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(token) = text.parse::<Token>() {
        assert_eq!(token.expose_secret(), text);
        assert_eq!(token.id().as_str(), &text[4..20]);
        let shown = format!("{token:?}");
        assert!(!shown.contains(&text[20..52]), "Debug shows the secret");
    }
    if let Ok(id) = text.parse::<TokenId>() {
        assert_eq!(id.as_str(), text);
    }
});
