//! The webhook worker: every instance runs one. Each round it writes the time-based notices
//! (once a minute), fans new audit events out to the endpoints that want them, claims the due
//! deliveries (a lease: no other instance sends them meanwhile) and POSTs them, signed, then
//! records each attempt. Redirects are not followed (a delivery goes where the endpoint was
//! registered, nowhere else) and a send gives up after 10 seconds.

use std::time::Duration;

use token_store::{ClaimedDelivery, DeliveryOutcome, Store};

/// How many deliveries one round sends (at once).
const BATCH: u32 = 20;

/// The HTTP client deliveries go out with.
///
/// # Errors
/// If the TLS backend cannot be set up.
pub fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("knowmind-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
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
        "could not connect".to_owned()
    } else if e.is_redirect() {
        "redirected (not followed)".to_owned()
    } else {
        "request failed".to_owned()
    }
}
