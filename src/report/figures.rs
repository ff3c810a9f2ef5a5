//! The report's charts, one function per figure. Each writes one PNG and returns its caption.

use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use serde_json::Value;

use crate::error::Result;
use crate::model::TapKind;
use crate::report::data::{RunData, TapData};
use crate::report::draw::{SANS, category, drawn, label_step, short, viridis};

/// Per-tap histograms of positive values (hist_pos: 100 bins on (0, 10]) with a log y-axis and
/// the share of active entries on each panel.
pub fn hist_grid(data: &RunData, path: &Path) -> Result<String> {
    let n = data.taps.len();
    let cols = (n as f64).sqrt().ceil().max(1.0) as usize;
    let rows = n.div_ceil(cols).max(1);
    let (pw, ph) = (300u32, 220u32);
    let root =
        BitMapBackend::new(path, (pw * cols as u32, ph * rows as u32 + 40)).into_drawing_area();
    drawn(root.fill(&WHITE), path)?;
    let (title, body) = root.split_vertically(40);
    drawn(
        title.draw(&Text::new(
            "Positive activations per tap: counts of x in (0, 10], 100 bins, log scale",
            (10, 10),
            (SANS, 20),
        )),
        path,
    )?;
    for (t, area) in data.taps.iter().zip(body.split_evenly((rows, cols))) {
        hist_panel(t, &area, path)?;
    }
    drawn(root.present(), path)?;
    Ok(
        "Histograms of each tap's positive values (0, 10] with a log count axis; the % of \
        active entries (x > threshold) is printed on each panel, and values above 10 are counted \
        as `> 10`."
            .into(),
    )
}

fn hist_panel<DB: DrawingBackend>(
    t: &TapData,
    area: &DrawingArea<DB, plotters::coord::Shift>,
    path: &Path,
) -> Result<()> {
    let bins = &t.hist_pos[..t.hist_pos.len().saturating_sub(1)];
    let over = t.hist_pos.last().copied().unwrap_or(0);
    let top = bins.iter().copied().max().unwrap_or(0).max(1) as f64 * 3.0;
    let mut chart = drawn(
        ChartBuilder::on(area)
            .caption(short(&t.name, 30), (SANS, 14))
            .margin(6)
            .margin_right(16)
            .x_label_area_size(22)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..10f64, (1f64..top).log_scale()),
        Path::new(""),
    )?;
    drawn(
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(6)
            .y_labels(4)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .label_style((SANS, 11))
            .draw(),
        path,
    )?;
    let width = 10.0 / bins.len().max(1) as f64;
    drawn(
        chart.draw_series(
            bins.iter()
                .enumerate()
                .filter(|&(_, &c)| c > 0)
                .map(|(i, &c)| {
                    let x0 = i as f64 * width;
                    Rectangle::new([(x0, 1.0), (x0 + width, c as f64)], category(0).filled())
                }),
        ),
        path,
    )?;
    let (w, _) = area.dim_in_pixel();
    let note = if over > 0 {
        format!("{:.1}% active, {over} > 10", 100.0 * t.frac_active)
    } else {
        format!("{:.1}% active", 100.0 * t.frac_active)
    };
    drawn(
        area.draw(&Text::new(
            note,
            (w as i32 - 150, 24),
            (SANS, 12).into_font().color(&RED),
        )),
        path,
    )?;
    Ok(())
}

/// X positions of taps on a by-depth axis: the depth, with the taps of one depth side by side
/// within +-0.3 of it (x-axis labels cannot name 50 taps legibly; the page's table does).
pub fn depth_positions(taps: &[(usize, TapKind)]) -> Vec<f64> {
    taps.iter()
        .enumerate()
        .map(|(i, &(d, _))| {
            let same: Vec<usize> = (0..taps.len()).filter(|&j| taps[j].0 == d).collect();
            let k = same.iter().position(|&j| j == i).unwrap_or(0);
            d as f64 - 0.3 + 0.6 * (k as f64 + 0.5) / same.len() as f64
        })
        .collect()
}

const KINDS: [(TapKind, &str); 3] = [
    (TapKind::Block, "block outputs"),
    (TapKind::Hidden, "hidden activations"),
    (TapKind::Other, "stem and final norm"),
];

