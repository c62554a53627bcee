//! Field schemas that say more than the Rust type (feature `openapi`): the text rules of
//! [`crate::text`] as patterns and lengths, durations, client addresses. Used through
//! `#[schema(schema_with = …)]`; optional fields also accept `null`, as serde does.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type};

use crate::text::patterns;

fn string(pattern: String, min: Option<usize>, max: usize, nullable: bool, about: &str) -> Schema {
    let kind = if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    };
    ObjectBuilder::new()
        .schema_type(kind)
        .pattern(Some(pattern))
        .min_length(min)
        .max_length(Some(max))
        .description(Some(about))
        .into()
}

const LINE: &str = "One line; surrounding whitespace is removed. No control or invisible formatting \
                    characters (Unicode Cc, Cf, Zl, Zp).";
const TEXT: &str =
    "Newlines and tabs allowed; no other control or invisible formatting characters.";

/// A token's name: 1–100 characters.
pub fn name() -> Schema {
    string(patterns::line(), Some(1), 100, false, LINE)
}

/// A token's new name, or `null` to keep it.
pub fn new_name() -> Schema {
    string(patterns::line(), Some(1), 100, true, LINE)
}

/// What a token is for: up to 1,000 characters.
pub fn description() -> Schema {
    string(patterns::text(), None, 1_000, false, TEXT)
}

/// A token's new description, or `null` to keep it.
pub fn new_description() -> Schema {
    string(patterns::text(), None, 1_000, true, TEXT)
}

/// The device or application a token is for: up to 100 characters, may be empty.
pub fn client() -> Schema {
    string(patterns::optional_line(), None, 100, false, LINE)
}

/// Why a token is revoked: up to 200 characters, or `null`.
pub fn reason() -> Schema {
    string(patterns::optional_line(), None, 200, true, LINE)
}

/// A search filter in a query string: up to 100 characters, one line.
pub fn filter() -> Schema {
    string(patterns::optional_line(), None, 100, false, LINE)
}

/// A note's title: 1–200 characters.
pub fn title() -> Schema {
    string(patterns::line(), Some(1), 200, false, LINE)
}

/// A note's body: up to 100,000 characters.
pub fn body() -> Schema {
    string(patterns::text(), None, 100_000, false, TEXT)
}

/// A duration such as `90d`, or `null`.
pub fn duration() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .pattern(Some("^[0-9]+[smhdw]$"))
        .description(Some(
            "A whole number and a unit: s, m, h, d or w (`90d`); at most 100 years, more than zero.",
        ))
        .into()
}

/// Scopes to grant: at least one.
pub fn granted_scopes() -> Schema {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("Scope")))
        .min_items(Some(1))
        .description(Some("At least one scope; a repeated scope counts once."))
        .into()
}

/// Scopes a connector may be given: `read` and/or `write`, at least one.
pub fn oauth_scopes() -> Schema {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["read", "write"])),
        )
        .min_items(Some(1))
        .description(Some(
            "`read` and/or `write`: `admin` and `introspect` are never granted through OAuth.",
        ))
        .into()
}

/// An OAuth client's redirect URIs: at most 10, each at most 2,000 characters.
pub fn redirect_uris() -> Schema {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(2_000)),
        )
        .max_items(Some(10))
        .description(Some(
            "Exact redirect URIs: https, http on a loopback address, or a private-use scheme \
             with a dot; no fragment.",
        ))
        .into()
}

/// A client's IP address (v4 or v6), or `null`.
pub fn client_ip() -> Schema {
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String).format(Some(
            utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Ipv4),
        )))
        .item(ObjectBuilder::new().schema_type(Type::String).format(Some(
            utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Ipv6),
        )))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .into()
}
