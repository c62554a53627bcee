//! Incidents on the wire: a suspected compromise, the tokens it revoked and replaced, what the
//! security log says happened, and the GDPR Art. 33 record a data protection officer reads.

use time::OffsetDateTime;
use token_core::TokenId;

use crate::{Anomaly, Connection, Event, IpUse, RouteUse, StoredUsage, named};

/// Opens an incident (`POST /v1/incidents`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OpenIncident {
    /// The tokens believed compromised (1 to 50); each is revoked with its family at once.
    pub token_ids: Vec<TokenId>,
    /// Look at their calls from this moment (default: the oldest token's creation).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub since: Option<OffsetDateTime>,
    /// Issue a replacement for each (same name pattern, scopes, device, lifetime rule).
    #[serde(default)]
    pub replace: bool,
    /// What happened, as far as known (up to 1,000 characters).
    #[serde(default)]
    pub summary: String,
}

/// An opened incident (`POST /v1/incidents`), with the replacements' plaintext, in that answer
/// only.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OpenedIncident {
    /// The incident.
    #[serde(flatten)]
    pub incident: Incident,
    /// A replacement per token, when asked for: each with its plaintext.
    pub replacements: Vec<crate::Issued>,
}

/// Where an incident stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum IncidentStatus {
    /// Opened; the Art. 33 assessment is due by the deadline.
    Open,
    /// Assessed: facts recorded, a notification decision pending.
    Assessed,
    /// The supervisory authority was notified.
    Notified,
    /// Assessed as not notifiable (the reason is recorded, Art. 33(5)).
    NotNotifiable,
    /// Closed.
    Closed,
}

named!(IncidentStatus, "status", {
    Open => "open",
    Assessed => "assessed",
    Notified => "notified",
    NotNotifiable => "not_notifiable",
    Closed => "closed",
});

/// An incident.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Incident {
    /// `inc_` and 16 base62 characters.
    pub id: String,
    /// Its workspace.
    pub workspace_id: String,
    /// When it was opened: the moment of awareness.
    #[serde(with = "time::serde::rfc3339")]
    pub opened_at: OffsetDateTime,
    /// Who opened it.
    pub opened_by: String,
    /// Awareness plus 72 hours: when the GDPR Art. 33 notification is due, if one is.
    #[serde(with = "time::serde::rfc3339")]
    pub deadline: OffsetDateTime,
    /// Whether the deadline passed while the incident was still open (not assessed).
    pub overdue: bool,
    /// The start of the window its report looks at.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// Where it stands.
    pub status: IncidentStatus,
    /// What happened, as recorded when it was opened.
    pub summary: String,
    /// The tokens it revoked, and their replacements.
    pub tokens: Vec<IncidentToken>,
}

/// A token an incident revoked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncidentToken {
    /// The token.
    pub token_id: TokenId,
    /// Its name.
    pub name: String,
    /// Its replacement, if one was issued.
    pub replaced_by: Option<TokenId>,
}

/// An amendment to the record (`POST /v1/incidents/{id}/entries`): the fields given are
/// recorded (append-only; earlier entries stay), and `status` moves the incident on.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncidentEntry {
    /// The new status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<IncidentStatus>,
    /// Art. 33(3)(a): the nature of the breach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nature: Option<String>,
    /// Art. 33(3)(a): categories and approximate number of data subjects concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_subjects: Option<String>,
    /// Art. 33(3)(a): categories and approximate number of personal data records concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<String>,
    /// Art. 33(3)(b): the data protection officer's name and contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpo_contact: Option<String>,
    /// Art. 33(3)(c): likely consequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consequences: Option<String>,
    /// Art. 33(3)(d): measures taken or proposed, beyond what knowmind recorded itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measures: Option<String>,
    /// The notification decision's reason (Art. 33(5) asks for it either way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_reason: Option<String>,
    /// Anything else worth recording.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl IncidentEntry {
    /// The Art. 33 facts an entry can record: its field name and a label for people.
    pub const FACTS: [(&'static str, &'static str); 7] = [
        ("nature", "Nature of the breach"),
        (
            "data_subjects",
            "Data subjects concerned (categories, approximate number)",
        ),
        (
            "records",
            "Personal data records concerned (categories, approximate number)",
        ),
        ("dpo_contact", "Data protection officer"),
        ("consequences", "Likely consequences"),
        ("measures", "Further measures taken or proposed"),
        ("decision_reason", "Notification decision and its reason"),
    ];

    /// The value this entry records for the fact named `name` (one of [`IncidentEntry::FACTS`]).
    pub fn fact(&self, name: &str) -> Option<&String> {
        match name {
            "nature" => self.nature.as_ref(),
            "data_subjects" => self.data_subjects.as_ref(),
            "records" => self.records.as_ref(),
            "dpo_contact" => self.dpo_contact.as_ref(),
            "consequences" => self.consequences.as_ref(),
            "measures" => self.measures.as_ref(),
            "decision_reason" => self.decision_reason.as_ref(),
            _ => None,
        }
    }
}

/// A recorded amendment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordedEntry {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// By whom.
    pub by: String,
    /// What.
    #[serde(flatten)]
    pub entry: IncidentEntry,
}

/// An incident with everything knowmind knows about it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncidentReport {
    /// The incident.
    #[serde(flatten)]
    pub incident: Incident,
    /// Calls made with its tokens in the window (newest first, at most 500 per token).
    pub calls: Vec<StoredUsage>,
    /// Addresses that used its tokens first in the window: never seen before it.
    pub unknown_addresses: Vec<IpUse>,
    /// Endpoints its tokens called first in the window.
    pub unknown_endpoints: Vec<RouteUse>,
    /// Anomalies raised on its tokens in the window, newest first.
    pub anomalies: Vec<Anomaly>,
    /// Changes made by its tokens in the window (audit events whose actor is one of them).
    pub changes: Vec<Event>,
    /// OAuth connections of the workspace made or used in the window.
    pub connections: Vec<Connection>,
    /// The amendments to the record, oldest first.
    pub entries: Vec<RecordedEntry>,
}

