//! The analysts' console, `/staff/draws`: the region's draws with their figures, and per draw
//! its manifest to download, its replay verdict, its bias tests and its offer rates by priority
//! group, age band, registration week and channel, as bar charts (inline SVG, each with a title,
//! a description and a table of the same figures) and as CSV; and `/staff/simulations`, the
//! simulation reports kept for the region. Analysts and region admins read their own region
//! only; everything shown is pseudonymised or counted in cells.

use std::fmt::Write as _;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use drawbridge_domain::language::when;
use drawbridge_domain::Language;
use drawbridge_platform::audit::{self, Verdict};
use drawbridge_platform::draws::DrawSummary;
use serde::Serialize;
use uuid::Uuid;

use super::console::{Console, TIMEZONE};
use crate::use_cases::analysis;
use crate::AppState;

/// Draws the list shows.
const LISTED: i64 = 100;
/// Draws the list's CSV holds.
const EXPORTED: i64 = 10_000;

/// A draw as listed.
#[derive(Serialize)]
struct DrawRow {
    id: Uuid,
    started: String,
    state: &'static str,
    pool: Option<u64>,
    ineligible: Option<u64>,
    free_pairs: Option<u64>,
    offers: Option<u64>,
}

impl DrawRow {
    fn of(draw: &DrawSummary, language: Language) -> DrawRow {
        let figure = |name: &str| draw.figures.as_ref().and_then(|f| f[name].as_u64());
        DrawRow {
            id: draw.id,
            started: when(draw.started_at, TIMEZONE, language),
            state: draw.state.as_str(),
            pool: figure("pool"),
            ineligible: figure("ineligible"),
            free_pairs: figure("free_pairs"),
            offers: figure("offers"),
        }
    }
}

/// `GET /staff/draws`: the region's newest draws.
pub async fn draws(state: web::Data<AppState>, console: Console) -> HttpResponse {
    match analysis::draws(&state, &console.member, LISTED).await {
        Ok(draws) => {
            #[derive(Serialize)]
            struct DrawsView {
                region: String,
                draws: Vec<DrawRow>,
            }
            let view = DrawsView {
                region: console.member.region.clone(),
                draws: draws.iter().map(|d| DrawRow::of(d, console.language)).collect(),
            };
            console.page(&state, "analyst_draws.html", StatusCode::OK, view)
        }
        Err(refused) => console.refused(&state, "/staff", &refused),
    }
}

/// `GET /staff/draws/export`: the region's draws with their figures and commitments, as CSV.
pub async fn export(state: web::Data<AppState>, console: Console) -> HttpResponse {
    let draws = match analysis::draws(&state, &console.member, EXPORTED).await {
        Ok(draws) => draws,
        Err(refused) => return console.refused(&state, "/staff", &refused),
    };
    let mut csv = String::from(
        "draw,region,state,policy_version,started_at,completed_at,pool,ineligible,free_pairs,offers,\
         seed_commitment,seed,inputs_digest,outputs_digest\n",
    );
    for draw in &draws {
        let figure = |name: &str| {
            draw.figures
                .as_ref()
                .and_then(|f| f[name].as_u64())
                .map_or(String::new(), |n| n.to_string())
        };
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            draw.id,
            field(&draw.region),
            draw.state.as_str(),
            draw.policy_version,
            draw.started_at.to_rfc3339(),
            draw.completed_at.map_or(String::new(), |at| at.to_rfc3339()),
            figure("pool"),
            figure("ineligible"),
            figure("free_pairs"),
            figure("offers"),
            draw.seed_commitment,
            draw.seed.as_deref().unwrap_or_default(),
            draw.inputs_digest.as_deref().unwrap_or_default(),
            draw.outputs_digest.as_deref().unwrap_or_default(),
        );
    }
    let name = format!("drawbridge-draws-{}.csv", console.member.region);
    attachment("text/csv; charset=utf-8", &name, csv)
}

#[derive(Serialize)]
struct DrawView {
    draw: DrawRow,
    summary: DrawSummary,
    completed: Option<String>,
    /// The audit, once the draw completed.
    audit: Option<AuditView>,
}

