//! Segment report: a standalone SVG picture (a bar chart of segment sizes and a
//! 2-D PCA map of sampled customers with the segment centroids) and the same
//! content as a plain-text table.
//!
//! Self-contained: depends only on `std`, `ndarray` and `serde`.

use ndarray::{Array2, ArrayView1, Axis};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt::Write as _;

/// Appends formatted text to a `String` (writing to a `String` cannot fail).
macro_rules! w {
    ($dst:expr, $($arg:tt)*) => {{ let _ = write!($dst, $($arg)*); }};
}

/// One segment as shown in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportSegment {
    /// Segment id (shown as `#id` and inside the centroid marker).
    pub id: u16,
    /// Number of customers in the segment.
    pub size: u64,
    /// Human-readable description of the segment.
    pub label: String,
    /// Segment centroid in standardised feature space.
    pub centroid: Vec<f64>,
}

/// One sampled customer for the scatter plot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportPoint {
    /// Id of the segment the customer belongs to.
    pub segment: u16,
    /// Standardised feature vector (same dimension as the centroids).
    pub vector: Vec<f64>,
}

/// Everything the report shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportInput {
    /// Big heading at the top.
    pub title: String,
    /// Smaller line under the title, e.g. "12,345 customers · 8 segments · as of 2026-04-30".
    pub subtitle: String,
    /// Segments, in any order (the report sorts them by size).
    pub segments: Vec<ReportSegment>,
    /// Sample of customers for the scatter plot (may be empty).
    pub points: Vec<ReportPoint>,
}

/// A fitted 2-D principal-component projection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    /// The two leading unit-length principal axes (PC1, PC2).
    pub components: [Vec<f64>; 2],
    /// Mean of the fitted rows.
    pub mean: Vec<f64>,
    /// Fraction of the total variance explained by PC1 and PC2.
    pub explained: [f64; 2],
}

impl Projection {
    /// Projects `v` onto (PC1, PC2) after centring it on the fitted mean.
    /// Coordinates beyond the fitted dimension are ignored and missing ones
    /// count as equal to the mean; non-finite inputs give non-finite output.
    pub fn project(&self, v: &[f64]) -> [f64; 2] {
        let centred: Vec<f64> = v.iter().zip(&self.mean).map(|(x, m)| x - m).collect();
        let dot = |c: &[f64]| c.iter().zip(&centred).map(|(a, b)| a * b).sum::<f64>();
        [dot(&self.components[0]), dot(&self.components[1])]
    }
}

/// Fits a 2-D PCA on `rows` via a cyclic Jacobi eigen-decomposition of the
/// sample covariance (deterministic; eigenvector signs are fixed so the
/// largest-magnitude entry is positive). Rows whose length differs from the
/// first finite non-empty row, or that hold NaN/inf, are skipped. Returns
/// `None` with fewer than two usable rows or (numerically) zero variance.
/// With one dimension, PC2 is the zero vector and explains nothing.
pub fn pca_2d(rows: &[Vec<f64>]) -> Option<Projection> {
    let dim = rows.iter().find(|r| !r.is_empty() && all_finite(r))?.len();
    let usable = |r: &&Vec<f64>| r.len() == dim && all_finite(r);
    let valid: Vec<&Vec<f64>> = rows.iter().filter(usable).collect();
    if valid.len() < 2 {
        return None;
    }
    let n = valid.len();
    let mut x = Array2::<f64>::zeros((n, dim));
    for (mut row, src) in x.rows_mut().into_iter().zip(&valid) {
        row.assign(&ArrayView1::from(src.as_slice()));
    }
    let mean = x.mean_axis(Axis(0))?;
    x -= &mean;
    let cov = x.t().dot(&x) / (n as f64 - 1.0);
    let trace = cov.diag().sum();
    // Relative threshold: well above the rounding noise of centring, far below real spread.
    if !trace.is_finite() || trace <= 1e-24 * (1.0 + mean.dot(&mean)) {
        return None;
    }
    let (vals, vecs) = jacobi_eigen(cov.iter().copied().collect(), dim);
    let mut order: Vec<usize> = (0..dim).collect();
    order.sort_by(|&a, &b| vals[b].total_cmp(&vals[a]).then(a.cmp(&b)));
    let abs_max = |a: f64, b: &f64| if b.abs() > a.abs() { *b } else { a };
    let pick = |k: usize| match order.get(k) {
        Some(&j) => {
            let mut c: Vec<f64> = (0..dim).map(|i| vecs[i * dim + j]).collect();
            if c.iter().fold(0.0, abs_max) < 0.0 {
                c.iter_mut().for_each(|x| *x = -*x);
            }
            (c, (vals[j].max(0.0) / trace).min(1.0))
        }
        None => (vec![0.0; dim], 0.0),
    };
    let ((c1, e1), (c2, e2)) = (pick(0), pick(1));
    let (components, explained) = ([c1, c2], [e1, e2]);
    Some(Projection {
        components,
        mean: mean.to_vec(),
        explained,
    })
}

