//! The memory timeline drawn as an SVG chart: accounted bytes by category as stacked areas,
//! the disk (spilled) bytes, the RSS, the budget and the policy's enter thresholds as lines,
//! the policy's levels as background bands, and spills, evictions, unloads and drops as marks.
//!
//! # Written by hand, not with `plotters`
//!
//! The chart is a few hundred lines of `write!`: `plotters` with only its SVG backend would
//! add four crates (`plotters`, `plotters-backend`, `plotters-svg`, `num-traits`) and still
//! leave the hard parts here (stacking, level bands, marks, the legend), while its SVG
//! backend writes anonymous elements: no `id` or `class` can be set on what it draws
//! (plotters-rs/plotters#243, open), so neither a test nor a stylesheet could find a series.
//! Here every series is a `<g>` with an `id` (`series-audio`, `series-model`,
//! `series-other`, `series-disk`, `series-rss`, `series-budget`, `threshold-elevated`,
//! `threshold-high`, `threshold-critical`), bands are `rect.band.band-<level>`, marks are
//! `g.mark.mark-<kind>` inside `g#marks`, each with a `<title>` tooltip.
//!
//! # Scales
//!
//! Time in seconds from the first sample; memory in MiB from 0 (a bar chart of memory that
//! does not start at 0 exaggerates), to a round value above the highest of the budget, the
//! RSS, the stack and the disk line. One vertex per sample: a one-hour take at one sample a
//! second is 3600 vertices per series, about 200 KB of SVG.
//!
//! ```
//! use w4l::memory::timeline::{Mark, MarkKind, Sample, Timeline};
//! use w4l::memory::timeline_svg::render;
//! use w4l_core::policy::{Level, PolicyConfig};
//!
//! let mut timeline = Timeline::new("take 1", &PolicyConfig::default());
//! for s in 0..10u64 {
//!     let audio = s << 20;
//!     timeline.samples.push(Sample {
//!         t_ms: s * 1000,
//!         rss: (40 << 20) + audio,
//!         accounted: [audio, 0, 8 << 20, 0],
//!         budget: 64 << 20,
//!         level: Level::Normal,
//!     });
//! }
//! timeline.marks.push(Mark { t_ms: 5000, kind: MarkKind::Spill, bytes: 1 << 20 });
//! let svg = render(&timeline);
//! assert!(svg.starts_with("<svg") && svg.contains(r#"id="series-audio""#));
//! ```

use std::fmt::Write;
use std::path::Path;

use w4l_core::accountant::Category;
use w4l_core::policy::Level;

use super::timeline::{Mark, MarkKind, Sample, Timeline};
use crate::error::{Error, Result};

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 540.0;
const LEFT: f64 = 76.0;
const RIGHT: f64 = 752.0;
const TOP: f64 = 70.0;
const BOTTOM: f64 = 480.0;
const FONT: &str = "DejaVu Sans, Verdana, Arial, sans-serif";
const MIB: f64 = 1024.0 * 1024.0;

/// The stacked memory categories, bottom first, with their colours.
const AREAS: [(Category, &str); 3] = [
    (Category::Audio, "#4dabf7"),
    (Category::Model, "#9775fa"),
    (Category::Other, "#ced4da"),
];
const DISK: &str = "#0ca678";
const RSS: &str = "#212529";
const BUDGET: &str = "#a61e4d";
/// Per level above Normal: (name, threshold line colour, band colour).
const LEVELS: [(Level, &str, &str); 3] = [
    (Level::Elevated, "#f59f00", "#fff3bf"),
    (Level::High, "#f76707", "#ffe8cc"),
    (Level::Critical, "#e03131", "#ffe3e3"),
];

