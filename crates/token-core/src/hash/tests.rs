use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::*;
use crate::token::{CHECKSUM_LEN, ID_LEN, PREFIX, SECRET_LEN, TOKEN_LEN};

fn setup(seed: u64) -> (ChaCha20Rng, Token, TokenHash) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let token = Token::generate(&mut rng).unwrap();
    let hash = TokenHash::new(&token, &HashParams::insecure_for_tests(), &mut rng).unwrap();
    (rng, token, hash)
}

/// `text` with the character at `position` replaced and the checksum recomputed, so that it
/// parses: a different token that differs from the original in exactly one id/secret character.
fn with_substitution(text: &str, position: usize) -> Token {
    let mut body = text.as_bytes()[PREFIX.len()..TOKEN_LEN - CHECKSUM_LEN].to_vec();
    let i = position - PREFIX.len();
    body[i] = if body[i] == b'x' { b'y' } else { b'x' };
    crate::token::checksummed(std::str::from_utf8(&body).unwrap())
        .parse()
        .unwrap()
}

#[test]
fn the_production_default_is_the_documented_one() {
    // docs/SECURITY.md: ln=14, r=8, p=1 — 16 MiB per hash.
    assert_eq!(HashParams::DEFAULT, HashParams::new(14, 8, 1).unwrap());
    assert_eq!(HashParams::default(), HashParams::DEFAULT);
    assert_eq!(HashParams::DEFAULT.memory_bytes(), 16 * 1024 * 1024);
    assert!(HashParams::DEFAULT.memory_bytes() >= HashParams::MIN_MEMORY);
}

#[test]
fn weak_or_excessive_params_are_refused() {
    assert!(matches!(
        HashParams::new(13, 8, 1),
        Err(Error::InvalidParams(_))
    ));
    assert!(matches!(
        HashParams::new(4, 8, 1),
        Err(Error::InvalidParams(_))
    ));
    assert!(matches!(
        HashParams::new(0, 8, 1),
        Err(Error::InvalidParams(_))
    ));
    assert!(matches!(
        HashParams::new(14, 0, 1),
        Err(Error::InvalidParams(_))
    ));
    assert!(matches!(
        HashParams::new(19, 8, 1),
        Err(Error::InvalidParams(_))
    ));
    assert!(matches!(
        HashParams::new(14, 8, 5),
        Err(Error::InvalidParams(_))
    ));
    assert!(
        HashParams::new(18, 8, 1).is_ok(),
        "256 MiB is the ceiling, inclusive"
    );
}

#[test]
fn phc_string_round_trips_and_verifies() {
    let (_, token, hash) = setup(1);
    let phc = hash.as_phc();
    assert!(phc.starts_with("$scrypt$ln=4,r=8,p=1$"), "{phc}");
    let parsed: TokenHash = phc.parse().unwrap();
    assert_eq!(parsed, hash);
    parsed.verify(&token).unwrap();
    let again: Token = token.expose_secret().parse().unwrap();
    parsed.verify(&again).unwrap();
}

#[test]
fn salts_are_fresh_per_hash() {
    let (mut rng, token, first) = setup(2);
    let second = TokenHash::new(&token, &HashParams::insecure_for_tests(), &mut rng).unwrap();
    assert_ne!(first.as_phc(), second.as_phc());
    second.verify(&token).unwrap();
}

#[test]
fn another_token_does_not_verify() {
    let (mut rng, _, hash) = setup(3);
    let other = Token::generate(&mut rng).unwrap();
    assert_eq!(hash.verify(&other), Err(Error::Mismatch));
}

#[test]
fn changing_any_id_or_secret_character_fails_verification() {
    let (_, token, hash) = setup(4);
    let text = token.expose_secret();
    for position in PREFIX.len()..PREFIX.len() + ID_LEN + SECRET_LEN {
        let tampered = with_substitution(text, position);
        assert_eq!(
            hash.verify(&tampered),
            Err(Error::Mismatch),
            "position {position}"
        );
    }
}

#[test]
fn tampering_with_any_character_of_the_phc_string_fails() {
    let (_, token, hash) = setup(5);
    let phc = hash.as_phc().to_owned();
    for position in 0..phc.len() {
        for replacement in [b'A', b'z', b'0', b'+', b'$', b'9'] {
            let mut bytes = phc.clone().into_bytes();
            if bytes[position] == replacement {
                continue;
            }
            bytes[position] = replacement;
            let tampered = String::from_utf8(bytes).unwrap();
            let outcome = tampered.parse::<TokenHash>().and_then(|h| h.verify(&token));
            assert!(outcome.is_err(), "{tampered} still verifies");
        }
    }
    // Truncation and extension too.
    for cut in 0..phc.len() {
        assert!(
            phc[..cut]
                .parse::<TokenHash>()
                .and_then(|h| h.verify(&token))
                .is_err()
        );
    }
    assert!(
        format!("{phc}A")
            .parse::<TokenHash>()
            .and_then(|h| h.verify(&token))
            .is_err()
    );
}