/// Cyclic Jacobi eigen-decomposition of a symmetric row-major `n`×`n` matrix.
/// Returns the eigenvalues and the eigenvectors (as columns, row-major).
fn jacobi_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0; n * n];
    (0..n).for_each(|i| v[i * n + i] = 1.0);
    let total: f64 = a.iter().map(|x| x * x).sum();
    for _sweep in 0..64 {
        let off_sq = |i: usize| if i / n == i % n { 0.0 } else { a[i] * a[i] };
        if (0..n * n).map(off_sq).sum::<f64>() <= 1e-24 * total {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + theta.hypot(1.0));
                let (c, s) = (1.0 / t.hypot(1.0), t / t.hypot(1.0));
                let rot = |m: &mut [f64], i: usize, j: usize| {
                    (m[i], m[j]) = (c * m[i] - s * m[j], s * m[i] + c * m[j]);
                };
                for k in 0..n {
                    rot(&mut a, k * n + p, k * n + q);
                    rot(&mut v, k * n + p, k * n + q);
                }
                for k in 0..n {
                    rot(&mut a, p * n + k, q * n + k);
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

/// Formats `n` with thousands separators, e.g. `12345` → `"12,345"`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Okabe–Ito (black softened to dark grey) followed by Paul Tol's muted colours; cycles.
const PALETTE: [&str; 16] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442", "#4D4D4D",
    "#882255", "#44AA99", "#999933", "#AA4499", "#117733", "#332288", "#DDCC77", "#88CCEE",
];
/// Palette entries light enough to need dark text on top.
const LIGHT: [&str; 7] = [
    "#E69F00", "#56B4E9", "#F0E442", "#44AA99", "#999933", "#DDCC77", "#88CCEE",
];
const UNKNOWN_COLOR: &str = "#AAAAAA";
const WIDTH: f64 = 1200.0;
const MARGIN: f64 = 40.0;
const BAR_ROW: f64 = 26.0;
const PLOT_H: f64 = 460.0;
const MAX_DOTS: usize = 5000;
const STYLE: &str = "<style type='text/css'>\
text{font-family:Helvetica,Arial,sans-serif;fill:#333}.mid{text-anchor:middle}.end{text-anchor:end}\
.title{font-size:24px;font-weight:bold;fill:#1a1a1a}.sub{font-size:14px;fill:#666}\
.head{font-size:16px;font-weight:bold;fill:#222}.lab{font-size:13px}\
.num{font-size:12px;fill:#555}.tick{font-size:11px;fill:#888}.cap{font-size:13px;fill:#444}\
.mark{font-size:12px;font-weight:bold;fill:#fff}.dark{fill:#111}\
.empty{font-size:20px;fill:#888}</style>\n";
/// Legend key (dot and centroid marker), drawn translated to the legend's top-left corner.
const LEGEND_KEY: &str = "<circle cx='8' cy='12' r='3' fill='#666666' fill-opacity='0.5'/>\
<text x='26' y='16.5' class='lab'>Customer (sampled)</text>\
<circle cx='8' cy='38' r='9' fill='#DDDDDD' stroke='#1A1A1A' stroke-width='1.5'/>\
<text x='26' y='42.5' class='lab'>Segment centroid (id)</text>\
<path d='M0 58H230' stroke='#DDDDDD'/>";

fn all_finite(v: &[f64]) -> bool {
    v.iter().all(|x| x.is_finite())
}

/// XML-escapes `s`; control characters (invalid in XML 1.0 or line-breaking) become spaces.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// Rough rendered width in px of `s` at `px` font size (generous, DejaVu-Sans-like metrics).
fn text_width(s: &str, px: f64) -> f64 {
    let em = |c: char| match c {
        ' ' | 'i' | 'j' | 'l' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' => 0.32,
        'f' | 't' | 'r' | '(' | ')' | '[' | ']' | '-' => 0.42,
        'm' | 'w' | 'M' | 'W' | '@' | '%' => 0.95,
        'A'..='Z' | '&' | '#' => 0.72,
        c if c.is_ascii() => 0.62,
        _ => 1.0,
    };
    s.chars().map(em).sum::<f64>() * px
}

/// Width of the widest of `texts` at `px` font size.
fn widest(texts: &[String], px: f64) -> f64 {
    texts.iter().map(|t| text_width(t, px)).fold(0.0, f64::max)
}

/// Replaces control characters with spaces, trims, and truncates with "…" to at most
/// `max_chars` chars and about `max_px` px wide at `px` font size.
fn fit(s: &str, max_chars: usize, max_px: f64, px: f64) -> String {
    let clean = s.replace(|c: char| c.is_control(), " ");
    let mut chars: Vec<char> = clean.trim().chars().collect();
    if chars.len() <= max_chars && text_width(clean.trim(), px) <= max_px {
        return chars.into_iter().collect();
    }
    chars.truncate(max_chars.saturating_sub(1));
    loop {
        let t = chars.iter().collect::<String>().trim_end().to_string() + "…";
        if chars.is_empty() || text_width(&t, px) <= max_px {
            return t;
        }
        chars.pop();
    }
}

/// Percentage of `total` (0 when the total is 0).
fn share(size: u64, total: u128) -> f64 {
    size as f64 / (total as f64).max(1.0) * 100.0
}

/// Segment indices sorted by size (descending), then id.
fn size_order(segs: &[ReportSegment]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..segs.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(segs[i].size), segs[i].id));
    order
}