/// The SVG of `timeline` (960 × 540 px).
pub fn render(timeline: &Timeline) -> String {
    let mut svg = String::with_capacity(16 * 1024 + 600 * timeline.samples.len());
    let _ = writeln!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="{FONT}" role="img">"##
    );
    let _ = writeln!(
        svg,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        svg,
        r##"<text id="title" x="{LEFT}" y="28" font-size="19" font-weight="bold" fill="#212529">{}</text>"##,
        escape(&timeline.title)
    );
    match Frame::new(&timeline.samples) {
        Some(frame) => {
            let _ = writeln!(
                svg,
                r##"<text id="subtitle" x="{LEFT}" y="50" font-size="12.5" fill="#495057">{}</text>"##,
                escape(&summary(&timeline.samples))
            );
            draw(&mut svg, &frame, timeline);
        }
        None => {
            let _ = writeln!(
                svg,
                r##"<text x="{}" y="{}" font-size="16" text-anchor="middle" fill="#495057">no samples</text>"##,
                (LEFT + RIGHT) / 2.0,
                (TOP + BOTTOM) / 2.0
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// Renders `timeline` into the file at `path`.
///
/// # Errors
///
/// A runtime error when the file cannot be written.
pub fn write_file(timeline: &Timeline, path: &Path) -> Result<()> {
    std::fs::write(path, render(timeline)).map_err(|e| {
        Error::runtime(
            format!(
                "cannot write the memory timeline to {} ({e})",
                path.display()
            ),
            "choose a writable path for the timeline",
        )
    })
}

fn draw(svg: &mut String, frame: &Frame, timeline: &Timeline) {
    let samples = &timeline.samples;
    bands(svg, frame, samples);
    grid(svg, frame);
    areas(svg, frame, samples);
    line(svg, frame, samples, "series-disk", DISK, "2", "7 4", |s| {
        s.bytes(Category::Disk)
    });
    for (i, (level, colour, _)) in LEVELS.iter().enumerate() {
        let permille = u64::from(timeline.thresholds_permille[i]);
        let id = format!("threshold-{}", level.name().to_lowercase());
        line(svg, frame, samples, &id, colour, "1.3", "5 4", |s| {
            s.budget / 1000 * permille + s.budget % 1000 * permille / 1000
        });
    }
    line(
        svg,
        frame,
        samples,
        "series-budget",
        BUDGET,
        "2.2",
        "",
        |s| s.budget,
    );
    if samples.iter().any(|s| s.rss > 0) {
        line(svg, frame, samples, "series-rss", RSS, "2", "", |s| s.rss);
    }
    line_labels(svg, frame, timeline);
    marks(svg, frame, &timeline.marks);
    axes(svg, frame);
    legend(svg, timeline);
}

/// Where things go: time and MiB to pixels.
struct Frame {
    t0: u64,
    span_ms: f64,
    /// The top of the memory axis, MiB.
    top_mib: f64,
    /// Between two memory ticks, MiB.
    step_mib: f64,
}

impl Frame {
    fn new(samples: &[Sample]) -> Option<Self> {
        let (first, last) = (samples.first()?, samples.last()?);
        let span_ms = last.t_ms.saturating_sub(first.t_ms).max(1000) as f64;
        let highest = samples
            .iter()
            .map(|s| {
                s.budget
                    .max(s.rss)
                    .max(s.memory())
                    .max(s.bytes(Category::Disk))
            })
            .max()
            .unwrap_or(0) as f64
            / MIB;
        let step_mib = nice_step(highest.max(1.0) * 1.04, 7);
        let top_mib = (highest * 1.04 / step_mib).ceil().max(1.0) * step_mib;
        Some(Self {
            t0: first.t_ms,
            span_ms,
            top_mib,
            step_mib,
        })
    }

    fn x(&self, t_ms: u64) -> f64 {
        LEFT + t_ms.saturating_sub(self.t0) as f64 / self.span_ms * (RIGHT - LEFT)
    }

    fn y(&self, bytes: u64) -> f64 {
        BOTTOM - (bytes as f64 / MIB / self.top_mib).min(1.0) * (BOTTOM - TOP)
    }
}

/// A round step (1, 2 or 5 × 10ⁿ) that cuts `span` into at most about `ticks` pieces.
fn nice_step(span: f64, ticks: u32) -> f64 {
    let raw = span / f64::from(ticks);
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * magnitude);
    if step > 0.0 { step } else { 1.0 }
}

/// The policy's levels as background bands, one per run of a level above `Normal`.
fn bands(svg: &mut String, frame: &Frame, samples: &[Sample]) {
    svg.push_str("<g id=\"bands\">\n");
    let mut i = 0;
    while let Some(start) = samples.get(i) {
        let run = samples[i..]
            .iter()
            .take_while(|s| s.level == start.level)
            .count();
        let end = samples.get(i + run).unwrap_or(&samples[samples.len() - 1]);
        if let Some((_, _, fill)) = LEVELS.iter().find(|(l, _, _)| *l == start.level) {
            let (x0, x1) = (frame.x(start.t_ms), frame.x(end.t_ms));
            let _ = writeln!(
                svg,
                r#"<rect class="band band-{}" x="{x0:.1}" y="{TOP}" width="{:.1}" height="{}" fill="{fill}"/>"#,
                start.level.name().to_lowercase(),
                (x1 - x0).max(1.0),
                BOTTOM - TOP
            );
        }
        i += run;
    }
    svg.push_str("</g>\n");
}

/// Horizontal grid lines at the memory ticks, with their labels.
fn grid(svg: &mut String, frame: &Frame) {
    svg.push_str("<g id=\"grid\" font-size=\"12\" fill=\"#495057\">\n");
    let mut mib = 0.0;
    while mib <= frame.top_mib + frame.step_mib / 2.0 {
        let y = frame.y((mib * MIB) as u64);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{RIGHT}" y2="{y:.1}" stroke="#dee2e6" stroke-width="1"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT - 8.0,
            y + 4.0,
            number(mib)
        );
        mib += frame.step_mib;
    }
    svg.push_str("</g>\n");
}

/// The memory categories as stacked areas, audio at the bottom.
fn areas(svg: &mut String, frame: &Frame, samples: &[Sample]) {
    for (k, (category, fill)) in AREAS.iter().enumerate() {
        let below = |s: &Sample| AREAS[..k].iter().map(|(c, _)| s.bytes(*c)).sum::<u64>();
        let mut d = String::new();
        for (n, s) in samples.iter().enumerate() {
            let cmd = if n == 0 { 'M' } else { 'L' };
            let _ = write!(
                d,
                "{cmd}{:.1} {:.1} ",
                frame.x(s.t_ms),
                frame.y(below(s) + s.bytes(*category))
            );
        }
        for s in samples.iter().rev() {
            let _ = write!(d, "L{:.1} {:.1} ", frame.x(s.t_ms), frame.y(below(s)));
        }
        let _ = writeln!(
            svg,
            r##"<g id="series-{}" class="series area"><path d="{}Z" fill="{fill}" fill-opacity="0.9"/></g>"##,
            category.name(),
            d.trim_end()
        );
    }
}

/// One series as a line: `bytes` of every sample.
#[allow(clippy::too_many_arguments)]
fn line(
    svg: &mut String,
    frame: &Frame,
    samples: &[Sample],
    id: &str,
    colour: &str,
    width: &str,
    dash: &str,
    bytes: impl Fn(&Sample) -> u64,
) {
    let mut points = String::new();
    for s in samples {
        let _ = write!(points, "{:.1},{:.1} ", frame.x(s.t_ms), frame.y(bytes(s)));
    }
    let dash = if dash.is_empty() {
        String::new()
    } else {
        format!(r#" stroke-dasharray="{dash}""#)
    };
    let _ = writeln!(
        svg,
        r#"<g id="{id}" class="series line"><polyline points="{}" fill="none" stroke="{colour}" stroke-width="{width}" stroke-linejoin="round"{dash}/></g>"#,
        points.trim_end()
    );
}

/// Names on the budget and threshold lines, at their right ends.
fn line_labels(svg: &mut String, frame: &Frame, timeline: &Timeline) {
    let Some(last) = timeline.samples.last() else {
        return;
    };
    svg.push_str("<g id=\"line-labels\" font-size=\"11\" text-anchor=\"end\">\n");
    let mut labels = vec![(last.budget, BUDGET, "budget".to_owned())];
    for (i, (level, colour, _)) in LEVELS.iter().enumerate() {
        let permille = u64::from(timeline.thresholds_permille[i]);
        let bytes = last.budget / 1000 * permille + last.budget % 1000 * permille / 1000;
        labels.push((
            bytes,
            colour,
            format!("{} {}%", level.name(), permille / 10),
        ));
    }
    for (bytes, colour, text) in labels {
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{:.1}" fill="{colour}">{text}</text>"#,
            RIGHT - 6.0,
            frame.y(bytes) - 4.0
        );
    }
    svg.push_str("</g>\n");
}

/// Colour of a mark kind.
fn mark_colour(kind: MarkKind) -> &'static str {
    match kind {
        MarkKind::Spill => "#1971c2",
        MarkKind::Eviction => "#e67700",
        MarkKind::Unload => "#6741d9",
        MarkKind::Drop => "#c92a2a",
    }
}