fn kind_colour(kind: TapKind) -> RGBColor {
    category(KINDS.iter().position(|(k, _)| *k == kind).unwrap_or(0))
}

fn depth_range(data: &RunData) -> std::ops::Range<f64> {
    let max = data.taps.iter().map(|t| t.depth).max().unwrap_or(0);
    -0.6..max as f64 + 0.6
}

const DEPTH_DESC: &str = "depth (block index; the taps of one block side by side)";

type DepthChart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The mesh of a by-depth chart: integer depths on x, `y_desc` on y with labels up to `y_max`
/// (`decimals` places; the band above `y_max` holds keys and notes).
fn depth_mesh(
    chart: &mut DepthChart,
    y_desc: &str,
    y_max: f64,
    decimals: usize,
    path: &Path,
) -> Result<()> {
    drawn(
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| {
                if *y <= y_max + 1e-9 {
                    format!("{y:.decimals$}")
                } else {
                    String::new()
                }
            })
            .x_desc(DEPTH_DESC)
            .y_desc(y_desc)
            .axis_desc_style((SANS, 15))
            .label_style((SANS, 12))
            .draw(),
        path,
    )
}

/// % active (left axis, solid) and decorrelation (right axis, dashed) by depth, one colour per
/// kind of tap.
pub fn depth(data: &RunData, path: &Path) -> Result<String> {
    let root = BitMapBackend::new(path, (1200, 620)).into_drawing_area();
    drawn(root.fill(&WHITE), path)?;
    let decor_max = data
        .taps
        .iter()
        .filter_map(|t| t.decorrelation)
        .fold(1.0f64, f64::max);
    let xr = depth_range(data);
    let mut chart = drawn(
        ChartBuilder::on(&root)
            .caption("Sparsity and decorrelation by depth", (SANS, 22))
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .right_y_label_area_size(60)
            .build_cartesian_2d(xr.clone(), 0f64..100f64),
        path,
    )?
    .set_secondary_coord(xr, 0f64..decor_max);
    depth_mesh(&mut chart, "% of entries active (solid)", 100.0, 0, path)?;
    drawn(
        chart
            .configure_secondary_axes()
            .y_desc("decorrelation: mean 1 - Pearson r between images (dashed)")
            .axis_desc_style((SANS, 15))
            .label_style((SANS, 12))
            .draw(),
        path,
    )?;
    let keyed: Vec<(usize, TapKind)> = data.taps.iter().map(|t| (t.depth, t.kind)).collect();
    let xs = depth_positions(&keyed);
    for (kind, label) in KINDS {
        let colour = kind_colour(kind);
        let idx: Vec<usize> = (0..data.taps.len())
            .filter(|&i| data.taps[i].kind == kind)
            .collect();
        if idx.is_empty() {
            continue;
        }
        let active: Vec<(f64, f64)> = idx
            .iter()
            .map(|&i| (xs[i], 100.0 * data.taps[i].frac_active))
            .collect();
        // Stem and final norm are not a sequence: points only.
        let line = if kind == TapKind::Other {
            vec![]
        } else {
            active.clone()
        };
        drawn(
            chart.draw_series(LineSeries::new(line, colour.stroke_width(2))),
            path,
        )?
        .label(format!("{label}: % active"))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        drawn(
            chart.draw_series(active.iter().map(|&p| Circle::new(p, 3, colour.filled()))),
            path,
        )?;
        let decor: Vec<(f64, f64)> = idx
            .iter()
            .filter_map(|&i| data.taps[i].decorrelation.map(|d| (xs[i], d)))
            .collect();
        if decor.is_empty() {
            continue;
        }
        drawn(
            chart.draw_secondary_series(DashedLineSeries::new(
                if kind == TapKind::Other {
                    vec![]
                } else {
                    decor.clone()
                },
                6,
                4,
                colour.stroke_width(2),
            )),
            path,
        )?
        .label(format!("{label}: decorrelation"))
        .legend(move |(x, y)| {
            EmptyElement::at((x, y))
                + PathElement::new(vec![(0, 0), (7, 0)], colour.stroke_width(2))
                + PathElement::new(vec![(12, 0), (19, 0)], colour.stroke_width(2))
        });
        drawn(
            chart.draw_secondary_series(
                decor
                    .iter()
                    .map(|&p| TriangleMarker::new(p, 4, colour.filled())),
            ),
            path,
        )?;
    }
    drawn(
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((SANS, 13))
            .draw(),
        path,
    )?;
    drawn(root.present(), path)?;
    Ok(
        "The share of entries above the threshold (the blog study's % active; solid, left axis) \
        and the mean correlation distance between the images' whole-layer activations (dashed, \
        right axis), by depth, one colour per kind of tap."
            .into(),
    )
}

