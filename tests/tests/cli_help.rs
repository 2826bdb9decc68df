//! `--help` on everything, `--version`, and `w4l demo` end to end.

use w4l_tests::w4l;

#[test]
fn help_everywhere() {
    let top = w4l(["--help"]).ok();
    for sub in ["devices", "record", "monitor", "demo"] {
        assert!(
            top.stdout.contains(sub),
            "{sub} missing from {}",
            top.stdout
        );
    }
    let record = w4l(["record", "--help"]).ok();
    for flag in [
        "--output",
        "--seconds",
        "--mode",
        "--window",
        "--budget",
        "--model",
        "--device",
        "--input",
        "--realtime",
        "--rate",
        "--channels",
        "--json",
        "512MiB",
        "10s",
    ] {
        assert!(
            record.stdout.contains(flag),
            "{flag} missing from record --help"
        );
    }
    let monitor = w4l(["monitor", "--help"]).ok();
    for flag in ["--interval", "--count", "--json"] {
        assert!(
            monitor.stdout.contains(flag),
            "{flag} missing from monitor --help"
        );
    }
    assert!(w4l(["devices", "--help"]).ok().stdout.contains("--json"));
    assert!(w4l(["demo", "--help"]).ok().stdout.contains("--budget"));
    assert!(w4l(["help", "record"]).ok().stdout.contains("--input"));
    let v = w4l(["--version"]).ok();
    assert!(v.stdout.starts_with("w4l "), "{}", v.stdout);
}

#[test]
fn demo_is_deterministic_escalates_and_recovers() {
    let a = w4l(["demo"]).ok();
    let b = w4l(["demo"]).ok();
    assert_eq!(a.stdout, b.stdout, "the demo must print the same every run");
    assert!(a.stderr.is_empty(), "demo wrote to stderr: {}", a.stderr);
    let out = &a.stdout;
    assert!(out.contains("Normal->Elevated"), "{out}");
    assert!(out.contains("->High"), "{out}");
    assert!(out.contains("evicted"), "{out}");
    assert!(out.contains("unloaded the speech model"), "{out}");
    assert!(out.contains("Elevated->Normal"), "{out}");
    assert!(
        out.contains("captured        60.000 s (960000 frames), overruns 0"),
        "{out}"
    );
    assert!(out.contains("now Normal, 0 B accounted"), "{out}");
}

#[test]
fn demo_json_and_options() {
    let r = w4l(["demo", "--json", "--seconds", "20s", "--budget", "768KiB"]).ok();
    let line = r.stdout.trim();
    assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
    assert_eq!(r.stdout.lines().count(), 1);
    for key in [
        "\"timeline\":",
        "\"at_stop\":",
        "\"frames_captured\":320000",
        "\"overruns\":0",
        "\"final_level\":\"Normal\"",
        "\"final_accounted\":0",
    ] {
        assert!(line.contains(key), "{key} missing from {line}");
    }
}
