//! What analysts (and region admins) read of their region: its draws with their figures, each
//! draw's manifest, replay verdict, bias tests and offer rates (`drawbridge audit`'s code, in
//! `drawbridge_platform::audit`), and the simulation reports kept for the region. Everything
//! here is pseudonymised or counted in cells: no phone, email, booking code or registrant id
//! leaves this module; simulations hold simulated people only.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use drawbridge_domain::{Manifest, StaffMember};
use drawbridge_platform::audit::{self, AuditError, DrawAudit};
use drawbridge_platform::draws::{self, DrawSummary};
use drawbridge_platform::states::DrawState;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::forbidden;
use crate::error::ApiError;
use crate::AppState;

/// The newest draws of the member's region, at most `limit`.
pub async fn draws(state: &AppState, member: &StaffMember, limit: i64) -> Result<Vec<DrawSummary>, ApiError> {
    member.may_analyse(&member.region).map_err(forbidden)?;
    Ok(draws::list(state.store.pool(), Some(&member.region), limit).await?)
}

/// A draw of the member's region, with its audit once it completed.
pub struct DrawAnalysis {
    pub summary: DrawSummary,
    pub audit: Option<DrawAudit>,
}

/// The draw `id` with its replay verdict, bias tests and offer rates.
pub async fn draw(state: &AppState, member: &StaffMember, id: Uuid) -> Result<DrawAnalysis, ApiError> {
    let summary = of_region(state, member, id).await?;
    let audit = if summary.state == DrawState::Completed {
        audit::draw(state.store.pool(), &state.hash_key, id)
            .await
            .map_err(|error: AuditError| ApiError::internal(error))?
    } else {
        None
    };
    Ok(DrawAnalysis { summary, audit })
}

/// The manifest of the draw `id`, as `/v1/draws/{id}/manifest` publishes it.
pub async fn manifest(state: &AppState, member: &StaffMember, id: Uuid) -> Result<Manifest, ApiError> {
    of_region(state, member, id).await?;
    super::draws::manifest(state, id).await
}

/// The draw `id`, if the member may analyse its region.
async fn of_region(state: &AppState, member: &StaffMember, id: Uuid) -> Result<DrawSummary, ApiError> {
    member.may_analyse(&member.region).map_err(forbidden)?;
    let summary = super::draws::summary(state, id).await?;
    member.may_analyse(&summary.region).map_err(forbidden)?;
    Ok(summary)
}

/// The files of a simulation report the console serves (what `drawbridge simulate` writes,
/// Parquet aside), each with its content type.
pub const REPORT_FILES: [(&str, &str); 8] = [
    ("report.html", "text/html; charset=utf-8"),
    ("summary.json", "application/json"),
    ("groups.csv", "text/csv; charset=utf-8"),
    ("pairs.csv", "text/csv; charset=utf-8"),
    ("compare.csv", "text/csv; charset=utf-8"),
    ("compare.json", "application/json"),
    ("replay.csv", "text/csv; charset=utf-8"),
    ("replay.json", "application/json"),
];

/// A simulation report of the member's region.
#[derive(Debug, Serialize)]
pub struct SimulationReport {
    /// Its folder's name.
    pub name: String,
    /// The scenario's title, from `summary.json`.
    pub scenario: Option<String>,
    /// The policies it ran.
    pub policies: Vec<String>,
    /// When its newest file was written.
    pub written: DateTime<Utc>,
    /// Which of [`REPORT_FILES`] it has.
    pub files: Vec<&'static str>,
}

/// The simulation reports kept for the member's region, newest first.
pub async fn simulation_reports(
    state: &AppState,
    member: &StaffMember,
) -> Result<Vec<SimulationReport>, ApiError> {
    member.may_analyse(&member.region).map_err(forbidden)?;
    let Some(folder) = reports_folder(state, member) else {
        return Ok(Vec::new());
    };
    let mut entries = match tokio::fs::read_dir(&folder).await {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(ApiError::internal(error)),
    };
    let mut reports = Vec::new();
    while let Some(entry) = entries.next_entry().await.map_err(ApiError::internal)? {
        let Some(name) = entry
            .file_name()
            .to_str()
            .filter(|n| is_report_name(n))
            .map(str::to_owned)
        else {
            continue;
        };
        let mut files = Vec::new();
        let mut written = None;
        for (file, _) in REPORT_FILES {
            if let Ok(metadata) = tokio::fs::metadata(entry.path().join(file)).await {
                files.push(file);
                let modified = metadata.modified().ok().map(DateTime::<Utc>::from);
                written = written.max(modified);
            }
        }
        let Some(written) = written else {
            continue;
        };
        #[derive(Deserialize, Default)]
        struct Summary {
            scenario: Option<String>,
            #[serde(default)]
            policies: Vec<String>,
        }
        let summary: Summary = tokio::fs::read(entry.path().join("summary.json"))
            .await
            .ok()
            .and_then(|body| serde_json::from_slice(&body).ok())
            .unwrap_or_default();
        reports.push(SimulationReport {
            name,
            scenario: summary.scenario,
            policies: summary.policies,
            written,
            files,
        });
    }
    reports.sort_by(|a, b| b.written.cmp(&a.written).then_with(|| a.name.cmp(&b.name)));
    Ok(reports)
}

/// The file `file` of the report `report` of the member's region, with its content type.
pub async fn simulation_file(
    state: &AppState,
    member: &StaffMember,
    report: &str,
    file: &str,
) -> Result<(Vec<u8>, &'static str), ApiError> {
    member.may_analyse(&member.region).map_err(forbidden)?;
    let missing = || {
        ApiError::not_found(format!(
            "Your region has no simulation report {report:?} with a file {file:?}."
        ))
    };
    let content_type = REPORT_FILES
        .iter()
        .find(|(name, _)| *name == file)
        .map(|(_, content_type)| *content_type)
        .filter(|_| is_report_name(report))
        .ok_or_else(missing)?;
    let folder = reports_folder(state, member).ok_or_else(missing)?;
    match tokio::fs::read(folder.join(report).join(file)).await {
        Ok(body) => Ok((body, content_type)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err(missing()),
        Err(error) => Err(ApiError::internal(error)),
    }
}

/// The member's region's folder of simulation reports, if reports are configured. Region ids
/// are `[a-z0-9-]`, so the folder is always inside the configured one.
fn reports_folder(state: &AppState, member: &StaffMember) -> Option<PathBuf> {
    let root = state.settings.simulation_reports.as_ref()?;
    Some(root.join(&member.region))
}

/// A report's folder name: letters, digits, `.`, `_` and `-`, not starting with a dot, so no
/// name leaves the region's folder or opens a hidden one.
fn is_report_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_report_name_never_leaves_the_regions_folder() {
        for name in ["spring-2021", "bw_reserve.v2", "A1"] {
            assert!(super::is_report_name(name), "{name}");
        }
        for name in ["", ".", "..", ".hidden", "../bw", "a/b", "a\\b", "a b", "ä"] {
            assert!(!super::is_report_name(name), "{name}");
        }
    }
}
