//! `w4l record --input`: a WAV file replayed through the same ring, worker and block store as a
//! microphone, checked sample by sample.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use w4l_tests::{json_field, json_u64, read_wav_i16, test_signal, w4l, w4l_bin, write_wav_i16};

/// `w4l record --input INPUT -o OUTPUT EXTRA...`
fn record_args(input: &Path, output: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "record".to_owned(),
        "--input".to_owned(),
        input.display().to_string(),
        "-o".to_owned(),
        output.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

fn record_json(input: &Path, output: &Path, extra: &[&str]) -> String {
    let mut args = record_args(input, output, extra);
    args.push("--json".to_owned());
    let r = w4l(&args).ok();
    assert!(r.stderr.is_empty(), "stderr: {}", r.stderr);
    let line = r.stdout.trim().to_owned();
    assert_eq!(r.stdout.lines().count(), 1, "one JSON line: {}", r.stdout);
    line
}

#[test]
fn replay_is_sample_exact_mono_and_stereo() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (rate, channels, frames) in [(16_000u32, 1u16, 52_345usize), (22_050, 2, 70_001)] {
        let input = dir.path().join(format!("in-{channels}.wav"));
        let output = dir.path().join(format!("out-{channels}.wav"));
        let samples = test_signal(frames, channels, rate);
        write_wav_i16(&input, rate, channels, &samples);
        let json = record_json(&input, &output, &[]);
        let (spec, back) = read_wav_i16(&output);
        assert_eq!(
            (spec.sample_rate, spec.channels, spec.bits_per_sample),
            (rate, channels, 16)
        );
        assert_eq!(back.len(), samples.len(), "{json}");
        let first_diff = back.iter().zip(&samples).position(|(a, b)| a != b);
        assert_eq!(first_diff, None, "replay differs at sample {first_diff:?}");
        assert_eq!(json_u64(&json, "frames_captured"), frames as u64);
        assert_eq!(json_u64(&json, "frames_written"), frames as u64);
        assert_eq!(json_u64(&json, "overruns"), 0);
        assert_eq!(json_u64(&json, "lost_samples"), 0);
        assert_eq!(json_u64(&json, "lost_samples"), 0);
        assert_eq!(json_field(&json, "mode"), Some("\"stream\""));
        assert_eq!(json_field(&json, "state"), Some("\"stopped\""));
        assert_eq!(json_field(&json, "policy_level"), Some("\"Normal\""));
        for key in [
            "samples_captured",
            "seconds_captured",
            "ring_samples",
            "memory_used",
            "memory_budget",
            "memory_peak",
            "blocks_held",
        ] {
            assert!(
                json_field(&json, key).is_some(),
                "{key} missing from {json}"
            );
        }
    }
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["in-1.wav", "in-2.wav", "out-1.wav", "out-2.wav"],
        "temporary files left"
    );
}

#[test]
fn seconds_gives_exactly_n_times_rate_frames() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("in.wav");
    let rate = 16_000u32;
    let samples = test_signal(5 * rate as usize, 2, 9);
    write_wav_i16(&input, rate, 2, &samples);
    for (arg, frames) in [("2", 32_000usize), ("500ms", 8_000), ("1.25s", 20_000)] {
        let output = dir.path().join(format!("out-{arg}.wav"));
        let json = record_json(&input, &output, &["--seconds", arg]);
        let (_, back) = read_wav_i16(&output);
        assert_eq!(back.len(), frames * 2, "--seconds {arg}: {json}");
        assert_eq!(
            &back[..],
            &samples[..frames * 2],
            "--seconds {arg} is not the file's start"
        );
        assert_eq!(json_u64(&json, "frames_captured"), frames as u64);
    }
    // Longer than the file: the whole file, nothing invented.
    let output = dir.path().join("out-long.wav");
    record_json(&input, &output, &["--seconds", "9"]);
    assert_eq!(read_wav_i16(&output).1, samples);
}

#[test]
fn float_input_saturates_instead_of_wrapping() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("float.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let values = [1.2f32, -1.2, 1.0, -1.0, 0.5, -0.5, 0.0, 3.0e9, f32::NAN];
    let mut w = hound::WavWriter::create(&input, spec).expect("create");
    for v in values {
        w.write_sample(v).expect("write");
    }
    w.finalize().expect("finalize");
    let output = dir.path().join("out.wav");
    record_json(&input, &output, &[]);
    let (_, back) = read_wav_i16(&output);
    // The earlier design turned +1.2 into -26216.
    assert_eq!(
        back,
        [32767, -32768, 32767, -32768, 16384, -16384, 0, 32767, 0]
    );
}

