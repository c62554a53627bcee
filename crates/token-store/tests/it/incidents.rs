//! Compromise response on every backend: one call revokes, replaces, and shows what was unusual;
//! the record keeps its Art. 33 facts and deadline.

use knowmind_api::{IncidentEntry, IncidentStatus, OpenIncident};
use time::Duration;
use token_core::Scope;
use token_store::{Call, Error, NOTIFICATION_DEADLINE, Refusal};

use crate::*;

fn from(ip: &str, route: &'static str) -> Call {
    Call {
        client_ip: Some(ip.parse().unwrap()),
        ..call(route)
    }
}

#[tokio::test]
async fn an_incident_revokes_replaces_and_names_what_was_new() {
    for env in envs().await {
        let name = env.name;
        let (record, token) = env.create("ci-2026-11", &[Scope::Read, Scope::Write]).await;
        // Normal use for ten days: one address, one endpoint.
        for _ in 0..10 {
            env.store
                .verify(
                    token.expose_secret(),
                    Scope::Read.into(),
                    &from("203.0.113.9", "/v1/notes"),
                )
                .await
                .unwrap();
            env.clock.advance(Duration::days(1));
        }
        env.store.usage_writer().flush().await.unwrap();
        let noticed = env.store.now();
        // Then, from elsewhere, on an endpoint it never used.
        env.clock.advance(Duration::hours(1));
        env.store
            .verify(
                token.expose_secret(),
                Scope::Write.into(),
                &from("198.51.100.7", "/v1/notes/{id}"),
            )
            .await
            .unwrap();
        env.store.usage_writer().flush().await.unwrap();
        env.clock.advance(Duration::hours(1));
        let open = OpenIncident {
            token_ids: vec![record.id],
            since: Some(noticed),
            replace: true,
            summary: "the CI token was printed in a public build log".into(),
        };
        let (incident, replacements) = env
            .store
            .open_incident(&env.ws, open, &env.ctx())
            .await
            .unwrap();
        let now = env.store.now();
        assert_eq!(incident.status, IncidentStatus::Open);
        assert_eq!(
            incident.deadline,
            incident.opened_at + NOTIFICATION_DEADLINE,
            "{name}"
        );
        assert!(!incident.overdue);
        // The token is dead at once.
        assert!(matches!(
            env.store
                .verify(
                    token.expose_secret(),
                    Scope::Read.into(),
                    &from("203.0.113.9", "/v1/notes")
                )
                .await,
            Err(Error::Unauthorized(Refusal::Revoked))
        ));
        let revoked = env.store.get_token(&env.ws, record.id).await.unwrap();
        assert!(
            revoked.revoked_reason.unwrap().starts_with("compromised"),
            "{name}"
        );
        // Its replacement works, with the same scopes and the name pattern carried forward.
        let (replacement, new_token) = &replacements[0];
        assert_eq!(replacement.scopes, record.scopes);
        assert_eq!(
            replacement.name,
            format!("ci-{}", &now.date().to_string()[..7])
        );
        assert_eq!(incident.tokens[0].replaced_by, Some(replacement.id));
        env.store
            .verify(
                new_token.expose_secret(),
                Scope::Write.into(),
                &from("203.0.113.9", "/v1/notes"),
            )
            .await
            .unwrap();
        // The report names exactly what was new in the window.
        let report = env
            .store
            .incident_report(&env.ws, &incident.id)
            .await
            .unwrap();
        let addresses: Vec<_> = report
            .unknown_addresses
            .iter()
            .map(|ip| ip.ip.clone().unwrap())
            .collect();
        assert_eq!(addresses, ["198.51.100.7"], "{name}");
        let endpoints: Vec<_> = report
            .unknown_endpoints
            .iter()
            .map(|r| r.route.clone())
            .collect();
        assert_eq!(endpoints, ["/v1/notes/{id}"], "{name}");
        assert!(report.calls.iter().all(|c| c.record.at >= noticed));
        assert!(
            report
                .calls
                .iter()
                .any(|c| c.record.client_ip.as_deref() == Some("198.51.100.7"))
        );
        let md = report.to_markdown();
        assert!(
            md.contains("GDPR Art. 33 deadline") && md.contains("198.51.100.7"),
            "{md}"
        );
        assert!(md.contains("the CI token was printed"), "{md}");
        assert!(!md.contains(token.expose_secret()) && !md.contains(new_token.expose_secret()));
        // The record: facts and a decision, appended; the status moves on.
        let entry = IncidentEntry {
            status: Some(IncidentStatus::NotNotifiable),
            nature: Some("a read/write API token exposed in a build log for an hour".into()),
            decision_reason: Some(
                "no personal data was read: the one unknown call wrote a note".into(),
            ),
            ..IncidentEntry::default()
        };
        let amended = env
            .store
            .amend_incident(&env.ws, &incident.id, entry, &env.ctx())
            .await
            .unwrap();
        assert_eq!(amended.status, IncidentStatus::NotNotifiable);
        let report = env
            .store
            .incident_report(&env.ws, &incident.id)
            .await
            .unwrap();
        assert_eq!(report.entries.len(), 1);
        assert!(report.to_markdown().contains("no personal data was read"));
        assert!(matches!(
            env.store
                .amend_incident(&env.ws, &incident.id, IncidentEntry::default(), &env.ctx())
                .await,
            Err(Error::Invalid { .. })
        ));
        // An incident left open past its deadline is overdue wherever incidents are listed.
        let (other, _) = env.create("laptop", &[Scope::Read]).await;
        let open = OpenIncident {
            token_ids: vec![other.id],
            ..OpenIncident::default()
        };
        let (late, _) = env
            .store
            .open_incident(&env.ws, open, &env.ctx())
            .await
            .unwrap();
        // Reminders at 24 and 4 hours before the deadline, once each.
        env.clock.advance(Duration::hours(49));
        assert_eq!(
            env.store.write_incident_notices().await.unwrap(),
            1,
            "{name}: 23 hours left"
        );
        assert_eq!(
            env.store.write_incident_notices().await.unwrap(),
            0,
            "{name}: once"
        );
        env.clock.advance(Duration::hours(20));
        assert_eq!(
            env.store.write_incident_notices().await.unwrap(),
            1,
            "{name}: 3 hours left"
        );
        env.clock.advance(Duration::hours(4));
        assert_eq!(env.store.overdue_incidents().await.unwrap(), 1, "{name}");
        let listed = env.store.list_incidents(&env.ws).await.unwrap();
        let late = listed.iter().find(|i| i.id == late.id).unwrap();
        assert!(late.overdue, "{name}");
        assert!(!listed.iter().find(|i| i.id == incident.id).unwrap().overdue);
        // Another workspace's token cannot be named.
        let bad = OpenIncident {
            token_ids: vec![
                token_core::TokenId::generate(&mut token_core::rand::rngs::SysRng).unwrap(),
            ],
            ..OpenIncident::default()
        };
        assert!(matches!(
            env.store.open_incident(&env.ws, bad, &env.ctx()).await,
            Err(Error::NotFound { .. })
        ));
    }
}