#[derive(Serialize)]
struct AuditView {
    reproduced: bool,
    problems: Vec<String>,
    notes: Vec<String>,
    tests: Vec<TestView>,
    charts: Vec<ChartView>,
}

/// One bias test: its text key, verdict and figures, or why it did not run (in English, as
/// `drawbridge audit` says it).
#[derive(Serialize)]
struct TestView {
    key: &'static str,
    verdict: Verdict,
    statistic: Option<String>,
    critical_value: Option<String>,
    degrees_of_freedom: Option<usize>,
    not_tested_because: Option<String>,
}

/// The bar chart and table of offer rates with the pool split one way.
#[derive(Serialize)]
struct ChartView {
    by: &'static str,
    /// The SVG's height in its own units.
    height: usize,
    bars: Vec<BarView>,
}

#[derive(Serialize)]
struct BarView {
    cell: String,
    candidates: u64,
    offers: u64,
    percent: String,
    /// The bar's top and length in the SVG's units.
    y: usize,
    length: f64,
}

/// The SVG's geometry: a label column, then bars up to [`BAR_SPACE`] long, a row each.
const BAR_SPACE: f64 = 380.0;
const ROW: usize = 30;
const TOP: usize = 10;

/// `GET /staff/draws/{id}`: the draw's figures, replay verdict, bias tests and offer rates.
pub async fn draw(state: web::Data<AppState>, id: web::Path<Uuid>, console: Console) -> HttpResponse {
    let analysis = match analysis::draw(&state, &console.member, *id).await {
        Ok(analysis) => analysis,
        Err(refused) => return console.refused(&state, "/staff/draws", &refused),
    };
    let language = console.language;
    let audit = analysis.audit.map(|audit| AuditView {
        reproduced: audit.problems.is_empty(),
        tests: audit
            .tests
            .iter()
            .map(|test| TestView {
                key: test_key(test.name),
                verdict: test.verdict,
                statistic: test.result.as_ref().map(|r| number(r.statistic, language)),
                critical_value: test.result.as_ref().map(|r| number(r.critical_value, language)),
                degrees_of_freedom: test.result.as_ref().map(|r| r.degrees_of_freedom),
                not_tested_because: test.not_tested_because.clone(),
            })
            .collect(),
        charts: audit
            .offer_rates
            .iter()
            .map(|rates| ChartView {
                by: rates.by,
                height: TOP * 2 + ROW * rates.cells.len(),
                bars: rates
                    .cells
                    .iter()
                    .enumerate()
                    .map(|(i, cell)| BarView {
                        cell: cell.cell.clone(),
                        candidates: cell.candidates,
                        offers: cell.offers,
                        percent: percent(cell.rate, language),
                        y: TOP + ROW * i,
                        length: (cell.rate * BAR_SPACE * 10.0).round() / 10.0,
                    })
                    .collect(),
            })
            .collect(),
        problems: audit.problems,
        notes: audit.notes,
    });
    let view = DrawView {
        draw: DrawRow::of(&analysis.summary, language),
        completed: analysis
            .summary
            .completed_at
            .map(|at| when(at, TIMEZONE, language)),
        summary: analysis.summary,
        audit,
    };
    console.page(&state, "analyst_draw.html", StatusCode::OK, view)
}

/// `GET /staff/draws/{id}/manifest`: the draw's manifest as a file, the same JSON as
/// `/v1/draws/{id}/manifest`.
pub async fn manifest(state: web::Data<AppState>, id: web::Path<Uuid>, console: Console) -> HttpResponse {
    match analysis::manifest(&state, &console.member, *id).await {
        Ok(manifest) => HttpResponse::Ok()
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"drawbridge-draw-{}.json\"", *id),
            ))
            .json(manifest),
        Err(refused) => console.refused(&state, "/staff/draws", &refused),
    }
}

