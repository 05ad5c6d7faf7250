//! What people read: a run's one-page summary and timeline picture, and a campaign's table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Once;

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use serde::Serialize;

use crate::history::{Call, Operation, Outcome};
use crate::run::{FaultWindow, LeaderSample, RunOptions, RunSummary};

/// A percentile of `values` (nearest rank), `None` when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.0} ms"))
}

/// The one-page summary of a run (`summary.md`).
pub fn run_markdown(s: &RunSummary) -> String {
    let mut out = String::new();
    let verdict = if s.passed() { "PASS" } else { "FAIL" };
    let _ = writeln!(
        out,
        "# {verdict}: {} (seed {}, {} nodes, {:.0} s)\n",
        s.scenario, s.seed, s.nodes, s.duration_s
    );
    let _ = writeln!(out, "Reproduce: `{}`\n", s.reproduce);
    if let Some(e) = &s.harness_error {
        let _ = writeln!(out, "The harness could not finish the run: {e}\n");
    }
    let _ = writeln!(
        out,
        "- operations: {} ({} ok, {} failed, {} unknown); watch events: {}",
        s.operations, s.ok, s.failed, s.unknown, s.watch_events
    );
    let _ = writeln!(
        out,
        "- faults applied: {}; elections (term increases): {}",
        s.faults, s.elections
    );
    let _ = writeln!(
        out,
        "- failover (leader lost -> first probe acknowledged): p50 {}, max {} over {} windows",
        fmt_ms(percentile(&s.failover_ms, 50.0)),
        fmt_ms(percentile(&s.failover_ms, 100.0)),
        s.failover_ms.len()
    );
    let _ = writeln!(
        out,
        "- converged: {} (digest {})",
        s.converged,
        s.digest.as_deref().unwrap_or("-")
    );
    for (config, verdict) in &s.linearizability {
        let _ = writeln!(out, "- linearizability of {config}: {verdict}");
    }
    if !s.errors_by_code.is_empty() {
        let codes: Vec<String> = s
            .errors_by_code
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        let _ = writeln!(out, "- errors by code: {}", codes.join(", "));
    }
    if !s.windows.is_empty() {
        let _ = writeln!(out, "\n## Faults\n");
    }
    for w in &s.windows {
        let nodes: Vec<String> = w.nodes.iter().map(u64::to_string).collect();
        let what = match (&w.skipped, &w.detail) {
            (Some(reason), _) => format!("skipped: {reason}"),
            (None, Some(detail)) => detail.clone(),
            (None, None) => "applied".to_owned(),
        };
        let _ = writeln!(
            out,
            "- {} (nodes {}) {:.1}-{:.1} s: {what}",
            w.label,
            if nodes.is_empty() {
                "-".to_owned()
            } else {
                nodes.join(", ")
            },
            w.start_ns as f64 / 1e9,
            w.end_ns as f64 / 1e9,
        );
    }
    let _ = writeln!(out, "\n## Anomalies: {}\n", s.anomalies.len());
    for a in s.anomalies.iter().take(50) {
        let op =
            a.op.map(|o| format!(" (operation {o})"))
                .unwrap_or_default();
        let _ = writeln!(out, "- [{}] {}{op}: {}", a.checker, a.config, a.message);
    }
    out
}

/// One row of a campaign's table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScenarioRow {
    pub runs: usize,
    pub failed_runs: usize,
    pub operations: usize,
    pub faults: usize,
    pub elections: u64,
    pub anomalies: BTreeMap<String, usize>,
    pub failover_ms: Vec<f64>,
}

