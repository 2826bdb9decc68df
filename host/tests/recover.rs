//! WAV header repair on files written by hound and left stale the way a crash leaves them.

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use w4l::wav::repair::{RecoverError, RecoverOptions, SampleKind, recover, recover_with};

const CHILD_ENV: &str = "W4L_TEST_RECOVER_CHILD";
const CHILD_PATH_ENV: &str = "W4L_TEST_RECOVER_PATH";
const READY_MARK: &str = "@@READY";

fn spec_i16(channels: u16) -> hound::WavSpec {
    hound::WavSpec {
        channels,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

fn spec_f32(channels: u16) -> hound::WavSpec {
    hound::WavSpec {
        channels,
        sample_rate: 48_000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    }
}

fn samples_i16(n: usize) -> Vec<i16> {
    (0..n)
        .map(|i| ((i as i64 * 7919) % 65_536 - 32_768) as i16)
        .collect()
}

fn samples_f32(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i as f32) * 0.01).sin() * 0.9).collect()
}

fn write_i16(path: &Path, channels: u16, samples: &[i16]) {
    let mut w = hound::WavWriter::create(path, spec_i16(channels)).expect("create");
    for &s in samples {
        w.write_sample(s).expect("write");
    }
    w.finalize().expect("finalize");
}

fn write_f32(path: &Path, channels: u16, samples: &[f32]) {
    let mut w = hound::WavWriter::create(path, spec_f32(channels)).expect("create");
    for &s in samples {
        w.write_sample(s).expect("write");
    }
    w.finalize().expect("finalize");
}

/// Overwrites the RIFF size and the data size, as a writer killed before finalizing leaves
/// them.
fn stale_sizes(path: &Path, data_size_offset: u64, riff: u32, data: u32) {
    let mut f = OpenOptions::new().write(true).open(path).expect("open");
    f.seek(SeekFrom::Start(4)).unwrap();
    f.write_all(&riff.to_le_bytes()).unwrap();
    f.seek(SeekFrom::Start(data_size_offset)).unwrap();
    f.write_all(&data.to_le_bytes()).unwrap();
}

fn read_i16(path: &Path) -> Vec<i16> {
    let mut r = hound::WavReader::open(path).expect("hound reads the repaired file");
    r.samples::<i16>().map(|s| s.expect("sample")).collect()
}

fn read_f32(path: &Path) -> Vec<f32> {
    let mut r = hound::WavReader::open(path).expect("hound reads the repaired file");
    r.samples::<f32>().map(|s| s.expect("sample")).collect()
}

#[test]
fn pcm16_with_zeroed_sizes_and_a_partial_frame() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("take.wav");
    let samples = samples_i16(2 * 5000);
    write_i16(&path, 2, &samples);
    stale_sizes(&path, 40, 0, 0);
    // Half a stereo frame reached the disk too.
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&[0x12, 0x34, 0x56]).unwrap();
    drop(f);

    let report = recover(&path).expect("recover");
    assert!(report.repaired);
    assert_eq!(report.repair.format.kind, SampleKind::Int);
    assert_eq!(report.repair.format.channels, 2);
    assert!(!report.repair.format.extensible);
    assert_eq!(report.repair.frames(), 5000);
    assert_eq!(report.repair.dropped_bytes(), 3);
    assert!(!report.to_string().contains('\n'));
    assert_eq!(fs::metadata(&path).unwrap().len(), 44 + 20_000);
    assert_eq!(read_i16(&path), samples);

    // Running it again changes nothing.
    let again = recover(&path).expect("recover again");
    assert!(!again.repaired);
    assert_eq!(read_i16(&path), samples);
}

#[test]
fn float32_extensible_cut_mid_frame() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("take.wav");
    let samples = samples_f32(2 * 3000);
    write_f32(&path, 2, &samples);
    // hound writes 32-bit float as WAVE_FORMAT_EXTENSIBLE: the data size sits at offset 64.
    stale_sizes(&path, 64, 0, 0);
    let len = fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 5)
        .unwrap();

    let report = recover(&path).expect("recover");
    assert!(report.repaired);
    assert_eq!(report.repair.format.kind, SampleKind::Float);
    assert!(report.repair.format.extensible);
    assert_eq!(report.repair.frames(), 2999);
    assert_eq!(report.repair.dropped_bytes(), 3);
    assert_eq!(read_f32(&path), samples[..2 * 2999]);
}

#[test]
fn float32_mono_plain_sizes_past_the_end() {
    // A stale header can also claim more than the file holds (the file was cut after the
    // header was written).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("take.wav");
    let samples = samples_f32(1000);
    write_f32(&path, 1, &samples);
    stale_sizes(&path, 64, u32::MAX, u32::MAX - 100);
    let report = recover(&path).expect("recover");
    assert!(report.repaired);
    assert_eq!(read_f32(&path), samples);
}

