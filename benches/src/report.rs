//! Reports: Markdown tables on stdout, a JSON file with every figure and the machine, and a
//! PNG chart per scenario (throughput bars and latency percentiles) in a results folder.
//!
//! Charts are drawn with plotters' bitmap backend and the DejaVu Sans font compiled in (the
//! `dejavu` crate), so no system font library or font file is needed.

use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;
use serde::Serialize;

use crate::check::CheckRow;
use crate::machine::Machine;
use crate::scenarios::{RunRecord, Scenario, Settings, fmt_count};

/// Everything one invocation measured.
#[derive(Debug, Serialize)]
pub struct Report {
    pub command: String,
    pub machine: Machine,
    pub settings: Settings,
    /// Every run, every round.
    pub runs: Vec<RunRecord>,
    /// Rounds merged per scenario, system and loop.
    pub summary: Vec<RunRecord>,
    pub checks: Vec<CheckRow>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn new(command: String, machine: Machine, settings: Settings) -> Report {
        Report {
            command,
            machine,
            settings,
            runs: Vec::new(),
            summary: Vec::new(),
            checks: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Merges the rounds of the runs into `summary`.
    pub fn summarize(&mut self) {
        self.summary = summarize(&self.runs);
    }

    /// Writes `results.json` and one PNG per scenario into `dir`; answers the files.
    pub fn save(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let json = dir.join("results.json");
        std::fs::write(&json, serde_json::to_vec_pretty(self)?)?;
        let mut files = vec![json];
        for scenario in Scenario::ALL {
            let rows: Vec<&RunRecord> = self
                .summary
                .iter()
                .filter(|r| r.scenario == scenario)
                .collect();
            if rows.is_empty() {
                continue;
            }
            let png = dir.join(format!("{}.png", scenario.name()));
            chart(&png, scenario, &rows)?;
            files.push(png);
        }
        Ok(files)
    }
}

/// Rounds of the same (scenario, system, loop) merged, in first-seen order.
pub fn summarize(runs: &[RunRecord]) -> Vec<RunRecord> {
    let mut keys: Vec<(Scenario, &str, &str)> = Vec::new();
    for r in runs {
        let k = (r.scenario, r.system, r.mode);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.iter()
        .map(|&(s, sys, m)| {
            let group: Vec<&RunRecord> = runs
                .iter()
                .filter(|r| r.scenario == s && r.system == sys && r.mode == m)
                .collect();
            RunRecord::merge(&group)
        })
        .collect()
}

/// A latency in milliseconds with a precision that suits its size.
pub fn fmt_ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{ms:.2} ms")
    } else if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{} ms", fmt_count(ms))
    }
}

fn fmt_throughput(r: &RunRecord) -> String {
    match r.scenario {
        Scenario::Connections => {
            let mut s = format!("{} held", fmt_count(r.throughput));
            if let Some(rss) = r.rss_bytes {
                s.push_str(&format!(", RSS {} MiB", fmt_count(rss as f64 / 1048576.0)));
            }
            if let Some(b) = r.bytes_per_connection {
                s.push_str(&format!(", {:.1} KiB each", b / 1024.0));
            }
            s
        }
        _ => format!("{}/s", fmt_count(r.throughput)),
    }
}

fn fmt_cpu(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.1}"))
}

/// Server CPU seconds per 1,000 acknowledged requests, to 3 significant digits (`0.336`,
/// `0.0123`, `197`), or `n/a`.
pub fn fmt_cpu_per_1k(v: Option<f64>) -> String {
    match v {
        None => "n/a".into(),
        Some(v) if v >= 100.0 => fmt_count(v),
        Some(v) if v > 0.0 => {
            // Digits after the point that leave 3 significant ones (at most 6).
            let decimals = (2 - v.log10().floor() as i32).clamp(0, 6) as usize;
            format!("{v:.decimals$}")
        }
        Some(v) => format!("{v:.1}"),
    }
}

