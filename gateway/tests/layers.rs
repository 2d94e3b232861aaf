//! The gateway's layers, checked from its source: handlers (`http`) over use cases over the
//! store. Handlers never import each other, use cases (and the waiting rooms' machinery) never
//! touch HTTP, and only the store writes SQL.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, with its path relative to `src/`.
fn sources(dir: &Path, root: &Path, found: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("read the source folder") {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            sources(&path, root, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path
                .strip_prefix(root)
                .expect("under src")
                .to_string_lossy()
                .into_owned();
            found.push((
                relative,
                std::fs::read_to_string(&path).expect("read a source file"),
            ));
        }
    }
}

fn gateway_sources() -> Vec<(String, String)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    sources(&root, &root, &mut found);
    assert!(found.len() > 20, "only {} source files", found.len());
    found
}

/// The code of a file without its test module, which may reach anywhere.
fn code(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap_or(text)
}

/// Modules under `http/` that hold handlers (not the shared extractors, answers, refusals, the
/// NUL check, the `/me` session cookie, the consoles' shared parts, the status and the registration
/// form as pages show them, the consoles' file uploads and the page that answers an import).
fn handler_module(file: &str) -> Option<&str> {
    let name = file.strip_prefix("http/")?.strip_suffix(".rs")?;
    (!matches!(
        name,
        "mod"
            | "extract"
            | "answers"
            | "refusal"
            | "nul"
            | "my_session"
            | "console"
            | "status_view"
            | "registration_form"
            | "upload"
            | "imported"
    ))
    .then_some(name)
}

/// Whether `text` has `path` as a whole module path: `super::staff` is not in
/// `super::staff_session`.
fn names_module(text: &str, path: &str) -> bool {
    text.match_indices(path)
        .any(|(at, _)| !text[at + path.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
}

#[test]
fn a_module_path_is_matched_whole() {
    assert!(names_module("use super::staff::{x};", "super::staff"));
    assert!(names_module("use super::staff;", "super::staff"));
    assert!(!names_module("use super::staff_session;", "super::staff"));
}

#[test]
fn handlers_never_import_each_other() {
    let sources = gateway_sources();
    let handlers: Vec<&str> = sources
        .iter()
        .filter_map(|(file, _)| handler_module(file))
        .collect();
    assert!(handlers.len() >= 8, "{handlers:?}");
    let mut found = Vec::new();
    for (file, text) in &sources {
        let Some(this) = handler_module(file) else {
            continue;
        };
        for other in handlers.iter().filter(|other| **other != this) {
            for pattern in [
                format!("super::{other}"),
                format!("crate::http::{other}"),
                format!("http::{other}::"),
            ] {
                if names_module(code(text), &pattern) {
                    found.push(format!("{file} uses {pattern}"));
                }
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn each_layer_uses_only_the_layers_below_it() {
    let forbidden: [(&str, &[&str]); 3] = [
        (
            "use_cases/",
            &["crate::http", "HttpResponse", "HttpRequest", "sqlx::query"],
        ),
        // The waiting rooms' machinery is a use case of its own: tokens, tickets and queues,
        // with their HTTP side in `http`.
        ("rooms/", &["crate::http", "HttpResponse", "HttpRequest"]),
        (
            "store/",
            &["crate::http", "crate::use_cases", "HttpResponse", "crate::error"],
        ),
    ];
    let mut found = Vec::new();
    for (file, text) in gateway_sources() {
        for (layer, words) in forbidden {
            if file.starts_with(layer) {
                for word in words.iter().filter(|word| code(&text).contains(**word)) {
                    found.push(format!("{file} uses {word}"));
                }
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn only_the_store_writes_sql() {
    let mut found = Vec::new();
    for (file, text) in gateway_sources() {
        let runs_sql = ["sqlx::query", "query_as(", "query_scalar("]
            .iter()
            .any(|call| code(&text).contains(call));
        if runs_sql && !file.starts_with("store/") {
            found.push(file);
        }
    }
    assert!(found.is_empty(), "SQL outside the store: {found:?}");
}

#[test]
fn the_store_runs_only_statements_it_declares() {
    // A statement written inline at the call would escape the schema check: every call takes
    // one of the declared constants.
    let mut found = Vec::new();
    for (file, text) in gateway_sources() {
        if !file.starts_with("store/") {
            continue;
        }
        for call in ["query(", "query_as(", "query_scalar("] {
            for (at, _) in code(&text).match_indices(call) {
                let argument = code(&text)[at + call.len()..].trim_start();
                if argument.starts_with('"')
                    || argument.starts_with("&format!")
                    || argument.starts_with("format!")
                {
                    found.push(format!(
                        "{file}: {}",
                        &code(&text)[at..(at + 60).min(code(&text).len())]
                    ));
                }
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}
