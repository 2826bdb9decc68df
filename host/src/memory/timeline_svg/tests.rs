//! The chart parses as XML and holds what the timeline holds.

use w4l_core::policy::{Level, PolicyConfig};

use super::*;

const M: u64 = 1 << 20;

/// 60 s: audio grows, a model comes and goes, the level climbs to High and back.
fn timeline() -> Timeline {
    let mut t = Timeline::new("take <1> & \"friends\"", &PolicyConfig::default());
    for s in 0..=60u64 {
        let model = if (10..40).contains(&s) { 500 * M } else { 0 };
        let level = match s {
            20..30 => Level::High,
            15..20 | 30..45 => Level::Elevated,
            _ => Level::Normal,
        };
        t.samples.push(Sample {
            t_ms: 5_000 + s * 1000,
            rss: 60 * M + 2 * s * M + model,
            accounted: [2 * s * M, model, 40 * M, s / 2 * M],
            budget: 1012 * M,
            level,
        });
    }
    t.marks.push(Mark {
        t_ms: 25_000,
        kind: MarkKind::Spill,
        bytes: 20 * M,
    });
    t.marks.push(Mark {
        t_ms: 45_000,
        kind: MarkKind::Unload,
        bytes: 500 * M,
    });
    t.marks.push(Mark {
        t_ms: 50_000,
        kind: MarkKind::Unload,
        bytes: 150 * M,
    });
    t
}

fn ids(doc: &roxmltree::Document<'_>) -> Vec<String> {
    doc.descendants()
        .filter_map(|n| n.attribute("id"))
        .map(str::to_owned)
        .collect()
}

fn with_class<'a>(doc: &'a roxmltree::Document<'a>, class: &str) -> Vec<roxmltree::Node<'a, 'a>> {
    doc.descendants()
        .filter(|n| {
            n.attribute("class")
                .is_some_and(|c| c.split(' ').any(|c| c == class))
        })
        .collect()
}

#[test]
fn the_svg_parses_and_holds_every_series() {
    let svg = render(&timeline());
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let root = doc.root_element();
    assert_eq!(
        (root.tag_name().name(), root.attribute("width")),
        ("svg", Some("960"))
    );
    let ids = ids(&doc);
    for id in [
        "title",
        "subtitle",
        "bands",
        "grid",
        "series-audio",
        "series-model",
        "series-other",
        "series-disk",
        "series-rss",
        "series-budget",
        "threshold-elevated",
        "threshold-high",
        "threshold-critical",
        "marks",
        "axes",
        "legend",
    ] {
        assert!(ids.iter().any(|i| i == id), "no #{id} in {ids:?}");
    }
    // The title is escaped, and parses back to the original text.
    let title = doc
        .descendants()
        .find(|n| n.attribute("id") == Some("title"))
        .unwrap();
    assert_eq!(title.text(), Some("take <1> & \"friends\""));
    assert_eq!(with_class(&doc, "area").len(), 3);
}

#[test]
fn bands_follow_the_levels_and_marks_their_kinds() {
    let svg = render(&timeline());
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let bands: Vec<&str> = with_class(&doc, "band")
        .iter()
        .filter_map(|n| n.attribute("class"))
        .collect();
    assert_eq!(
        bands,
        ["band band-elevated", "band band-high", "band band-elevated"]
    );
    assert_eq!(with_class(&doc, "mark-spill").len(), 1);
    assert_eq!(with_class(&doc, "mark-unload").len(), 2);
    assert!(with_class(&doc, "mark-drop").is_empty());
    let tip = with_class(&doc, "mark-spill")[0]
        .first_element_child()
        .unwrap();
    assert_eq!(tip.text(), Some("t=20.0 s: spill 20.0 MiB"));
    // The legend counts the marks.
    assert!(svg.contains(">unload (2)<"), "{svg}");
}

#[test]
fn every_point_lies_inside_the_plot() {
    let svg = render(&timeline());
    let doc = roxmltree::Document::parse(&svg).unwrap();
    for poly in doc.descendants().filter(|n| n.has_tag_name("polyline")) {
        for point in poly.attribute("points").unwrap().split(' ') {
            let (x, y) = point.split_once(',').unwrap();
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            assert!(
                (LEFT..=RIGHT).contains(&x) && (TOP..=BOTTOM).contains(&y),
                "{point}"
            );
        }
    }
    // The budget (1012 MiB) sits under the axis top (a round 1200 MiB).
    let budget = doc
        .descendants()
        .find(|n| n.attribute("id") == Some("series-budget"))
        .unwrap();
    let first = budget
        .first_element_child()
        .unwrap()
        .attribute("points")
        .unwrap();
    let y: f64 = first.split([',', ' ']).nth(1).unwrap().parse().unwrap();
    assert!(
        (y - (BOTTOM - 1012.0 / 1200.0 * (BOTTOM - TOP))).abs() < 0.1,
        "{y}"
    );
}

#[test]
fn unobserved_rss_and_empty_timelines_still_draw() {
    let mut t = timeline();
    for s in &mut t.samples {
        s.rss = 0;
    }
    let svg = render(&t);
    roxmltree::Document::parse(&svg).unwrap();
    assert!(!svg.contains("series-rss"));
    t.samples.clear();
    let svg = render(&t);
    let doc = roxmltree::Document::parse(&svg).unwrap();
    assert!(svg.contains(">no samples<"));
    assert!(!ids(&doc).iter().any(|i| i.starts_with("series-")));
    // One sample: a one-second axis, no division by zero.
    let mut t = timeline();
    t.samples.truncate(1);
    let svg = render(&t);
    assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
}

#[test]
fn nice_steps_are_round() {
    assert_eq!(nice_step(1050.0, 7), 200.0);
    assert_eq!(nice_step(60.0, 10), 10.0);
    assert_eq!(nice_step(3.0, 10), 0.5);
    assert_eq!(nice_step(3600.0, 10), 500.0);
}

#[test]
fn write_file_reports_an_unwritable_path_in_one_line() {
    let e = write_file(&timeline(), Path::new("/nonexistent-dir/t.svg")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("cannot write the memory timeline to /nonexistent-dir/t.svg ("),
        "{e}"
    );
    assert!(
        e.to_string()
            .ends_with("; choose a writable path for the timeline"),
        "{e}"
    );
}
