//! `w4l clean` and `w4l recover` end to end: leftovers of killed processes are removed (and
//! only they), a WAV a crash left with a stale header becomes readable again, and a valid WAV
//! whose RIFF size leaves out what follows its samples (a LIST chunk, stray bytes) keeps every
//! sample and byte (only the RIFF size changes), with the original kept as FILE.wav.w4l-bak.

use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::time::Duration;

use w4l_tests::{json_u64, read_wav_i16, test_signal, w4l, w4l_with, write_wav_i16};

/// A private temporary directory for w4l (`W4L_TEMP_DIR`), inside a test directory.
fn private_dir(base: &Path) -> std::path::PathBuf {
    let dir = base.join("w4l");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

fn clean(dir: &Path, args: &[&str]) -> w4l_tests::Run {
    let mut all = vec!["clean"];
    all.extend_from_slice(args);
    w4l_with(
        all,
        &[("W4L_TEMP_DIR", dir.to_str().unwrap())],
        Duration::from_secs(60),
    )
}

#[test]
fn clean_removes_orphans_and_nothing_else() {
    let base = tempfile::tempdir().unwrap();
    let dir = private_dir(base.path());
    let outside = base.path().join("precious.wav");
    fs::write(&outside, b"precious").unwrap();

    // Orphans of a process that no longer runs (no lock file, or an unlocked one).
    let orphan_a = dir.join("w4l-99990-take-AbCdEfGhIj.wav");
    let orphan_b = dir.join("w4l-99990-spill-0123456789.wav");
    fs::write(&orphan_a, [0u8; 1000]).unwrap();
    fs::write(&orphan_b, [0u8; 24]).unwrap();
    fs::write(dir.join("w4l-99990.lock"), b"").unwrap();
    // Not ours to touch.
    let link = dir.join("w4l-99991-take-KKKKKKKKKK.wav");
    symlink(&outside, &link).unwrap();
    let foreign = dir.join("notes.txt");
    fs::write(&foreign, b"notes").unwrap();

    let dry = clean(&dir, &["--dry-run"]).ok();
    assert!(
        dry.stdout
            .contains("would remove 2 temporary files (1024 bytes)"),
        "{dry:#?}"
    );
    assert!(orphan_a.exists() && orphan_b.exists());

    let run = clean(&dir, &["--json"]).ok();
    assert_eq!(json_u64(&run.stdout, "bytes"), 1024, "{run:#?}");
    assert!(
        run.stdout.contains("w4l-99990-take-AbCdEfGhIj.wav"),
        "{run:#?}"
    );
    assert!(!orphan_a.exists() && !orphan_b.exists());
    assert!(!dir.join("w4l-99990.lock").exists());
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read(&outside).unwrap(), b"precious");
    assert_eq!(fs::read(&foreign).unwrap(), b"notes");

    let again = clean(&dir, &[]).ok();
    assert!(
        again.stdout.contains("removed 0 temporary files"),
        "{again:#?}"
    );
}

#[test]
fn clean_refuses_an_unsafe_directory() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("open");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    let orphan = dir.join("w4l-99990-take-AbCdEfGhIj.wav");
    fs::write(&orphan, b"x").unwrap();
    clean(&dir, &[]).fails(1, &["refusing", "W4L_TEMP_DIR"]);
    assert!(orphan.exists());
}

#[test]
fn recover_repairs_a_crashed_take() {
    let base = tempfile::tempdir().unwrap();
    let path = base.path().join("take.wav");
    let samples = test_signal(8000, 1, 7);
    write_wav_i16(&path, 16_000, 1, &samples);
    // As a killed writer leaves it: sizes 0, and a byte of a next sample.
    let mut f = OpenOptions::new().write(true).open(&path).unwrap();
    for offset in [4, 40] {
        f.seek(SeekFrom::Start(offset)).unwrap();
        f.write_all(&0u32.to_le_bytes()).unwrap();
    }
    f.seek(SeekFrom::End(0)).unwrap();
    f.write_all(&[0x7F]).unwrap();
    drop(f);

    let run = w4l(["recover", "--json", path.to_str().unwrap()]).ok();
    assert_eq!(json_u64(&run.stdout, "frames"), 8000, "{run:#?}");
    assert_eq!(json_u64(&run.stdout, "dropped_bytes"), 1, "{run:#?}");
    let (_, back) = read_wav_i16(&path);
    assert_eq!(back, samples);

    let again = w4l(["recover", path.to_str().unwrap()]).ok();
    assert!(
        again.stdout.contains("already a consistent WAV file"),
        "{again:#?}"
    );
}

