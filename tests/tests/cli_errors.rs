//! Bad input to `w4l`: every case is refused before anything is recorded, with one line
//! `error: <what>; <fix>` on stderr, exit code 2 (usage) or 1 (runtime), no panic, no
//! backtrace, and no file left behind.

use std::path::{Path, PathBuf};

use w4l_tests::{test_signal, w4l, write_wav_i16};

/// A temp dir with a valid 1 s 16 kHz mono input WAV in it.
fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("in.wav");
    write_wav_i16(&input, 16_000, 1, &test_signal(16_000, 1, 1));
    (dir, input)
}

/// The directory holds exactly `expected` (file names), nothing else (no partial output, no
/// temporary file).
#[track_caller]
fn only(dir: &Path, expected: &[&str]) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    assert_eq!(names, want, "files left in {}", dir.display());
}

/// `w4l record --input in.wav -o out.wav <extra>`: must fail with `code` mentioning `needles`,
/// leaving only in.wav.
#[track_caller]
fn record_fails(extra: &[&str], code: i32, needles: &[&str]) -> String {
    let (dir, input) = setup();
    let out = dir.path().join("out.wav");
    let mut args = vec![
        "record".to_owned(),
        "--input".to_owned(),
        input.display().to_string(),
        "-o".to_owned(),
        out.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let line = w4l(&args).fails(code, needles);
    only(dir.path(), &["in.wav"]);
    line
}

#[test]
fn zero_negative_and_unparsable_budgets() {
    record_fails(
        &["--budget", "0"],
        2,
        &["--budget", "greater than zero", "512MiB"],
    );
    record_fails(&["--budget", "0MiB"], 2, &["--budget", "greater than zero"]);
    record_fails(&["--budget=-5MiB"], 2, &["--budget", "negative"]);
    record_fails(&["--budget", "-5MiB"], 2, &["--budget"]);
    record_fails(&["--budget", "lots"], 2, &["--budget", "not a size"]);
    record_fails(
        &["--budget", "5parsecs"],
        2,
        &["--budget", "unknown size unit"],
    );
}

#[test]
fn zero_negative_and_unparsable_durations() {
    record_fails(
        &["--seconds", "0"],
        2,
        &["--seconds", "greater than zero", "10s"],
    );
    record_fails(&["--seconds=-3"], 2, &["--seconds", "negative"]);
    record_fails(&["--seconds", "soon"], 2, &["--seconds", "not a duration"]);
    record_fails(
        &["--seconds", "3 fortnights"],
        2,
        &["--seconds", "unknown duration unit"],
    );
    record_fails(&["--window", "0s"], 2, &["--window", "greater than zero"]);
    let r = w4l(["monitor", "--interval", "0ms"]);
    r.fails(2, &["--interval", "greater than zero"]);
    w4l(["monitor", "--count", "0"]).fails(2, &["--count", "at least 1"]);
    w4l(["demo", "--seconds", "never"]).fails(2, &["--seconds", "not a duration"]);
}

#[test]
fn budget_smaller_than_one_block() {
    let line = record_fails(
        &["--budget", "16k"],
        2,
        &["budget", "smaller than one block"],
    );
    assert!(line.contains("raise --budget to at least"), "{line}");
    // Small enough for a block only with a short window: the remedy says so.
    record_fails(
        &["--budget", "512k", "--window", "30s"],
        2,
        &["smaller than one block", "--window"],
    );
    w4l(["demo", "--budget", "64k"]).fails(2, &["budget", "--budget"]);
}

#[test]
fn unreadable_and_malformed_input() {
    let (dir, _) = setup();
    let out = dir.path().join("out.wav");
    let o = out.display().to_string();

    let missing = dir.path().join("missing.wav");
    w4l([
        "record",
        "--input",
        &missing.display().to_string(),
        "-o",
        &o,
    ])
    .fails(2, &["cannot read --input", "missing.wav", "check the path"]);

    let garbage = dir.path().join("garbage.wav");
    std::fs::write(&garbage, b"this is not a RIFF file at all, just text").expect("write");
    w4l([
        "record",
        "--input",
        &garbage.display().to_string(),
        "-o",
        &o,
    ])
    .fails(2, &["garbage.wav", "not a usable WAV file", "PCM WAV"]);

    let empty = dir.path().join("empty.wav");
    std::fs::write(&empty, b"").expect("write");
    w4l(["record", "--input", &empty.display().to_string(), "-o", &o])
        .fails(2, &["empty.wav", "not a usable WAV file"]);

    // A valid header promising more samples than the file holds.
    let good = dir.path().join("in.wav");
    let bytes = std::fs::read(&good).expect("read");
    let truncated = dir.path().join("truncated.wav");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    w4l([
        "record",
        "--input",
        &truncated.display().to_string(),
        "-o",
        &o,
    ])
    .fails(2, &["truncated.wav", "truncated"]);

    // WAVE_FORMAT_EXTENSIBLE: 16-bit samples padded to 4-byte containers (hound cannot decode
    // them): refused before recording, not mid-replay.
    let padded = dir.path().join("padded.wav");
    std::fs::write(&padded, padded_16_in_32()).expect("write");
    w4l(["record", "--input", &padded.display().to_string(), "-o", &o]).fails(
        2,
        &["padded.wav", "16-bit samples in 4-byte containers", "sox"],
    );

    // A header with no samples.
    let silent = dir.path().join("nothing.wav");
    write_wav_i16(&silent, 16_000, 1, &[]);
    w4l(["record", "--input", &silent.display().to_string(), "-o", &o])
        .fails(2, &["nothing.wav", "no samples"]);

    // A directory.
    w4l([
        "record",
        "--input",
        &dir.path().display().to_string(),
        "-o",
        &o,
    ])
    .fails(2, &["--input"]);

    only(
        dir.path(),
        &[
            "in.wav",
            "garbage.wav",
            "empty.wav",
            "truncated.wav",
            "padded.wav",
            "nothing.wav",
        ],
    );
}

#[test]
fn output_in_missing_or_read_only_directory() {
    let (dir, input) = setup();
    let i = input.display().to_string();
    let missing = dir.path().join("no/such/dir/out.wav");
    w4l([
        "record",
        "--input",
        &i,
        "-o",
        &missing.display().to_string(),
    ])
    .fails(2, &["output directory", "does not exist", "-o"]);

    w4l([
        "record",
        "--input",
        &i,
        "-o",
        &dir.path().display().to_string(),
    ])
    .fails(2, &["is a directory", "-o"]);

    // A read-only directory. root ignores mode bits, so fall back to sysfs, which refuses
    // new files even to root.
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).expect("mkdir");
    let mut perms = std::fs::metadata(&ro).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o555);
    std::fs::set_permissions(&ro, perms).expect("chmod");
    let ro_dir = if std::fs::write(ro.join("probe"), b"x").is_ok() {
        std::fs::remove_file(ro.join("probe")).expect("rm probe");
        PathBuf::from("/sys")
    } else {
        ro.clone()
    };
    w4l([
        "record",
        "--input",
        &i,
        "-o",
        &ro_dir.join("out.wav").display().to_string(),
    ])
    .fails(2, &["cannot create files in", "writable directory"]);
    assert!(!ro_dir.join("out.wav").exists());
    let mut perms = std::fs::metadata(&ro).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&ro, perms).expect("chmod back");
    only(dir.path(), &["in.wav", "ro"]);
    only(&ro, &[]);
}

