use super::*;

fn challenge_of(verifier: &str) -> String {
    base64ct::Base64UrlUnpadded::encode_string(&Sha256::digest(verifier.as_bytes()))
}

#[test]
fn pkce_s256_matches_the_rfc_7636_example_and_nothing_else() {
    // RFC 7636 Appendix B.
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    assert_eq!(challenge_of(verifier), challenge);
    assert!(pkce_matches(verifier, challenge));
    assert!(!pkce_matches(
        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj",
        challenge
    ));
    assert!(
        !pkce_matches("short", &challenge_of("short")),
        "under 43 characters"
    );
    let bad_char = format!("{verifier}!");
    assert!(!pkce_matches(&bad_char, &challenge_of(&bad_char)));
    assert!(check_challenge(challenge).is_ok());
    assert!(check_challenge("plain-verifier").is_err());
}

#[test]
fn redirect_uris_are_https_loopback_http_or_private_use() {
    for good in [
        "https://connector.example/callback",
        "http://127.0.0.1/cb",
        "http://[::1]:8080/cb",
        "http://localhost:3000/cb",
        "com.example.app:/oauth",
    ] {
        assert!(check_redirect_uri(good).is_ok(), "{good}");
    }
    for bad in [
        "http://connector.example/callback",
        "https://connector.example/cb#frag",
        "https://user:pw@connector.example/cb",
        "javascript:alert(1)",
        "data:text/html,hi",
        "myapp:/cb",
        "/relative",
        "",
    ] {
        assert!(
            matches!(
                check_redirect_uri(bad),
                Err(Error::OAuth {
                    error: "invalid_redirect_uri",
                    ..
                })
            ),
            "{bad}"
        );
    }
}

#[test]
fn redirects_match_exactly_except_a_loopback_ips_port() {
    let registered = vec![
        "https://connector.example/callback".to_owned(),
        "http://127.0.0.1/cb".to_owned(),
        "http://[::1]/cb".to_owned(),
    ];
    assert!(redirect_matches(
        &registered,
        "https://connector.example/callback"
    ));
    assert!(redirect_matches(&registered, "http://127.0.0.1:51234/cb"));
    assert!(redirect_matches(&registered, "http://[::1]:4000/cb"));
    for other in [
        "https://connector.example/callback/",
        "https://connector.example/callback?x=1",
        "https://connector.example:8443/callback",
        "https://CONNECTOR.example.evil/callback",
        "http://127.0.0.1:51234/other",
        "http://127.0.0.1:51234/cb?x=1",
        "http://127.0.0.2:51234/cb",
        "http://localhost:51234/cb",
    ] {
        assert!(!redirect_matches(&registered, other), "{other}");
    }
}

#[test]
fn only_read_and_write_can_be_requested() {
    assert_eq!(
        requested_scopes("read write").unwrap(),
        Scopes::of(&[Scope::Read, Scope::Write])
    );
    assert_eq!(requested_scopes("").unwrap(), Scopes::default());
    for bad in ["admin", "read introspect", "READ", "read,write"] {
        assert!(
            matches!(
                requested_scopes(bad),
                Err(Error::OAuth {
                    error: "invalid_scope",
                    ..
                })
            ),
            "{bad}"
        );
    }
}

#[test]
fn client_credentials_debug_hides_the_secret() {
    let creds = ClientCredentials {
        client_id: "cli_x".into(),
        secret: Some(SecretString::from("kmc_very-secret-text".to_owned())),
    };
    let shown = format!("{creds:?}");
    assert!(
        shown.contains("cli_x") && !shown.contains("very-secret"),
        "{shown}"
    );
}