/// SVG body under construction (attribute values in single quotes) and the colour of each
/// segment id (palette position by ascending id, cycling).
struct Svg(String, HashMap<u16, &'static str>);

impl Svg {
    fn color(&self, id: u16) -> &'static str {
        self.1.get(&id).copied().unwrap_or(UNKNOWN_COLOR)
    }
    fn text(&mut self, x: f64, y: f64, class: &str, s: &str) {
        let s = esc(s);
        w!(
            self.0,
            "<text x='{x:.1}' y='{y:.1}' class='{class}'>{s}</text>\n"
        );
    }
    fn circle(&mut self, x: f64, y: f64, r: f64, attrs: &str) {
        w!(
            self.0,
            "<circle cx='{x:.1}' cy='{y:.1}' r='{r:.1}' {attrs}/>\n"
        );
    }
}

/// Renders the report as a complete standalone SVG 1.1 document, 1200 px wide (height grows
/// with the number of segments). Never panics: without segments it shows "No segments yet";
/// points or centroids with NaN/inf (or of another dimension) are left out of the map; if no
/// projection can be fitted the map panel says so. At most 5,000 points are drawn (evenly
/// strided); the PCA is fitted on all usable points plus the centroids.
pub fn render_svg(input: &ReportInput) -> String {
    let order = size_order(&input.segments);
    let mut ids: Vec<u16> = input.segments.iter().map(|s| s.id).collect();
    ids.sort_unstable();
    ids.dedup();
    let colors = ids.into_iter().zip(PALETTE.into_iter().cycle()).collect();
    let mut svg = Svg(String::new(), colors);
    let line_px = WIDTH - 2.0 * MARGIN;
    let title = fit(&input.title, 200, line_px, 25.0);
    svg.text(MARGIN, 46.0, "title", &title);
    let subtitle = fit(&input.subtitle, 300, line_px, 14.0);
    svg.text(MARGIN, 72.0, "sub", &subtitle);
    let height = if order.is_empty() {
        svg.text(WIDTH / 2.0, 170.0, "empty mid", "No segments yet");
        260.0
    } else {
        let bars_end = bar_chart(&mut svg, input, &order, 118.0);
        scatter(&mut svg, input, &order, bars_end + 44.0)
    };
    let size = format!("width='{WIDTH}' height='{height:.0}'");
    format!(
        "<?xml version='1.0' encoding='UTF-8'?>\n<svg xmlns='http://www.w3.org/2000/svg' \
         version='1.1' {size} viewBox='0 0 {WIDTH} {height:.0}'>\n{STYLE}\
         <rect {size} fill='#FFFFFF'/>\n{}</svg>\n",
        svg.0
    )
}

