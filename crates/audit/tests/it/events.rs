use audit::{Audit, EventFilter};
use time::Duration;

use crate::*;

async fn seed(db: &Db) {
    let tok = token_id(1);
    let by_token = Context {
        actor: Actor::Token(tok),
        ..member("x")
    };
    append(
        db,
        &member("mem_1"),
        &event("ws_a", Action::TokenCreated, tok.as_str()),
        T0,
    )
    .await;
    append(
        db,
        &by_token,
        &event("ws_a", Action::TokenRotated, "other"),
        T0 + Duration::hours(1),
    )
    .await;
    append(
        db,
        &member("mem_2"),
        &event("ws_b", Action::TokenCreated, "t9"),
        T0 + Duration::hours(2),
    )
    .await;
    append(
        db,
        &member("mem_1"),
        &event("ws_a", Action::TokenRevoked, tok.as_str()),
        T0 + Duration::hours(3),
    )
    .await;
}

#[tokio::test]
async fn filters_select_the_right_events() {
    for t in backends().await {
        seed(&t.db).await;
        let audit = Audit::new(t.db.clone());
        let seqs = |f: EventFilter| {
            let audit = audit.clone();
            async move {
                audit
                    .events(&f, None, 100)
                    .await
                    .unwrap()
                    .items
                    .iter()
                    .map(|e| e.seq)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            seqs(EventFilter::default()).await,
            [4, 3, 2, 1],
            "{}",
            t.name
        );
        assert_eq!(
            seqs(EventFilter {
                workspace_id: Some("ws_b".into()),
                ..Default::default()
            })
            .await,
            [3]
        );
        assert_eq!(
            seqs(EventFilter {
                actor_id: Some("mem_1".into()),
                ..Default::default()
            })
            .await,
            [4, 1]
        );
        assert_eq!(
            seqs(EventFilter {
                token: Some(token_id(1)),
                ..Default::default()
            })
            .await,
            [4, 2, 1]
        );
        assert_eq!(
            seqs(EventFilter {
                action: Some(Action::TokenCreated),
                ..Default::default()
            })
            .await,
            [3, 1]
        );
        let window = EventFilter {
            since: Some(T0 + Duration::hours(1)),
            until: Some(T0 + Duration::hours(3)),
            ..Default::default()
        };
        assert_eq!(seqs(window).await, [3, 2], "{}", t.name);
    }
}

#[tokio::test]
async fn pages_follow_the_cursor_to_the_end() {
    for t in backends().await {
        seed(&t.db).await;
        let audit = Audit::new(t.db.clone());
        let first = audit
            .events(&EventFilter::default(), None, 3)
            .await
            .unwrap();
        assert_eq!(first.items.len(), 3);
        assert_eq!(first.next_cursor.as_deref(), Some("2"));
        let second = audit
            .events(&EventFilter::default(), first.next_cursor.as_deref(), 3)
            .await
            .unwrap();
        assert_eq!(second.items.iter().map(|e| e.seq).collect::<Vec<_>>(), [1]);
        assert_eq!(second.next_cursor, None, "{}", t.name);
        for bad in ["", "x", "-1", "+1", " 1", "9999999999999999999999"] {
            assert!(
                matches!(
                    audit.events(&EventFilter::default(), Some(bad), 3).await,
                    Err(audit::Error::Invalid {
                        field: "cursor",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }
}

#[tokio::test]
async fn export_writes_json_lines_oldest_first() {
    for t in backends().await {
        seed(&t.db).await;
        let audit = Audit::new(t.db.clone());
        let mut out = Vec::new();
        let n = audit
            .export_jsonl(
                &EventFilter {
                    workspace_id: Some("ws_a".into()),
                    ..Default::default()
                },
                &mut out,
            )
            .await
            .unwrap();
        assert_eq!(n, 3);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3, "{}", t.name);
        assert_eq!(lines[0]["seq"], 1);
        assert_eq!(lines[2]["action"], "token.revoked");
        assert_eq!(lines[0]["at"], "2026-11-27T12:00:00Z");
        assert_eq!(
            lines[0]["details"]["note"],
            format!("token.created {}", token_id(1))
        );
    }
}

#[test]
fn unknown_action_names_are_refused_with_the_choices() {
    let err = "token.deleted".parse::<Action>().unwrap_err().to_string();
    assert!(err.contains("token.revoked"), "{err}");
    assert_eq!("token.reuse".parse::<Action>().unwrap(), Action::TokenReuse);
}
