//! A take whose output is on the journal's file system finishes by a rename: no second copy of
//! the audio is written. Measured with this process's own write counter (`wchar` of
//! `/proc/self/io`), so this file holds one test and runs in a process of its own.

mod common;

use std::path::Path;
use std::time::Duration;

use w4l::prelude::*;
use w4l::tempfiles::ResourceManager;

/// Bytes this process has handed to `write` and friends so far.
fn written() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io");
    io.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("wchar")
}

/// Records `input` with the journal in `temp` and saves it to `output`; the bytes the save
/// wrote.
fn bytes_written_by_save(input: &Path, temp: &Path, output: &Path) -> u64 {
    let session = Dictation::new()
        .replay(input, false)
        .temp_files(ResourceManager::open(temp).expect("temp manager"))
        .window(Duration::from_secs(1))
        .start()
        .expect("start");
    assert!(session.wait(Duration::from_secs(60)));
    let take = session.stop().expect("stop");
    let before = written();
    take.save(output).expect("save");
    written() - before
}

#[test]
fn saving_next_to_the_journal_is_a_rename_and_elsewhere_a_copy() {
    let dir = tempfile::tempdir().expect("dir");
    let input = dir.path().join("in.wav");
    let samples = common::signal(10 * 48_000 * 2, 3);
    common::write_wav(&input, 48_000, 2, &samples);
    let size = std::fs::metadata(&input).expect("input").len();

    let same = dir.path().join("out.wav");
    let renamed = bytes_written_by_save(&input, &dir.path().join("w4l"), &same);
    assert!(
        renamed < size / 100,
        "the save wrote {renamed} bytes for a {size}-byte take: not a rename"
    );
    assert_eq!(common::read_i16(&same), samples);

    // Control: onto another file system (tmpfs), the same save copies the take.
    let Ok(shm) = tempfile::tempdir_in("/dev/shm") else {
        return;
    };
    let other = shm.path().join("out.wav");
    let copied = bytes_written_by_save(&input, &dir.path().join("w4l-2"), &other);
    assert!(
        copied >= size - 100,
        "a copy of {size} bytes wrote only {copied}"
    );
    assert_eq!(common::read_i16(&other), samples);
}