/// Quantiles of `v` (sorted copy): min, 25%, median, 75%, max.
fn quartiles(v: &[f64]) -> [f64; 5] {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return [f64::NAN; 5];
    }
    let q = |f: f64| s[((s.len() - 1) as f64 * f).round() as usize];
    [s[0], q(0.25), q(0.5), q(0.75), s[s.len() - 1]]
}

/// Per tap, the distribution of channel firing rates (box: quartiles; whiskers: min and max)
/// and the share of channels that never fired, by depth, one colour per kind of tap.
pub fn firing(data: &RunData, path: &Path) -> Result<String> {
    let root = BitMapBackend::new(path, (1200, 640)).into_drawing_area();
    drawn(root.fill(&WHITE), path)?;
    let mut chart = drawn(
        ChartBuilder::on(&root)
            .caption("Firing rates of the channels of each tap", (SANS, 22))
            .margin(12)
            .margin_top(20)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(depth_range(data), 0f64..1.1f64),
        path,
    )?;
    depth_mesh(
        &mut chart,
        "firing rate (share of entries active)",
        1.0,
        1,
        path,
    )?;
    let keyed: Vec<(usize, TapKind)> = data.taps.iter().map(|t| (t.depth, t.kind)).collect();
    let xs = depth_positions(&keyed);
    for (i, t) in data.taps.iter().enumerate() {
        let [lo, q1, med, q3, hi] = quartiles(&t.firing_rate);
        if !med.is_finite() {
            continue;
        }
        let x = xs[i];
        let at_depth = keyed.iter().filter(|k| k.0 == t.depth).count();
        let half = 0.25 / at_depth as f64;
        let colour = kind_colour(t.kind);
        drawn(
            chart.draw_series([
                PathElement::new(vec![(x, lo), (x, hi)], colour.stroke_width(1)),
                PathElement::new(
                    vec![(x - half, med), (x + half, med)],
                    BLACK.stroke_width(2),
                ),
            ]),
            path,
        )?;
        drawn(
            chart.draw_series([Rectangle::new(
                [(x - half, q1), (x + half, q3)],
                colour.mix(0.55).filled(),
            )]),
            path,
        )?;
        let dead = t.firing_rate.iter().filter(|&&r| r == 0.0).count();
        if dead > 0 {
            let share = dead as f64 / t.firing_rate.len().max(1) as f64;
            drawn(
                chart.draw_series([Cross::new((x, share), 4, RED.stroke_width(2))]),
                path,
            )?;
        }
    }
    // The key, in the band above the plot (y > 1).
    let depth_max = data.taps.iter().map(|t| t.depth).max().unwrap_or(0) as f64;
    let mut x = -0.4;
    for (kind, label) in KINDS {
        if !data.taps.iter().any(|t| t.kind == kind) {
            continue;
        }
        let colour = kind_colour(kind);
        drawn(
            chart.draw_series([Rectangle::new(
                [(x, 1.03), (x + 0.25, 1.07)],
                colour.mix(0.55).filled(),
            )]),
            path,
        )?;
        drawn(
            chart.draw_series([Text::new(label.to_string(), (x + 0.35, 1.075), (SANS, 13))]),
            path,
        )?;
        x += (label.len() as f64 + 6.0) * (depth_max + 1.2) / 140.0;
    }
    drawn(
        chart.draw_series([Text::new(
            "box: middle half of the channels; whiskers: min, max; black: median; red x: share never active",
            (x, 1.075),
            (SANS, 13),
        )]),
        path,
    )?;
    drawn(root.present(), path)?;
    Ok(
        "Per tap, how the channels' firing rates spread: boxes hold the middle half of the \
        channels, whiskers the extremes, red crosses the share of channels never active; taps of \
        one block stand side by side at its depth."
            .into(),
    )
}

