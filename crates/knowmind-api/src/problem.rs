//! An error on the wire: an RFC 9457 problem document (`application/problem+json`).

/// What went wrong. `code` is stable and meant for programs; `detail` is for people and says
/// what to change, without echoing secrets.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// `urn:knowmind:problem:` and the code in lower case.
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP reason phrase.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// This occurrence, in words.
    pub detail: String,
    /// Stable and machine-readable, e.g. `INSUFFICIENT_SCOPE`.
    pub code: String,
}
