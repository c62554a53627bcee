//! Duration and scope parsing (the API's and the CLI's): never panics; durations are bounded and
//! non-negative; parsed scopes print back to a form that parses to the same set.
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_core::{Scope, Scopes, parse_duration};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(duration) = parse_duration(text) {
        assert!(!duration.is_negative());
        assert!(duration.whole_days() <= 100 * 366);
    }
    if let Ok(scopes) = text.parse::<Scopes>() {
        assert_eq!(scopes.to_string().parse::<Scopes>().unwrap(), scopes);
    }
    if let Ok(scope) = text.parse::<Scope>() {
        assert_eq!(scope.as_str(), text);
    }
    // The JSON form, as request bodies carry it.
    let _ = serde_json::from_slice::<Scopes>(data);
});