/// Draws the bar chart (largest segment first) starting at `top`; returns where it ends.
fn bar_chart(svg: &mut Svg, input: &ReportInput, order: &[usize], top: f64) -> f64 {
    let segs: Vec<&ReportSegment> = order.iter().map(|&i| &input.segments[i]).collect();
    let total: u128 = segs.iter().map(|s| u128::from(s.size)).sum();
    let max = segs.iter().map(|s| s.size).max().unwrap_or(0).max(1) as f64;
    let ids: Vec<String> = segs.iter().map(|s| format!("#{}", s.id)).collect();
    let fit_label = |s: &&ReportSegment| fit(&s.label, 60, 440.0, 13.0);
    let labels: Vec<String> = segs.iter().map(fit_label).collect();
    let label_x = MARGIN + widest(&ids, 12.0) + 12.0;
    let bar_x = label_x + widest(&labels, 13.0).clamp(40.0, 440.0) + 16.0;
    let bar_max = WIDTH - MARGIN - 130.0 - bar_x;
    svg.text(MARGIN, top, "head", "Segment sizes");
    for (row, s) in segs.iter().enumerate() {
        let y = top + 12.0 + row as f64 * BAR_ROW;
        let (base, yb) = (y + BAR_ROW / 2.0 + 4.5, y + 4.0);
        let bw = s.size as f64 / max * bar_max;
        let bw = if s.size > 0 { bw.max(2.0) } else { 0.0 };
        let (pct, size, color) = (share(s.size, total), thousands(s.size), svg.color(s.id));
        let tip = esc(&format!("{} {}: {size} ({pct:.1}%)", ids[row], s.label));
        svg.text(MARGIN, base, "num", &ids[row]);
        svg.text(label_x, base, "lab", &labels[row]);
        let geom = format!("x='{bar_x:.1}' y='{yb:.1}' width='{bw:.1}'");
        let fill = format!("fill='{color}'");
        w!(svg.0, "<rect class='bar' {geom} height='18' rx='3' {fill}>");
        w!(svg.0, "<title>{tip}</title></rect>\n");
        let value = format!("{size}  ·  {pct:.1}%");
        svg.text(bar_x + bw + 8.0, base, "num", &value);
    }
    top + 12.0 + segs.len() as f64 * BAR_ROW
}

/// Axis range over the trimmed (0.5%–99.5%) dot coordinates and all centroid ones, padded.
fn axis_range(mut dots: Vec<f64>, cents: impl Iterator<Item = f64>) -> (f64, f64) {
    dots.sort_by(f64::total_cmp);
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    let (n, k) = (dots.len(), dots.len() / 200);
    if n > 0 {
        // k <= n - 1 - k because n / 200 < n / 2 for n >= 1, so both indices are in range.
        (lo, hi) = (dots[k], dots[n - 1 - k]);
    }
    for c in cents {
        (lo, hi) = (lo.min(c), hi.max(c));
    }
    if hi - lo <= 1e-9 || !(hi - lo).is_finite() {
        let mid = (lo + hi) / 2.0;
        let mid = if mid.is_finite() { mid } else { 0.0 };
        (lo, hi) = (mid - 1.0, mid + 1.0);
    }
    let pad = (hi - lo) * 0.06;
    (lo - pad, hi + pad)
}

/// About six to eight "nice" ticks (steps of 1, 2 or 5 × 10^k) within `[lo, hi]`, with text labels.
fn ticks(lo: f64, hi: f64) -> Vec<(f64, String)> {
    let raw = (hi - lo) / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let steps = [1.0, 2.0, 5.0, 10.0].map(|m| m * mag);
    let big_enough = |s: &f64| *s >= 0.75 * raw;
    let step = steps.into_iter().find(big_enough).unwrap_or(10.0 * mag);
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let first = (lo / step).ceil();
    let at = |i: u8| (first + f64::from(i)) * step;
    let label = |t: f64| (t, format!("{:.*}", decimals, t + 0.0));
    let vals = (0..30).map(at).take_while(|&t| t <= hi);
    vals.map(label).collect()
}

