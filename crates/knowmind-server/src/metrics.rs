//! Prometheus metrics. Labels are methods, route templates, statuses and refusal kinds — never a
//! token id, client address or anything else unbounded or identifying.

use axum::http::Method;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

type DurationFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: DurationFamily,
    auth_refusals: Family<OutcomeLabels, Counter>,
    rotation_due: Gauge,
    expiring_soon: Gauge,
    incidents_overdue: Gauge,
    /// Which requests also get an access-log line.
    pub(crate) access_log: crate::observe::AccessLog,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn latency_histogram() -> Histogram {
    // 50 µs to ~1.6 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("knowmind");
        let requests = Family::<RequestLabels, Counter>::default();
        let durations: DurationFamily = Family::new_with_constructor(latency_histogram);
        let auth_refusals = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            durations.clone(),
        );
        registry.register(
            "auth_refusals",
            "Requests refused by authentication, by kind",
            auth_refusals.clone(),
        );
        let rotation_due = Gauge::default();
        let expiring_soon = Gauge::default();
        registry.register(
            "tokens_rotation_due",
            "Live API tokens past their workspace's rotation interval and not yet rotated (all \
             workspaces; every instance reports the same database)",
            rotation_due.clone(),
        );
        registry.register(
            "tokens_expiring_soon",
            "Live API tokens that expire within 14 days (all workspaces)",
            expiring_soon.clone(),
        );
        let incidents_overdue = Gauge::default();
        registry.register(
            "incidents_overdue",
            "Incidents still open past their GDPR Art. 33 deadline (all workspaces)",
            incidents_overdue.clone(),
        );
        Metrics {
            registry,
            requests,
            durations,
            auth_refusals,
            rotation_due,
            expiring_soon,
            incidents_overdue,
            access_log: crate::observe::AccessLog::default(),
        }
    }
}

impl Metrics {
    /// The same metrics, with `access_log` choosing the requests that get a log line.
    pub fn with_access_log(self, access_log: crate::observe::AccessLog) -> Self {
        Metrics { access_log, ..self }
    }

    /// Counts one request. Methods other than the standard ones are counted as `OTHER`, so
    /// unauthenticated clients inventing methods cannot grow the series without bound (routes
    /// are templates or `unmatched`, statuses a small set).
    pub fn request(&self, method: &Method, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method_label(method).to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.durations
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(seconds);
    }

    /// Counts one authentication refusal of kind `outcome` (a fixed set of names).
    pub fn auth_refused(&self, outcome: &str) {
        self.auth_refusals
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Sets the token gauges (counts only: no ids, no workspaces).
    pub fn token_counts(&self, counts: token_store::TokenCounts) {
        self.rotation_due
            .set(i64::try_from(counts.rotation_due).unwrap_or(i64::MAX));
        self.expiring_soon
            .set(i64::try_from(counts.expiring_soon).unwrap_or(i64::MAX));
    }

    /// Sets the overdue incidents gauge.
    pub fn incidents_overdue(&self, count: u64) {
        self.incidents_overdue
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl knowmind_axum::RefusalObserver for Metrics {
    fn refused(&self, kind: &'static str) {
        self.auth_refused(kind);
    }
}

/// The label of a method: the standard ones by name, anything else `OTHER`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_one_series() {
        let metrics = Metrics::default();
        for i in 0..500 {
            let method = Method::from_bytes(format!("X{i}").as_bytes()).unwrap();
            metrics.request(&method, "unmatched", 405, 0.001);
        }
        metrics.request(&Method::GET, "unmatched", 404, 0.001);
        let text = metrics.render();
        let series = text
            .lines()
            .filter(|l| l.starts_with("knowmind_http_requests_total{"))
            .count();
        assert_eq!(series, 2, "{text}");
        assert!(text.contains(r#"method="OTHER""#), "{text}");
    }
}