#[test]
fn hostile_parameters_are_refused_before_any_allocation() {
    let (_, _, hash) = setup(6);
    let tail = hash.as_phc().splitn(4, '$').nth(3).unwrap().to_owned();
    for params in [
        "ln=30,r=8,p=1",
        "ln=19,r=8,p=1",
        "ln=14,r=4294967295,p=1",
        "ln=14,r=8,p=64",
        "ln=255,r=8,p=1",
        "ln=99999,r=8,p=1",
    ] {
        let phc = format!("$scrypt${params}${tail}");
        assert_eq!(
            phc.parse::<TokenHash>().unwrap_err(),
            Error::HashTooCostly,
            "{params}"
        );
    }
    for params in [
        "ln=14,r=8",
        "ln=14,r=8,p=1,x=2",
        "ln=14,ln=14,r=8,p=1",
        "ln=a,r=8,p=1",
        "ln=0,r=8,p=1",
        "",
    ] {
        let phc = format!("$scrypt${params}${tail}");
        assert!(
            matches!(
                phc.parse::<TokenHash>(),
                Err(Error::MalformedHash(_) | Error::InvalidParams(_))
            ),
            "{params}"
        );
    }
    let argon = "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA";
    assert!(matches!(
        argon.parse::<TokenHash>(),
        Err(Error::MalformedHash(_))
    ));
    assert!(matches!(
        "".parse::<TokenHash>(),
        Err(Error::MalformedHash(_))
    ));
}

#[test]
fn short_salts_are_refused() {
    let phc = "$scrypt$ln=4,r=8,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
    assert!(matches!(
        phc.parse::<TokenHash>(),
        Err(Error::MalformedHash(_))
    ));
}

#[test]
fn needs_rehash_when_parameters_differ() {
    let (_, _, hash) = setup(7);
    assert!(!hash.needs_rehash(&HashParams::insecure_for_tests()));
    assert!(hash.needs_rehash(&HashParams::DEFAULT));
    assert_eq!(hash.params(), HashParams::insecure_for_tests());
}

#[test]
fn debug_shows_parameters_only() {
    let (_, token, hash) = setup(8);
    let debug = format!("{hash:?} {hash:#?}");
    let salt_and_hash = hash.as_phc().splitn(4, '$').nth(3).unwrap();
    for part in salt_and_hash.split('$') {
        assert!(!debug.contains(part), "{debug}");
    }
    assert!(!debug.contains(&token.expose_secret()[4..]), "{debug}");
    assert!(debug.contains("ln=4,r=8,p=1"), "{debug}");
}

/// Known answer: the stored format of a hash must not change under a refactor, or every stored
/// token stops verifying. The expected string was computed independently (Python's
/// `hashlib.scrypt` over the same id and secret, salt and parameters). The token is built at run
/// time from a body without prefix or checksum, so no real-looking token is in the source.
#[test]
fn phc_string_known_answer() {
    let body = format!(
        "{}{}",
        "0123456789abcdef", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef"
    );
    let token: Token = crate::token::checksummed(&body).parse().unwrap();
    let mut salt_rng = ChaCha20Rng::seed_from_u64(1);
    let hash = TokenHash::new(&token, &HashParams::insecure_for_tests(), &mut salt_rng).unwrap();
    assert_eq!(
        hash.as_phc(),
        "$scrypt$ln=4,r=8,p=1$mjdEUEVgY57GcLehfUkrJw$WTMlyrw2cjK1c+gLT6gxMd9uJY8Ntb0X8dHv8/iHUnQ"
    );
    let parsed: TokenHash =
        "$scrypt$ln=4,r=8,p=1$mjdEUEVgY57GcLehfUkrJw$WTMlyrw2cjK1c+gLT6gxMd9uJY8Ntb0X8dHv8/iHUnQ"
            .parse()
            .unwrap();
    assert!(parsed.verify(&token).is_ok());
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_phc_text_parses_or_is_refused_without_panicking(s in any::<String>()) {
            if let Ok(hash) = s.parse::<TokenHash>() {
                prop_assert_eq!(hash.as_phc(), s.as_str());
            }
        }

        #[test]
        fn phc_shaped_text_never_gets_past_the_cost_cap(
            ln in 0u32..80, r in 0u32..100_000, p in 0u32..100, salt in "[A-Za-z0-9+/]{22,40}",
        ) {
            let text = format!("$scrypt$ln={ln},r={r},p={p}${salt}$WTMlyrw2cjK1c+gLT6gxMd9uJY8Ntb0X8dHv8/iHUnQ");
            if let Ok(hash) = text.parse::<TokenHash>() {
                prop_assert!(hash.params().memory_bytes() <= HashParams::MAX_MEMORY);
                prop_assert!(hash.params().p() <= HashParams::MAX_P);
            }
        }
    }
}