#[test]
fn consistent_file_is_left_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("take.wav");
    write_i16(&path, 1, &samples_i16(777));
    let before = fs::read(&path).unwrap();
    let report = recover(&path).expect("recover");
    assert!(!report.repaired);
    assert_eq!(report.repair.frames(), 777);
    assert_eq!(fs::read(&path).unwrap(), before);
}

#[test]
fn bad_inputs_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();

    let text = dir.path().join("notes.wav");
    fs::write(&text, b"these are not the samples you are looking for").unwrap();
    let err = recover(&text).expect_err("text");
    assert!(matches!(err, RecoverError::NotWav), "{err}");

    let short = dir.path().join("short.wav");
    let good = dir.path().join("good.wav");
    write_i16(&good, 1, &samples_i16(10));
    fs::write(&short, &fs::read(&good).unwrap()[..30]).unwrap();
    let err = recover(&short).expect_err("short");
    assert!(matches!(err, RecoverError::Truncated { .. }), "{err}");

    let link = dir.path().join("link.wav");
    symlink(&good, &link).unwrap();
    let err = recover(&link).expect_err("symlink");
    assert!(matches!(err, RecoverError::NotRegularFile { .. }), "{err}");

    let err = recover(dir.path()).expect_err("directory");
    let err_missing = recover(&dir.path().join("missing.wav")).expect_err("missing");
    for err in [err, err_missing] {
        let msg = err.to_string();
        assert!(!msg.contains('\n') && !msg.is_empty(), "{msg}");
    }
}

// ---------------------------------------------------------------------------------------------
// A real kill: a child process writes with hound and is SIGKILLed before it finalizes.
// ---------------------------------------------------------------------------------------------

/// The child side. Does nothing in a normal test run.
#[test]
fn child_process() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let path = PathBuf::from(std::env::var(CHILD_PATH_ENV).expect("path"));
    let file = fs::File::create(&path).expect("create");
    // Unbuffered: every sample reaches the file at once.
    let mut writer = hound::WavWriter::new(file, spec_i16(1)).expect("header");
    let samples = samples_i16(4000);
    for (i, &s) in samples.iter().enumerate() {
        if mode == "checkpoint" && i == 1000 {
            // Header sizes now say 1000 samples; the rest only reaches the data.
            writer.flush().expect("flush");
        }
        writer.write_sample(s).expect("write");
    }
    println!("{READY_MARK}");
    std::io::stdout().flush().unwrap();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

fn killed_writer(mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("take.wav");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, mode)
        .env(CHILD_PATH_ENV, &path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().unwrap();
    let ready = BufReader::new(stdout)
        .lines()
        .any(|l| l.is_ok_and(|l| l.contains(READY_MARK)));
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    assert!(ready, "the child did not get to write its samples");

    // hound cannot make sense of the stale header (or reads only the checkpoint).
    let stale = hound::WavReader::open(&path).map(|r| r.len());
    assert!(stale.as_ref().map_or(true, |&n| n < 4000), "{stale:?}");

    if mode == "checkpoint" {
        // A header that describes 1000 samples, all there, is trusted: the bytes after them
        // could as well be a chunk or junk of a finished file (w4l's own takes mark their
        // checkpoints unfinished, see `checkpoint_marked_unfinished_is_recovered_in_full`).
        // They are kept; only asked to, `recover` takes them as samples.
        let before = std::fs::read(&path).unwrap();
        let report = recover(&path).expect("recover");
        assert_eq!(report.repair.frames(), 1000);
        assert_eq!(report.repair.kept_after(), 6000);
        assert_eq!(std::fs::read(&path).unwrap()[8..], before[8..]);
        let options = RecoverOptions {
            samples_to_end: true,
            ..RecoverOptions::default()
        };
        let report = recover_with(&path, options).expect("recover to the end");
        assert_eq!(report.repair.frames(), 4000);
        assert_eq!(read_i16(&path), samples_i16(4000));
        return;
    }
    let report = recover(&path).expect("recover");
    assert!(report.repaired);
    assert_eq!(report.repair.frames(), 4000);
    assert_eq!(read_i16(&path), samples_i16(4000));
}

#[test]
fn checkpoint_marked_unfinished_is_recovered_in_full() {
    // As w4l's take files lie after a kill: a checkpoint of 1000 samples, the RIFF size
    // marked unknown, 3000 more samples and half of one.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("take.wav");
    write_i16(&path, 1, &samples_i16(4000));
    stale_sizes(&path, 40, w4l::wav::repair::UNKNOWN_LENGTH, 2000);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(&[0x55]).unwrap();
    drop(f);
    let report = recover(&path).expect("recover");
    assert_eq!(report.repair.frames(), 4000);
    assert_eq!(report.repair.dropped_bytes(), 1);
    assert_eq!(read_i16(&path), samples_i16(4000));
}

#[test]
fn a_killed_hound_writer_is_recovered() {
    killed_writer("plain");
}

#[test]
fn a_killed_hound_writer_after_a_checkpoint_is_recovered_in_full() {
    killed_writer("checkpoint");
}