/// Draws the PCA map panel starting at `top`; returns the document height.
fn scatter(svg: &mut Svg, input: &ReportInput, order: &[usize], top: f64) -> f64 {
    let (px0, px1, py0) = (MARGIN + 72.0, WIDTH - 300.0, top + 22.0);
    let (py1, pw) = (py0 + PLOT_H, px1 - px0);
    let centroids = input.segments.iter().map(|s| &s.centroid);
    let vectors = centroids.chain(input.points.iter().map(|p| &p.vector));
    let first = vectors.clone().find(|v| !v.is_empty() && all_finite(v));
    let dim = first.map_or(0, |v| v.len());
    let ok = |v: &[f64]| v.len() == dim && all_finite(v);
    let rows: Vec<Vec<f64>> = vectors.filter(|v| ok(v)).cloned().collect();
    let good_points = input.points.iter().filter(|p| ok(&p.vector));
    let stride = good_points.clone().count().div_ceil(MAX_DOTS).max(1);
    let frame = format!("x='{px0}' y='{py0}' width='{pw}' height='{PLOT_H}'");
    w!(svg.0, "<rect {frame} fill='#FAFAFA' stroke='#D0D0D0'/>\n");
    let Some(proj) = pca_2d(&rows) else {
        svg.text(MARGIN, top, "head", "Customer map");
        let msg = "Not enough data for a 2-D projection";
        svg.text((px0 + px1) / 2.0, py0 + PLOT_H / 2.0, "empty mid", msg);
        return py1 + 40.0;
    };
    let dots: Vec<(u16, [f64; 2])> = good_points
        .step_by(stride)
        .map(|p| (p.segment, proj.project(&p.vector)))
        .filter(|(_, q)| all_finite(q))
        .collect();
    let cents: Vec<(&ReportSegment, [f64; 2])> = order
        .iter()
        .map(|&i| &input.segments[i])
        .filter(|s| ok(&s.centroid))
        .map(|s| (s, proj.project(&s.centroid)))
        .filter(|(_, q)| all_finite(q))
        .collect();
    let n_dots = thousands(dots.len() as u64);
    let heading = format!("Customer map — PCA projection of {n_dots} sampled customers");
    svg.text(MARGIN, top, "head", &heading);
    let coords = |k: usize| dots.iter().map(|d| d.1[k]).collect::<Vec<f64>>();
    let (x0, x1) = axis_range(coords(0), cents.iter().map(|c| c.1[0]));
    let (y0, y1) = axis_range(coords(1), cents.iter().map(|c| c.1[1]));
    let sx = |x: f64| px0 + (x - x0) / (x1 - x0) * pw;
    let sy = |y: f64| py1 - (y - y0) / (y1 - y0) * PLOT_H;
    let mut grid = String::new();
    for (t, label) in ticks(x0, x1) {
        w!(grid, "M{:.1} {py0}V{py1}", sx(t));
        svg.text(sx(t), py1 + 16.0, "tick mid", &label);
    }
    for (t, label) in ticks(y0, y1) {
        w!(grid, "M{px0} {:.1}H{px1}", sy(t));
        svg.text(px0 - 8.0, sy(t) + 4.0, "tick end", &label);
    }
    let [e1, e2] = proj.explained.map(|e| e * 100.0);
    let cap1 = format!("PC1 ({e1:.0}% of variance)");
    let cap2 = format!("PC2 ({e2:.0}% of variance)");
    let (cx, cy, ylab) = ((px0 + px1) / 2.0, (py0 + py1) / 2.0, px0 - 46.0);
    svg.text(cx, py1 + 40.0, "cap mid", &cap1);
    w!(svg.0, "<g transform='rotate(-90 {ylab:.1} {cy:.1})'>");
    svg.text(ylab, cy, "cap mid", &cap2);
    w!(svg.0, "</g>\n<clipPath id='plot'><rect {frame}/>");
    w!(svg.0, "</clipPath>\n<g clip-path='url(#plot)'>\n");
    w!(svg.0, "<path d='{grid}' stroke='#E6E6E6'/>\n");
    let zero = format!("M{:.1} {py0}V{py1}M{px0} {:.1}H{px1}", sx(0.0), sy(0.0));
    w!(svg.0, "<path d='{zero}' stroke='#BBBBBB'/>\n");
    svg.0.push_str("<g fill-opacity='0.35'>\n");
    for (seg, [x, y]) in &dots {
        let fill = format!("fill='{}'", svg.color(*seg));
        svg.circle(sx(*x), sy(*y), 2.6, &fill);
    }
    svg.0.push_str("</g></g>\n");
    let radius = |id: u16| (6.0 + 3.6 * id.to_string().len() as f64).max(12.0);
    let mark = |(s, q): &(&ReportSegment, [f64; 2])| [sx(q[0]), sy(q[1]), radius(s.id)];
    let truth: Vec<[f64; 3]> = cents.iter().map(mark).collect();
    let mut marks = truth.clone();
    spread(&mut marks, (px0, py0, px1, py1));
    // Markers nudged apart keep a leader line to their true position.
    for ([tx, ty, _], [mx, my, _]) in truth.iter().zip(&marks) {
        if (mx - tx).hypot(my - ty) > 1.0 {
            let leader = format!("M{tx:.1} {ty:.1}L{mx:.1} {my:.1}");
            w!(svg.0, "<path d='{leader}' stroke='#1A1A1A'/>\n");
            svg.circle(*tx, *ty, 2.5, "fill='#1A1A1A'");
        }
    }
    for ((s, _), [mx, my, r]) in cents.iter().zip(&marks) {
        let (c, id) = (svg.color(s.id), s.id.to_string());
        let tip = esc(&format!("#{id} {} ({})", s.label, thousands(s.size)));
        let at = format!("transform='translate({mx:.1} {my:.1})'");
        w!(svg.0, "<g class='centroid' {at}><title>{tip}</title>\n");
        svg.circle(0.0, 0.0, r + 3.0, "fill='#FFFFFF' fill-opacity='0.85'");
        let ring = format!("fill='{c}' stroke='#1A1A1A' stroke-width='1.5'");
        svg.circle(0.0, 0.0, *r, &ring);
        let tone = if LIGHT.contains(&c) { "dark" } else { "" };
        svg.text(0.0, 4.2, &format!("mark mid {tone}"), &id);
        svg.0.push_str("</g>\n");
    }
    legend(svg, input, order, px1 + 30.0, (py0, py1));
    py1 + 72.0
}

