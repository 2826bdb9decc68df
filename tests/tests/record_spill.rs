//! Stream mode under memory pressure spills its oldest blocks to disk: the output is the spill
//! file followed by what stayed in memory, sample for sample, and a recording of any length
//! runs in bounded memory.
//!
//! # The hour-long take
//!
//! [`an_hour_of_48k_stereo_runs_in_the_memory_of_a_minute`] replays one hour of 48 kHz stereo
//! (691 MB, generated here) with `--budget 32MiB` and compares the peak RSS of the process
//! (`wait4`'s `ru_maxrss`, exact for that one child) with that of a one-minute take under the
//! same flags, and the output with the input, streaming both files.
//!
//! Both takes use `--window 60s`. The comparison is only meaningful if the one-minute take has
//! already filled its share of the budget, and a minute of 48 kHz stereo is 11 MiB: with the
//! default 30 s window it never gets near the policy's spilling point (about 22 MB of the
//! 32 MiB), so its RSS (22 MB here) is not the steady state, and the hour's (27.5 MB) is larger
//! by what the budget still had room for. With a 60 s window (11.5 MB, and fully written by the
//! end of the minute) the minute take spills too, and both take the same accounted peak.
//!
//! The w4l binary is built in release for it (`cargo build --release -p w4l`, once, into the
//! same target directory): the hour replays in seconds there, against minutes in a debug
//! build. Measured on a 2-core machine: peak RSS 29.6 MB (1 min) vs 30.0 MB (1 h), ratio
//! 1.014; the hour takes about 2 s, the whole test under 5 s once w4l is built.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use w4l_tests::{json_u64, read_wav_i16, test_signal, w4l_with, write_wav_i16};

/// A private `W4L_TEMP_DIR` in `base`.
fn private_dir(base: &Path) -> PathBuf {
    let temp = base.join("w4l");
    fs::create_dir(&temp).expect("w4l dir");
    fs::set_permissions(&temp, fs::Permissions::from_mode(0o700)).expect("chmod");
    temp
}

#[track_caller]
fn assert_empty(dir: &Path) {
    let left: Vec<_> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "left in {}: {left:?}", dir.display());
}

#[test]
fn spilled_take_is_sample_exact_and_nothing_is_dropped() {
    let base = tempfile::tempdir().expect("temp dir");
    let temp = private_dir(base.path());
    let input = base.path().join("in.wav");
    let rate = 16_000u32;
    let samples = test_signal(40 * rate as usize, 1, 3);
    write_wav_i16(&input, rate, 1, &samples);
    let output = base.path().join("out.wav");
    let run = w4l_with(
        [
            "record",
            "--input",
            input.to_str().expect("utf-8"),
            "-o",
            output.to_str().expect("utf-8"),
            "--budget",
            "400k",
            "--window",
            "1s",
            "--json",
        ],
        &[("W4L_TEMP_DIR", temp.to_str().expect("utf-8"))],
        Duration::from_secs(120),
    )
    .ok();
    // Spilling loses nothing: no warning.
    assert!(run.stderr.is_empty(), "{run:#?}");
    let json = run.stdout.trim();
    assert!(json_u64(json, "evicted_frames") > 0, "{json}");
    assert!(json_u64(json, "frames_on_disk") > 0, "{json}");
    assert_eq!(json_u64(json, "lost_samples"), 0, "{json}");
    assert_eq!(json_u64(json, "frames_dropped"), 0, "{json}");
    assert_eq!(json_u64(json, "lost_samples"), 0, "{json}");
    assert!(json_u64(json, "memory_peak") <= 400 << 10, "{json}");
    let (_, back) = read_wav_i16(&output);
    assert_eq!(back.len(), samples.len());
    let first_diff = back.iter().zip(&samples).position(|(a, b)| a != b);
    assert_eq!(first_diff, None, "spill + memory differs from the input");
    assert_empty(&temp);
}

// ---------------------------------------------------------------------------------------------
// The hour-long take
// ---------------------------------------------------------------------------------------------

const RATE: u32 = 48_000;
const CHANNELS: u16 = 2;
/// Bytes per generated chunk: whole frames, deliberately not a multiple of the 64 KiB blocks.
const CHUNK: usize = 1_048_572;

