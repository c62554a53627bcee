use std::sync::Arc;

use audit::{Audit, BreakReason, Checkpoint, GENESIS};
use time::Duration;

use crate::*;

async fn five_events(db: &Db) {
    for i in 0..5 {
        let e = event("ws_a", Action::TokenCreated, &format!("t{i}"));
        let seq = append(db, &member("mem_1"), &e, T0 + Duration::seconds(i)).await;
        assert_eq!(seq, i + 1);
    }
}

#[tokio::test]
async fn appended_events_form_an_intact_chain() {
    for t in backends().await {
        let audit = Audit::new(t.db.clone());
        let empty = audit.verify(&[]).await.unwrap();
        assert!(empty.is_intact(), "{}", t.name);
        assert_eq!(
            empty.head,
            Checkpoint {
                seq: 0,
                hash: GENESIS.into()
            }
        );

        five_events(&t.db).await;
        let report = audit.verify(&[]).await.unwrap();
        assert!(report.is_intact(), "{}: {report:?}", t.name);
        assert_eq!(report.events, 5);
        assert_eq!(report.head, audit.checkpoint().await.unwrap(), "{}", t.name);
        let page = audit.events(&Default::default(), None, 10).await.unwrap();
        assert_eq!(page.items[4].prev_hash, GENESIS);
        assert_eq!(page.items[0].hash, report.head.hash);
        assert_eq!(page.items[0].client_ip.as_deref(), Some("192.0.2.7"));
        assert_eq!(page.items[0].actor_id.as_deref(), Some("mem_1"));
    }
}

#[tokio::test]
async fn a_rolled_back_transaction_leaves_no_event_and_no_gap() {
    for t in backends().await {
        let mut tx = t.db.begin_write().await.unwrap();
        Audit::new(t.db.clone())
            .append(
                &mut tx,
                &Context::system(),
                &event("ws", Action::TokenRevoked, "x"),
                T0,
            )
            .await
            .unwrap();
        drop(tx);
        let audit = Audit::new(t.db.clone());
        assert_eq!(audit.checkpoint().await.unwrap().seq, 0, "{}", t.name);
        let seq = append(
            &t.db,
            &Context::system(),
            &event("ws", Action::TokenRevoked, "y"),
            T0,
        )
        .await;
        assert_eq!(seq, 1, "{}: sequence numbers have no gaps", t.name);
        assert!(audit.verify(&[]).await.unwrap().is_intact());
    }
}

#[tokio::test]
async fn the_database_refuses_update_and_delete() {
    for t in backends().await {
        five_events(&t.db).await;
        let update = raw(
            &t.db,
            "UPDATE audit_events SET action = 'token.harmless' WHERE seq = 2",
        )
        .await;
        assert!(
            update.unwrap_err().to_string().contains("append-only"),
            "{}",
            t.name
        );
        let delete = raw(&t.db, "DELETE FROM audit_events WHERE seq = 5").await;
        assert!(
            delete.unwrap_err().to_string().contains("append-only"),
            "{}",
            t.name
        );
        if t.db.backend() == Backend::Postgres {
            assert!(raw(&t.db, "TRUNCATE audit_events").await.is_err());
        }
        assert_eq!(
            Audit::new(t.db.clone()).verify(&[]).await.unwrap().events,
            5
        );
    }
}

#[tokio::test]
async fn an_edited_event_is_named() {
    for t in backends().await {
        five_events(&t.db).await;
        drop_triggers(&t.db).await;
        raw(
            &t.db,
            "UPDATE audit_events SET details = '{\"note\":\"nothing to see\"}' WHERE seq = 3",
        )
        .await
        .unwrap();
        let report = Audit::new(t.db.clone()).verify(&[]).await.unwrap();
        let broken = report.broken.expect("edit detected");
        assert_eq!(
            (broken.seq, broken.reason),
            (3, BreakReason::HashMismatch),
            "{}",
            t.name
        );
        assert_eq!(report.events, 2);
    }
}