/// The cost cell of one run: server CPU seconds per 1,000 acknowledged fetches or writes.
fn fmt_cost(r: &RunRecord) -> String {
    match (r.server_cpu_s_per_1k, r.scenario.acked_unit()) {
        (Some(v), Some(unit)) => format!("{} s/1k {unit}", fmt_cpu_per_1k(Some(v))),
        _ => "n/a".into(),
    }
}

/// One system's runs: a row per scenario and loop. The cost column is server CPU seconds
/// per 1,000 acknowledged requests: fetches for fetch, writes for write, mixed and watch.
pub fn markdown_runs(summary: &[RunRecord]) -> String {
    let mut out = String::from(
        "| scenario | loop | load | throughput | p50 | p99 | p99.9 | max | errors | server CPU s | server CPU per 1k acked | load-gen CPU s |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in summary {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.scenario.name(),
            r.mode,
            r.load,
            fmt_throughput(r),
            fmt_ms(r.latency.p50_ms),
            fmt_ms(r.latency.p99_ms),
            fmt_ms(r.latency.p999_ms),
            fmt_ms(r.latency.max_ms),
            r.errors,
            fmt_cpu(r.cpu.server_s),
            fmt_cost(r),
            fmt_cpu(Some(r.cpu.loadgen_s)),
        ));
    }
    out
}

/// Conflux and etcd side by side: a row per scenario and loop, with the ratios
/// Conflux/etcd of throughput (higher is better for Conflux) and of p99 (lower is better),
/// and what each server spent per 1,000 acknowledged fetches or writes (lower is better).
pub fn markdown_compare(summary: &[RunRecord]) -> String {
    let mut out = String::from(
        "| scenario | loop | load | Conflux | p50 | p99 | etcd | p50 | p99 | throughput C/E | p99 C/E | server CPU s C / E | server CPU per 1k acked C / E | load-gen CPU s C / E |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for c in summary.iter().filter(|r| r.system == "conflux") {
        let Some(e) = summary
            .iter()
            .find(|r| r.system == "etcd" && r.scenario == c.scenario && r.mode == c.mode)
        else {
            continue;
        };
        let ratio = |a: f64, b: f64| {
            // Below 10 µs a latency is the clock's noise, not a basis for a ratio.
            if b >= 0.01 {
                format!("{:.2}", a / b)
            } else {
                "n/a".into()
            }
        };
        let thr_ratio = match c.scenario {
            // Both hold every connection: compare what each costs instead.
            Scenario::Connections => match (c.bytes_per_connection, e.bytes_per_connection) {
                (Some(a), Some(b)) => format!("memory {}", ratio(a, b)),
                _ => ratio(c.throughput, e.throughput),
            },
            _ => ratio(c.throughput, e.throughput),
        };
        let cost = match (c.server_cpu_s_per_1k, e.server_cpu_s_per_1k) {
            (None, None) => "n/a".to_owned(),
            (a, b) => format!(
                "{} / {}{}",
                fmt_cpu_per_1k(a),
                fmt_cpu_per_1k(b),
                c.scenario
                    .acked_unit()
                    .map_or(String::new(), |u| format!(" s/1k {u}"))
            ),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} | {} / {} |\n",
            c.scenario.name(),
            c.mode,
            c.load,
            fmt_throughput(c),
            fmt_ms(c.latency.p50_ms),
            fmt_ms(c.latency.p99_ms),
            fmt_throughput(e),
            fmt_ms(e.latency.p50_ms),
            fmt_ms(e.latency.p99_ms),
            thr_ratio,
            ratio(c.latency.p99_ms, e.latency.p99_ms),
            fmt_cpu(c.cpu.server_s),
            fmt_cpu(e.cpu.server_s),
            cost,
            fmt_cpu(Some(c.cpu.loadgen_s)),
            fmt_cpu(Some(e.cpu.loadgen_s)),
        ));
    }
    out
}

