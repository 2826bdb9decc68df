//! Requests larger than the machine, end to end: a `--window` of 1000 hours with `--budget 1T`,
//! WAV files declaring a 2 GHz (or 4 GHz) rate or 32 767 channels. Each must be answered with
//! one line and exit 2 before anything is recorded (never an abort: "memory allocation of …
//! bytes failed", exit 134), or, where the machine can give what is needed, recorded as usual.
//! A budget above the memory available is capped to it, with a warning.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use w4l_tests::faults::{Spawned, assert_no_leftovers};
use w4l_tests::{Run, json_u64, read_wav_i16, test_signal, w4l, w4l_bin, w4l_with, write_wav_i16};

/// `MemAvailable` of `/proc/meminfo`, bytes.
fn mem_available() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").expect("/proc/meminfo");
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("MemAvailable");
    kib * 1024
}

/// Whether this machine could give `bytes` (then a refusal cannot be tested here).
fn machine_has(bytes: u64) -> bool {
    let has = mem_available() > bytes;
    if has {
        eprintln!("skipped: this machine has more than {bytes} bytes available");
    }
    has
}

/// A 1 s 16 kHz mono WAV in a new directory.
fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("in.wav");
    write_wav_i16(&input, 16_000, 1, &test_signal(16_000, 1, 41));
    (dir, input)
}

/// `w4l record --input INPUT -o DIR/out.wav EXTRA…` with a private temporary directory.
fn record(dir: &Path, input: &Path, extra: &[&str]) -> Run {
    let temp = dir.join("w4l");
    std::fs::create_dir_all(&temp).expect("temp dir");
    std::fs::set_permissions(&temp, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod 700");
    let mut args = vec![
        "record".to_owned(),
        "--input".to_owned(),
        input.display().to_string(),
        "-o".to_owned(),
        dir.join("out.wav").display().to_string(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    w4l_with(
        &args,
        &[("W4L_TEMP_DIR", temp.to_str().expect("utf-8"))],
        Duration::from_secs(60),
    )
}

/// Refused with exit 2 and one line naming `needles`; nothing written, nothing left behind.
#[track_caller]
fn refused(dir: &Path, run: &Run, needles: &[&str]) {
    run.fails(2, needles);
    assert!(!dir.join("out.wav").exists());
    assert_no_leftovers(dir, &[]);
    assert_no_leftovers(&dir.join("w4l"), &[]);
}

/// A 16-bit PCM header and `data` for `channels` × `frames` samples at `rate` Hz, written by
/// hand: hound's writer refuses such specs, and the point is a file that says what it likes.
fn write_raw_wav(path: &Path, rate: u32, channels: u16, samples: &[i16]) {
    let align = u32::from(channels) * 2;
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * align).to_le_bytes());
    b.extend_from_slice(&(align as u16).to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(&data);
    std::fs::write(path, b).expect("write the WAV");
}

#[test]
fn a_thousand_hour_window_with_a_terabyte_budget_is_refused_not_aborted() {
    // 1000 h of 16 kHz mono: 115.2 GB of window.
    if machine_has(115_200_000_000) {
        return;
    }
    let (dir, input) = setup();
    for (budget, window) in [
        ("1T", "1000h"),
        ("1TB", "1000h"),
        ("99999T", "8000h"),
        ("1T", "3000000s"),
    ] {
        let run = record(
            dir.path(),
            &input,
            &["--budget", budget, "--window", window],
        );
        refused(dir.path(), &run, &["--window", "memory available"]);
    }
}

#[test]
fn a_wav_declaring_a_gigahertz_rate_is_refused_not_aborted() {
    // 2 GHz mono, or 1 GHz stereo: a 4 GiB ring and 120 GB for a 30 s window.
    if machine_has(124_000_000_000) {
        return;
    }
    let (dir, _) = setup();
    // (The byte rate in the header must fit 32 bits for the file to be well-formed.)
    for (rate, channels) in [(2_000_000_000u32, 1u16), (1_000_000_000, 2)] {
        let input = dir.path().join(format!("{rate}.wav"));
        write_raw_wav(&input, rate, channels, &test_signal(8_000, channels, 42));
        for extra in [
            &["--budget", "1T", "--window", "30s"][..],
            &["--budget", "1T", "--window", "60s"],
            &["--window", "30s"],
        ] {
            let run = record(dir.path(), &input, extra);
            assert_ne!(run.code, Some(134), "aborted: {run:#?}");
            refused(dir.path(), &run, &["--window"]);
        }
    }
}

#[test]
fn a_wav_of_32767_channels_replays_in_bounded_chunks() {
    // The replay's chunk is 8 channels' worth of 4096 frames at most, not 4096 frames of
    // 32 767 channels (512 MiB).
    let (dir, _) = setup();
    let input = dir.path().join("wide.wav");
    let samples = test_signal(3, 32_767, 43);
    write_raw_wav(&input, 1, 32_767, &samples);
    // Under a 256 MiB address-space limit, which that chunk alone would break (an abort).
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -v 262144 && exec \"$0\" \"$@\"")
        .arg(w4l_bin())
        .args(["record", "--window", "1s", "--json", "--input"])
        .arg(&input)
        .arg("-o")
        .arg(dir.path().join("out.wav"));
    let run = Spawned::start_command(cmd, &[])
        .wait(Duration::from_secs(60))
        .ok();
    assert_eq!(json_u64(&run.stdout, "frames_written"), 3, "{run:#?}");
    assert_eq!(read_wav_i16(&dir.path().join("out.wav")).1, samples);
}

#[test]
fn a_budget_above_the_memory_available_is_capped_with_a_warning() {
    let (dir, input) = setup();
    let run = record(dir.path(), &input, &["--budget", "1T", "--json"]).ok();
    let budget = json_u64(&run.stdout, "memory_budget");
    assert!(budget < 1 << 40, "not capped: {budget}");
    assert!(
        run.stderr.contains("is more than the") && run.stderr.contains("capped"),
        "{run:#?}"
    );
    assert_eq!(run.stderr.lines().count(), 1, "{run:#?}");
    // A budget the machine can give stands as given, without a word.
    let run = record(dir.path(), &input, &["--budget", "64MiB", "--json"]).ok();
    assert_eq!(json_u64(&run.stdout, "memory_budget"), 64 << 20);
    assert!(run.stderr.is_empty(), "{run:#?}");

    let run = w4l(["monitor", "--budget", "1T", "--count", "1", "--json"]).ok();
    assert!(json_u64(&run.stdout, "budget") < 1 << 40, "{run:#?}");
}
