//! The webhook worker: every instance runs one. Each round it writes the time-based notices
//! (tokens expiring or due, incidents' deadlines near; once a minute), fans new audit events out to the endpoints that want them, claims the due
//! deliveries (a lease: no other instance sends them meanwhile) and POSTs them, signed, then
//! records each attempt. Redirects are not followed (a delivery goes where the endpoint was
//! registered, nowhere else), a name must resolve to addresses a delivery may go to (never
//! link-local; internal ones only where the server allows them), a connection is given 3
//! seconds and a send 10.

use std::sync::Arc;
use std::time::Duration;

use token_store::{ClaimedDelivery, DeliveryOutcome, Store};

/// How many deliveries one round sends (at once).
const BATCH: u32 = 20;

/// The HTTP client deliveries go out with; `allow_internal` as the store's option.
///
/// # Errors
/// If the TLS backend cannot be set up.
pub fn client(allow_internal: bool) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(3))
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(Resolver { allow_internal }))
        .user_agent(concat!("knowmind-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Resolves an endpoint's name and keeps only the addresses a delivery may go to, at every
/// delivery (a name's answer can change after registration).
struct Resolver {
    allow_internal: bool,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_internal = self.allow_internal;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| token_store::webhook_address_allowed(a.ip(), allow_internal))
                .collect();
            if addrs.is_empty() {
                return Err(
                    "the endpoint's name resolves to no address a delivery may go to".into(),
                );
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Runs rounds every `every`, the first after one period.
pub(crate) async fn run(store: Store, http: reqwest::Client, every: Duration) {
    let start = tokio::time::Instant::now() + every;
    let mut ticker = tokio::time::interval_at(start, every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut notices_due = tokio::time::Instant::now();
    loop {
        ticker.tick().await;
        if tokio::time::Instant::now() >= notices_due {
            notices_due = tokio::time::Instant::now() + Duration::from_secs(60);
            if let Err(e) = store.write_token_notices().await {
                tracing::warn!(error = %e, "writing token notices failed");
            }
            if let Err(e) = store.write_incident_notices().await {
                tracing::warn!(error = %e, "writing incident reminders failed");
            }
        }
        if let Err(e) = round(&store, &http).await {
            tracing::warn!(error = %e, "webhook round failed; the next one retries");
        }
    }
}

/// One round: fan out, claim, send, record. Returns how many deliveries were attempted.
///
/// # Errors
/// A storage error (what was sent before it is recorded).
pub async fn round(store: &Store, http: &reqwest::Client) -> Result<usize, token_store::Error> {
    store.fan_out_webhooks().await?;
    let claimed = store.claim_deliveries(BATCH).await?;
    let mut sends = tokio::task::JoinSet::new();
    for delivery in claimed {
        let http = http.clone();
        let timestamp = store.now().unix_timestamp();
        sends.spawn(async move {
            let outcome = send(&http, &delivery, timestamp).await;
            (delivery, outcome)
        });
    }
    let mut attempted = 0;
    while let Some(joined) = sends.join_next().await {
        let Ok((delivery, outcome)) = joined else {
            continue; // a send panicked: its lease runs out and another round retries it
        };
        attempted += 1;
        if outcome.status.is_none_or(|s| !(200..300).contains(&s)) {
            tracing::info!(
                delivery = %delivery.id,
                endpoint = %delivery.endpoint_id,
                attempt = delivery.attempt,
                status = outcome.status,
                error = outcome.error.as_deref(),
                "webhook delivery failed; it will be retried"
            );
        }
        store.record_attempt(&delivery, &outcome).await?;
    }
    Ok(attempted)
}

async fn send(
    http: &reqwest::Client,
    delivery: &ClaimedDelivery,
    timestamp: i64,
) -> DeliveryOutcome {
    let started = std::time::Instant::now();
    let sent = http
        .post(&delivery.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("knowmind-webhook-id", &delivery.id)
        .header("knowmind-event", &delivery.event_type)
        .header("knowmind-signature", delivery.signature(timestamp))
        .body(delivery.payload.clone())
        .send()
        .await;
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    match sent {
        Ok(response) => DeliveryOutcome {
            status: Some(response.status().as_u16()),
            error: None,
            duration_ms,
        },
        Err(e) => DeliveryOutcome {
            status: None,
            error: Some(describe(&e)),
            duration_ms,
        },
    }
}

/// Why a send got no answer, in a few words (never the URL's query, which `reqwest` errors
/// would print).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        // Also a name that resolves only to addresses a delivery may not go to.
        "could not connect".to_owned()
    } else if e.is_redirect() {
        "redirected (not followed)".to_owned()
    } else {
        "request failed".to_owned()
    }
}