/// The watch writers' own latency (sent to acknowledged in closed loop, intended to
/// acknowledged in open loop), and in closed loop how many receipts came before the writer
/// read its acknowledgement and how long watchers still waited after it: which tells whether
/// a system acknowledges before or after notifying its watchers.
pub fn markdown_watch_writers(summary: &[RunRecord]) -> String {
    let rows: Vec<&RunRecord> = summary
        .iter()
        .filter(|r| r.scenario == Scenario::Watch && r.writes.is_some())
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "| watch writer | loop | writes | write p50 | write p99 | receipts before the ack | wait after the ack p99 |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let w = r.writes.expect("filtered");
        let (before, after) = r.after_ack.as_ref().map_or(("-".into(), "-".into()), |a| {
            (
                format!("{:.1} %", a.before_ack_share() * 100.0),
                fmt_ms(a.latency.p99_ms),
            )
        });
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.system,
            r.mode,
            w.count,
            fmt_ms(w.p50_ms),
            fmt_ms(w.p99_ms),
            before,
            after
        ));
    }
    out
}

const COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(120, 170, 220),
    RGBColor(230, 110, 20),
    RGBColor(250, 180, 110),
];
const PERCENTILES: [&str; 5] = ["p50", "p90", "p99", "p99.9", "max"];

fn register_fonts() {
    static FONTS: Once = Once::new();
    FONTS.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| ())
            .expect("the embedded DejaVu Sans is a valid font");
        plotters::style::register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold())
            .map_err(|_| ())
            .expect("the embedded DejaVu Sans Bold is a valid font");
    });
}

