//! Issue a token, store its hash, then verify a presented copy and check scope and expiry.
//!
//! `cargo run -p knowmind-examples --example issue_and_verify`
#![allow(clippy::print_stdout)]

use std::error::Error;

use time::{Duration, OffsetDateTime};
use token_core::rand::rngs::SysRng;
use token_core::{Grant, HashParams, Scope, Scopes, Token, TokenHash};

fn main() -> Result<(), Box<dyn Error>> {
    // A binary is where the clock is read; libraries take `now` as an argument.
    #[allow(clippy::disallowed_methods)]
    let now = OffsetDateTime::now_utc();

    // 1. Generate from the OS CSPRNG and hash with the production parameters.
    let token = Token::generate(&mut SysRng)?;
    let stored = TokenHash::new(&token, &HashParams::DEFAULT, &mut SysRng)?;
    let grant = Grant {
        scopes: Scopes::of(&[Scope::Read]),
        expires_at: Some(now + Duration::days(90)),
    };
    println!(
        "issued {} (the full token is shown to its owner once, never logged)",
        token.masked()
    );
    println!("stored hash parameters: {}", stored.params());

    // 2. What a database row would hold: the public id, the PHC string and the grant.
    let row = (token.id(), stored.as_phc().to_owned(), grant);

    // 3. A request presents the token text; parsing checks the checksum without I/O.
    let presented: Token = token.expose_secret().parse()?;
    assert_eq!(presented.id(), row.0, "the id is how the row is found");
    let hash: TokenHash = row.1.parse()?;
    hash.verify(&presented)?;
    println!("verified {} against its stored hash", presented.masked());

    // 4. Scope and expiry, with `now` passed in.
    row.2.check(Scope::Read.into(), now)?;
    println!("read: allowed");
    match row.2.check(Scope::Write.into(), now) {
        Err(e) => println!("write: refused ({e})"),
        Ok(()) => return Err("a read token must not write".into()),
    }
    match row.2.check(Scope::Read.into(), now + Duration::days(91)) {
        Err(e) => println!("in 91 days: refused ({e})"),
        Ok(()) => return Err("an expired token must be refused".into()),
    }

    // 5. A typo is caught by the checksum before any lookup.
    let mut typo = token.expose_secret().to_owned();
    typo.replace_range(30..31, if &typo[30..31] == "a" { "b" } else { "a" });
    match typo.parse::<Token>() {
        Err(e) => println!("mistyped token: refused ({e})"),
        Ok(_) => return Err("a mistyped token must not parse".into()),
    }
    Ok(())
}
