//! The one error of this crate: a name that is not one of the known values.

/// A name (of a state, a role, an outcome, …) that is not one of the values the API knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: expected one of {expected}")]
pub struct UnknownValue {
    /// What was being named.
    pub field: &'static str,
    /// The accepted names, comma-separated.
    pub expected: String,
}

impl UnknownValue {
    pub(crate) fn new<'a>(field: &'static str, names: impl Iterator<Item = &'a str>) -> Self {
        UnknownValue {
            field,
            expected: names.collect::<Vec<_>>().join(", "),
        }
    }
}