/// The symbol of a mark kind centred on (x, y): a triangle, a diamond, a cross, a dot.
fn symbol(kind: MarkKind, x: f64, y: f64) -> String {
    let c = mark_colour(kind);
    match kind {
        MarkKind::Spill => format!(
            r#"<path d="M{:.1} {:.1} L{:.1} {:.1} L{x:.1} {:.1} Z" fill="{c}"/>"#,
            x - 5.5,
            y - 4.5,
            x + 5.5,
            y - 4.5,
            y + 5.0
        ),
        MarkKind::Eviction => format!(
            r#"<path d="M{x:.1} {:.1} L{:.1} {y:.1} L{x:.1} {:.1} L{:.1} {y:.1} Z" fill="{c}"/>"#,
            y - 5.5,
            x + 5.5,
            y + 5.5,
            x - 5.5
        ),
        MarkKind::Unload => format!(
            r#"<path d="M{:.1} {:.1} L{:.1} {:.1} M{:.1} {:.1} L{:.1} {:.1}" stroke="{c}" stroke-width="2.6" stroke-linecap="round"/>"#,
            x - 4.5,
            y - 4.5,
            x + 4.5,
            y + 4.5,
            x - 4.5,
            y + 4.5,
            x + 4.5,
            y - 4.5
        ),
        MarkKind::Drop => format!(r#"<circle cx="{x:.1}" cy="{y:.1}" r="4.5" fill="{c}"/>"#),
    }
}

/// Each mark: a thin vertical line through the plot and its symbol in its kind's row at the
/// top, with a tooltip.
fn marks(svg: &mut String, frame: &Frame, marks: &[Mark]) {
    svg.push_str("<g id=\"marks\">\n");
    for mark in marks {
        let x = frame.x(mark.t_ms);
        let row = MarkKind::ALL
            .iter()
            .position(|&k| k == mark.kind)
            .unwrap_or(0);
        let y = TOP + 9.0 + 13.0 * row as f64;
        let _ = writeln!(
            svg,
            r#"<g class="mark mark-{}"><title>t={:.1} s: {} {:.1} MiB</title><line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{BOTTOM}" stroke="{}" stroke-opacity="0.4" stroke-width="1"/>{}</g>"#,
            mark.kind.name(),
            mark.t_ms.saturating_sub(frame.t0) as f64 / 1000.0,
            mark.kind.name(),
            mark.bytes as f64 / MIB,
            mark_colour(mark.kind),
            symbol(mark.kind, x, y)
        );
    }
    svg.push_str("</g>\n");
}

/// The plot's frame, the time ticks and both axis titles.
fn axes(svg: &mut String, frame: &Frame) {
    svg.push_str("<g id=\"axes\" font-size=\"12\" fill=\"#495057\">\n");
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="#868e96" stroke-width="1"/>"##,
        RIGHT - LEFT,
        BOTTOM - TOP
    );
    let span_s = frame.span_ms / 1000.0;
    let step = nice_step(span_s, 10);
    let mut s = 0.0;
    while s <= span_s + step / 1000.0 {
        let x = LEFT + s / span_s * (RIGHT - LEFT);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{BOTTOM}" x2="{x:.1}" y2="{}" stroke="#868e96"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
            BOTTOM + 5.0,
            BOTTOM + 19.0,
            number(s)
        );
        s += step;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle" font-size="13">time (s)</text>"#,
        (LEFT + RIGHT) / 2.0,
        BOTTOM + 42.0
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate(22 {}) rotate(-90)" text-anchor="middle" font-size="13">memory (MiB)</text>"#,
        (TOP + BOTTOM) / 2.0
    );
    svg.push_str("</g>\n");
}

