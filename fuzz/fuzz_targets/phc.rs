//! Stored-hash (PHC string) parsing: never panics, never accepts parameters that would make
//! scrypt allocate more than the cap, and what parses keeps its exact text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_core::{HashParams, TokenHash};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(hash) = text.parse::<TokenHash>() {
        assert_eq!(hash.as_phc(), text);
        let params = hash.params();
        assert!(params.memory_bytes() <= HashParams::MAX_MEMORY);
        assert!(params.p() <= HashParams::MAX_P);
    }
});
