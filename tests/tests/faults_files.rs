//! `w4l clean` and `w4l recover` end to end: leftovers of killed processes are removed (and
//! only they), a WAV a crash left with a stale header becomes readable again.

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
    w4l(["recover", text.to_str().unwrap()]).fails(2, &["not a WAV file"]);
    assert_eq!(
        fs::read(&text).unwrap(),
        b"not audio at all, just some words"
    );

    let missing = base.path().join("missing.wav");
    w4l(["recover", missing.to_str().unwrap()]).fails(1, &["could not open", "missing.wav"]);
}