#[test]
fn unsupported_rate_and_channels() {
    record_fails(
        &["--rate", "12"],
        2,
        &["--rate", "not a supported sample rate"],
    );
    record_fails(&["--rate", "fast"], 2, &["--rate", "not a sample rate"]);
    record_fails(&["--channels", "0"], 2, &["--channels", "not supported"]);
    record_fails(&["--channels", "64"], 2, &["--channels", "not supported"]);
    // Valid values that do not match the file: no resampling.
    record_fails(
        &["--rate", "44100"],
        2,
        &["--rate 44100", "16000 Hz", "drop --rate"],
    );
    record_fails(
        &["--channels", "2"],
        2,
        &["--channels 2", "drop --channels"],
    );
}

#[test]
fn unknown_mode_is_a_usage_error() {
    // `--mode file` works (tests/tests/record_file_mode.rs); anything else is refused.
    record_fails(&["--mode", "tape"], 2, &["--mode"]);
}

#[test]
fn clap_errors_are_one_line_with_exit_code_2() {
    w4l(["record", "--no-such-flag"]).fails(2, &["--no-such-flag"]);
    w4l(["frobnicate"]).fails(2, &["frobnicate"]);
    w4l(["record", "--realtime"]).fails(2, &["--input"]);
    w4l(["record", "--model", "huge"]).fails(2, &["--model", "huge"]);
    w4l(["devices", "--json", "extra"]).fails(2, &["extra"]);
}