impl IncidentReport {
    /// The latest value recorded for a field, if any.
    pub fn latest(&self, field: impl Fn(&IncidentEntry) -> Option<&String>) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find_map(|e| field(&e.entry))
            .map(String::as_str)
    }

    /// The record as Markdown, for a data protection officer who has never heard of knowmind.
    pub fn to_markdown(&self) -> String {
        let i = &self.incident;
        let t = |at: OffsetDateTime| {
            at.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        let missing = "_not recorded yet_";
        let mut md = format!("# Security incident {}\n\n", i.id);
        md.push_str(&format!(
            "- **Status:** {}{}\n- **Became aware:** {} (opened by {})\n- **GDPR Art. 33 deadline:** {} (72 hours after becoming aware)\n- **Period examined:** from {}\n\n",
            i.status,
            if i.overdue { " — **the deadline passed before an assessment**" } else { "" },
            t(i.opened_at),
            i.opened_by,
            t(i.deadline),
            t(i.since),
        ));
        md.push_str(&format!(
            "## What happened\n\n{}\n\n",
            if i.summary.is_empty() {
                missing
            } else {
                &i.summary
            }
        ));
        md.push_str("## Facts for Art. 33(3)\n\n");
        for (name, label) in IncidentEntry::FACTS {
            if name == "measures" {
                continue; // in "Measures taken", after what knowmind did itself
            }
            let value = self.latest(|e| e.fact(name));
            md.push_str(&format!("- **{label}:** {}\n", value.unwrap_or(missing)));
        }
        md.push_str("\n## Measures taken\n\n");
        for token in &i.tokens {
            md.push_str(&format!(
                "- The API token `{}` ({}) and every token rotated from it were revoked when the incident was opened{}.\n",
                token.token_id,
                token.name,
                token
                    .replaced_by
                    .map(|r| format!("; its replacement is `{r}`"))
                    .unwrap_or_default()
            ));
        }
        if let Some(more) = self.latest(|e| e.measures.as_ref()) {
            md.push_str(&format!("- {more}\n"));
        }
        md.push_str("\n## What was unusual\n\n");
        if self.unknown_addresses.is_empty() && self.unknown_endpoints.is_empty() {
            md.push_str("No address or endpoint was used for the first time in the period.\n");
        }
        for a in &self.anomalies {
            md.push_str(&format!(
                "- Raised at {} ({} severity): the token `{}` was {}: `{}` (call `{} {}` from `{}`).\n",
                t(a.at),
                a.severity,
                a.token_id,
                a.kind.describe(),
                code(&a.value),
                code(&a.method),
                code(&a.route),
                a.client_ip.as_deref().unwrap_or("an unknown address"),
            ));
        }
        for ip in &self.unknown_addresses {
            md.push_str(&format!(
                "- A new address, `{}`: {} call(s) between {} and {}.\n",
                ip.ip.as_deref().unwrap_or("unknown"),
                ip.count,
                t(ip.first_seen),
                t(ip.last_seen)
            ));
        }
        for route in &self.unknown_endpoints {
            md.push_str(&format!(
                "- A new endpoint, `{} {}`: {} call(s) between {} and {}.\n",
                code(&route.method),
                code(&route.route),
                route.count,
                t(route.first_seen),
                t(route.last_seen)
            ));
        }
        md.push_str(&format!(
            "\n## Calls in the period ({})\n\n| time | address | call | status | outcome |\n|---|---|---|---|---|\n",
            self.calls.len()
        ));
        for call in &self.calls {
            let r = &call.record;
            md.push_str(&format!(
                "| {} | {} | {} {} | {} | {} |\n",
                t(r.at),
                r.client_ip.as_deref().unwrap_or(""),
                code(&r.method).replace('|', "\\|"),
                code(&r.route).replace('|', "\\|"),
                r.status.map(|s| s.to_string()).unwrap_or_default(),
                r.outcome
            ));
        }
        md.push_str(&format!(
            "\n## Changes made with the tokens ({})\n\n",
            self.changes.len()
        ));
        for event in &self.changes {
            md.push_str(&format!(
                "- {} {} {}\n",
                t(event.at),
                event.action,
                event.target_id.as_deref().unwrap_or("")
            ));
        }
        md.push_str(&format!(
            "\n## OAuth connections made or used in the period ({})\n\n",
            self.connections.len()
        ));
        for c in &self.connections {
            md.push_str(&format!(
                "- {} (`{}`), member `{}`\n",
                c.client_name, c.client_id, c.member_id
            ));
        }
        md.push_str("\n## Record\n\n");
        for e in &self.entries {
            let mut what = Vec::new();
            if let Some(s) = e.entry.status {
                what.push(format!("status → {s}"));
            }
            if let Some(n) = &e.entry.note {
                what.push(n.clone());
            }
            if what.is_empty() {
                what.push("facts recorded".to_owned());
            }
            md.push_str(&format!("- {} by {}: {}\n", t(e.at), e.by, what.join("; ")));
        }
        md
    }
}

/// Text a client chose, made safe inside a Markdown code span: a backtick would end the span and
/// let the rest read as Markdown (a heading, a link) in the record.
fn code(text: &str) -> String {
    text.replace('`', "'")
}
