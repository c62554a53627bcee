use time::macros::datetime;
use token_core::Scope;

use super::*;

const NOW: OffsetDateTime = datetime!(2026-11-29 12:00 UTC);

fn record(lifetime: Option<Duration>) -> TokenRecord {
    let id: TokenId = "0123456789abcdef".parse().unwrap();
    let created_at = NOW - Duration::minutes(30);
    TokenRecord {
        id,
        workspace_id: "ws".into(),
        owner_id: "mem".into(),
        name: "laptop".into(),
        description: String::new(),
        client: String::new(),
        scopes: Scope::Read.into(),
        created_at,
        created_by: "system".into(),
        expires_at: lifetime.map(|l| created_at + l),
        revoked_at: None,
        revoked_reason: None,
        revoked_by: None,
        rotated_from: None,
        rotated_to: None,
        family_id: id,
        origin: Origin::Issued,
        last_used_at: None,
        last_used_ip: None,
        state: TokenState::Active,
        oauth_client_id: None,
        allowed_networks: Default::default(),
        rotation_due_at: None,
        handover: None,
        canary: false,
    }
}

#[test]
fn a_token_cannot_extend_its_own_life() {
    let old = record(Some(Duration::HOUR));
    let itself = Context::of(Actor::Token(old.id));
    let hour = Some(NOW + Duration::HOUR);
    assert_eq!(rotation_expiry(&old, None, &itself, NOW).unwrap(), hour);
    assert_eq!(
        rotation_expiry(&old, Some(hour), &itself, NOW).unwrap(),
        hour
    );
    let shorter = Some(NOW + Duration::minutes(5));
    assert_eq!(
        rotation_expiry(&old, Some(shorter), &itself, NOW).unwrap(),
        shorter
    );
    for longer in [
        Some(NOW + Duration::HOUR + Duration::SECOND),
        Some(NOW + Duration::days(36_500)),
        Some(datetime!(9999-12-31 23:59 UTC)),
        None,
    ] {
        assert!(
            matches!(
                rotation_expiry(&old, Some(longer), &itself, NOW),
                Err(Error::LifetimeExceeded { max }) if max == Duration::HOUR
            ),
            "{longer:?}"
        );
    }
}

#[test]
fn others_keep_the_lifetime_unless_they_choose_an_expiry() {
    let old = record(Some(Duration::HOUR));
    let admin = Context::of(Actor::Member("mem_admin".into()));
    assert_eq!(
        rotation_expiry(&old, None, &admin, NOW).unwrap(),
        Some(NOW + Duration::HOUR)
    );
    let year = Some(NOW + Duration::days(365));
    assert_eq!(
        rotation_expiry(&old, Some(year), &admin, NOW).unwrap(),
        year
    );
}

#[test]
fn a_lifetime_past_the_calendar_is_an_error_not_a_panic() {
    let mut old = record(None);
    old.expires_at = Some(datetime!(9999-12-31 23:59 UTC)); // created 30 minutes ago
    let itself = Context::of(Actor::Token(old.id));
    assert!(matches!(
        rotation_expiry(&old, None, &itself, NOW),
        Err(Error::Invalid {
            field: "expires_at",
            ..
        })
    ));
}

#[test]
fn a_token_without_expiry_may_keep_none() {
    let old = record(None);
    let itself = Context::of(Actor::Token(old.id));
    assert_eq!(rotation_expiry(&old, None, &itself, NOW).unwrap(), None);
    assert_eq!(
        rotation_expiry(&old, Some(None), &itself, NOW).unwrap(),
        None
    );
    let day = Some(NOW + Duration::DAY);
    assert_eq!(rotation_expiry(&old, Some(day), &itself, NOW).unwrap(), day);
}
