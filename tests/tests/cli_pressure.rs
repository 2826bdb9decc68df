//! The machine's signals in the command line: `w4l monitor` shows the pressure source and
//! takes a reading at once on an event (a FIFO named by systemd's `$MEMORY_PRESSURE_WATCH`
//! stands in for the kernel), or says exactly why no events come; `w4l record --timeline`
//! draws the take.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use w4l_tests::{json_field, json_u64, test_signal, w4l, w4l_with, write_wav_i16};

#[test]
fn a_pressure_event_makes_monitor_read_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fifo = dir.path().join("pressure");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let mut child = Command::new(w4l_tests::w4l_bin())
        .args(["monitor", "--interval", "30s", "--count", "2", "--json"])
        .env("MEMORY_PRESSURE_WATCH", &fifo)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a first reading").expect("utf-8");
    let source = format!("\"source\":\"{}\"", fifo.display());
    assert!(
        first.contains("\"pressure_events\":{\"state\":\"on\""),
        "{first}"
    );
    assert!(first.contains(&source), "{first}");
    assert_eq!(json_field(&first, "event"), Some("null"));
    // The monitor holds the FIFO open (read and write): this open does not block.
    let sent = Instant::now();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .and_then(|mut f| f.write_all(b"pressure"))
        .expect("write to the FIFO");
    let second = lines.next().expect("a second reading").expect("utf-8");
    let took = sent.elapsed();
    eprintln!("FIFO -> w4l monitor's reading: {took:?}");
    assert_eq!(json_u64(&second, "event"), 1, "{second}");
    assert!(
        took < Duration::from_secs(2),
        "{took:?}: not before the 30 s interval"
    );
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn monitor_says_why_no_events_come() {
    let run = w4l_with(
        ["monitor", "--count", "1"],
        &[("MEMORY_PRESSURE_WATCH", "/dev/null")],
        Duration::from_secs(30),
    )
    .ok();
    let line = run.stdout.trim_end();
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    assert!(line.contains("level Normal  ·  "), "{line}");
    assert!(
        line.ends_with(
            "no memory pressure events: MEMORY_PRESSURE_WATCH=/dev/null: the service manager \
             turned them off; set MemoryPressureWatch= to auto or on in the unit to have them, \
             and w4l reads memory once a second meanwhile"
        ),
        "{line}"
    );
    // The cgroup part: a version and a limit, or that none was found.
    assert!(
        line.contains("  ·  cgroup v") || line.contains("  ·  no memory cgroup found"),
        "{line}"
    );
}

fn record_with_timeline(dir: &Path, timeline: &Path, extra: &[&str]) -> w4l_tests::Run {
    let input = dir.join("in.wav");
    write_wav_i16(&input, 16_000, 1, &test_signal(16_000 * 20, 1, 9));
    let temp = dir.join("w4l");
    if !temp.exists() {
        w4l_tests::faults::private_dir(dir);
    }
    let mut args = vec![
        "record".to_owned(),
        "--input".to_owned(),
        input.display().to_string(),
        "-o".to_owned(),
        dir.join("out.wav").display().to_string(),
        "--timeline".to_owned(),
        timeline.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    w4l_with(
        &args,
        &[("W4L_TEMP_DIR", temp.to_str().expect("utf-8"))],
        Duration::from_secs(60),
    )
}

#[test]
fn record_draws_its_timeline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let svg_path = dir.path().join("take.svg");
    // 20 s of audio (625 KiB) into 512 KiB: the policy climbs and evicts cached audio.
    let run = record_with_timeline(
        dir.path(),
        &svg_path,
        &["--budget", "512KiB", "--window", "2s"],
    )
    .ok();
    assert!(
        run.stdout
            .contains(&format!("timeline: {} (21 samples)", svg_path.display())),
        "{}",
        run.stdout
    );
    let svg = std::fs::read_to_string(&svg_path).expect("the SVG");
    assert!(svg.starts_with("<svg"), "{svg}");
    for id in ["series-audio", "series-disk", "series-rss", "series-budget"] {
        assert!(svg.contains(&format!("id=\"{id}\"")), "{id} missing");
    }
    assert!(
        svg.contains("class=\"mark mark-spill\""),
        "no eviction marked"
    );
    assert!(svg.contains("w4l record: "), "the title");

    let run = record_with_timeline(dir.path(), &svg_path, &["--json"]).ok();
    assert!(
        run.stdout
            .contains(&format!("\"timeline\":\"{}\"", svg_path.display())),
        "{}",
        run.stdout
    );
}

#[test]
fn a_timeline_over_the_output_is_refused_before_recording() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out.wav");
    record_with_timeline(dir.path(), &out, &[]).fails(2, &["--timeline", "-o"]);
    assert!(!out.exists(), "nothing recorded");
    let missing = dir.path().join("missing/take.svg");
    record_with_timeline(dir.path(), &missing, &[]).fails(2, &["--timeline", "existing directory"]);
    let r = w4l(["demo", "--timeline", "/nonexistent/dir/demo.svg"]);
    r.fails(2, &["--timeline"]);
}