/// Writes `seconds` of 48 kHz stereo 16-bit noise: one pseudo-random megabyte, repeated, each
/// repetition starting with its own index, so a lost, repeated or reordered block shows.
fn write_noise(path: &Path, seconds: u64) -> u64 {
    let data_bytes = seconds * u64::from(RATE) * u64::from(CHANNELS) * 2;
    let mut f = BufWriter::with_capacity(1 << 20, File::create(path).expect("create input"));
    let riff = u32::try_from(36 + data_bytes).expect("fits a WAV file");
    let mut header = Vec::with_capacity(44);
    header.extend_from_slice(b"RIFF");
    header.extend_from_slice(&riff.to_le_bytes());
    header.extend_from_slice(b"WAVEfmt ");
    header.extend_from_slice(&16u32.to_le_bytes());
    header.extend_from_slice(&1u16.to_le_bytes());
    header.extend_from_slice(&CHANNELS.to_le_bytes());
    header.extend_from_slice(&RATE.to_le_bytes());
    header.extend_from_slice(&(RATE * u32::from(CHANNELS) * 2).to_le_bytes());
    header.extend_from_slice(&(CHANNELS * 2).to_le_bytes());
    header.extend_from_slice(&16u16.to_le_bytes());
    header.extend_from_slice(b"data");
    header.extend_from_slice(&u32::try_from(data_bytes).expect("fits").to_le_bytes());
    f.write_all(&header).expect("header");
    let mut noise = vec![0u8; CHUNK];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for b in noise.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_le_bytes();
        b.copy_from_slice(&bytes[..b.len()]);
    }
    let mut left = data_bytes;
    let mut index = 0u64;
    while left > 0 {
        noise[..8].copy_from_slice(&index.to_le_bytes());
        let n = usize::try_from(left.min(CHUNK as u64)).expect("chunk");
        f.write_all(&noise[..n]).expect("write input");
        left -= n as u64;
        index += 1;
    }
    f.flush().expect("flush input");
    data_bytes
}

/// Offset and length of the `data` chunk.
fn data_chunk(f: &mut File) -> (u64, u64) {
    let mut riff = [0u8; 12];
    f.read_exact(&mut riff).expect("RIFF header");
    assert!(&riff[..4] == b"RIFF" && &riff[8..] == b"WAVE");
    let mut offset = 12u64;
    loop {
        let mut h = [0u8; 8];
        f.read_exact(&mut h).expect("chunk header");
        let size = u64::from(u32::from_le_bytes([h[4], h[5], h[6], h[7]]));
        if &h[..4] == b"data" {
            return (offset + 8, size);
        }
        offset += 8 + size + (size & 1);
        f.seek(SeekFrom::Start(offset)).expect("seek");
    }
}

/// Compares the samples of two 16-bit WAV files, a megabyte at a time; returns the sample count.
fn assert_same_samples(a: &Path, b: &Path) -> u64 {
    let spec = |p: &Path| hound::WavReader::open(p).expect("open").spec();
    assert_eq!(spec(a), spec(b));
    let (mut fa, mut fb) = (File::open(a).expect("a"), File::open(b).expect("b"));
    let ((oa, la), (ob, lb)) = (data_chunk(&mut fa), data_chunk(&mut fb));
    assert_eq!(
        la,
        lb,
        "{} and {} differ in length",
        a.display(),
        b.display()
    );
    fa.seek(SeekFrom::Start(oa)).expect("seek");
    fb.seek(SeekFrom::Start(ob)).expect("seek");
    let (mut ra, mut rb) = (BufReader::new(fa), BufReader::new(fb));
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut done = 0u64;
    while done < la {
        let n = usize::try_from((la - done).min(1 << 20)).expect("n");
        ra.read_exact(&mut ba[..n]).expect("read a");
        rb.read_exact(&mut bb[..n]).expect("read b");
        if ba[..n] != bb[..n] {
            let i = ba[..n]
                .iter()
                .zip(&bb[..n])
                .position(|(x, y)| x != y)
                .unwrap_or(0);
            panic!(
                "the output differs from the input at sample {}",
                (done + i as u64) / 2
            );
        }
        done += n as u64;
    }
    la / 2
}

/// What one run measured.
#[derive(Debug)]
struct Measured {
    /// Peak resident set of the process, KiB (`ru_maxrss`).
    max_rss_kib: i64,
    wall: Duration,
    json: String,
}