#[test]
fn recover_refuses_what_is_not_a_wav() {
    let base = tempfile::tempdir().unwrap();
    let text = base.path().join("notes.wav");
    fs::write(&text, b"not audio at all, just some words").unwrap();
    w4l(["recover", text.to_str().unwrap()]).fails(2, &["not a WAV or FLAC file"]);
    assert_eq!(
        fs::read(&text).unwrap(),
        b"not audio at all, just some words"
    );

    let missing = base.path().join("missing.wav");
    w4l(["recover", missing.to_str().unwrap()]).fails(1, &["could not open", "missing.wav"]);
}

/// The bytes of a finished WAV file: `samples` at 16 kHz in `spec`'s format (16-bit, 24-bit in
/// WAVE_FORMAT_EXTENSIBLE, 32-bit float), each sample `s` stored as `s` (scaled for 24-bit).
fn finished_wav(dir: &Path, name: &str, spec: hound::WavSpec, samples: &[i16]) -> Vec<u8> {
    let path = dir.join(name);
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for &s in samples {
        match (spec.sample_format, spec.bits_per_sample) {
            (hound::SampleFormat::Float, _) => w.write_sample(f32::from(s) / 32768.0).unwrap(),
            (_, 24) => w.write_sample(i32::from(s) << 8).unwrap(),
            _ => w.write_sample(s).unwrap(),
        }
    }
    w.finalize().unwrap();
    let bytes = fs::read(&path).unwrap();
    fs::remove_file(&path).unwrap();
    bytes
}

/// Every sample of `path`, read back by hound one at a time, as the 16-bit values written.
fn samples_of(path: &Path) -> Vec<i16> {
    let mut r = hound::WavReader::open(path).unwrap();
    let spec = r.spec();
    match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, _) => r
            .samples::<f32>()
            .map(|s| (s.unwrap() * 32768.0) as i16)
            .collect(),
        (_, 24) => r
            .samples::<i32>()
            .map(|s| (s.unwrap() >> 8) as i16)
            .collect(),
        _ => r.samples::<i16>().map(|s| s.unwrap()).collect(),
    }
}

/// A `LIST` chunk of odd length (with its pad byte), as ffmpeg appends one.
fn list_chunk() -> Vec<u8> {
    let mut c = b"LIST".to_vec();
    c.extend_from_slice(&13u32.to_le_bytes());
    c.extend_from_slice(b"INFOISFTw4l\0\0\0");
    c
}

#[test]
fn recover_leaves_declared_samples_and_what_follows_them_alone_and_keeps_a_backup() {
    let base = tempfile::tempdir().unwrap();
    let specs = [
        (1, 16, hound::SampleFormat::Int),
        (2, 16, hound::SampleFormat::Int),
        (2, 24, hound::SampleFormat::Int),
        (1, 32, hound::SampleFormat::Float),
    ];
    let trailers: Vec<Vec<u8>> = vec![
        list_chunk(),
        b"123456789".to_vec(),
        vec![0xAB],
        vec![1, 2, 3],
        vec![7; 4],
        vec![9; 6],
    ];
    for (i, (channels, bits, format)) in specs.into_iter().enumerate() {
        let spec = hound::WavSpec {
            channels,
            sample_rate: 16_000,
            bits_per_sample: bits,
            sample_format: format,
        };
        let samples = test_signal(4000, channels, 50 + i as u32);
        let wav = finished_wav(base.path(), "w.wav", spec, &samples);
        for (j, trailer) in trailers.iter().enumerate() {
            let what = format!(
                "{channels} ch {bits}-bit {format:?} + {} bytes",
                trailer.len()
            );
            let path = base.path().join(format!("take-{i}-{j}.wav"));
            let mut original = wav.clone();
            original.extend_from_slice(trailer);
            fs::write(&path, &original).unwrap();

            let run = w4l(["recover", "--json", path.to_str().unwrap()]).ok();
            assert_eq!(
                json_u64(&run.stdout, "dropped_bytes"),
                0,
                "{what}: {run:#?}"
            );
            assert_eq!(
                json_u64(&run.stdout, "kept_bytes_after"),
                trailer.len() as u64,
                "{what}: {run:#?}"
            );
            // The samples, sample by sample; the bytes after them, byte by byte; only the
            // RIFF size differs.
            assert_eq!(samples_of(&path), samples, "{what}");
            let repaired = fs::read(&path).unwrap();
            assert_eq!(repaired.len(), original.len(), "{what}");
            assert_eq!(repaired[8..], original[8..], "{what}");
            let riff = u32::from_le_bytes(repaired[4..8].try_into().unwrap());
            assert_eq!(riff as usize + 8, repaired.len(), "{what}");
            // The way back: the original, byte for byte.
            let backup = base.path().join(format!("take-{i}-{j}.wav.w4l-bak"));
            assert_eq!(fs::read(&backup).unwrap(), original, "{what}");
            let again = w4l(["recover", path.to_str().unwrap()]).ok();
            assert!(again.stdout.contains("already a consistent"), "{again:#?}");
        }
    }
}

