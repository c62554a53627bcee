use std::collections::HashSet;

use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::*;

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

#[test]
fn generated_tokens_match_the_regex_round_trip_and_are_distinct() {
    let regex = regex::Regex::new(&format!("^{TOKEN_REGEX}$")).unwrap();
    let mut rng = rng(1);
    let mut ids = HashSet::new();
    let mut secrets = HashSet::new();
    for _ in 0..100_000 {
        let token = Token::generate(&mut rng).unwrap();
        let text = token.expose_secret();
        assert!(regex.is_match(text), "{}", token.masked());
        let parsed: Token = text.parse().unwrap();
        assert_eq!(parsed.id(), token.id());
        assert_eq!(parsed.expose_secret(), text);
        assert!(ids.insert(token.id()));
        assert!(secrets.insert(text[SECRET_START..CHECKSUM_START].to_owned()));
    }
}

#[test]
fn the_os_generator_works() {
    let a = Token::generate(&mut rand::rngs::SysRng).unwrap();
    let b = Token::generate(&mut rand::rngs::SysRng).unwrap();
    assert_ne!(a.expose_secret(), b.expose_secret());
    assert!(a.expose_secret().parse::<Token>().is_ok());
}

#[test]
fn every_single_character_substitution_is_rejected() {
    let mut rng = rng(2);
    for _ in 0..1_000 {
        let token = Token::generate(&mut rng).unwrap();
        let mut bytes = token.expose_secret().as_bytes().to_vec();
        for position in ID_START..TOKEN_LEN {
            let original = bytes[position];
            for &replacement in ALPHABET.iter().filter(|&&c| c != original) {
                bytes[position] = replacement;
                let text = std::str::from_utf8(&bytes).unwrap();
                assert_eq!(
                    text.parse::<Token>().unwrap_err(),
                    Error::MalformedToken(Malformed::ChecksumMismatch),
                    "position {position}"
                );
            }
            bytes[position] = original;
        }
    }
}

