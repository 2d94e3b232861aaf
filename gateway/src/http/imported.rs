//! The page that answers an import of a set-up file (centres, postcode areas, staff): the lines
//! that are not right, or what the import did or, on a dry run, would do, with a button that
//! imports the same file.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use drawbridge_platform::table_file::{self, Change, FileErrors};
use serde::Serialize;

use super::console::Console;
use crate::AppState;

/// Rows a page lists at most; the counts cover every row.
const MAX_ROWS: usize = 1000;

/// What was imported, and where the page's forms lead.
pub struct Imported<'a> {
    /// `centres`, `postcodes` or `staff`: the texts' names for the columns.
    kind: &'static str,
    /// Where the dry run's form imports the file.
    action: &'static str,
    back: &'static str,
    text: &'a str,
    dry_run: bool,
}

impl<'a> Imported<'a> {
    pub fn new(
        kind: &'static str,
        action: &'static str,
        back: &'static str,
        text: &'a str,
        dry_run: bool,
    ) -> Imported<'a> {
        Imported {
            kind,
            action,
            back,
            text,
            dry_run,
        }
    }
}

#[derive(Serialize)]
struct RowView {
    line: usize,
    change: Change,
    cells: Vec<String>,
}

/// A line that is not right, in the console's language.
#[derive(Serialize)]
struct LineProblem {
    line: usize,
    message: String,
}

#[derive(Serialize)]
struct ImportedView<'a> {
    kind: &'static str,
    action: &'static str,
    back: String,
    dry_run: bool,
    /// The file, for the dry run's button; empty otherwise.
    text: &'a str,
    errors: Vec<LineProblem>,
    rows: Vec<RowView>,
    more_rows: usize,
    created: usize,
    changed: usize,
    unchanged: usize,
}

/// The page of an import: `cells` gives a row's columns.
pub fn page<T>(
    state: &AppState,
    console: &Console,
    imported: Imported<'_>,
    saved: Result<table_file::Imported<T>, FileErrors>,
    cells: impl Fn(&T) -> Vec<String>,
) -> HttpResponse {
    let mut view = ImportedView {
        kind: imported.kind,
        action: imported.action,
        back: console.link(imported.back),
        dry_run: imported.dry_run,
        text: "",
        errors: Vec::new(),
        rows: Vec::new(),
        more_rows: 0,
        created: 0,
        changed: 0,
        unchanged: 0,
    };
    let status = match saved {
        Err(FileErrors(errors)) => {
            view.errors = errors
                .iter()
                .map(|error| LineProblem {
                    line: error.line,
                    message: state.templates.line_problem(console.language, error),
                })
                .collect();
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Ok(saved) => {
            view.created = saved.count(Change::Created);
            view.changed = saved.count(Change::Changed);
            view.unchanged = saved.count(Change::Unchanged);
            let shown = saved.rows.iter().filter(|row| row.change != Change::Unchanged);
            view.more_rows = shown.clone().count().saturating_sub(MAX_ROWS);
            view.rows = shown
                .take(MAX_ROWS)
                .map(|row| RowView {
                    line: row.line,
                    change: row.change,
                    cells: cells(&row.row),
                })
                .collect();
            if imported.dry_run {
                view.text = imported.text;
            }
            StatusCode::OK
        }
    };
    console.page(state, "admin_imported.html", status, view)
}
