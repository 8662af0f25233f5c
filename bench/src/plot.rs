//! `results.svg`: the clerk's wait per way of reading (left) and the agent against a direct read (right), drawn
//! with plotters' SVG backend.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use serde_json::Value;

use crate::measure::ReadRow;
use crate::reads::Pattern;
use crate::report::{num, read_row};

const COLORS: [RGBColor; 3] = [RGBColor(0x1f, 0x77, 0xb4), RGBColor(0xd6, 0x27, 0x28), RGBColor(0x7f, 0x7f, 0x7f)];

/// One bar: its group label, its series (colour index) and value.
struct Bar {
    label: String,
    series: usize,
    value: f64,
}

fn bars_chart(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    x_label: &str,
    series: &[(usize, &str)],
    bars: &[Bar],
    goals: &[(f64, &str)],
) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("plot: {e}");
    let n = bars.len();
    let top = bars.iter().map(|b| b.value).chain(goals.iter().map(|g| g.0)).fold(0.0f64, f64::max);
    let max = top.max(1e-9) * 1.18;
    // bar i is drawn in band n-1-i (the first at the top), its label in the middle of the band
    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(170)
        .build_cartesian_2d(0.0..max, (0..n.saturating_sub(1)).into_segmented())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n + 1)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(n.saturating_sub(1 + *i)).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc(x_label)
        .draw()
        .map_err(|e| err(&e))?;
    for (i, b) in bars.iter().enumerate() {
        let band = n - 1 - i;
        let color = COLORS[b.series % COLORS.len()];
        let mut bar = Rectangle::new(
            [(0.0, SegmentValue::Exact(band)), (b.value, SegmentValue::Exact(band + 1))],
            color.filled(),
        );
        bar.set_margin(3, 3, 0, 0);
        chart.draw_series(std::iter::once(bar)).map_err(|e| err(&e))?;
        chart
            .draw_series(std::iter::once(Text::new(
                if b.value >= 10.0 { format!("{:.0}", b.value) } else { format!("{:.2}", b.value) },
                (b.value + max * 0.01, SegmentValue::CenterOf(band)),
                ("sans-serif", 12).into_font(),
            )))
            .map_err(|e| err(&e))?;
    }
    for (value, name) in goals {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(*value, SegmentValue::Exact(0)), (*value, SegmentValue::Exact(n))],
                BLACK.stroke_width(1),
            )))
            .map_err(|e| err(&e))?;
        chart
            .draw_series(std::iter::once(Text::new(
                (*name).to_owned(),
                (*value, SegmentValue::Exact(n)),
                ("sans-serif", 12).into_font(),
            )))
            .map_err(|e| err(&e))?;
    }
    for &(k, name) in series {
        let color = COLORS[k % COLORS.len()];
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, SegmentValue::Exact(0)), (0.0, SegmentValue::Exact(0))],
                color.filled(),
            )))
            .map_err(|e| err(&e))?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    Ok(())
}

/// Draws the two panels into `path`.
pub fn svg(path: &Path, reads: &[ReadRow], agent: &Value) -> Result<()> {
    let root = SVGBackend::new(path, (1200, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("plot: {e}"))?;
    let (left, right) = root.split_horizontally(640);
    let mut read_bars = Vec::new();
    for bit_rate in [9600u32, 115_200] {
        for generation in [2u8, 3] {
            for (k, pattern) in Pattern::ALL.into_iter().enumerate() {
                if let Some(r) = read_row(reads, generation, bit_rate, pattern) {
                    let label = if k == 1 { format!("gen {generation}, {bit_rate} bit/s") } else { String::new() };
                    read_bars.push(Bar { label, series: k, value: r.wall_p50_ms });
                }
            }
        }
    }
    bars_chart(
        &left,
        "Read basic information, paced card: wall p50",
        "milliseconds",
        &[(0, "project (card-core)"), (1, "vendor pattern"), (2, "raw PC/SC")],
        &read_bars,
        &[],
    )?;
    // the agent's overhead as the ratio of its p50 to a direct read's, one client (more clients queue on the one
    // reader: their latency is the table's), beside bare PC/SC's ratio; the goals as lines
    let mut agent_bars = Vec::new();
    for (key, label) in [("unpaced", "unpaced"), ("paced_9600", "paced 9600 bit/s")] {
        let Some(run) = agent.get(key) else { continue };
        let get = |p: &[&str]| num(run, p, "agent.json").ok();
        let (Some(direct), Some(one), Some(raw)) =
            (get(&["direct", "p50_ms"]), get(&["agent", "clients", "1", "p50_ms"]), get(&["raw", "p50_ms"]))
        else {
            continue;
        };
        agent_bars.push(Bar { label: format!("{label}: agent"), series: 1, value: one / direct });
        agent_bars.push(Bar { label: format!("{label}: raw PC/SC"), series: 2, value: raw / direct });
    }
    bars_chart(
        &right,
        "Agent p50 ÷ direct read p50 (gen 2, 1 client)",
        "ratio to card-core's direct read",
        &[(1, "agent (HTTP)"), (2, "raw PC/SC")],
        &agent_bars,
        &[(1.0, "1"), (1.2, "1.2")],
    )?;
    root.present().map_err(|e| anyhow!("plot: {e}"))?;
    Ok(())
}
