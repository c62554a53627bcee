//! Scopes: what a token may do. `write` implies `read`; `admin` and `introspect` imply nothing.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// One permission a token can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Read workspace content.
    Read,
    /// Change workspace content; implies [`Scope::Read`].
    Write,
    /// Manage the workspace's tokens, members, audit log and OAuth clients. Implies nothing else.
    Admin,
    /// Verify tokens on behalf of users (a resource server). Implies nothing else.
    Introspect,
}

impl Scope {
    /// Every scope, in canonical order.
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Write, Scope::Admin, Scope::Introspect];

    /// The scope's name: `read`, `write`, `admin` or `introspect`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
            Scope::Introspect => "introspect",
        }
    }

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// This scope with everything it implies.
    const fn closure(self) -> u8 {
        match self {
            Scope::Write => Scope::Write.bit() | Scope::Read.bit(),
            other => other.bit(),
        }
    }
}

impl FromStr for Scope {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| Error::UnknownScope {
                name: shown_name(s),
            })
    }
}

/// The bad scope name as it may appear in an error: at most 32 characters, and never something
/// that looks like a token (someone will paste one into the wrong field).
pub(crate) fn shown_name(s: &str) -> String {
    if s.contains(crate::token::PREFIX) {
        return "[redacted: looks like a token]".to_owned();
    }
    let mut shown: String = s.chars().take(32).collect();
    if shown.len() < s.len() {
        shown.push('…');
    }
    shown
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A set of scopes. Prints and parses as `read,write`; serialises as `["read","write"]`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Scopes(u8);

impl Scopes {
    /// No scopes.
    pub const EMPTY: Scopes = Scopes(0);

    /// The set holding exactly `scopes`.
    pub fn of(scopes: &[Scope]) -> Self {
        scopes.iter().copied().collect()
    }

    /// Every scope.
    pub fn all() -> Self {
        Scopes::of(&Scope::ALL)
    }

    /// The scopes of this set that `other` does not hold, as written (no implications: `write`
    /// in `other` does not cover `read` here).
    pub const fn without(self, other: Scopes) -> Scopes {
        Scopes(self.0 & !other.0)
    }

    /// The scopes in both sets, as written.
    pub const fn intersection(self, other: Scopes) -> Scopes {
        Scopes(self.0 & other.0)
    }

    /// Adds `scope`.
    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    /// Whether `scope` is in the set as written (implications not applied).
    pub const fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes in the set, in canonical order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    /// The set with every implied scope added (`write` brings `read`).
    pub fn effective(self) -> Scopes {
        Scopes(self.iter().fold(0, |acc, s| acc | s.closure()))
    }

    /// The scopes of `required` that this set does not grant, implications applied.
    pub fn missing(self, required: Scopes) -> Scopes {
        Scopes(required.0 & !self.effective().0)
    }

    /// Whether this set grants every scope of `required`.
    pub fn grants(self, required: Scopes) -> bool {
        self.missing(required).is_empty()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut set = Scopes::EMPTY;
        for scope in iter {
            set.insert(scope);
        }
        set
    }
}

impl From<Scope> for Scopes {
    fn from(scope: Scope) -> Self {
        Scopes(scope.bit())
    }
}

/// Parses `read,write` (spaces around names allowed). The empty string is the empty set; an empty
/// item (`read,,write`) or an unknown name is an error naming it.
impl FromStr for Scopes {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s.trim().is_empty() {
            return Ok(Scopes::EMPTY);
        }
        s.split(',').map(|name| name.trim().parse()).collect()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scopes({self})")
    }
}

impl serde::Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> serde::Deserialize<'de> for Scopes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list = Vec::<Scope>::deserialize(d)?;
        Ok(list.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>().ok(), Some(scope));
        }
        assert_eq!(
            "read,write"
                .parse::<Scopes>()
                .ok()
                .map(|s| s.to_string())
                .as_deref(),
            Some("read,write")
        );
        assert_eq!(
            " write , read ".parse::<Scopes>().ok(),
            Some(Scopes::of(&[Scope::Read, Scope::Write]))
        );
        assert_eq!("".parse::<Scopes>().ok(), Some(Scopes::EMPTY));
    }

    #[test]
    fn unknown_names_are_named_in_the_error() {
        let err = "read,wirte".parse::<Scopes>().unwrap_err();
        assert_eq!(
            err,
            Error::UnknownScope {
                name: "wirte".into()
            }
        );
        assert!(err.to_string().contains("\"wirte\""), "{err}");
        assert!(
            matches!("read,,write".parse::<Scopes>(), Err(Error::UnknownScope { name }) if name.is_empty())
        );
        assert!("READ".parse::<Scope>().is_err(), "names are case-sensitive");
    }

    #[test]
    fn a_pasted_token_is_not_echoed() {
        let err = "kmt_abcdefghijklmnopSECRETSECRETSECRET"
            .parse::<Scope>()
            .unwrap_err();
        assert!(!err.to_string().contains("SECRET"), "{err}");
        let long = "x".repeat(10_000).parse::<Scope>().unwrap_err().to_string();
        assert!(long.len() < 200, "{long}");
    }

    #[test]
    fn write_implies_read_and_nothing_else_implies_anything() {
        let write = Scopes::from(Scope::Write);
        assert!(write.grants(Scope::Read.into()));
        assert!(write.grants(Scopes::of(&[Scope::Read, Scope::Write])));
        assert!(!Scopes::from(Scope::Read).grants(Scope::Write.into()));
        for lone in [Scope::Admin, Scope::Introspect] {
            let set = Scopes::from(lone);
            for other in Scope::ALL.into_iter().filter(|s| *s != lone) {
                assert!(!set.grants(other.into()), "{lone} must not imply {other}");
            }
        }
        assert_eq!(
            Scopes::from(Scope::Read).missing(Scopes::of(&[Scope::Write, Scope::Admin])),
            Scopes::of(&[Scope::Write, Scope::Admin])
        );
        assert!(Scopes::EMPTY.grants(Scopes::EMPTY));
    }

    #[test]
    fn serde_is_a_list_of_names() {
        let set = Scopes::of(&[Scope::Introspect, Scope::Read]);
        let json = serde_json::to_string(&set).unwrap();
        assert_eq!(json, r#"["read","introspect"]"#);
        assert_eq!(serde_json::from_str::<Scopes>(&json).unwrap(), set);
        let err = serde_json::from_str::<Scopes>(r#"["read","root"]"#).unwrap_err();
        assert!(err.to_string().contains("root"), "{err}");
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::{Scope, Scopes};

    proptest! {
        #[test]
        fn any_text_is_a_scope_set_that_prints_back_or_is_refused(s in any::<String>()) {
            if let Ok(scopes) = s.parse::<Scopes>() {
                prop_assert_eq!(scopes.to_string().parse::<Scopes>().unwrap(), scopes);
            }
            let _ = serde_json::from_str::<Scopes>(&s);
        }

        #[test]
        fn every_subset_round_trips(bits in 0u8..16) {
            let chosen: Vec<Scope> = Scope::ALL.into_iter().enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0).map(|(_, s)| s).collect();
            let scopes = Scopes::of(&chosen);
            prop_assert_eq!(scopes.to_string().parse::<Scopes>().unwrap(), scopes);
            let json = serde_json::to_string(&scopes).unwrap();
            prop_assert_eq!(serde_json::from_str::<Scopes>(&json).unwrap(), scopes);
        }
    }
}
