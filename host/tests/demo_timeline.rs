//! `w4l demo --timeline FILE.svg` end to end: the binary's real run is drawn, the SVG parses
//! and holds every series with one vertex per sample, the level bands and the marks the
//! story makes (the model's two unloads, the evictions of cached audio), and `rsvg-convert`
//! (Debian `librsvg2-bin`, installed by `scripts/setup --test`) renders it to a PNG that is a
//! chart, not a blank page.
//!
//! `W4L_DEMO_TIMELINE_PNG=docs/memory-timeline.png cargo test -p w4l --features cli --test
//! demo_timeline` also writes the PNG there (a relative path is from the workspace root): that
//! is how the README's example is made.

use std::path::Path;
use std::process::Command;

const W4L: &str = env!("CARGO_BIN_EXE_w4l");

fn by_id<'a>(doc: &'a roxmltree::Document<'a>, id: &str) -> roxmltree::Node<'a, 'a> {
    doc.descendants()
        .find(|n| n.attribute("id") == Some(id))
        .unwrap_or_else(|| panic!("no #{id} in the chart"))
}

fn count_class(doc: &roxmltree::Document<'_>, class: &str) -> usize {
    doc.descendants()
        .filter(|n| {
            n.attribute("class")
                .is_some_and(|c| c.split(' ').any(|c| c == class))
        })
        .count()
}

/// Vertices of the first path (or polyline) inside `node`.
fn vertices(node: roxmltree::Node<'_, '_>) -> usize {
    let shape = node
        .descendants()
        .find(|n| n.has_tag_name("path") || n.has_tag_name("polyline"))
        .expect("a shape");
    match shape.attribute("d") {
        Some(d) => d.matches(['M', 'L']).count(),
        None => shape
            .attribute("points")
            .map_or(0, |p| p.split(' ').count()),
    }
}

/// The PNG's size and its pixels as RGB.
fn decode(png_path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let file = std::io::BufReader::new(std::fs::File::open(png_path).expect("png"));
    let mut reader = png::Decoder::new(file).read_info().expect("png header");
    let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut pixels).expect("png frame");
    let channels = info.color_type.samples();
    let rgb = pixels[..info.buffer_size()]
        .chunks(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, rgb)
}

#[test]
fn the_demo_draws_its_session() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (svg_path, png_path) = (dir.path().join("demo.svg"), dir.path().join("demo.png"));
    let run = Command::new(W4L)
        .args(["demo", "--timeline"])
        .arg(&svg_path)
        .env("W4L_TEMP_DIR", dir.path().join("tmp"))
        .output()
        .expect("w4l demo");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{run:?}");
    assert!(stdout.contains("timeline: "), "{stdout}");

    let svg = std::fs::read_to_string(&svg_path).expect("the SVG");
    let doc = roxmltree::Document::parse(&svg).expect("the SVG parses");
    // 60 s of audio and the 14 s after it until the policy is Normal and the model unloaded:
    // a sample a second from the recorder's (and then the demo's) steps, from 0.
    let samples: usize = stdout
        .split_once(" samples)")
        .and_then(|(before, _)| before.rsplit_once('(')?.1.parse().ok())
        .expect("the sample count");
    assert!((72..=80).contains(&samples), "{samples} samples");
    // Areas go along their top and back along their base; lines once.
    for (series, per_sample) in [
        ("series-audio", 2),
        ("series-model", 2),
        ("series-disk", 1),
        ("series-budget", 1),
    ] {
        assert_eq!(
            vertices(by_id(&doc, series)),
            per_sample * samples,
            "{series}"
        );
    }
    for threshold in ["threshold-elevated", "threshold-high", "threshold-critical"] {
        by_id(&doc, threshold);
    }
    assert!(count_class(&doc, "band-elevated") >= 1);
    assert_eq!(count_class(&doc, "band-high"), 1);
    assert_eq!(count_class(&doc, "band-critical"), 0);
    assert_eq!(
        count_class(&doc, "mark-unload"),
        2,
        "at High, and idle after"
    );
    assert!(
        count_class(&doc, "mark-spill") >= 20,
        "evictions of cached audio"
    );
    assert_eq!(count_class(&doc, "mark-drop"), 0, "nothing lost");

    let status = Command::new("rsvg-convert")
        .args(["--format", "png", "--output"])
        .arg(&png_path)
        .arg(&svg_path)
        .status()
        .unwrap_or_else(|e| panic!("cannot run rsvg-convert ({e}); run scripts/setup --test"));
    assert!(status.success(), "rsvg-convert failed: {status}");
    let (width, height, rgb) = decode(&png_path);
    assert_eq!((width, height), (960, 540));
    let white = rgb.iter().filter(|p| **p == [255, 255, 255]).count() as f64 / rgb.len() as f64;
    assert!((0.2..0.95).contains(&white), "white share {white:.2}");
    for (name, colour) in [
        ("audio", [0x4d, 0xab, 0xf7]),
        ("model", [0x97, 0x75, 0xfa]),
        ("budget", [0xa6, 0x1e, 0x4d]),
        ("disk", [0x0c, 0xa6, 0x78]),
    ] {
        let near = rgb
            .iter()
            .filter(|p| p.iter().zip(colour).all(|(a, b)| a.abs_diff(b) < 24))
            .count();
        assert!(near > 100, "{name}: {near} pixels of its colour");
    }
    if let Ok(out) = std::env::var("W4L_DEMO_TIMELINE_PNG") {
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(out);
        std::fs::copy(&png_path, out).expect("copy the PNG");
    }
}