/// One PNG: throughput (or, for connections, the node's RSS) per system and loop on the
/// left, latency percentiles on a log scale on the right.
pub fn chart(path: &Path, scenario: Scenario, rows: &[&RunRecord]) -> Result<()> {
    register_fonts();
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let root = BitMapBackend::new(path, (1200, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let systems: Vec<&str> = rows.iter().map(|r| r.system).collect();
    let title = format!(
        "{} — {} node(s), {}",
        scenario.name(),
        rows[0].nodes,
        if systems.contains(&"etcd") {
            "Conflux vs etcd"
        } else {
            "Conflux"
        }
    );
    let root = root
        .titled(
            &title,
            ("sans-serif", 24).into_font().style(FontStyle::Bold),
        )
        .map_err(|e| err(&e))?;
    let (left, right) = root.split_horizontally(470);
    let label = |r: &RunRecord| format!("{} {}", r.system, r.mode);
    let color = |r: &RunRecord| {
        let base = if r.system == "etcd" { 2 } else { 0 };
        COLORS[base + usize::from(r.mode == "open")]
    };

    // Throughput bars.
    let (values, unit): (Vec<f64>, String) = if scenario == Scenario::Connections {
        let v = rows
            .iter()
            .map(|r| r.rss_bytes.unwrap_or(0) as f64 / 1048576.0)
            .collect();
        (v, "node RSS, MiB (with the connections open)".to_owned())
    } else {
        (
            rows.iter().map(|r| r.throughput).collect(),
            scenario.unit().to_owned(),
        )
    };
    let top = values.iter().cloned().fold(0.0, f64::max).max(1.0) * 1.25;
    let mut bars = ChartBuilder::on(&left)
        .margin(15)
        .caption(&unit, ("sans-serif", 16))
        .x_label_area_size(5)
        .y_label_area_size(75)
        .build_cartesian_2d(-0.5f64..(rows.len() as f64 - 0.5), 0f64..top)
        .map_err(|e| err(&e))?;
    bars.configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_label_formatter(&|v| fmt_count(*v))
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| err(&e))?;
    bars.draw_series(rows.iter().zip(&values).enumerate().map(|(i, (r, v))| {
        let x = i as f64;
        Rectangle::new([(x - 0.35, 0.0), (x + 0.35, *v)], color(r).filled())
    }))
    .map_err(|e| err(&e))?;
    let text = ("sans-serif", 13).into_font();
    bars.draw_series(
        rows.iter()
            .zip(&values)
            .enumerate()
            .flat_map(|(i, (r, v))| {
                let x = i as f64 - 0.35;
                [
                    Text::new(label(r), (x, v + top * 0.10), text.clone()),
                    Text::new(fmt_count(*v), (x, v + top * 0.05), text.clone()),
                ]
            }),
    )
    .map_err(|e| err(&e))?;

    // Latency percentiles.
    let pct = |r: &RunRecord| PERCENTILES.map(|p| r.latency.at(p));
    let lo = rows
        .iter()
        .flat_map(|r| pct(r))
        .filter(|v| *v > 0.0)
        .fold(f64::MAX, f64::min)
        .min(1.0)
        * 0.5;
    let hi = rows.iter().map(|r| r.latency.max_ms).fold(1.0, f64::max) * 2.0;
    let caption = match scenario {
        Scenario::Watch => "notification latency, ms (log)",
        Scenario::Connections => "connection setup latency, ms (log)",
        _ => "request latency, ms (log)",
    };
    let mut lines = ChartBuilder::on(&right)
        .margin(15)
        .caption(caption, ("sans-serif", 16))
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0i32..4i32, (lo..hi).log_scale())
        .map_err(|e| err(&e))?;
    lines
        .configure_mesh()
        .x_labels(5)
        .x_label_formatter(&|x| PERCENTILES.get(*x as usize).unwrap_or(&"").to_string())
        .y_label_formatter(&|v| {
            if *v < 1.0 {
                format!("{v:.2}")
            } else {
                fmt_count(*v)
            }
        })
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(|e| err(&e))?;
    for r in rows {
        let c = color(r);
        let points: Vec<(i32, f64)> = pct(r)
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i32, v.max(lo)))
            .collect();
        lines
            .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(label(r))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        lines
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, c.filled())))
            .map_err(|e| err(&e))?;
    }
    lines
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Cpu;
    use crate::stats::Latencies;
    use std::time::Duration;

    fn record(system: &'static str, mode: &'static str, ms: u64) -> RunRecord {
        let mut h = Latencies::default();
        for _ in 0..100 {
            h.record(Duration::from_millis(ms));
        }
        RunRecord {
            scenario: Scenario::Fetch,
            system,
            mode,
            rate_per_s: None,
            nodes: 1,
            round: 0,
            load: "64 conns".into(),
            window_s: 1.0,
            ok: 100,
            errors: 0,
            throughput: 100.0,
            unit: "requests/s",
            latency: h.summary(),
            reads: None,
            writes: None,
            after_ack: None,
            cpu: Cpu::default(),
            acked: Some(100),
            server_cpu_s_per_1k: None,
            rss_bytes: None,
            bytes_per_connection: None,
            histogram: h,
        }
    }

    /// `record` with `server_s` CPU seconds over `acked` acknowledged requests.
    fn costed(
        scenario: Scenario,
        system: &'static str,
        server_s: Option<f64>,
        acked: Option<u64>,
    ) -> RunRecord {
        let mut r = record(system, "closed", 1);
        r.scenario = scenario;
        r.cpu.server_s = server_s;
        r.acked = acked;
        r.server_cpu_s_per_1k = crate::scenarios::cpu_per_1k(server_s, acked);
        r
    }

    #[test]
    fn the_cost_is_server_cpu_per_thousand_acknowledged_requests() {
        let runs = [
            // 33.6 s over 100,000 acknowledged writes: 0.336 s per 1,000.
            costed(Scenario::Write, "conflux", Some(33.6), Some(100_000)),
            costed(Scenario::Fetch, "conflux", Some(3.0), Some(250_000)),
            // Nothing acknowledged, CPU unknown (--target), connections: n/a.
            costed(Scenario::Mixed, "conflux", Some(5.0), Some(0)),
            costed(Scenario::Watch, "conflux", None, Some(20)),
            costed(Scenario::Connections, "conflux", Some(1.0), None),
        ];
        let table = markdown_runs(&runs);
        let rows: Vec<&str> = table.lines().skip(2).collect();
        assert!(
            table
                .lines()
                .next()
                .unwrap()
                .contains("server CPU per 1k acked")
        );
        assert!(
            rows[0].contains("| 33.6 | 0.336 s/1k writes |"),
            "{}",
            rows[0]
        );
        assert!(
            rows[1].contains("| 3.0 | 0.0120 s/1k fetches |"),
            "{}",
            rows[1]
        );
        assert!(rows[2].contains("| 5.0 | n/a |"), "{}", rows[2]);
        assert!(rows[3].contains("| n/a | n/a |"), "{}", rows[3]);
        assert!(rows[4].contains("| 1.0 | n/a |"), "{}", rows[4]);
        // Every row has as many cells as the header.
        let cells = |l: &str| l.matches('|').count();
        assert!(table.lines().all(|l| cells(l) == cells(rows[0])), "{table}");
    }

    #[test]
    fn compare_rows_give_each_systems_cost() {
        let summary = [
            costed(Scenario::Write, "conflux", Some(33.6), Some(100_000)),
            costed(Scenario::Write, "etcd", Some(20.0), Some(40_000)),
            costed(Scenario::Fetch, "conflux", Some(2.0), Some(0)),
            costed(Scenario::Fetch, "etcd", None, Some(10)),
        ];
        let table = markdown_compare(&summary);
        let rows: Vec<&str> = table.lines().collect();
        assert!(rows[0].contains("| server CPU per 1k acked C / E |"));
        assert!(
            rows[2].contains("| 33.6 / 20.0 | 0.336 / 0.500 s/1k writes |"),
            "{}",
            rows[2]
        );
        assert!(rows[3].contains("| 2.0 / n/a | n/a |"), "{}", rows[3]);
        let cells = |l: &str| l.matches('|').count();
        assert!(rows.iter().all(|l| cells(l) == cells(rows[0])), "{table}");
    }

    #[test]
    fn costs_keep_three_significant_digits() {
        assert_eq!(fmt_cpu_per_1k(Some(0.336)), "0.336");
        assert_eq!(fmt_cpu_per_1k(Some(0.01234)), "0.0123");
        assert_eq!(fmt_cpu_per_1k(Some(2.5)), "2.50");
        assert_eq!(fmt_cpu_per_1k(Some(19.68)), "19.7");
        assert_eq!(fmt_cpu_per_1k(Some(196.8)), "197");
        assert_eq!(fmt_cpu_per_1k(Some(1234.5)), "1,235");
        assert_eq!(fmt_cpu_per_1k(Some(0.0)), "0.0");
        assert_eq!(fmt_cpu_per_1k(None), "n/a");
    }

    #[test]
    fn compare_rows_pair_the_systems_and_give_ratios() {
        let runs = vec![
            record("conflux", "closed", 1),
            record("etcd", "closed", 2),
            record("conflux", "closed", 1),
            record("etcd", "closed", 2),
        ];
        let summary = summarize(&runs);
        assert_eq!(summary.len(), 2);
        assert_eq!(summary[0].ok, 200);
        let table = markdown_compare(&summary);
        let row = table.lines().nth(2).unwrap();
        assert!(
            row.starts_with("| fetch | closed | 64 conns | 100/s"),
            "{row}"
        );
        // Same throughput, half the p99.
        assert!(row.contains("| 1.00 | 0.50 |"), "{row}");
    }

    #[test]
    fn latencies_are_formatted_by_size() {
        assert_eq!(fmt_ms(0.4213), "0.42 ms");
        assert_eq!(fmt_ms(4.213), "4.2 ms");
        assert_eq!(fmt_ms(1234.5), "1,235 ms");
    }

    #[test]
    fn a_chart_is_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fetch.png");
        let (c, e) = (record("conflux", "closed", 1), record("etcd", "open", 3));
        chart(&path, Scenario::Fetch, &[&c, &e]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(bytes.len() > 5_000);
    }
}
