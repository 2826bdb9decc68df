//! `w4l monitor`: live memory readings of the process and the system.

use std::time::{Duration, Instant};

use w4l_tests::{json_field, json_u64, w4l};

#[test]
fn monitor_prints_count_lines_at_the_interval() {
    let t = Instant::now();
    let r = w4l(["monitor", "--count", "3", "--interval", "200ms"]).ok();
    let elapsed = t.elapsed();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.stdout);
    for l in &lines {
        for word in ["rss", "available", "accounted", "pressure", "level Normal"] {
            assert!(l.contains(word), "{word} missing from {l}");
        }
    }
    assert!(
        elapsed >= Duration::from_millis(400),
        "too fast: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(10), "too slow: {elapsed:?}");
}

#[test]
fn monitor_json_lines_carry_every_figure() {
    let r = w4l([
        "monitor",
        "--count",
        "2",
        "--interval",
        "50ms",
        "--json",
        "--budget",
        "64MiB",
    ])
    .ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    for l in lines {
        assert!(json_u64(l, "rss") > 100_000, "{l}");
        assert!(json_u64(l, "available") > 0, "{l}");
        assert!(json_u64(l, "total") >= json_u64(l, "available"), "{l}");
        assert_eq!(json_u64(l, "budget"), 64 << 20);
        assert_eq!(json_u64(l, "accounted"), 0);
        assert_eq!(json_field(l, "level"), Some("\"Normal\""));
        assert!(json_field(l, "pressure_permille").is_some(), "{l}");
        assert!(json_field(l, "actions").is_some(), "{l}");
    }
}

#[test]
fn a_closed_pipe_ends_monitor_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(w4l_tests::w4l_bin())
        .args(["monitor", "--interval", "20ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    assert!(lines.next().is_some_and(|l| l.is_ok()));
    drop(lines); // like `| head -1`
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
