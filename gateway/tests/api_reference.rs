//! The HTTP API reference (`docs/api.md`) names exactly the operations of `openapi.json`.
//!
//! Each operation in the reference is a heading of the form `### METHOD /path`, with path
//! parameters written as in the OpenAPI document (`### GET /v1/draws/{id}`).

use std::collections::BTreeSet;
use std::path::Path;

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

/// `(METHOD, path)` of every operation in the OpenAPI document.
fn openapi_operations(document: &str) -> BTreeSet<(String, String)> {
    let document: serde_json::Value = serde_json::from_str(document).expect("openapi.json is valid JSON");
    let paths = document["paths"]
        .as_object()
        .expect("openapi.json has a `paths` object");
    let mut operations = BTreeSet::new();
    for (path, item) in paths {
        let item = item.as_object().expect("each path item is an object");
        for method in item.keys().filter(|key| METHODS.contains(&key.as_str())) {
            operations.insert((method.to_uppercase(), path.clone()));
        }
    }
    operations
}

/// `(METHOD, path)` of every `### METHOD /path` heading in the reference.
fn documented_operations(reference: &str) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for line in reference.lines() {
        let Some(heading) = line.strip_prefix("### ") else {
            continue;
        };
        let mut words = heading.split_whitespace();
        let (Some(method), Some(path), None) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        if METHODS.contains(&method.to_lowercase().as_str())
            && method == method.to_uppercase()
            && path.starts_with('/')
        {
            let fresh = operations.insert((method.to_owned(), path.to_owned()));
            assert!(fresh, "docs/api.md names {method} {path} twice");
        }
    }
    operations
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn list(operations: &BTreeSet<&(String, String)>) -> String {
    operations
        .iter()
        .map(|(method, path)| format!("\n  {method} {path}"))
        .collect()
}

#[test]
fn the_api_reference_names_every_operation_of_openapi_json_and_no_other() {
    let gateway = Path::new(env!("CARGO_MANIFEST_DIR"));
    let specified = openapi_operations(&read(&gateway.join("openapi.json")));
    let documented = documented_operations(&read(&gateway.join("../docs/api.md")));
    assert!(!specified.is_empty(), "openapi.json has no operations");

    let missing: BTreeSet<_> = specified.difference(&documented).collect();
    let unknown: BTreeSet<_> = documented.difference(&specified).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "docs/api.md and gateway/openapi.json disagree.\n\
         In openapi.json but without a `### METHOD /path` heading in docs/api.md:{}\n\
         In docs/api.md but not in openapi.json:{}",
        list(&missing),
        list(&unknown),
    );
}

#[test]
fn headings_are_read_as_operations_only_in_their_fixed_form() {
    let reference = "## Rooms\n### GET /v1/rooms/{room}/status\n### POST /v1/rooms/{room}/join\n\
                     ### Errors\n### get /lowercase\n### GET /a extra words\n#### GET /deeper\n";
    let operations = documented_operations(reference);
    let expected: BTreeSet<_> = [
        ("GET".to_owned(), "/v1/rooms/{room}/status".to_owned()),
        ("POST".to_owned(), "/v1/rooms/{room}/join".to_owned()),
    ]
    .into_iter()
    .collect();
    assert_eq!(operations, expected);
}