/// `w4l devices` with no PulseAudio server falls back to ALSA, whose `jack` plugin (where
/// installed) loads libjack, which printed five lines on stderr ("Cannot connect to server
/// socket …", "jack server is not running …"). Nothing but w4l's own answer may be printed.
#[test]
fn devices_without_a_server_print_no_library_noise() {
    for args in [
        &["devices"][..],
        &["devices", "--json"],
        &["devices", "--backend", "alsa"],
    ] {
        let run = std::process::Command::new(w4l_tests::w4l_bin())
            .args(args)
            .env_remove("PULSE_SERVER")
            .env_remove("W4L_ALSA_ERRORS")
            .env_remove("RUST_LOG")
            .env("XDG_RUNTIME_DIR", "/nonexistent")
            .output()
            .expect("run w4l");
        let stderr = String::from_utf8_lossy(&run.stderr);
        // No sound card at all is an error line of w4l's own; anything else is noise.
        let noise: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.starts_with("error: "))
            .collect();
        assert!(noise.is_empty(), "{args:?} printed {noise:#?}");
        if run.status.success() {
            assert!(stderr.is_empty(), "{args:?}: {stderr}");
        }
    }
}

#[test]
fn no_subcommand_prints_help_and_exits_2() {
    let r = w4l(Vec::<String>::new());
    assert_eq!(r.code, Some(2), "{r:#?}");
    assert!(
        r.stderr.contains("Usage:") || r.stdout.contains("Usage:"),
        "{r:#?}"
    );
}

#[test]
fn a_panic_is_one_line_and_leaves_no_file() {
    // Debug builds of w4l panic on purpose at W4L_TEST_PANIC=write: after the take was
    // written, before it is moved into place. The take's journal stays (with its manifest) in
    // this test's own cache directory, and the next start recovers it to the output.
    let (dir, input) = setup();
    let out = dir.path().join("out.wav");
    let (cache, data) = (dir.path().join("cache"), dir.path().join("data"));
    let env = [
        ("XDG_CACHE_HOME", cache.to_str().expect("utf-8")),
        ("XDG_DATA_HOME", data.to_str().expect("utf-8")),
    ];
    let r = w4l_tests::w4l_with(
        [
            "record",
            "--input",
            &input.display().to_string(),
            "-o",
            &out.display().to_string(),
        ],
        &[
            env[0],
            env[1],
            ("W4L_TEST_PANIC", "write"),
            ("RUST_BACKTRACE", "1"),
        ],
        std::time::Duration::from_secs(60),
    );
    if !cfg!(debug_assertions) {
        return; // a release w4l ignores the trigger
    }
    r.fails(
        1,
        &[
            "internal error",
            "W4L_TEST_PANIC=write",
            "please report this bug",
        ],
    );
    only(dir.path(), &["in.wav", "cache"]);
    w4l_tests::w4l_with(["clean"], &env, std::time::Duration::from_secs(60)).ok();
    assert_eq!(
        w4l_tests::read_wav_i16(&out).1,
        w4l_tests::read_wav_i16(&input).1,
        "the next start recovers the whole take"
    );
    only(dir.path(), &["in.wav", "out.wav", "cache"]);
    only(&cache.join("w4l"), &[]);
}

/// A mono 16 kHz WAVE_FORMAT_EXTENSIBLE file of 100 16-bit samples, each in a 4-byte container.
fn padded_16_in_32() -> Vec<u8> {
    const PCM_GUID: [u8; 16] = [
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b,
        0x71,
    ];
    let mut fmt = Vec::new();
    for (v, width) in [
        (0xFFFE, 2), // WAVE_FORMAT_EXTENSIBLE
        (1, 2),      // channels
        (16_000, 4), // rate
        (64_000, 4), // bytes per second
        (4, 2),      // block align
        (32, 2),     // container bits
        (22, 2),     // extension size
        (16, 2),     // valid bits
        (4, 4),      // channel mask: front centre
    ] {
        fmt.extend_from_slice(&u32::to_le_bytes(v)[..width]);
    }
    fmt.extend_from_slice(&PCM_GUID);
    let data: Vec<u8> = (0..100i32).flat_map(|v| (v << 16).to_le_bytes()).collect();
    let mut body = b"WAVEfmt ".to_vec();
    body.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
    body.extend_from_slice(&fmt);
    body.extend_from_slice(b"data");
    body.extend_from_slice(&(data.len() as u32).to_le_bytes());
    body.extend_from_slice(&data);
    let mut file = b"RIFF".to_vec();
    file.extend_from_slice(&(body.len() as u32).to_le_bytes());
    file.extend_from_slice(&body);
    file
}