/// Nudges overlapping circular markers `[x, y, r]` apart by deterministic pairwise relaxation,
/// keeping each inside the box `(x0, y0, x1, y1)`.
fn spread(marks: &mut [[f64; 3]], (x0, y0, x1, y1): (f64, f64, f64, f64)) {
    for _round in 0..200 {
        let mut moved = false;
        for i in 0..marks.len() {
            for j in i + 1..marks.len() {
                let (dx, dy) = (marks[j][0] - marks[i][0], marks[j][1] - marks[i][1]);
                let (d, gap) = (dx.hypot(dy), marks[i][2] + marks[j][2] + 3.0);
                if d >= gap {
                    continue;
                }
                // Coincident markers are pushed apart horizontally.
                let (ux, uy) = if d > 1e-6 {
                    (dx / d, dy / d)
                } else {
                    (1.0, 0.0)
                };
                let push = (gap - d) / 2.0 + 0.01;
                (marks[i][0], marks[i][1]) = (marks[i][0] - ux * push, marks[i][1] - uy * push);
                (marks[j][0], marks[j][1]) = (marks[j][0] + ux * push, marks[j][1] + uy * push);
                moved = true;
            }
        }
        for m in marks.iter_mut() {
            m[0] = m[0].clamp(x0 + m[2], x1 - m[2]);
            m[1] = m[1].clamp(y0 + m[2], y1 - m[2]);
        }
        if !moved {
            break;
        }
    }
}

/// Draws the legend at x = `lx`: a key for dots and markers, then one row per segment.
fn legend(svg: &mut Svg, input: &ReportInput, order: &[usize], lx: f64, (top, bottom): (f64, f64)) {
    let at = format!("translate({lx:.1} {top:.1})");
    w!(svg.0, "<g transform='{at}'>{LEGEND_KEY}</g>\n");
    let first = top + 80.0;
    let fits = (((bottom - first) / 22.0).floor() as usize).max(1);
    let n = order.len();
    let shown = if n > fits { fits - 1 } else { n };
    let max_px = WIDTH - MARGIN - lx - 26.0;
    for (row, &i) in order.iter().take(shown).enumerate() {
        let (y, s) = (first + row as f64 * 22.0, &input.segments[i]);
        let at = format!("x='{:.1}' y='{:.1}'", lx + 2.0, y - 10.0);
        let fill = svg.color(s.id);
        w!(svg.0, "<rect {at} width='12' height='12' fill='{fill}'/>\n");
        let label = fit(&format!("#{} {}", s.id, s.label), 40, max_px, 13.0);
        svg.text(lx + 26.0, y, "lab", &label);
    }
    if shown < n {
        let more = format!("+ {} more (see bar chart)", n - shown);
        svg.text(lx + 26.0, first + shown as f64 * 22.0, "num", &more);
    }
}

