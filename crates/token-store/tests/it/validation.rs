use time::Duration;
use token_core::{Scope, Scopes};
use token_store::{Error, NewToken, Rotation, TokenFilter};

use crate::*;

async fn token_count(env: &Env) -> usize {
    env.store
        .list_tokens(&env.ws, &TokenFilter::default(), None, 500)
        .await
        .unwrap()
        .items
        .len()
}

#[tokio::test]
async fn bad_input_is_a_typed_error_and_writes_nothing() {
    for env in envs().await {
        let events = env.events().await;
        let with = |f: &dyn Fn(&mut NewToken)| {
            let mut t = env.new_token("ok", &[Scope::Read]);
            f(&mut t);
            t
        };
        let cases: Vec<(NewToken, &str)> = vec![
            (with(&|t| t.name = String::new()), "name"),
            (with(&|t| t.name = "   ".into()), "name"),
            (with(&|t| t.name = "x".repeat(10 * 1024)), "name"),
            (with(&|t| t.name = "evil\u{1b}[2J".into()), "name"),
            (with(&|t| t.name = "two\nlines".into()), "name"),
            (
                with(&|t| t.description = "d".repeat(10 * 1024)),
                "description",
            ),
            (with(&|t| t.description = "nul\0".into()), "description"),
            (with(&|t| t.client = "c\u{7}".into()), "client"),
            (with(&|t| t.scopes = Scopes::EMPTY), "scopes"),
            (
                with(&|t| t.expires_at = Some(T0 - Duration::seconds(1))),
                "expires_at",
            ),
            (with(&|t| t.expires_at = Some(T0)), "expires_at"),
        ];
        for (input, field) in cases {
            match env.store.create_token(&env.ws, input, &env.ctx()).await {
                Err(Error::Invalid { field: f, reason }) => {
                    assert_eq!(f, field, "{}: {reason}", env.name);
                    assert!(reason.len() < 120, "{reason}");
                }
                other => panic!("{}: expected invalid {field}, got {other:?}", env.name),
            }
        }
        let ghost_owner = NewToken {
            owner_id: "mem_nobody".into(),
            ..env.new_token("ok", &[Scope::Read])
        };
        assert!(matches!(
            env.store
                .create_token(&env.ws, ghost_owner, &env.ctx())
                .await,
            Err(Error::NotFound { what: "member" })
        ));
        assert_eq!(
            token_count(&env).await,
            0,
            "{}: nothing half-written",
            env.name
        );
        assert_eq!(env.events().await, events, "{}: no events either", env.name);
    }
}

#[tokio::test]
async fn unknown_scope_names_are_named() {
    let err = Error::from("read,sudo".parse::<Scopes>().unwrap_err());
    assert_eq!(
        err.to_string(),
        "invalid scopes: unknown scope \"sudo\": expected one of read, write, admin, introspect"
    );
}

#[tokio::test]
async fn bad_rotation_input_is_refused() {
    for env in envs().await {
        let (record, _) = env.create("r", &[Scope::Read]).await;
        let long = Rotation {
            grace: Some(Duration::days(8)),
            expires_at: None,
            allowed_networks: None,
            handover: None,
        };
        assert!(matches!(
            env.store
                .rotate_token(&env.ws, record.id, long, &env.ctx())
                .await,
            Err(Error::Invalid {
                field: "grace_period",
                ..
            })
        ));
        let negative = Rotation {
            grace: Some(Duration::seconds(-1)),
            expires_at: None,
            allowed_networks: None,
            handover: None,
        };
        assert!(matches!(
            env.store
                .rotate_token(&env.ws, record.id, negative, &env.ctx())
                .await,
            Err(Error::Invalid { .. })
        ));
        let past = Rotation {
            grace: None,
            expires_at: Some(Some(T0 - Duration::days(1))),
            allowed_networks: None,
            handover: None,
        };
        assert!(matches!(
            env.store
                .rotate_token(&env.ws, record.id, past, &env.ctx())
                .await,
            Err(Error::Invalid {
                field: "expires_at",
                ..
            })
        ));
        assert_eq!(token_count(&env).await, 1, "{}", env.name);
        assert_eq!(
            env.store
                .get_token(&env.ws, record.id)
                .await
                .unwrap()
                .rotated_to,
            None
        );
    }
}
