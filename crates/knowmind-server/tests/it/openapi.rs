//! The served OpenAPI document is the route table: every route is documented with its scope and
//! its answers, nothing else is, every reference resolves, and the router serves exactly the
//! documented operations.

use std::collections::BTreeSet;

use axum::http::Method;
use knowmind_axum::Access;
use knowmind_server::api::routes;
use serde_json::Value;

use crate::*;

async fn document(s: &Server) -> Value {
    let reply = s.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.json
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

#[tokio::test]
async fn the_document_lists_exactly_the_route_table() {
    let s = server().await;
    let doc = document(&s).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let table: BTreeSet<(String, String)> = routes()
        .iter()
        .map(|r| (r.method.to_string(), r.path.clone()))
        .collect();
    assert_eq!(documented, table);

    let mut operation_ids = BTreeSet::new();
    for route in routes() {
        let op = &doc["paths"][&route.path][route.method.as_str().to_lowercase()];
        let id = op["operationId"].as_str().unwrap_or_default().to_owned();
        assert!(!id.is_empty(), "{route:?} has an operationId");
        assert!(
            operation_ids.insert(id),
            "{route:?}: operationIds are unique"
        );
        assert!(
            op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{route:?} has a summary"
        );
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|k| k.starts_with('2')),
            "{route:?} documents its success"
        );
        assert!(responses.contains_key("500"), "{route:?}");
        match route.access {
            Access::Public => {
                assert!(op.get("security").is_none(), "{route:?} is public");
                // No bearer token; GitHub's alerts are authenticated by their signature.
                assert!(
                    !responses.contains_key("401") || route.path == "/v1/secret-scanning/github",
                    "{route:?}"
                );
            }
            Access::AnyToken => {
                assert_eq!(op["security"], serde_json::json!([{ "bearer": [] }]));
                assert_eq!(op["x-knowmind-scope"], "any");
                assert!(responses.contains_key("401"), "{route:?}");
            }
            Access::Scope(scope) => {
                assert_eq!(
                    op["security"],
                    serde_json::json!([{ "bearer": [scope.as_str()] }])
                );
                assert_eq!(op["x-knowmind-scope"], scope.as_str());
                let codes = &responses["403"]["content"]["application/problem+json"]["schema"]["allOf"]
                    [1]["properties"]["code"]["enum"];
                assert_eq!(
                    codes,
                    &serde_json::json!(["INSUFFICIENT_SCOPE"]),
                    "{route:?}"
                );
            }
        }
        if op.get("requestBody").is_some() {
            for status in ["400", "413", "415", "422"] {
                assert!(responses.contains_key(status), "{route:?} {status}");
            }
        }
    }
    // The routes acting on the presented token are their own operations, not `{id}` = `self`:
    // the id parameter's pattern cannot match `self`.
    let id = &doc["paths"]["/v1/tokens/{id}"]["get"]["parameters"][0];
    assert_eq!(id["name"], "id");
    let pattern = regex::Regex::new(id["schema"]["pattern"].as_str().unwrap()).unwrap();
    assert!(!pattern.is_match("self"));
    assert!(pattern.is_match("AAAAAAAAAAAAAAAA"));
}

/// Every `$ref` in the document names a schema it defines.
#[tokio::test]
async fn every_reference_resolves() {
    let s = server().await;
    let doc = document(&s).await;
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 20, "{refs:?}");
    for reference in refs {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {reference}"));
        assert!(schemas.contains_key(name), "{reference} is not defined");
    }
    for name in [
        "Problem",
        "TokenRecord",
        "Issued",
        "CreateToken",
        "Scope",
        "TokenId",
    ] {
        assert!(schemas.contains_key(name), "{name}");
    }
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// The router answers every documented operation, and a method the document does not list for a
/// path is a 405 problem naming the allowed methods.
#[tokio::test]
async fn the_router_serves_exactly_the_documented_operations() {
    let s = unlimited_server().await;
    let doc = document(&s).await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", "AAAAAAAAAAAAAAAA").replace(
            "/v1/notes/AAAAAAAAAAAAAAAA",
            "/v1/notes/note_AAAAAAAAAAAAAAAA",
        );
        for m in METHODS {
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            let reply = s.call(method, &concrete, None, None).await;
            if item.get(m).is_some() {
                assert!(
                    reply.status != StatusCode::NOT_FOUND || path.contains("{id}"),
                    "{m} {path}: {}",
                    reply.status
                );
                assert_ne!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{m} {path}");
            } else {
                assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{m} {path}");
                assert_eq!(reply.json["code"], "METHOD_NOT_ALLOWED");
                let allow = reply.headers[header::ALLOW].to_str().unwrap().to_owned();
                for listed in METHODS.iter().filter(|l| item.get(**l).is_some()) {
                    assert!(
                        allow.contains(&listed.to_uppercase()),
                        "{path}: Allow {allow} lists {listed}"
                    );
                }
            }
        }
    }
}