/// The legend, right of the plot: what every colour, line, band and mark means.
fn legend(svg: &mut String, timeline: &Timeline) {
    svg.push_str("<g id=\"legend\" font-size=\"12\" fill=\"#212529\">\n");
    let mut l = Legend {
        svg,
        x: RIGHT + 22.0,
        y: TOP + 4.0,
    };
    l.heading("accounted (stacked)");
    for (category, fill) in AREAS {
        l.entry(Swatch::Area(fill), category.name());
    }
    l.entry(Swatch::Line(DISK, "2", "7 4"), "disk (journal, spill)");
    l.heading("lines (% of budget)");
    // Drawn only where it was read (the demo charts its budget alone).
    if timeline.samples.iter().any(|s| s.rss > 0) {
        l.entry(Swatch::Line(RSS, "2", "none"), "RSS (whole process)");
    }
    l.entry(Swatch::Line(BUDGET, "2.2", "none"), "budget");
    for (i, (level, colour, _)) in LEVELS.iter().enumerate() {
        let text = format!(
            "{} from {}%",
            level.name(),
            timeline.thresholds_permille[i] / 10
        );
        l.entry(Swatch::Line(colour, "1.3", "5 4"), &text);
    }
    l.heading("policy level");
    for (level, _, band) in LEVELS {
        l.entry(Swatch::Area(band), level.name());
    }
    l.heading("marks");
    for kind in MarkKind::ALL {
        let count = timeline.marks.iter().filter(|m| m.kind == kind).count();
        l.entry(Swatch::Mark(kind), &format!("{} ({count})", kind.name()));
    }
    svg.push_str("</g>\n");
}