/// Image order for RDM figures: grouped by class (stable), with the class boundaries.
pub fn class_order(data: &RunData, n: usize) -> (Vec<usize>, Vec<(usize, String)>) {
    match &data.labels {
        Some((labels, classes)) if labels.len() == n => {
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by_key(|&i| labels[i]);
            let mut starts = Vec::new();
            for (pos, &i) in order.iter().enumerate() {
                if pos == 0 || labels[order[pos - 1]] != labels[i] {
                    starts.push((pos, classes[labels[i]].clone()));
                }
            }
            (order, starts)
        }
        _ => ((0..n).collect(), Vec::new()),
    }
}

/// A heatmap of the square matrix `m` (row-major, `n` x `n`) on `area`, colours from `lo` to
/// `hi`, in `order`, with class boundaries.
#[allow(clippy::too_many_arguments)]
fn heatmap<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    m: &[f64],
    n: usize,
    order: &[usize],
    bounds: &[(usize, String)],
    (lo, hi): (f64, f64),
    path: &Path,
) -> Result<()> {
    let mut chart = drawn(
        ChartBuilder::on(area)
            .caption(title, (SANS, 14))
            .margin(8)
            .x_label_area_size(20)
            .y_label_area_size(30)
            .build_cartesian_2d(0f64..n as f64, n as f64..0f64),
        path,
    )?;
    drawn(
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(5)
            .y_labels(5)
            .x_label_formatter(&|v| format!("{}", *v as usize))
            .y_label_formatter(&|v| format!("{}", *v as usize))
            .label_style((SANS, 10))
            .draw(),
        path,
    )?;
    let span = (hi - lo).max(1e-12);
    drawn(
        chart.draw_series((0..n).flat_map(|r| {
            (0..n).map(move |c| {
                let v = m[order[r] * n + order[c]];
                Rectangle::new(
                    [(c as f64, r as f64), (c as f64 + 1.0, r as f64 + 1.0)],
                    viridis((v - lo) / span).filled(),
                )
            })
        })),
        path,
    )?;
    for (start, _) in bounds.iter().skip(1) {
        let s = *start as f64;
        drawn(
            chart.draw_series([
                PathElement::new(vec![(s, 0.0), (s, n as f64)], WHITE.stroke_width(2)),
                PathElement::new(vec![(0.0, s), (n as f64, s)], WHITE.stroke_width(2)),
            ]),
            path,
        )?;
    }
    Ok(())
}

/// A vertical colour bar from `lo` to `hi` with its label.
fn colour_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    (lo, hi): (f64, f64),
    label: &str,
    path: &Path,
) -> Result<()> {
    let mut chart = drawn(
        ChartBuilder::on(area)
            .margin_top(40)
            .margin_bottom(40)
            .margin_left(10)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..1f64, lo..hi),
        path,
    )?;
    drawn(
        chart
            .configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_labels(6)
            .y_desc(label)
            .axis_desc_style((SANS, 13))
            .label_style((SANS, 11))
            .draw(),
        path,
    )?;
    let steps = 100;
    drawn(
        chart.draw_series((0..steps).map(|i| {
            let a = lo + (hi - lo) * i as f64 / steps as f64;
            let b = lo + (hi - lo) * (i + 1) as f64 / steps as f64;
            Rectangle::new(
                [(0.0, a), (1.0, b)],
                viridis(i as f64 / (steps - 1) as f64).filled(),
            )
        })),
        path,
    )?;
    Ok(())
}

/// Up to `k` taps spread over depth (first and last included).
pub fn spread_taps(count: usize, k: usize) -> Vec<usize> {
    if count <= k {
        return (0..count).collect();
    }
    let mut v: Vec<usize> = (0..k)
        .map(|i| (i as f64 * (count - 1) as f64 / (k - 1) as f64).round() as usize)
        .collect();
    v.dedup();
    v
}