/// Every input format replays to the 16-bit samples it holds: 16-bit and 32-bit float are
/// decoded in bulk, 8-, 24- and 32-bit integers through hound sample by sample; long enough
/// (several read chunks, an odd tail) to cross every chunk boundary.
#[test]
fn every_input_format_replays_exactly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let expected = test_signal(20_011, 2, 16_000);
    type Encode = fn(&mut hound::WavWriter<std::io::BufWriter<std::fs::File>>, i16);
    let cases: [(&str, u16, hound::SampleFormat, Encode); 5] = [
        ("i16", 16, hound::SampleFormat::Int, |w, s| {
            w.write_sample(s).expect("write")
        }),
        ("f32", 32, hound::SampleFormat::Float, |w, s| {
            w.write_sample(f32::from(s) / 32768.0).expect("write")
        }),
        ("i8", 8, hound::SampleFormat::Int, |w, s| {
            w.write_sample((s >> 8) as i8).expect("write")
        }),
        ("i24", 24, hound::SampleFormat::Int, |w, s| {
            w.write_sample(i32::from(s) << 8).expect("write")
        }),
        ("i32", 32, hound::SampleFormat::Int, |w, s| {
            w.write_sample(i32::from(s) << 16).expect("write")
        }),
    ];
    for (name, bits, format, encode) in cases {
        let input = dir.path().join(format!("{name}.wav"));
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 16_000,
            bits_per_sample: bits,
            sample_format: format,
        };
        let mut w = hound::WavWriter::create(&input, spec).expect("create");
        for &s in &expected {
            encode(&mut w, s);
        }
        w.finalize().expect("finalize");
        let output = dir.path().join(format!("{name}-out.wav"));
        record_json(&input, &output, &[]);
        let (_, back) = read_wav_i16(&output);
        // 8-bit input keeps only the top byte of each sample.
        let want: Vec<i16> = if bits == 8 {
            expected.iter().map(|s| s & !0xFF).collect()
        } else {
            expected.clone()
        };
        assert_eq!(back.len(), want.len(), "{name}");
        let first_diff = back.iter().zip(&want).position(|(a, b)| a != b);
        assert_eq!(
            first_diff, None,
            "{name}: replay differs at sample {first_diff:?}"
        );
    }
}

/// A numbered part left at `-o` by an earlier, longer take is named in a warning, and kept: w4l
/// deletes only the files it created.
#[test]
fn a_stale_numbered_part_is_named_and_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("in.wav");
    let samples = test_signal(4_000, 1, 16_000);
    write_wav_i16(&input, 16_000, 1, &samples);
    let output = dir.path().join("take.wav");
    let stale = dir.path().join("take.001.wav");
    std::fs::write(&stale, b"an earlier take's second part").expect("plant");
    for extra in [&[][..], &["--mode", "file"][..]] {
        let r = w4l(record_args(&input, &output, extra)).ok();
        assert!(
            r.stderr
                .contains("take.001.wav is left from an earlier, longer take"),
            "{extra:?}: {}",
            r.stderr
        );
        assert_eq!(read_wav_i16(&output).1, samples);
        assert_eq!(
            std::fs::read(&stale).expect("still there"),
            b"an earlier take's second part"
        );
    }
}

#[test]
fn budget_exhaustion_drops_the_oldest_blocks_and_counts_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("in.wav");
    let rate = 16_000u32;
    let samples = test_signal(40 * rate as usize, 1, 3);
    write_wav_i16(&input, rate, 1, &samples);
    let output = dir.path().join("out.wav");
    let r = w4l([
        "record",
        "--input",
        &input.display().to_string(),
        "-o",
        &output.display().to_string(),
        "--budget",
        "400k",
        "--window",
        "1s",
        // No room on disk either: the journal stops after its first kilobyte, and memory has
        // to give up the oldest of the rest.
        "--disk-budget",
        "1k",
        "--json",
    ]);
    // Saved, but audio was lost: exit status 3.
    assert_eq!(r.code, Some(3), "{r:#?}");
    let json = r.stdout.trim();
    let frames_dropped = json_u64(json, "frames_dropped");
    assert!(frames_dropped > 0, "{json}");
    assert_eq!(json_u64(json, "frames_captured"), 40 * u64::from(rate));
    assert_eq!(json_u64(json, "lost_samples"), frames_dropped);
    assert!(json_u64(json, "memory_peak") <= 400 << 10, "{json}");
    // The file is the take less the counted loss: what the journal holds (its start), then
    // what memory kept (its end), each exactly.
    let (_, back) = read_wav_i16(&output);
    assert_eq!(back.len() as u64 + frames_dropped, samples.len() as u64);
    let on_disk = json_u64(json, "frames_on_disk") as usize;
    assert_eq!(&back[..on_disk], &samples[..on_disk]);
    let tail = back.len() - on_disk;
    assert_eq!(&back[on_disk..], &samples[samples.len() - tail..]);
    // The loss is announced on stderr (a warning), not silent.
    assert!(r.stderr.contains("given up"), "{}", r.stderr);
}

#[test]
fn ctrl_c_stops_and_keeps_everything_captured_until_then() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("in.wav");
    let rate = 16_000u32;
    let samples = test_signal(20 * rate as usize, 1, 5);
    write_wav_i16(&input, rate, 1, &samples);
    let output = dir.path().join("out.wav");
    let child = Command::new(w4l_bin())
        .args(["record", "--realtime", "--json", "--input"])
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(2000));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let started = Instant::now();
    let out = child.wait_with_output().expect("wait");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stop took too long"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout {stdout} stderr {stderr}"
    );
    let json = stdout.trim();
    assert_eq!(json_field(json, "interrupted"), Some("true"));
    let captured = json_u64(json, "frames_captured");
    // Real time: about 1.5 s of the 20 s file.
    assert!(
        captured > u64::from(rate) / 2 && captured < 10 * u64::from(rate),
        "{json}"
    );
    // Everything captured is in the file (the earlier design lost its last blocks at stop),
    // and it is exactly the start of the input.
    let (_, back) = read_wav_i16(&output);
    assert_eq!(back.len() as u64, captured);
    assert_eq!(&back[..], &samples[..back.len()]);
}
