//! The report of a run: `report.json` (verdict per invariant, counts, the timeline) and
//! `report.svg` (leader per till over time, LAN cuts, WAN outages, per-till lag, cloud
//! backlog), and the terminal summary. Nothing in them depends on wall-clock time, so a
//! seed and the code give the same bytes.

use crate::Options;
use crate::invariants::{Evidence, Verdict};
use crate::observe::Sample;
use crate::scenario::Scenario;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Counts of what happened.
#[derive(Clone, Debug, Serialize)]
pub struct Counts {
    /// Sales acknowledged to cashiers.
    pub sales_acknowledged: u64,
    /// Of them voided.
    pub voided: u64,
    /// Stock receipts acknowledged.
    pub adjustments: u64,
    /// Refused operations by code.
    pub refused: BTreeMap<String, u64>,
    /// Upload batches sent, by till.
    pub uploads_by_till: BTreeMap<u64, u64>,
    /// Raft terms with a leader.
    pub terms: u64,
    /// Events in the cloud ledger at the end.
    pub ledger_events: u64,
}

/// A leader that stopped (planned, with a hand-over, or crashed) and how long the store then
/// had no uploader.
#[derive(Clone, Debug, Serialize)]
pub struct LeaderStop {
    /// Simulated seconds.
    pub at_s: f64,
    /// `hand-over` (a planned stop) or `crash`.
    pub how: String,
    /// How long the store had no uploader, ms: from the stopping leader's last batch the
    /// cloud accepted after the stop (a leader handing over uploads until its successor
    /// leads), or from the stop when it sent none (a crash), to the successor's first
    /// accepted batch; none when no successor uploaded.
    pub upload_gap_ms: Option<u64>,
}

/// A run's report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Its description.
    pub description: String,
    /// Seed.
    pub seed: u64,
    /// Tills.
    pub tills: u64,
    /// Other stores of the chain, and the sales their cashiers were acknowledged.
    pub chain_stores: u64,
    /// Sales acknowledged in the other stores.
    pub chain_sales: u64,
    /// Safety phase, simulated seconds.
    pub duration_s: u64,
    /// Liveness bound, simulated seconds.
    pub settle_s: u64,
    /// Seconds to converge after healing.
    pub converged_after_s: Option<f64>,
    /// Every verdict held.
    pub pass: bool,
    /// Verdict per invariant.
    pub verdicts: Vec<Verdict>,
    /// Counts.
    pub counts: Counts,
    /// Leaders that stopped, and the cloud's upload gap around each.
    pub leader_stops: Vec<LeaderStop>,
    /// Faults and crashes as they happened.
    pub events: Vec<String>,
    /// The command that reproduces this run.
    pub reproduce: String,
    /// The sampled timeline.
    pub timeline: Vec<Sample>,
}

