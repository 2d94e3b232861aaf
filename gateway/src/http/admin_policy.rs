//! The region admin's policy, `/staff/admin/policy`: every published version, the differences
//! between two, and a new version checked (valid, the region's, a higher version; with its
//! differences from the current one) and published. Every draw from then on follows it. The
//! work is `use_cases::region_setup`'s.

use std::num::NonZeroU32;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};
use drawbridge_domain::language::when;
use serde::{Deserialize, Serialize};
use similar::{ChangeTag, TextDiff};

use super::console::{Console, DoneQuery, TIMEZONE};
use crate::error::ApiError;
use crate::use_cases::{region_setup, rules};
use crate::AppState;

const POLICY: &str = "/staff/admin/policy";
/// Unchanged lines shown around each change.
const CONTEXT_LINES: usize = 3;

#[derive(Serialize)]
struct VersionListed {
    version: i32,
    published: String,
    digest: String,
}

/// One line of a difference: `tag` is `equal`, `delete` or `insert`; a `gap` is lines left out.
#[derive(Serialize)]
struct DiffLine {
    tag: &'static str,
    old: Option<usize>,
    new: Option<usize>,
    text: String,
}

/// The differences from `old` to `new`, line by line, with a little context.
fn diff(old: &str, new: &str) -> Vec<DiffLine> {
    let diff = TextDiff::from_lines(old, new);
    let mut lines = Vec::new();
    for (i, group) in diff.grouped_ops(CONTEXT_LINES).iter().enumerate() {
        if i > 0 {
            lines.push(DiffLine {
                tag: "gap",
                old: None,
                new: None,
                text: String::new(),
            });
        }
        for op in group {
            for change in diff.iter_changes(op) {
                lines.push(DiffLine {
                    tag: match change.tag() {
                        ChangeTag::Equal => "equal",
                        ChangeTag::Delete => "delete",
                        ChangeTag::Insert => "insert",
                    },
                    old: change.old_index().map(|i| i + 1),
                    new: change.new_index().map(|i| i + 1),
                    text: change.value().trim_end_matches('\n').to_owned(),
                });
            }
        }
    }
    lines
}

#[derive(Serialize, Default)]
struct PolicyView {
    versions: Vec<VersionListed>,
    current: i32,
    document: String,
    /// The differences shown: between two versions, or from the current one to the document.
    diff: Option<Vec<DiffLine>>,
    from: Option<u32>,
    to: Option<u32>,
    /// The document passed the checks (a check, not a publication).
    checked: bool,
    problem: Option<String>,
    done: Option<String>,
}

#[derive(Deserialize)]
pub struct PolicyQuery {
    from: Option<NonZeroU32>,
    to: Option<NonZeroU32>,
}

/// The page with the versions, `view`'s parts filled in by the caller.
async fn policy_page(
    state: &AppState,
    console: &Console,
    mut view: PolicyView,
    status: StatusCode,
) -> HttpResponse {
    let versions = match region_setup::policy_versions(state, &console.member).await {
        Ok(versions) => versions,
        Err(refused) => return console.refused(state, "/staff", &refused),
    };
    view.current = versions.first().map_or(0, |v| v.version);
    view.versions = versions
        .into_iter()
        .map(|v| VersionListed {
            version: v.version,
            published: when(v.published_at, TIMEZONE, console.language),
            digest: v.digest,
        })
        .collect();
    console.page(state, "admin_policy.html", status, view)
}

/// `GET /staff/admin/policy?from=&to=`: the versions, the differences between two of them, and
/// the newest version's document to start a new one from.
pub async fn page(
    state: web::Data<AppState>,
    query: web::Query<PolicyQuery>,
    done: web::Query<DoneQuery>,
    console: Console,
) -> HttpResponse {
    let member = &console.member;
    let found = async {
        // The page lists the versions (and checks the member's right) in `policy_page`.
        let newest = rules::policy(&state, &member.region).await?;
        let compared = match (query.from.map(NonZeroU32::get), query.to.map(NonZeroU32::get)) {
            (Some(from), Some(to)) => {
                let from = region_setup::policy_version(&state, member, from).await?;
                let to = region_setup::policy_version(&state, member, to).await?;
                Some(diff(&from.document, &to.document))
            }
            _ => None,
        };
        Ok::<_, ApiError>((newest, compared))
    }
    .await;
    let (newest, compared) = match found {
        Ok(found) => found,
        Err(refused) => return console.refused(&state, POLICY, &refused),
    };
    let view = PolicyView {
        document: newest.document.clone(),
        diff: compared,
        from: query.from.map(NonZeroU32::get),
        to: query.to.map(NonZeroU32::get),
        done: console.confirmation(&state, &done),
        ..PolicyView::default()
    };
    policy_page(&state, &console, view, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct DocumentForm {
    csrf: String,
    document: String,
}

/// The document again with what is wrong with it, or what it changes.
async fn checked_page(
    state: &AppState,
    console: &Console,
    document: String,
    checked: Result<(), ApiError>,
) -> HttpResponse {
    let current = state.policies.current(&console.member.region).await;
    let diff = current.ok().map(|current| diff(&current.document, &document));
    let (problem, status) = match &checked {
        Ok(()) => (None, StatusCode::OK),
        Err(refused) => (
            Some(refused.public_message()),
            ResponseError::status_code(refused),
        ),
    };
    let view = PolicyView {
        document,
        diff,
        checked: checked.is_ok(),
        problem,
        ..PolicyView::default()
    };
    policy_page(state, console, view, status).await
}

/// `POST /staff/admin/policy/check`: checks the document as publishing would, and shows what it
/// changes, without publishing it.
pub async fn check(
    state: web::Data<AppState>,
    form: web::Form<DocumentForm>,
    console: Console,
) -> HttpResponse {
    if let Err(refused) = console.check_form(&form.csrf) {
        return console.refused(&state, POLICY, &refused);
    }
    let checked = region_setup::check_policy(&state, &console.member, &form.document).await;
    if let Err(refused) = &checked {
        if refused.field().is_none() {
            return console.refused(&state, POLICY, refused);
        }
    }
    checked_page(&state, &console, form.into_inner().document, checked.map(|_| ())).await
}

/// `POST /staff/admin/policy/publish`: publishes the document as the region's newest version.
pub async fn publish(
    state: web::Data<AppState>,
    form: web::Form<DocumentForm>,
    console: Console,
) -> HttpResponse {
    if let Err(refused) = console.check_form(&form.csrf) {
        return console.refused(&state, POLICY, &refused);
    }
    match region_setup::publish_policy(&state, &console.member, &form.document).await {
        Ok(_) => console.see_other(&format!("{POLICY}?done=policy_published")),
        Err(refused) if refused.field().is_some() => {
            checked_page(&state, &console, form.into_inner().document, Err(refused)).await
        }
        Err(refused) => console.refused(&state, POLICY, &refused),
    }
}
