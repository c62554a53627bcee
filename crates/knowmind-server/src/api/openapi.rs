//! The OpenAPI 3.1 document, built from the route table: each handler's `#[utoipa::path]`
//! (summary, parameters, body, success response, all from the code's own types), plus what the
//! table knows of every route — the scope it needs, and the problem documents it can answer.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::Method;
use knowmind_api::{Action, DueFilter, Problem, StateFilter};
use knowmind_axum::Access;
use token_core::Scope;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::path::{HttpMethod, Operation, ParameterIn, Paths};
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, Content, Header, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Response,
    ResponseBuilder,
};
use utoipa::{PartialSchema, ToSchema};

use super::{RouteSpec, routes};

/// The document.
pub fn document() -> OpenApi {
    let mut paths = Paths::new();
    let mut schemas: BTreeMap<String, RefOr<Schema>> = BTreeMap::new();
    // The problem document, and what query parameters refer to (`IntoParams` types do not
    // register the schemas they name; `every_reference_resolves` checks none is missing).
    for (name, schema) in [
        (Problem::name(), Problem::schema()),
        (Action::name(), Action::schema()),
        (StateFilter::name(), StateFilter::schema()),
        (DueFilter::name(), DueFilter::schema()),
        (Scope::name(), Scope::schema()),
    ] {
        schemas.insert(name.into_owned(), schema);
    }
    for route in routes() {
        let operation = operation(&route);
        paths.add_path_operation(&route.path, vec![http_method(&route.method)], operation);
        schemas.extend(route.schemas);
    }
    let mut components = ComponentsBuilder::new().security_scheme(
        "bearer",
        SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "A knowmind token: `Authorization: Bearer kmt_…`. Every 401 has the same \
                     body, whatever the reason (unknown, wrong, revoked, expired or malformed).",
                ))
                .build(),
        ),
    );
    for (name, schema) in schemas {
        components = components.schema(name, schema);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("knowmind")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "API tokens handled the way a security-minded SaaS must. Errors are RFC 9457 \
                     problem documents with a stable `code`.",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components.build()))
        .build()
}

fn http_method(method: &Method) -> HttpMethod {
    match *method {
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::PATCH => HttpMethod::Patch,
        Method::DELETE => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

/// The handler's operation, with the scope it needs and every error it can answer.
fn operation(route: &RouteSpec) -> Operation {
    let mut operation = route.operation.clone();
    let scope = match route.access {
        Access::Public => None,
        Access::AnyToken => Some("any"),
        Access::Scope(scope) => Some(scope.as_str()),
    };
    if let Some(scope) = scope {
        let scopes: Vec<&str> = match route.access {
            Access::Scope(scope) => vec![scope.as_str()],
            _ => Vec::new(),
        };
        operation.security = Some(vec![SecurityRequirement::new("bearer", scopes)]);
        operation.extensions = Some(
            ExtensionsBuilder::new()
                .add("x-knowmind-scope", scope)
                .build(),
        );
    }
    for (status, codes) in errors(route) {
        operation
            .responses
            .responses
            .insert(status.to_string(), RefOr::T(problem(status, &codes)));
    }
    operation
}

/// The error statuses of a route and the `code`s each can carry: implied by its access (401,
/// 403, 429, 503), its body (400, 413, 415, 422), its query (400) and path (404) parameters,
/// the server itself (500), and what the route table adds.
fn errors(route: &RouteSpec) -> BTreeMap<u16, BTreeSet<&'static str>> {
    let mut errors: BTreeMap<u16, BTreeSet<&'static str>> = BTreeMap::new();
    let mut add = |status: u16, code: &'static str| {
        errors.entry(status).or_default().insert(code);
    };
    if route.access != Access::Public {
        add(401, "UNAUTHORIZED");
        add(429, "RATE_LIMITED");
        add(503, "BUSY");
    }
    if let Access::Scope(_) = route.access {
        add(403, "INSUFFICIENT_SCOPE");
    }
    if route.operation.request_body.is_some() {
        add(400, "BAD_REQUEST");
        add(413, "PAYLOAD_TOO_LARGE");
        add(415, "UNSUPPORTED_MEDIA_TYPE");
        add(422, "INVALID_INPUT");
    }
    for parameter in route.operation.parameters.iter().flatten() {
        match parameter.parameter_in {
            ParameterIn::Query => add(400, "BAD_REQUEST"),
            ParameterIn::Path => add(404, "NOT_FOUND"),
            _ => {}
        }
    }
    add(500, "INTERNAL");
    for (status, codes) in route.errors {
        for code in *codes {
            add(*status, code);
        }
    }
    errors
}

fn problem(status: u16, codes: &BTreeSet<&'static str>) -> Response {
    let description = match status {
        400 => "The request cannot be understood (malformed JSON, query or cursor)",
        401 => "No usable token (the same body whatever the reason)",
        403 => "The token lacks the scope this operation needs (named in `detail`)",
        404 => "No such resource in this workspace",
        409 => "The resource's state forbids this (a name in use, a token no longer active)",
        413 => "The request body is too large",
        415 => "The body is not `application/json`",
        422 => "Well-formed, but a value is not acceptable (`detail` says which)",
        429 => "Too many failed authentications from this address; see `Retry-After`",
        500 => "The server failed; details are in its log, not here",
        503 => "Busy, or not ready; see `Retry-After`",
        _ => "Error",
    };
    let schema = AllOfBuilder::new()
        .item(Ref::from_schema_name(Problem::name()))
        .item(
            ObjectBuilder::new()
                .property(
                    "code",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(codes.iter().copied())),
                )
                .property(
                    "status",
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .enum_values(Some([status])),
                ),
        );
    let mut response = ResponseBuilder::new()
        .description(description)
        .content("application/problem+json", Content::new(Some(schema)));
    if status == 401 {
        response = response.header(
            "WWW-Authenticate",
            Header::new(ObjectBuilder::new().schema_type(Type::String)),
        );
    }
    if status == 429 || (status == 503 && codes.contains("BUSY")) {
        response = response.header(
            "Retry-After",
            Header::new(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1)),
            ),
        );
    }
    response.build()
}