/// What a legend entry shows left of its text.
enum Swatch {
    Area(&'static str),
    /// Colour, width, dash array.
    Line(&'static str, &'static str, &'static str),
    Mark(MarkKind),
}

/// The legend's column, filled top down.
struct Legend<'a> {
    svg: &'a mut String,
    x: f64,
    y: f64,
}

impl Legend<'_> {
    fn heading(&mut self, text: &str) {
        if self.y > TOP + 10.0 {
            self.y += 6.0;
        }
        let _ = writeln!(
            self.svg,
            r##"<text x="{}" y="{:.1}" font-weight="bold" fill="#495057">{text}</text>"##,
            self.x,
            self.y + 4.0
        );
        self.y += 19.0;
    }

    fn entry(&mut self, swatch: Swatch, text: &str) {
        let (x, y) = (self.x, self.y);
        let swatch = match swatch {
            Swatch::Area(fill) => format!(
                r##"<rect x="{x}" y="{:.1}" width="20" height="11" fill="{fill}" stroke="#495057" stroke-opacity="0.35"/>"##,
                y - 5.5
            ),
            Swatch::Line(colour, width, dash) => format!(
                r#"<line x1="{x}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="{colour}" stroke-width="{width}" stroke-dasharray="{dash}"/>"#,
                x + 20.0
            ),
            Swatch::Mark(kind) => symbol(kind, x + 10.0, y),
        };
        let _ = writeln!(
            self.svg,
            r#"{swatch}<text x="{}" y="{:.1}">{text}</text>"#,
            x + 28.0,
            y + 4.0
        );
        self.y += 18.0;
    }
}

/// One line of figures under the title.
fn summary(samples: &[Sample]) -> String {
    let peak = |f: fn(&Sample) -> u64| samples.iter().map(f).max().unwrap_or(0) as f64 / MIB;
    let budget = peak(|s| s.budget);
    let accounted = peak(Sample::memory);
    let mut text = format!(
        "budget {budget:.0} MiB · peak accounted {accounted:.1} MiB ({:.0}%)",
        if budget > 0.0 {
            accounted / budget * 100.0
        } else {
            0.0
        }
    );
    let rss = peak(|s| s.rss);
    if rss > 0.0 {
        let _ = write!(text, " · peak RSS {rss:.1} MiB");
    }
    let highest = samples.iter().map(|s| s.level).max().unwrap_or_default();
    let _ = write!(text, " · highest level {highest}");
    text
}

/// A tick label: no decimals for whole numbers.
fn number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-6 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Text for XML content and attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