#[test]
fn characters_are_uniform() {
    // Modulo bias (256 = 4·62 + 8) would make the first 8 characters 25% more frequent.
    let mut rng = rng(3);
    let mut counts = [0u32; 62];
    let tokens = 20_000;
    for _ in 0..tokens {
        let token = Token::generate(&mut rng).unwrap();
        for &b in &token.expose_secret().as_bytes()[ID_START..CHECKSUM_START] {
            let index = ALPHABET.iter().position(|&c| c == b).unwrap();
            counts[index] += 1;
        }
    }
    let expected = f64::from(tokens * 48) / 62.0;
    for (i, &count) in counts.iter().enumerate() {
        let ratio = f64::from(count) / expected;
        assert!(
            (0.95..1.05).contains(&ratio),
            "char {} ratio {ratio}",
            ALPHABET[i] as char
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_token() {
    let a = Token::generate(&mut rng(7)).unwrap();
    let b = Token::generate(&mut rng(7)).unwrap();
    assert_eq!(a.expose_secret(), b.expose_secret());
}

#[test]
fn malformed_input_gets_a_precise_error() {
    let good = Token::generate(&mut rng(4)).unwrap();
    let text = good.expose_secret();
    let cases: Vec<(String, Malformed)> = vec![
        (String::new(), Malformed::WrongPrefix),
        ("Bearer".into(), Malformed::WrongPrefix),
        (text.replacen("kmt_", "kmx_", 1), Malformed::WrongPrefix),
        (text.replacen("kmt_", "KMT_", 1), Malformed::WrongPrefix),
        (text[..57].to_owned(), Malformed::WrongLength { len: 57 }),
        (format!("{text}A"), Malformed::WrongLength { len: 59 }),
        (format!("{text}\n"), Malformed::WrongLength { len: 59 }),
        (
            format!("{}-{}", &text[..10], &text[11..]),
            Malformed::InvalidCharacter { position: 10 },
        ),
        // 'é' is two bytes, so replacing two ASCII characters keeps the length.
        (
            format!("{}é{}", &text[..10], &text[12..]),
            Malformed::InvalidCharacter { position: 10 },
        ),
        (
            format!("{}\0", &text[..57]),
            Malformed::InvalidCharacter { position: 57 },
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(
            input.parse::<Token>().unwrap_err(),
            Error::MalformedToken(expected),
            "{input:?}"
        );
    }
}

#[test]
fn debug_and_errors_never_show_the_secret() {
    let token = Token::generate(&mut rng(5)).unwrap();
    let text = token.expose_secret().to_owned();
    let secret = &text[SECRET_START..CHECKSUM_START];
    let debug = format!("{token:?} {token:#?}");
    assert!(!debug.contains(secret), "{debug}");
    assert!(debug.contains(token.id().as_str()));
    assert!(!token.masked().contains(secret));
    // An almost-right token (one character off) must not be echoed back in the error.
    let mut typo = text.clone().into_bytes();
    typo[30] = if typo[30] == b'a' { b'b' } else { b'a' };
    let err = String::from_utf8(typo)
        .unwrap()
        .parse::<Token>()
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains(&secret[..8]));
}

#[test]
fn token_ids_parse_and_serialise_as_strings() {
    let token = Token::generate(&mut rng(6)).unwrap();
    let id = token.id();
    assert_eq!(id.as_str().parse::<TokenId>().unwrap(), id);
    let json = serde_json::to_string(&id).unwrap();
    assert_eq!(json, format!("\"{id}\""));
    assert_eq!(serde_json::from_str::<TokenId>(&json).unwrap(), id);
    for bad in [
        "",
        "short",
        "0123456789abcdef0",
        "0123456789abcde!",
        "0123456789abcdé",
    ] {
        assert_eq!(
            bad.parse::<TokenId>().unwrap_err(),
            Error::MalformedTokenId,
            "{bad:?}"
        );
    }
    assert!(serde_json::from_str::<TokenId>("\"nope\"").is_err());
}

proptest! {
    #[test]
    fn parsing_any_string_never_panics(s in any::<String>()) {
        let _ = s.parse::<Token>();
        let _ = s.parse::<TokenId>();
    }

    #[test]
    fn parsing_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let s = String::from_utf8_lossy(&bytes);
        let _ = s.parse::<Token>();
    }

    #[test]
    fn token_shaped_strings_parse_only_with_the_right_checksum(body in "[0-9A-Za-z]{54}") {
        let text = format!("kmt_{body}");
        let valid = checksum(&text.as_bytes()[ID_START..CHECKSUM_START])[..] == text.as_bytes()[CHECKSUM_START..];
        prop_assert_eq!(text.parse::<Token>().is_ok(), valid);
    }

    #[test]
    fn mutating_a_valid_token_never_panics(seed in any::<u64>(), position in 0usize..58, byte in any::<u8>()) {
        let token = Token::generate(&mut rng(seed)).unwrap();
        let mut bytes = token.expose_secret().as_bytes().to_vec();
        bytes[position] = byte;
        let s = String::from_utf8_lossy(&bytes);
        if s.as_bytes() != token.expose_secret().as_bytes() {
            prop_assert!(s.parse::<Token>().is_err());
        }
    }
}

#[test]
fn every_kind_round_trips_with_its_prefix_and_matches_the_regex() {
    let regex = regex::Regex::new(&format!("^{TOKEN_REGEX}$")).unwrap();
    for (i, kind) in TokenKind::ALL.into_iter().enumerate() {
        let token = Token::generate_kind(&mut rng(40 + i as u64), kind).unwrap();
        let text = token.expose_secret();
        assert!(text.starts_with(kind.prefix()), "{}", token.masked());
        assert!(regex.is_match(text));
        let parsed: Token = text.parse().unwrap();
        assert_eq!(parsed.kind(), kind);
        assert_eq!(parsed.id(), token.id());
        assert!(token.masked().starts_with(kind.prefix()));
    }
}

#[test]
fn a_token_relabelled_as_another_kind_does_not_match_its_hash() {
    let params = crate::HashParams::insecure_for_tests();
    let access = Token::generate_kind(&mut rng(50), TokenKind::OAuthAccess).unwrap();
    let hash = crate::TokenHash::new(&access, &params, &mut rng(51)).unwrap();
    // Relabelling breaks the checksum, as any one-character change does…
    assert!(
        access
            .expose_secret()
            .replacen("kmo_", "kmt_", 1)
            .parse::<Token>()
            .is_err()
    );
    // …but anyone can recompute one: same id and secret, API prefix, fresh checksum.
    let relabelled: Token = checksummed(&access.expose_secret()[4..52]).parse().unwrap();
    assert_eq!(relabelled.kind(), TokenKind::Api);
    assert!(hash.verify(&access).is_ok());
    assert!(hash.verify(&relabelled).is_err());
}

#[test]
fn other_kinds_checksum_their_prefix_too_as_the_format_page_says() {
    for (i, kind) in TokenKind::ALL.into_iter().enumerate() {
        let token = Token::generate_kind(&mut rng(60 + i as u64), kind).unwrap();
        let text = token.expose_secret().as_bytes();
        let covered = if kind == TokenKind::Api {
            &text[4..52]
        } else {
            &text[..52]
        };
        assert_eq!(checksum(covered)[..], text[52..], "{kind:?}");
    }
}

/// The gitleaks rule and the offline validator documented in docs/TOKEN-FORMAT.md, run as
/// written: the rule's regular expression finds candidates, the Python validator keeps the real
/// ones. True positives of every kind pass; near-misses, relabelled kinds and glued text do not.
#[test]
fn the_documented_gitleaks_rule_and_validator_tell_tokens_from_near_misses() {
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/TOKEN-FORMAT.md"
    ))
    .unwrap();
    let rule = page
        .split("regex = '''")
        .nth(1)
        .and_then(|rest| rest.split("'''").next())
        .expect("the gitleaks rule's regex");
    let rule = regex::Regex::new(rule).unwrap();
    let validator = page
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the Python validator");

    let real: Vec<String> = TokenKind::ALL
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            Token::generate_kind(&mut rng(70 + i as u64), kind)
                .unwrap()
                .expose_secret()
                .to_owned()
        })
        .collect();
    let mut near = real[0].clone();
    let last = near.pop().unwrap();
    near.push(if last == 'A' { 'B' } else { 'A' });
    let relabelled = real[1].replacen("kmo_", "kmr_", 1);
    let text = format!(
        "a={}\nb: {}\n\"{}\" {}\nnear={near}\nrelabelled={relabelled}\nglued=x{}\n",
        real[0], real[1], real[2], real[3], real[0]
    );
    let candidates: Vec<&str> = rule
        .captures_iter(&text)
        .map(|c| c.get(1).unwrap().as_str())
        .collect();
    // The four real ones, the near-miss and the relabelled one; not the glued copy.
    assert_eq!(candidates.len(), 6, "{candidates:?}");

    let Ok(mut python) = std::process::Command::new("python3")
        .args(["-c", validator])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var_os("KNOWMIND_REQUIRE_PYTHON").is_none(),
            "python3 is needed to run the documented validator"
        );
        println!("skipped: no python3 to run the documented validator");
        return;
    };
    use std::io::Write as _;
    python
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = python.wait_with_output().unwrap();
    assert!(out.status.success());
    let found: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let expected: Vec<String> = real
        .iter()
        .map(|t| format!("knowmind token found: {}…", &t[..20]))
        .collect();
    assert_eq!(found, expected);
}
