//! The self-contained HTML report: tables and hand-drawn SVG line charts (no scripts, no
//! external files), readable offline and printable.

use std::fmt::Write as _;

use crate::metrics::{GroupDayRow, PairDayRow};
use crate::output::Report;

const COLOURS: [&str; 8] = [
    "#1d70b8", "#d4351c", "#00703c", "#f47738", "#4c2c92", "#b58840", "#28a197", "#6f777b",
];

/// The report page. Daily charts show the first seed; the tables show every seed's estimate.
pub fn report(report: &Report, rows: &[GroupDayRow], pair_rows: &[PairDayRow]) -> String {
    let seed = report.runs.first().map_or(0, |r| r.seed);
    let rows: Vec<&GroupDayRow> = rows.iter().filter(|r| r.seed == seed).collect();
    let pair_rows: Vec<&PairDayRow> = pair_rows.iter().filter(|r| r.seed == seed).collect();
    let mut groups: Vec<u8> = rows.iter().map(|r| r.group).collect();
    groups.sort_unstable();
    groups.dedup();
    let per_group = |value: &dyn Fn(&GroupDayRow) -> f64| -> Vec<(String, Vec<f64>)> {
        groups
            .iter()
            .map(|&g| {
                let series = rows.iter().filter(|r| r.group == g).map(|r| value(r)).collect();
                (format!("group {g}"), series)
            })
            .collect()
    };
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#0b0c0c}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border-bottom:1px solid #b1b4b6;padding:.3em .6em;text-align:right}}\
         th:first-child,td:first-child{{text-align:left}}figure{{margin:1.5em 0}}figcaption{{font-weight:bold}}</style></head><body>\n\
         <h1>{title}</h1>\n<p>Policies: {policies}. Seeds: {seeds}. Daily charts show seed {seed}.</p>\n",
        title = escape(&report.scenario),
        policies = escape(&report.policies.join(", ")),
        seeds = report.runs.len(),
    );
    if let Some(first) = report.runs.first() {
        html.push_str("<h2>Priority groups at the horizon</h2>\n<table><tr><th>group</th><th>people</th><th>ever eligible</th><th>reached</th><th>vaccinated</th><th>offer p50 (days)</th><th>booking p50 (days)</th><th>booking p90 (days)</th><th>wait Gini</th><th>envy</th><th>declines</th><th>expiries</th></tr>\n");
        for g in &first.groups {
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}%</td><td>{:.1}%</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.3}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                g.group, g.people, g.ever_eligible, 100.0 * g.reached_share, 100.0 * g.vaccinated_share,
                g.time_to_offer_p50_days, g.time_to_booking_p50_days, g.time_to_booking_p90_days,
                g.wait_gini, g.envy, g.declines, g.expiries
            );
        }
        html.push_str("</table>\n");
        let _ = writeln!(
            html,
            "<p>Pairs published: {}; utilisation {:.1}%; wasted {}.</p>",
            first.pairs_published,
            100.0 * first.utilisation,
            first.wasted_pairs
        );
    }
    html.push_str(&chart(
        "People in the draw's pool",
        "people",
        &per_group(&|r| r.pool as f64),
    ));
    html.push_str(&chart(
        "Offers per day",
        "offers",
        &per_group(&|r| r.offers as f64),
    ));
    html.push_str(&chart(
        "Share of the eligible reached by an offer",
        "share",
        &per_group(&|r| r.reached_share),
    ));
    html.push_str(&chart(
        "Registration to booking, median of the day's bookings",
        "days",
        &per_group(&|r| r.time_to_booking_p50_days),
    ));
    let pairs = vec![
        (
            "used".to_owned(),
            pair_rows.iter().map(|p| p.used as f64).collect(),
        ),
        (
            "wasted".to_owned(),
            pair_rows.iter().map(|p| p.wasted as f64).collect(),
        ),
        (
            "appointments".to_owned(),
            pair_rows.iter().map(|p| p.appointments as f64).collect(),
        ),
    ];
    html.push_str(&chart("Pairs by their first appointment's day", "pairs", &pairs));
    if report.runs.len() > 1 {
        html.push_str(
            "<h2>Over all seeds</h2>\n<table><tr><th>metric</th><th>mean</th><th>95% interval</th></tr>\n",
        );
        for (name, e) in &report.metrics {
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td>{:.4}</td><td>{:.4} – {:.4}</td></tr>",
                escape(name),
                e.mean,
                e.low,
                e.high
            );
        }
        html.push_str("</table>\n");
    }
    html.push_str("</body></html>\n");
    html
}

/// A line chart of daily series as inline SVG.
pub fn chart(title: &str, unit: &str, series: &[(String, Vec<f64>)]) -> String {
    let (width, height, left, bottom, top, right) = (900.0, 300.0, 70.0, 30.0, 10.0, 120.0);
    let days = series.iter().map(|(_, s)| s.len()).max().unwrap_or(0);
    let max = series
        .iter()
        .flat_map(|(_, s)| s.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let max = if max > 0.0 { max } else { 1.0 };
    let x = |i: usize| left + (width - left - right) * i as f64 / (days.max(2) - 1) as f64;
    let y = |v: f64| top + (height - top - bottom) * (1.0 - v / max);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<figure><figcaption>{}</figcaption><svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" width=\"100%\" role=\"img\" aria-label=\"{}\">",
        escape(title),
        escape(title)
    );
    for k in 0..=4 {
        let v = max * f64::from(k) / 4.0;
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e5e5e5\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            width - right,
            left - 6.0,
            y(v) + 4.0,
            tick(v),
            y = y(v),
        );
    }
    for day in (0..days).step_by((days / 10).max(1)) {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{day}</text>",
            x(day),
            height - 10.0
        );
    }
    let _ = write!(
        svg,
        "<text x=\"12\" y=\"{}\" font-size=\"11\" transform=\"rotate(-90 12 {})\" text-anchor=\"middle\">{}</text>",
        height / 2.0,
        height / 2.0,
        escape(unit)
    );
    for (k, (name, values)) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, &v)| format!("{:.1},{:.1}", x(i), y(v)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"{colour}\">{}</text>",
            points.join(" "),
            width - right + 8.0,
            top + 14.0 + 16.0 * k as f64,
            escape(name)
        );
    }
    svg.push_str("</svg></figure>\n");
    svg
}

fn tick(v: f64) -> String {
    if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