/// The same content as [`render_svg`] as an aligned plain-text table: title, subtitle, then
/// id, size, share % and label per segment (largest first) and a total line.
pub fn text_table(input: &ReportInput) -> String {
    let clean = |s: &str| fit(s, usize::MAX, f64::INFINITY, 1.0);
    let mut out = String::new();
    for line in [clean(&input.title), clean(&input.subtitle)] {
        if !line.is_empty() {
            w!(out, "{line}\n");
        }
    }
    if input.segments.is_empty() {
        return out + "(no segments yet)\n";
    }
    let segs = &input.segments;
    let total: u128 = segs.iter().map(|s| u128::from(s.size)).sum();
    let total_str = thousands(u64::try_from(total).unwrap_or(u64::MAX));
    let mut rows: Vec<[String; 4]> = vec![["id", "size", "share", "label"].map(String::from)];
    for s in size_order(segs).into_iter().map(|i| &segs[i]) {
        let pct = format!("{:.1}%", share(s.size, total));
        rows.push([s.id.to_string(), thousands(s.size), pct, clean(&s.label)]);
    }
    let total_pct = if total > 0 { "100.0%" } else { "0.0%" };
    rows.push(["total", &total_str, total_pct, ""].map(String::from));
    let wid = |k: usize| rows.iter().map(|r| r[k].chars().count()).max().unwrap_or(0);
    let (w0, w1, w2) = (wid(0), wid(1), wid(2));
    let dash = |w: usize| "-".repeat(w);
    let rule = format!("{}  {}  {}  -----", dash(w0), dash(w1), dash(w2));
    out += if out.is_empty() { "" } else { "\n" };
    for (i, [id, size, pct, label]) in rows.iter().enumerate() {
        if i == 1 || i + 1 == rows.len() {
            w!(out, "{rule}\n");
        }
        let line = format!("{id:>w0$}  {size:>w1$}  {pct:>w2$}  {label}");
        w!(out, "{}\n", line.trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic test RNG (SplitMix64) with Box–Muller normals; keeps tests std-only.
    struct TestRng(u64);

    impl TestRng {
        fn uniform(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn gauss(rng: &mut TestRng) -> f64 {
        let (u, v) = (1.0 - rng.uniform(), rng.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Tiny XML well-formedness check: balanced tags, one root, quoted attributes, known entities.
    fn well_formed(doc: &str) -> Result<(), String> {
        let check_text = |t: &str| {
            t.match_indices('&').all(|(i, _)| {
                let ent = t[i + 1..].split(';').next().unwrap_or("");
                let num = ent.starts_with('#') && ent[1..].parse::<u32>().is_ok();
                num || ["amp", "lt", "gt", "quot", "apos"].contains(&ent)
            })
        };
        let (mut stack, mut rest, mut roots) = (Vec::<&str>::new(), doc, 0);
        while let Some(i) = rest.find('<') {
            let outside = stack.is_empty() && !rest[..i].trim().is_empty();
            if outside || !check_text(&rest[..i]) {
                return Err(format!("bad text at {i}"));
            }
            rest = &rest[i..];
            if let Some(r) = rest.strip_prefix("<?") {
                rest = &r[r.find("?>").ok_or("unterminated <?")? + 2..];
                continue;
            }
            let end = rest.find('>').ok_or("unterminated tag")?;
            let (tag, after) = (&rest[1..end], &rest[end + 1..]);
            rest = after;
            if let Some(name) = tag.strip_prefix('/') {
                if stack.pop() != Some(name) {
                    return Err(format!("mismatched </{name}>"));
                }
                continue;
            }
            let body = tag.strip_suffix('/').unwrap_or(tag);
            let name = body.split_whitespace().next().ok_or("empty tag")?;
            let mut attrs = body[name.len()..].trim();
            while !attrs.is_empty() {
                let eq = attrs.find('=').ok_or("attribute without value")?;
                let q = attrs[eq + 1..].chars().next().unwrap_or(' ');
                if q != '\'' && q != '"' {
                    return Err(format!("unquoted attribute in <{name}>"));
                }
                let close = attrs[eq + 2..].find(q).ok_or("unterminated attribute")? + eq + 2;
                if !check_text(&attrs[eq + 2..close]) || attrs[eq + 2..close].contains('<') {
                    return Err(format!("bad attribute value in <{name}>"));
                }
                attrs = attrs[close + 1..].trim_start();
            }
            roots += usize::from(stack.is_empty());
            if !tag.ends_with('/') {
                stack.push(name);
            }
        }
        let done = stack.is_empty() && roots == 1 && rest.trim().is_empty();
        let why = format!("unbalanced: open {stack:?}, roots {roots}");
        done.then_some(()).ok_or(why)
    }

    fn sample_input(k: usize, per: usize, dim: usize) -> ReportInput {
        let mut rng = TestRng(7);
        let segments: Vec<ReportSegment> = (0..k)
            .map(|c| ReportSegment {
                id: c as u16,
                size: 1000 * (k - c) as u64 + 17,
                label: format!("Segment {c} <VIP> & \"friends\""),
                centroid: (0..dim).map(|_| 3.0 * gauss(&mut rng)).collect(),
            })
            .collect();
        let points = (0..k * per)
            .map(|i| {
                let s = &segments[i % k];
                let vector = s.centroid.iter().map(|c| c + gauss(&mut rng)).collect();
                ReportPoint {
                    segment: s.id,
                    vector,
                }
            })
            .collect();
        ReportInput {
            title: "Segments".into(),
            subtitle: "1 · 2".into(),
            segments,
            points,
        }
    }

    #[test]
    fn pca_recovers_planted_axis() {
        let mut rng = TestRng(1);
        let dir = [2.0f64, -1.0, 0.5].map(|x| x / 5.25f64.sqrt());
        let rows: Vec<Vec<f64>> = (0..2000)
            .map(|_| {
                let t = 5.0 * gauss(&mut rng);
                dir.iter()
                    .map(|d| 1.0 + t * d + 0.3 * gauss(&mut rng))
                    .collect()
            })
            .collect();
        let p = pca_2d(&rows).expect("fit");
        let cos: f64 = p.components[0].iter().zip(&dir).map(|(a, b)| a * b).sum();
        assert!(cos.abs() > 0.99, "cos = {cos}");
        assert!(p.explained[0] > 0.95 && p.explained[0] + p.explained[1] <= 1.0 + 1e-12);
        let origin = p.project(&p.mean);
        assert!(origin[0].abs() < 1e-12 && origin[1].abs() < 1e-12);
        assert_eq!(pca_2d(&rows), pca_2d(&rows), "deterministic");
    }

    #[test]
    fn explained_variance_matches_closed_form() {
        let mut rng = TestRng(2);
        let sd = [1.0, 3.0, 0.5, 2.0];
        let gen = |_| sd.iter().map(|s| s * gauss(&mut rng)).collect();
        let rows: Vec<Vec<f64>> = (0..20_000).map(gen).collect();
        let p = pca_2d(&rows).expect("fit");
        let total: f64 = sd.iter().map(|s| s * s).sum();
        let (e, want) = (p.explained, [9.0 / total, 4.0 / total]);
        assert!(
            (e[0] - want[0]).abs() < 0.02 && (e[1] - want[1]).abs() < 0.02,
            "{e:?}"
        );
        assert!(p.components[0][1].abs() > 0.99 && p.components[1][3].abs() > 0.99);
    }

    #[test]
    fn pca_degenerate_and_wide_inputs() {
        assert!(pca_2d(&[]).is_none() && pca_2d(&[vec![1.0, 2.0]]).is_none());
        assert!(pca_2d(&vec![vec![0.1, 2.0]; 5]).is_none());
        assert!(pca_2d(&[vec![f64::NAN, 1.0], vec![1.0, 1.0], vec![2.0]]).is_none());
        let one_d = pca_2d(&[vec![1.0], vec![3.0]]);
        assert_eq!(one_d.map(|p| p.explained), Some([1.0, 0.0]));
        let wide = sample_input(3, 50, 100).points;
        let rows: Vec<Vec<f64>> = wide.into_iter().map(|p| p.vector).collect();
        assert!(pca_2d(&rows).is_some_and(|p| p.explained[0] > 0.3));
    }

    #[test]
    fn svg_is_well_formed_with_bars_markers_and_escaping() {
        let input = sample_input(6, 40, 5);
        let svg = render_svg(&input);
        well_formed(&svg).expect("well-formed");
        assert_eq!(svg.matches("class='bar'").count(), 6);
        assert_eq!(svg.matches("class='centroid'").count(), 6);
        assert!(svg.contains("Segment 0 &lt;VIP&gt; &amp; &quot;friends&quot;"));
        assert!(!svg.contains("<VIP>") && !svg.contains("\"friends\""));
        assert!(svg.contains("PC1 (") && svg.contains("% of variance)"));
        let table = text_table(&input);
        assert!(table.contains("Segment 0 <VIP> & \"friends\"") && table.contains("total"));
        assert_eq!(table.lines().filter(|l| l.contains("Segment ")).count(), 6);
    }

    #[test]
    fn empty_and_hostile_inputs_render() {
        let empty = ReportInput::default();
        well_formed(&render_svg(&empty)).expect("well-formed");
        assert!(render_svg(&empty).contains("No segments yet"));
        assert!(text_table(&empty).contains("no segments yet"));
        let mut bad = sample_input(20, 3, 4);
        bad.segments[0].centroid[0] = f64::INFINITY;
        bad.segments[1].label = "x\u{1}y\n".repeat(50);
        bad.points[0].vector[1] = f64::NAN;
        bad.points[1].vector.pop();
        bad.points.push(ReportPoint {
            segment: 999,
            vector: vec![0.0; 4],
        });
        let svg = render_svg(&bad);
        well_formed(&svg).expect("well-formed");
        assert!(!svg.contains("NaN") && !svg.contains("inf") && svg.contains('…'));
        assert_eq!(svg.matches("class='centroid'").count(), 19);
        let lone = ReportInput {
            segments: bad.segments[2..3].to_vec(),
            ..ReportInput::default()
        };
        well_formed(&render_svg(&lone)).expect("well-formed");
        assert!(render_svg(&lone).contains("Not enough data"));
    }

    #[test]
    fn helpers() {
        for (n, want) in [(0, "0"), (12_345, "12,345"), (1_234_567, "1,234,567")] {
            assert_eq!(thousands(n), want);
        }
        let mut marks = vec![[50.0, 50.0, 12.0]; 3];
        spread(&mut marks, (0.0, 0.0, 500.0, 500.0));
        let d = |i: usize, j: usize| (marks[i][0] - marks[j][0]).hypot(marks[i][1] - marks[j][1]);
        assert!(
            d(0, 1) >= 27.0 && d(0, 2) >= 27.0 && d(1, 2) >= 27.0,
            "{marks:?}"
        );
        let cut = fit(&"a".repeat(100), 60, f64::INFINITY, 13.0);
        assert!(cut.ends_with('…') && cut.chars().count() == 60);
        assert!(well_formed("<a><b x='1'></a></b>").is_err());
        assert!(well_formed("<a>&bogus;</a>").is_err() && well_formed("<a/><b/>").is_err());
    }
}