#[test]
fn recover_dry_run_changes_nothing_and_an_old_backup_is_never_overwritten() {
    let base = tempfile::tempdir().unwrap();
    let path = base.path().join("take.wav");
    let samples = test_signal(3000, 2, 60);
    write_wav_i16(&path, 16_000, 2, &samples);
    let mut original = fs::read(&path).unwrap();
    original.extend_from_slice(&list_chunk());
    fs::write(&path, &original).unwrap();
    let backup = base.path().join("take.wav.w4l-bak");

    let dry = w4l(["recover", "--dry-run", path.to_str().unwrap()]).ok();
    assert!(dry.stdout.contains("would repair"), "{dry:#?}");
    assert_eq!(fs::read(&path).unwrap(), original);
    assert!(!backup.exists());

    // A backup of an earlier repair stays; this one is refused, the file unchanged.
    fs::write(&backup, b"an earlier original").unwrap();
    w4l(["recover", path.to_str().unwrap()]).fails(2, &["take.wav.w4l-bak", "--no-backup"]);
    assert_eq!(fs::read(&path).unwrap(), original);
    assert_eq!(fs::read(&backup).unwrap(), b"an earlier original");

    // --no-backup repairs without one.
    let run = w4l(["recover", "--no-backup", path.to_str().unwrap()]).ok();
    assert!(run.stdout.contains("repaired"), "{run:#?}");
    assert_eq!(fs::read(&backup).unwrap(), b"an earlier original");
    assert_eq!(read_wav_i16(&path).1, samples);
}

#[test]
fn recover_takes_everything_after_an_unfinished_writers_checkpoint() {
    // As w4l's take files lie after a kill: the data size of the last header checkpoint, the
    // RIFF size marked unknown (0xFFFFFFFF), samples (and half a frame) after the checkpoint.
    let base = tempfile::tempdir().unwrap();
    let path = base.path().join("killed.wav");
    let samples = test_signal(5000, 2, 61);
    write_wav_i16(&path, 48_000, 2, &samples);
    let mut bytes = fs::read(&path).unwrap();
    bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    bytes[40..44].copy_from_slice(&(1000u32 * 4).to_le_bytes());
    bytes.extend_from_slice(&[0x12, 0x34]);
    fs::write(&path, &bytes).unwrap();
    assert_eq!(read_wav_i16(&path).1, samples[..2000], "plays as it lies");

    let run = w4l(["recover", "--json", path.to_str().unwrap()]).ok();
    assert_eq!(json_u64(&run.stdout, "frames"), 5000, "{run:#?}");
    assert_eq!(json_u64(&run.stdout, "dropped_bytes"), 2, "{run:#?}");
    assert_eq!(read_wav_i16(&path).1, samples);
    assert_eq!(
        fs::read(base.path().join("killed.wav.w4l-bak")).unwrap(),
        bytes
    );

    // Another writer's checkpoint, unmarked: its header describes a finished file, so the
    // bytes after it are kept but left out, until `--samples-to-end` asks for them.
    let other = base.path().join("other.wav");
    write_wav_i16(&other, 48_000, 2, &samples);
    let mut bytes = fs::read(&other).unwrap();
    bytes[4..8].copy_from_slice(&(36u32 + 4000).to_le_bytes());
    bytes[40..44].copy_from_slice(&4000u32.to_le_bytes());
    fs::write(&other, &bytes).unwrap();
    let run = w4l(["recover", "--no-backup", "--json", other.to_str().unwrap()]).ok();
    assert_eq!(json_u64(&run.stdout, "frames"), 1000, "{run:#?}");
    assert_eq!(fs::read(&other).unwrap()[8..], bytes[8..]);
    let run = w4l([
        "recover",
        "--samples-to-end",
        "--json",
        other.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(json_u64(&run.stdout, "frames"), 5000, "{run:#?}");
    assert_eq!(read_wav_i16(&other).1, samples);
}