/// `GET /staff/draws/{id}/offer-rates`: the draw's offer rates by every split, as CSV.
pub async fn offer_rates(state: web::Data<AppState>, id: web::Path<Uuid>, console: Console) -> HttpResponse {
    let analysis = match analysis::draw(&state, &console.member, *id).await {
        Ok(analysis) => analysis,
        Err(refused) => return console.refused(&state, "/staff/draws", &refused),
    };
    let mut csv = String::from("draw,by,cell,candidates,offers,offer_rate\n");
    for rates in analysis.audit.iter().flat_map(|a| &a.offer_rates) {
        for cell in &rates.cells {
            let _ = writeln!(
                csv,
                "{},{},{},{},{},{:?}",
                *id,
                rates.by,
                field(&cell.cell),
                cell.candidates,
                cell.offers,
                cell.rate
            );
        }
    }
    attachment(
        "text/csv; charset=utf-8",
        &format!("drawbridge-offer-rates-{}.csv", *id),
        csv,
    )
}

/// `GET /staff/simulations`: the simulation reports kept for the region, newest first.
pub async fn simulations(state: web::Data<AppState>, console: Console) -> HttpResponse {
    match analysis::simulation_reports(&state, &console.member).await {
        Ok(reports) => {
            #[derive(Serialize)]
            struct ReportView {
                report: analysis::SimulationReport,
                written: String,
            }
            #[derive(Serialize)]
            struct SimulationsView {
                region: String,
                reports: Vec<ReportView>,
            }
            let view = SimulationsView {
                region: console.member.region.clone(),
                reports: reports
                    .into_iter()
                    .map(|report| ReportView {
                        written: when(report.written, TIMEZONE, console.language),
                        report,
                    })
                    .collect(),
            };
            console.page(&state, "analyst_simulations.html", StatusCode::OK, view)
        }
        Err(refused) => console.refused(&state, "/staff", &refused),
    }
}

/// Lets a simulation's own page style itself (its styles are inline) and nothing else: no
/// script runs, and it is its own origin, never the console's.
const REPORT_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox";

/// `GET /staff/simulations/{report}/{file}`: a file of a report. The report's page opens in the
/// browser; its tables download.
pub async fn simulation_file(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    console: Console,
) -> HttpResponse {
    let (report, file) = path.into_inner();
    match analysis::simulation_file(&state, &console.member, &report, &file).await {
        Ok((body, content_type)) if file.ends_with(".html") => HttpResponse::Ok()
            .content_type(content_type)
            .insert_header((header::CONTENT_SECURITY_POLICY, REPORT_POLICY))
            .insert_header((header::X_FRAME_OPTIONS, "DENY"))
            .body(body),
        Ok((body, content_type)) => HttpResponse::Ok()
            .content_type(content_type)
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{report}-{file}\""),
            ))
            .body(body),
        Err(refused) => console.refused(&state, "/staff/simulations", &refused),
    }
}

/// A file to download.
fn attachment(content_type: &str, name: &str, body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type.to_owned())
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .body(body)
}

/// A CSV field: quoted when it holds a comma, a quote or a line break.
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// The text key of a bias test of `drawbridge audit`.
fn test_key(name: &str) -> &'static str {
    match name {
        audit::GROUP_WEIGHTS => "test_group_weights",
        audit::REGISTRATION_TIME => "test_registration_time",
        audit::ROW_ORDER => "test_row_order",
        audit::UNIFORM => "test_uniform",
        _ => "test_other",
    }
}

/// `rate` as a percentage with one decimal, written as the language writes it.
fn percent(rate: f64, language: Language) -> String {
    match language {
        Language::De => format!("{} %", number(rate * 100.0, language)),
        _ => format!("{}%", number(rate * 100.0, language)),
    }
}

/// `value` with one decimal (German: a decimal comma).
fn number(value: f64, language: Language) -> String {
    let text = format!("{value:.1}");
    match language {
        Language::De => text.replace('.', ","),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_written_as_each_language_writes_them() {
        assert_eq!(percent(0.125, Language::De), "12,5 %");
        assert_eq!(percent(0.125, Language::En), "12.5%");
        assert_eq!(number(2.71, Language::De), "2,7");
    }

    #[test]
    fn csv_fields_are_quoted_only_when_they_must_be() {
        assert_eq!(field("60-69"), "60-69");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