/// Runs `bin args…` and measures its peak RSS with `wait4` (that child's own rusage).
fn run_measured(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Measured {
    #[repr(C)]
    struct Rusage {
        // struct timeval ru_utime, ru_stime; then 14 longs, ru_maxrss first.
        times: [i64; 4],
        maxrss: i64,
        rest: [i64; 13],
    }
    unsafe extern "C" {
        fn wait4(pid: i32, status: *mut i32, options: i32, rusage: *mut Rusage) -> i32;
    }
    let started = Instant::now();
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Reaped below by `wait4` (which also returns its rusage), not by `Child::wait`.
    #[allow(clippy::zombie_processes)]
    let mut child = cmd.spawn().expect("spawn w4l");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).ok();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).ok();
        s
    });
    let pid = i32::try_from(child.id()).expect("pid");
    let mut status = 0i32;
    let mut usage = Rusage {
        times: [0; 4],
        maxrss: 0,
        rest: [0; 13],
    };
    // SAFETY: `pid` is our child, not yet waited for; both pointers are to live locals.
    let r = unsafe { wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4 failed: {}", std::io::Error::last_os_error());
    let wall = started.elapsed();
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    // Exited normally with code 0.
    assert!(
        status & 0x7f == 0 && (status >> 8) & 0xff == 0,
        "w4l failed (status {status:#x}): {stdout} {stderr}"
    );
    assert!(stderr.is_empty(), "{stderr}");
    Measured {
        max_rss_kib: usage.maxrss,
        wall,
        json: stdout.trim().to_owned(),
    }
}

#[test]
fn an_hour_of_48k_stereo_runs_in_the_memory_of_a_minute() {
    let started = Instant::now();
    let bin = w4l_tests::bin::w4l_release_bin();
    let built = started.elapsed();
    let base = tempfile::tempdir().expect("temp dir");
    let temp = private_dir(base.path());
    let env = [("W4L_TEMP_DIR", temp.to_str().expect("utf-8"))];
    let mut results = Vec::new();
    for (name, seconds) in [("minute", 60u64), ("hour", 3600)] {
        let input = base.path().join(format!("{name}.wav"));
        let t = Instant::now();
        let bytes = write_noise(&input, seconds);
        let generated = t.elapsed();
        let output = base.path().join(format!("{name}-out.wav"));
        let m = run_measured(
            &bin,
            &[
                "record",
                "--input",
                input.to_str().expect("utf-8"),
                "-o",
                output.to_str().expect("utf-8"),
                "--budget",
                "32MiB",
                "--window",
                "60s",
                "--json",
            ],
            &env,
        );
        let t = Instant::now();
        let samples = assert_same_samples(&input, &output);
        let compared = t.elapsed();
        assert_eq!(samples, bytes / 2);
        let frames = seconds * u64::from(RATE);
        assert_eq!(json_u64(&m.json, "frames_written"), frames, "{}", m.json);
        assert_eq!(json_u64(&m.json, "frames_dropped"), 0, "{}", m.json);
        assert_eq!(json_u64(&m.json, "lost_samples"), 0, "{}", m.json);
        assert!(json_u64(&m.json, "evicted_frames") > 0, "{}", m.json);
        assert!(json_u64(&m.json, "memory_peak") <= 32 << 20, "{}", m.json);
        eprintln!(
            "{name}: peak RSS {} KiB, accounted peak {} B, {} frames evicted, w4l {:.1} s \
             (input generated in {:.1} s, compared in {:.1} s)",
            m.max_rss_kib,
            json_u64(&m.json, "memory_peak"),
            json_u64(&m.json, "evicted_frames"),
            m.wall.as_secs_f64(),
            generated.as_secs_f64(),
            compared.as_secs_f64()
        );
        fs::remove_file(&input).expect("remove input");
        fs::remove_file(&output).expect("remove output");
        results.push(m);
    }
    let (minute, hour) = (&results[0], &results[1]);
    // Both reached the same steady state: the policy spills at the same accounted peak.
    assert_eq!(
        json_u64(&minute.json, "memory_peak"),
        json_u64(&hour.json, "memory_peak")
    );
    let ratio = hour.max_rss_kib as f64 / minute.max_rss_kib as f64;
    eprintln!(
        "peak RSS hour / minute = {ratio:.3}; w4l built in {:.1} s, test total {:.1} s",
        built.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        hour.max_rss_kib * 10 <= minute.max_rss_kib * 11,
        "an hour took {} KiB of RSS, a minute {} KiB: more than 10 % more",
        hour.max_rss_kib,
        minute.max_rss_kib
    );
    assert_empty(&temp);
}