#[tokio::test]
async fn an_edit_with_a_recomputed_hash_still_breaks_the_next_link() {
    for t in backends().await {
        five_events(&t.db).await;
        drop_triggers(&t.db).await;
        // Rewrite event 3's hash too: event 4's prev_hash no longer matches.
        raw(&t.db, "UPDATE audit_events SET hash = 'ffff' WHERE seq = 3")
            .await
            .unwrap();
        let broken = Audit::new(t.db.clone())
            .verify(&[])
            .await
            .unwrap()
            .broken
            .unwrap();
        assert_eq!(broken.seq, 3, "{}", t.name);
    }
}

#[tokio::test]
async fn a_deleted_event_is_named() {
    for t in backends().await {
        five_events(&t.db).await;
        drop_triggers(&t.db).await;
        raw(&t.db, "DELETE FROM audit_events WHERE seq = 3")
            .await
            .unwrap();
        let broken = Audit::new(t.db.clone())
            .verify(&[])
            .await
            .unwrap()
            .broken
            .unwrap();
        assert_eq!(
            (broken.seq, broken.reason),
            (3, BreakReason::Missing),
            "{}",
            t.name
        );
    }
}

#[tokio::test]
async fn reordered_events_are_named() {
    for t in backends().await {
        five_events(&t.db).await;
        drop_triggers(&t.db).await;
        raw(&t.db, "UPDATE audit_events SET seq = -3 WHERE seq = 3")
            .await
            .unwrap();
        raw(&t.db, "UPDATE audit_events SET seq = 3 WHERE seq = 4")
            .await
            .unwrap();
        raw(&t.db, "UPDATE audit_events SET seq = 4 WHERE seq = -3")
            .await
            .unwrap();
        let broken = Audit::new(t.db.clone())
            .verify(&[])
            .await
            .unwrap()
            .broken
            .unwrap();
        assert_eq!(broken.seq, 3, "{}", t.name);
        assert_eq!(broken.reason, BreakReason::PrevHashMismatch, "{}", t.name);
    }
}

#[tokio::test]
async fn a_removed_tail_is_caught_by_the_head_and_by_a_checkpoint() {
    for t in backends().await {
        five_events(&t.db).await;
        let audit = Audit::new(t.db.clone());
        let checkpoint = audit.checkpoint().await.unwrap();
        assert_eq!(checkpoint.seq, 5);
        drop_triggers(&t.db).await;
        raw(&t.db, "DELETE FROM audit_events WHERE seq >= 4")
            .await
            .unwrap();

        // The head row still says 5.
        let broken = audit.verify(&[]).await.unwrap().broken.unwrap();
        assert_eq!(
            (broken.seq, broken.reason),
            (4, BreakReason::Truncated),
            "{}",
            t.name
        );

        // An attacker who also rewinds the head fools the chain alone, but not the checkpoint.
        let rewind = "UPDATE audit_head SET seq = 3, \
            hash = (SELECT hash FROM audit_events WHERE seq = 3) WHERE id = 1";
        raw(&t.db, rewind).await.unwrap();
        assert!(audit.verify(&[]).await.unwrap().is_intact(), "{}", t.name);
        let broken = audit
            .verify(std::slice::from_ref(&checkpoint))
            .await
            .unwrap()
            .broken
            .unwrap();
        assert_eq!(
            (broken.seq, broken.reason),
            (4, BreakReason::Truncated),
            "{}",
            t.name
        );

        // A checkpoint whose hash disagrees with history is a rewrite.
        let forged = Checkpoint {
            seq: 2,
            hash: "00".into(),
        };
        let broken = audit
            .verify(std::slice::from_ref(&forged))
            .await
            .unwrap()
            .broken
            .unwrap();
        assert_eq!(
            (broken.seq, broken.reason),
            (2, BreakReason::CheckpointMismatch),
            "{}",
            t.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_fork_the_chain() {
    for t in backends().await {
        // Two pools on one database: two server instances.
        let second = second_pool(&t).await;
        let dbs = Arc::new([t.db.clone(), second]);
        let mut tasks = Vec::new();
        for writer in 0..8 {
            let dbs = dbs.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..25 {
                    let e = event("ws", Action::TokenUpdated, &format!("w{writer}-{i}"));
                    append(&dbs[writer % 2], &Context::system(), &e, T0).await;
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let report = Audit::new(t.db.clone()).verify(&[]).await.unwrap();
        assert!(report.is_intact(), "{}: {report:?}", t.name);
        assert_eq!(report.events, 200, "{}", t.name);
    }
}
