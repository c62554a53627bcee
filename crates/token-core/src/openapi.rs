//! OpenAPI schemas of the token id, a scope and a set of scopes (feature `openapi`): written by
//! hand because their JSON forms are custom (`Serialize` impls), and kept here, beside those
//! impls, so the schema and the parser change together.

use std::borrow::Cow;

use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::{Networks, Scope, Scopes, TokenId};

/// What `TokenId::from_str` accepts, as a regular expression.
pub const TOKEN_ID_PATTERN: &str = "^[0-9A-Za-z]{16}$";

impl PartialSchema for TokenId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(TOKEN_ID_PATTERN))
            .description(Some(
                "A token's public id: 16 base62 characters, the part of the token after `kmt_`.",
            ))
            .into()
    }
}

impl ToSchema for TokenId {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("TokenId")
    }
}

impl PartialSchema for Scope {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(Scope::ALL.iter().map(|s| s.as_str())))
            .description(Some(
                "`read` workspace content; `write` it (implies read); `admin`: tokens, members, \
                 audit log; `introspect`: verify tokens for a resource server.",
            ))
            .into()
    }
}

impl ToSchema for Scope {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Scope")
    }
}

impl PartialSchema for Scopes {
    fn schema() -> RefOr<Schema> {
        ArrayBuilder::new()
            .items(Ref::from_schema_name(Scope::name()))
            .description(Some("A set of scopes; a repeated scope counts once."))
            .into()
    }
}

impl ToSchema for Scopes {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Scopes")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((Scope::name().into_owned(), Scope::schema()));
    }
}

impl PartialSchema for Networks {
    fn schema() -> RefOr<Schema> {
        ArrayBuilder::new()
            .items(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some(
                        "An IPv4 or IPv6 address or CIDR network with no bits set after its \
                         prefix, like `192.0.2.0/24` or `2001:db8::/32`; not `/0`.",
                    )),
            )
            .max_items(Some(Networks::MAX))
            .description(Some(
                "The networks a token may be used from; empty: anywhere. Duplicates count once.",
            ))
            .into()
    }
}

impl ToSchema for Networks {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Networks")
    }
}