impl Report {
    /// Assembles the report.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        s: &Scenario,
        opts: &Options,
        verdicts: Vec<Verdict>,
        e: &Evidence,
        converged_after_s: Option<f64>,
        uploads_by_till: BTreeMap<u64, u64>,
        events: Vec<String>,
        leader_stops: Vec<LeaderStop>,
    ) -> Self {
        let timeline: Vec<Sample> = e.obs.samples.clone();
        Report {
            scenario: s.name.clone(),
            description: s.description.clone(),
            seed: opts.seed,
            tills: s.tills,
            chain_stores: e.chain.len() as u64,
            chain_sales: e.chain.iter().map(|c| c.acked.sales.len() as u64).sum(),
            duration_s: s.duration_s,
            settle_s: s.settle_s,
            converged_after_s,
            pass: verdicts.iter().all(|v| v.pass),
            verdicts,
            counts: Counts {
                sales_acknowledged: e.acked.sales.len() as u64,
                voided: e.acked.voided.len() as u64,
                adjustments: e.acked.adjustments.len() as u64,
                refused: e.acked.refused.clone(),
                uploads_by_till,
                terms: e.obs.leaders.len() as u64,
                ledger_events: e.cloud.events,
            },
            events,
            leader_stops,
            reproduce: opts.reproduce.clone(),
            timeline,
        }
    }

    /// Writes `report.json` and `report.svg` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), crate::SimError> {
        let io = |e: std::io::Error| crate::SimError::Io(format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(io)?;
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| crate::SimError::Io(format!("report: {e}")))?;
        std::fs::write(dir.join("report.json"), json + "\n").map_err(io)?;
        std::fs::write(dir.join("report.svg"), self.svg()).map_err(io)?;
        Ok(())
    }

    /// The terminal summary: verdicts, counts, the fault timeline.
    pub fn summary(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "{}  seed {}  {} tills  {} s + up to {} s to converge",
            self.scenario, self.seed, self.tills, self.duration_s, self.settle_s
        );
        if self.chain_stores > 0 {
            let _ = writeln!(
                o,
                "  and {} other stores of the chain against the same cloud: {} sales acknowledged",
                self.chain_stores, self.chain_sales
            );
        }
        for line in &self.events {
            let _ = writeln!(o, "  {line}");
        }
        let c = &self.counts;
        let _ = writeln!(
            o,
            "  {} sales acknowledged ({} voided), {} receipts, {} terms, {} events in the cloud, uploads by till {:?}",
            c.sales_acknowledged,
            c.voided,
            c.adjustments,
            c.terms,
            c.ledger_events,
            c.uploads_by_till
        );
        if !c.refused.is_empty() {
            let _ = writeln!(o, "  refused: {:?}", c.refused);
        }
        for l in &self.leader_stops {
            let _ = writeln!(
                o,
                "  leader stopped at {:.1} s ({}): cloud upload gap {}",
                l.at_s,
                l.how,
                l.upload_gap_ms
                    .map_or("(no batch after)".into(), |g| format!("{g} ms"))
            );
        }
        for v in &self.verdicts {
            let _ = writeln!(
                o,
                "  {} {:<48} {}",
                if v.pass { "PASS" } else { "FAIL" },
                v.name,
                v.detail
            );
        }
        if !self.pass {
            let _ = writeln!(o, "  reproduce: {}", self.reproduce);
        }
        o
    }

    /// The timeline as SVG.
    pub fn svg(&self) -> String {
        let (w, lane) = (960.0_f64, 16.0_f64);
        let left = 90.0;
        let rows = self.tills as f64 + 2.0;
        let plot_h = 120.0;
        let h = 30.0 + rows * lane + 20.0 + 2.0 * (plot_h + 30.0);
        let end = self.timeline.last().map_or(1.0, |s| s.t_s.max(1.0));
        let x = |t: f64| left + (w - left - 10.0) * t / end;
        let mut o = String::new();
        let _ = writeln!(
            o,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h:.0}" font-family="sans-serif" font-size="11">"#
        );
        let _ = writeln!(
            o,
            r#"<text x="4" y="16" font-size="13">{} (seed {}): {}</text>"#,
            esc(&self.scenario),
            self.seed,
            if self.pass { "pass" } else { "FAIL" }
        );
        let step = self
            .timeline
            .windows(2)
            .map(|p| p[1].t_s - p[0].t_s)
            .next()
            .unwrap_or(1.0);
        // One lane per till: green while it leads, grey while it is down.
        for t in 1..=self.tills {
            let y = 30.0 + (t - 1) as f64 * lane;
            let _ = writeln!(o, r#"<text x="4" y="{:.0}">T{t}</text>"#, y + 12.0);
            for s in &self.timeline {
                let color = if !s.up.contains(&t) {
                    "#bbbbbb"
                } else if s.leader_seen.get(&t) == Some(&t) {
                    "#2e8b57"
                } else {
                    continue;
                };
                let _ = writeln!(
                    o,
                    r#"<rect x="{:.1}" y="{y:.0}" width="{:.1}" height="{:.0}" fill="{color}"/>"#,
                    x(s.t_s - step),
                    x(step) - left + 0.3,
                    lane - 3.0
                );
            }
        }
        // LAN cuts and WAN outages.
        let y_lan = 30.0 + self.tills as f64 * lane;
        let y_wan = y_lan + lane;
        let _ = writeln!(o, r#"<text x="4" y="{:.0}">LAN cut</text>"#, y_lan + 12.0);
        let _ = writeln!(o, r#"<text x="4" y="{:.0}">WAN down</text>"#, y_wan + 12.0);
        for s in &self.timeline {
            for (on, y, c) in [
                (s.cut_pairs > 0, y_lan, "#cc3333"),
                (s.wan_down, y_wan, "#dd8800"),
            ] {
                if on {
                    let _ = writeln!(
                        o,
                        r#"<rect x="{:.1}" y="{y:.0}" width="{:.1}" height="{:.0}" fill="{c}"/>"#,
                        x(s.t_s - step),
                        x(step) - left + 0.3,
                        lane - 3.0
                    );
                }
            }
        }
        // Lag per till, then the cloud backlog.
        let mut y0 = y_wan + lane + 30.0;
        let max_lag = self
            .timeline
            .iter()
            .flat_map(|s| s.lag.values().copied())
            .max()
            .unwrap_or(0)
            .max(1) as f64;
        let _ = writeln!(o, r#"<text x="4" y="{:.0}">lag (events)</text>"#, y0 - 6.0);
        let _ = writeln!(
            o,
            r#"<text x="4" y="{:.0}">max {max_lag:.0}</text>"#,
            y0 + 10.0
        );
        let colors = [
            "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
        ];
        for t in 1..=self.tills {
            let pts: Vec<String> = self
                .timeline
                .iter()
                .filter_map(|s| s.lag.get(&t).map(|l| (s.t_s, *l)))
                .map(|(ts, l)| {
                    format!(
                        "{:.1},{:.1}",
                        x(ts),
                        y0 + plot_h - plot_h * l as f64 / max_lag
                    )
                })
                .collect();
            let _ = writeln!(
                o,
                r#"<polyline fill="none" stroke="{}" stroke-width="1" points="{}"/>"#,
                colors[(t as usize - 1) % colors.len()],
                pts.join(" ")
            );
        }
        y0 += plot_h + 30.0;
        let max_b = self
            .timeline
            .iter()
            .map(|s| s.backlog)
            .max()
            .unwrap_or(0)
            .max(1) as f64;
        let _ = writeln!(o, r#"<text x="4" y="{:.0}">cloud backlog</text>"#, y0 - 6.0);
        let _ = writeln!(
            o,
            r#"<text x="4" y="{:.0}">max {max_b:.0}</text>"#,
            y0 + 10.0
        );
        let pts: Vec<String> = self
            .timeline
            .iter()
            .map(|s| {
                format!(
                    "{:.1},{:.1}",
                    x(s.t_s),
                    y0 + plot_h - plot_h * s.backlog as f64 / max_b
                )
            })
            .collect();
        let _ = writeln!(
            o,
            r##"<polyline fill="none" stroke="#444" stroke-width="1.2" points="{}"/>"##,
            pts.join(" ")
        );
        let _ = writeln!(
            o,
            r#"<text x="{left}" y="{:.0}">0 s</text><text x="{:.0}" y="{:.0}" text-anchor="end">{end:.0} s</text>"#,
            h - 4.0,
            w - 10.0,
            h - 4.0
        );
        o.push_str("</svg>\n");
        o
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