/// RDM heatmaps of up to six taps spread over depth, in images.txt order grouped by class.
pub fn rdms(data: &RunData, file: &str, path: &Path) -> Result<Option<String>> {
    let n = data.run.n_images();
    let picked: Vec<(&TapData, Vec<f64>)> = spread_taps(data.taps.len(), 6)
        .into_iter()
        .filter_map(|i| {
            let t = &data.taps[i];
            data.run
                .array::<f64>(&t.name, file)
                .ok()
                .filter(|(s, _)| s == &[n, n])
                .map(|(_, m)| (t, m))
        })
        .collect();
    if picked.is_empty() || n < 2 {
        return Ok(None);
    }
    let hi = picked
        .iter()
        .flat_map(|(_, m)| m.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-12);
    let (order, bounds) = class_order(data, n);
    let cols = picked.len().min(3);
    let rows = picked.len().div_ceil(cols);
    let root = BitMapBackend::new(path, (380 * cols as u32 + 110, 380 * rows as u32 + 40))
        .into_drawing_area();
    drawn(root.fill(&WHITE), path)?;
    let (title, body) = root.split_vertically(40);
    let kind = file.trim_start_matches("rdm_").replace('_', " ");
    drawn(
        title.draw(&Text::new(
            format!("Representational dissimilarity matrices ({kind}), {n} images"),
            (10, 10),
            (SANS, 20),
        )),
        path,
    )?;
    let (grid, bar) = body.split_horizontally(380 * cols as u32);
    for ((t, m), area) in picked.iter().zip(grid.split_evenly((rows, cols))) {
        heatmap(
            &area,
            &short(&t.name, 36),
            m,
            n,
            &order,
            &bounds,
            (0.0, hi),
            path,
        )?;
    }
    colour_bar(&bar, (0.0, hi), "dissimilarity", path)?;
    drawn(root.present(), path)?;
    let grouping = if bounds.is_empty() {
        "in the order of images.txt (no class labels)".to_string()
    } else {
        format!(
            "grouped by class ({}), white lines between classes",
            bounds
                .iter()
                .map(|(_, c)| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Ok(Some(format!(
        "RDMs ({kind}) of taps spread over depth, images {grouping}; one colour scale for all \
         panels."
    )))
}

/// The layer-by-layer RSA matrix of one `rsa` report.
pub fn rsa_matrix(report: &Value, path: &Path) -> Result<Option<String>> {
    let taps: Vec<String> = report["taps"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let n = taps.len();
    let m: Vec<f64> = report["matrix"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .flat_map(|r| {
                    r.as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|v| v.as_f64().unwrap_or(f64::NAN))
                })
                .collect()
        })
        .unwrap_or_default();
    if n < 2 || m.len() != n * n {
        return Ok(None);
    }
    let root = BitMapBackend::new(path, (1000, 860)).into_drawing_area();
    drawn(root.fill(&WHITE), path)?;
    let (main, bar) = root.split_horizontally(880);
    let title = format!(
        "RSA between taps: {} of {} RDMs ({} features)",
        report["method"].as_str().unwrap_or("?"),
        report["measure"].as_str().unwrap_or("?"),
        report["features"].as_str().unwrap_or("?")
    );
    let mut chart = drawn(
        ChartBuilder::on(&main)
            .caption(title, (SANS, 18))
            .margin(10)
            .x_label_area_size(50)
            .y_label_area_size(180)
            .build_cartesian_2d(0f64..n as f64, n as f64..0f64),
        path,
    )?;
    // Names on the rows; the columns carry the same taps, numbered in forward order.
    let step = label_step(n, 30);
    let col_step = label_step(n, 12);
    let row_label = |v: &f64| {
        let i = v.floor() as usize;
        if (*v - i as f64 - 0.5).abs() < 1e-6 && i.is_multiple_of(step) {
            taps.get(i)
                .map(|s| format!("{} {i}", short(s, 20)))
                .unwrap_or_default()
        } else {
            String::new()
        }
    };
    let col_label = |v: &f64| {
        let i = v.floor() as usize;
        if (*v - i as f64 - 0.5).abs() < 1e-6 && i.is_multiple_of(col_step) {
            i.to_string()
        } else {
            String::new()
        }
    };
    // Tick positions at cell centres.
    drawn(
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(2 * n + 1)
            .y_labels(2 * n + 1)
            .x_label_formatter(&col_label)
            .y_label_formatter(&row_label)
            .x_desc("tap number (as on the rows)")
            .axis_desc_style((SANS, 13))
            .label_style((SANS, 10))
            .draw(),
        path,
    )?;
    drawn(
        chart.draw_series((0..n).flat_map(|r| {
            let m = &m;
            (0..n).map(move |c| {
                Rectangle::new(
                    [(c as f64, r as f64), (c as f64 + 1.0, r as f64 + 1.0)],
                    viridis((m[r * n + c] + 1.0) / 2.0).filled(),
                )
            })
        })),
        path,
    )?;
    colour_bar(&bar, (-1.0, 1.0), "RSA", path)?;
    drawn(root.present(), path)?;
    Ok(Some(format!(
        "RSA of every pair of taps ({} images); the diagonal is 1.",
        report["images"]
    )))
}

fn series(v: &Value, key: &str) -> Vec<f64> {
    v[key]
        .as_array()
        .map(|a| a.iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect())
        .unwrap_or_default()
}

/// Pruning curves of up to six taps: RSA(kept, full) by % of channels dropped, ranked by
/// firing rate and at random, pooled and flat, with the prunability threshold.
pub fn prune_curves(prune: &Value, path: &Path) -> Result<Option<String>> {
    let taps: Vec<&Value> = prune["taps"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let percents = series(prune, "percents");
    if taps.is_empty() || percents.len() < 2 {
        return Ok(None);
    }
    let picked = spread_taps(taps.len(), 6);
    let cols = picked.len().min(3);
    let rows = picked.len().div_ceil(cols);
    let root =
        BitMapBackend::new(path, (420 * cols as u32, 330 * rows as u32 + 70)).into_drawing_area();
    drawn(root.fill(&WHITE), path)?;
    let (title, body) = root.split_vertically(70);
    let threshold = prune["threshold"].as_f64().unwrap_or(0.95);
    drawn(
        title.draw(&Text::new(
            format!(
                "Pruning rarely-firing channels: RSA(kept, full) by % dropped ({} ranking, {} random orders)",
                prune["rank"].as_str().unwrap_or("?"),
                prune["random_repeats"]
            ),
            (10, 8),
            (SANS, 18),
        )),
        path,
    )?;
    let legend = [
        (category(0), "pooled, ranked", false),
        (category(0), "pooled, random", true),
        (category(1), "flat, ranked", false),
        (category(1), "flat, random", true),
        (RED, &*format!("threshold {threshold}"), true),
    ];
    let mut x = 10;
    for (colour, label, dashed) in legend {
        let style = colour.stroke_width(if dashed { 1 } else { 3 });
        drawn(
            title.draw(&PathElement::new(vec![(x, 52), (x + 30, 52)], style)),
            path,
        )?;
        drawn(
            title.draw(&Text::new(label.to_string(), (x + 36, 45), (SANS, 13))),
            path,
        )?;
        x += 46 + 8 * label.len() as i32;
    }
    let lo = taps
        .iter()
        .flat_map(|t| {
            [
                "pooled_rsa",
                "pooled_random_mean",
                "flat_rsa",
                "flat_random_mean",
            ]
            .into_iter()
            .flat_map(move |k| series(t, k))
        })
        .filter(|v| v.is_finite())
        .fold(1.0f64, f64::min)
        .min(threshold)
        - 0.02;
    for (&i, area) in picked.iter().zip(body.split_evenly((rows, cols))) {
        let t = taps[i];
        let name = t["tap"].as_str().unwrap_or("?");
        let caption = format!(
            "{} ({} ch): prunable {}% / {}%",
            short(name, 24),
            t["channels"],
            t["prunable_percent_pooled"],
            t["prunable_percent_flat"]
        );
        let mut chart = drawn(
            ChartBuilder::on(&area)
                .caption(caption, (SANS, 13))
                .margin(8)
                .x_label_area_size(34)
                .y_label_area_size(46)
                .build_cartesian_2d(0f64..90f64, lo..1.005f64),
            path,
        )?;
        drawn(
            chart
                .configure_mesh()
                .light_line_style(WHITE)
                .x_desc("% of channels dropped")
                .y_desc("RSA(kept, full)")
                .axis_desc_style((SANS, 12))
                .label_style((SANS, 10))
                .draw(),
            path,
        )?;
        for (key, colour, dashed) in [
            ("pooled_rsa", category(0), false),
            ("pooled_random_mean", category(0), true),
            ("flat_rsa", category(1), false),
            ("flat_random_mean", category(1), true),
        ] {
            let ys = series(t, key);
            let pts: Vec<(f64, f64)> = percents
                .iter()
                .zip(&ys)
                .filter(|(_, y)| y.is_finite())
                .map(|(&x, &y)| (x, y))
                .collect();
            if pts.is_empty() {
                continue;
            }
            let style = colour.stroke_width(if dashed { 1 } else { 3 });
            drawn(chart.draw_series(LineSeries::new(pts, style)), path)?;
        }
        drawn(
            chart.draw_series([PathElement::new(
                vec![(0.0, threshold), (90.0, threshold)],
                RED.stroke_width(1),
            )]),
            path,
        )?;
    }
    drawn(root.present(), path)?;
    Ok(Some(
        "RSA between the RDM of the kept channels and the full RDM as the rarest-firing channels \
         are dropped (thick), against dropping channels at random (thin, mean over orders); panel \
         titles give the largest % prunable at the threshold, pooled / flat."
            .into(),
    ))
}

/// Null-code share by depth, one colour per kind of tap, with each kind's emergence marked.
pub fn null_share(nullcode: &Value, path: &Path) -> Result<Option<String>> {
    let taps: Vec<&Value> = nullcode["taps"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    if taps.is_empty() {
        return Ok(None);
    }
    let kind_of = |t: &Value| match t["kind"].as_str() {
        Some("block") => TapKind::Block,
        Some("hidden") => TapKind::Hidden,
        _ => TapKind::Other,
    };
    let keyed: Vec<(usize, TapKind)> = taps
        .iter()
        .map(|t| (t["depth"].as_u64().unwrap_or(0) as usize, kind_of(t)))
        .collect();
    let xs = depth_positions(&keyed);
    let max_depth = keyed.iter().map(|k| k.0).max().unwrap_or(0);
    let root = BitMapBackend::new(path, (1200, 620)).into_drawing_area();
    drawn(root.fill(&WHITE), path)?;
    let mut chart = drawn(
        ChartBuilder::on(&root)
            .caption(
                format!(
                    "Null tokens by depth (cos to the dominant pattern >= {}, Hoyer >= {})",
                    nullcode["thresholds"]["cos_min"], nullcode["thresholds"]["hoyer_min"]
                ),
                (SANS, 20),
            )
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.6f64..max_depth as f64 + 0.6, 0f64..135f64),
        path,
    )?;
    depth_mesh(&mut chart, "% of tokens null", 100.0, 0, path)?;
    for (kind, label) in KINDS {
        let pts: Vec<(f64, f64)> = taps
            .iter()
            .enumerate()
            .filter(|(i, _)| keyed[*i].1 == kind)
            .map(|(i, t)| (xs[i], 100.0 * t["null_share"].as_f64().unwrap_or(f64::NAN)))
            .collect();
        if pts.is_empty() {
            continue;
        }
        let colour = kind_colour(kind);
        let line = if kind == TapKind::Other {
            vec![]
        } else {
            pts.clone()
        };
        drawn(
            chart.draw_series(LineSeries::new(line, colour.stroke_width(2))),
            path,
        )?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        drawn(
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, colour.filled()))),
            path,
        )?;
    }
    let mut row = 0.0;
    for e in nullcode["emergence"].as_array().into_iter().flatten() {
        let Some(tap) = e["tap"].as_str() else {
            continue;
        };
        let Some(i) = taps.iter().position(|t| t["name"] == tap) else {
            continue;
        };
        let (x, colour) = (xs[i], kind_colour(keyed[i].1));
        drawn(
            chart.draw_series([PathElement::new(
                vec![(x, 0.0), (x, 100.0)],
                colour.stroke_width(1),
            )]),
            path,
        )?;
        drawn(
            chart.draw_series([Text::new(
                format!("emergence: {}", short(tap, 26)),
                (x + 0.1, 133.0 - row),
                (SANS, 12).into_font().color(&colour),
            )]),
            path,
        )?;
        row += 5.0;
    }
    drawn(
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((SANS, 13))
            .draw(),
        path,
    )?;
    drawn(root.present(), path)?;
    Ok(Some(
        "The share of null tokens at each tap by depth, one line per kind of tap; a vertical line \
         marks where each kind's share rises most over the depth before (its emergence)."
            .into(),
    ))
}