/// The campaign's table (`campaign.md`): one row per scenario and cluster size.
pub fn campaign_markdown(
    commit: &str,
    rows: &BTreeMap<(String, u64), ScenarioRow>,
    failures: &[String],
) -> String {
    let mut out = String::new();
    let runs: usize = rows.values().map(|r| r.runs).sum();
    let failed: usize = rows.values().map(|r| r.failed_runs).sum();
    let _ = writeln!(
        out,
        "# Chaos campaign: {runs} runs, {failed} failed (commit {commit})\n"
    );
    let _ = writeln!(
        out,
        "| scenario | nodes | runs | operations | faults | elections | anomalies | failover p50 | p99 | max |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    let mut all_failovers = Vec::new();
    for ((scenario, nodes), r) in rows {
        let anomalies = if r.anomalies.is_empty() {
            "0".to_owned()
        } else {
            r.anomalies
                .iter()
                .map(|(c, n)| format!("{c}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "| {scenario} | {nodes} | {} | {} | {} | {} | {anomalies} | {} | {} | {} |",
            r.runs,
            r.operations,
            r.faults,
            r.elections,
            fmt_ms(percentile(&r.failover_ms, 50.0)),
            fmt_ms(percentile(&r.failover_ms, 99.0)),
            fmt_ms(percentile(&r.failover_ms, 100.0)),
        );
        all_failovers.extend(&r.failover_ms);
    }
    let _ = writeln!(
        out,
        "\nFailover over all {} leader-loss windows: p50 {}, p99 {}, max {}.",
        all_failovers.len(),
        fmt_ms(percentile(&all_failovers, 50.0)),
        fmt_ms(percentile(&all_failovers, 99.0)),
        fmt_ms(percentile(&all_failovers, 100.0)),
    );
    if !failures.is_empty() {
        let _ = writeln!(out, "\n## Failed runs\n");
        for f in failures {
            let _ = writeln!(out, "- {f}");
        }
    }
    out
}

fn register_fonts() {
    static FONTS: Once = Once::new();
    FONTS.call_once(|| {
        // The embedded DejaVu fonts are valid; a failure would only lose the labels.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

const WRITE_OK: RGBColor = RGBColor(31, 119, 180);
const READ_OK: RGBColor = RGBColor(120, 190, 120);
const FAILED: RGBColor = RGBColor(214, 39, 40);
const UNKNOWN: RGBColor = RGBColor(255, 127, 14);
const FAULT: RGBColor = RGBColor(250, 220, 220);

/// The run's timeline (`timeline.png`): every operation's latency over time (log scale;
/// writes, reads, failures and unknown outcomes in their own colours) with the fault windows
/// shaded and labelled above, and below it the leader each node named over time.
pub fn timeline(
    path: &Path,
    history: &[Operation],
    windows: &[FaultWindow],
    samples: &[LeaderSample],
    opts: &RunOptions,
) -> Result<()> {
    register_fonts();
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let root = BitMapBackend::new(path, (1400, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let title = format!(
        "{} - seed {}, {} nodes",
        opts.scenario.name, opts.seed, opts.nodes
    );
    let root = root
        .titled(&title, ("sans-serif", 22))
        .map_err(|e| err(&e))?;
    let (top, bottom) = root.split_vertically(500);
    let end_s = history
        .iter()
        .filter_map(|o| o.completed_ns)
        .max()
        .unwrap_or(0)
        .max(opts.duration.as_nanos() as u64) as f64
        / 1e9;
    let secs = |ns: u64| ns as f64 / 1e9;
    let latency_ms =
        |o: &Operation, end: u64| (end.saturating_sub(o.invoked_ns) as f64 / 1e6).max(0.1);
    let max_ms = history
        .iter()
        .map(|o| latency_ms(o, o.completed_ns.unwrap_or(o.invoked_ns)))
        .fold(10.0, f64::max)
        * 2.0;
    let mut chart = ChartBuilder::on(&top)
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..end_s, (0.1f64..max_ms).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("latency, ms")
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(windows.iter().filter(|w| w.skipped.is_none()).map(|w| {
            Rectangle::new(
                [
                    (secs(w.start_ns), 0.1),
                    (secs(w.end_ns.max(w.start_ns + 50_000_000)), max_ms),
                ],
                FAULT.filled(),
            )
        }))
        .map_err(|e| err(&e))?;
    chart
        .draw_series(windows.iter().filter(|w| w.skipped.is_none()).map(|w| {
            let nodes: Vec<String> = w.nodes.iter().map(u64::to_string).collect();
            Text::new(
                format!("{} {}", w.label, nodes.join(",")),
                (secs(w.start_ns), max_ms / 1.6),
                ("sans-serif", 12).into_font(),
            )
        }))
        .map_err(|e| err(&e))?;
    for (label, color, pick) in [
        ("write ok", WRITE_OK, 0u8),
        ("read ok", READ_OK, 1),
        ("failed", FAILED, 2),
        ("unknown (drawn at the end of the run)", UNKNOWN, 3),
    ] {
        let points = history.iter().filter_map(|o| {
            let kind = match (&o.outcome, &o.call) {
                (Outcome::Ok { .. }, Call::Read { .. }) => 1,
                (Outcome::Ok { .. }, _) => 0,
                (Outcome::Fail { .. }, _) => 2,
                (Outcome::Unknown { .. }, _) => 3,
            };
            (kind == pick).then(|| {
                let end = o.completed_ns.unwrap_or((end_s * 1e9) as u64);
                Circle::new((secs(o.invoked_ns), latency_ms(o, end)), 2, color.filled())
            })
        });
        chart
            .draw_series(points)
            .map_err(|e| err(&e))?
            .label(label)
            .legend(move |(x, y)| Circle::new((x, y), 4, color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|e| err(&e))?;

    // Who each node named as leader (0: none).
    let max_node = samples
        .iter()
        .filter_map(|s| s.leader)
        .chain(samples.iter().map(|s| s.node))
        .max()
        .unwrap_or(opts.nodes)
        .max(1);
    let mut leaders = ChartBuilder::on(&bottom)
        .margin(10)
        .x_label_area_size(25)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..end_s, -0.5f64..(max_node as f64 + 0.5))
        .map_err(|e| err(&e))?;
    leaders
        .configure_mesh()
        .y_desc("leader named")
        .y_labels(max_node as usize + 1)
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| err(&e))?;
    leaders
        .draw_series(samples.iter().map(|s| {
            let color = Palette99::pick(s.node as usize);
            Circle::new(
                (
                    secs(s.at_ns),
                    s.leader.unwrap_or(0) as f64 + (s.node as f64 - 1.0) * 0.06,
                ),
                2,
                color.filled(),
            )
        }))
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(percentile(&v, 50.0), Some(3.0));
        assert_eq!(percentile(&v, 99.0), Some(5.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
