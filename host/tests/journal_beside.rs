//! A take whose output is on another disk than the temporary directory is journaled beside
//! the output (`<output dir>/.w4l/`), so saving it is a rename there too: no second copy of
//! the audio is written. The other disk is a 64 MiB ext4 image on a loop device (root only; the
//! test says why and returns where that cannot be had). Measured with this process's own
//! write counter (`wchar` of `/proc/self/io`), so this file holds one test.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use w4l::take::file::{TakeFile, TakeFileConfig};
use w4l::tempfiles::{ResourceManager, pointed_dirs};
use w4l::wav::SampleFormat;
use w4l_core::accountant::Accountant;

/// Bytes this process has handed to `write` and friends so far.
fn written() -> u64 {
    let io = fs::read_to_string("/proc/self/io").expect("/proc/self/io");
    io.lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("wchar")
}

/// An ext4 image mounted on `dir` for the test; unmounted (and its loop device freed) on drop.
struct LoopExt4(PathBuf);

impl LoopExt4 {
    fn mount(dir: &Path) -> Result<LoopExt4, String> {
        let image = dir.with_extension("img");
        fs::create_dir(dir).map_err(|e| e.to_string())?;
        let (image, at) = (image.to_str().expect("utf-8"), dir.to_str().expect("utf-8"));
        for (program, args) in [
            ("truncate", vec!["-s", "64M", image]),
            ("mkfs.ext4", vec!["-q", image]),
            ("mount", vec!["-o", "loop", image, at]),
        ] {
            let out = Command::new(program).args(&args).output();
            match out {
                Ok(out) if out.status.success() => {}
                Ok(out) => return Err(String::from_utf8_lossy(&out.stderr).into_owned()),
                Err(e) => return Err(format!("{program}: {e}")),
            }
        }
        Ok(LoopExt4(dir.to_owned()))
    }
}

impl Drop for LoopExt4 {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-d").arg(&self.0).status();
    }
}

/// Writes `samples` (48 kHz stereo) to a take for `output` with its temporary directory
/// `temp`; returns the take and the directory its journal went to.
fn take_for(temp: &Arc<ResourceManager>, output: &Path, samples: &[i16]) -> (TakeFile, PathBuf) {
    let config = TakeFileConfig {
        rate: 48_000,
        channels: 2,
        format: SampleFormat::I16,
        max_data_bytes: u64::MAX,
        purpose: "take",
        output: Some(output.to_owned()),
    };
    let ledger = Arc::new(Arc::new(Accountant::new(1 << 30, 1 << 30)));
    let mut take = TakeFile::create(temp.clone(), ledger, config).expect("take");
    take.write(samples).expect("write");
    let dir = take.files()[0].parent().expect("a directory").to_owned();
    (take, dir)
}

#[test]
fn a_take_for_another_disk_is_journaled_beside_its_output_and_saved_by_a_rename() {
    let base = tempfile::tempdir().expect("dir");
    let temp = ResourceManager::open(base.path().join("w4l")).expect("temp manager");
    let samples = common::signal(10 * 48_000 * 2, 5);
    let size = samples.len() as u64 * 2;

    // Same file system: the journal stays in the temporary directory, as before.
    let same = base.path().join("same.wav");
    let (take, dir) = take_for(&temp, &same, &samples);
    assert_eq!(dir, temp.dir());
    assert!(pointed_dirs(temp.dir()).is_empty());
    take.persist(&same).expect("save");
    assert!(!base.path().join(".w4l").exists());

    let disk = match LoopExt4::mount(&base.path().join("ext4")) {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("skipped: no loop-mounted ext4 here ({why})");
            return;
        }
    };
    let output = disk.0.join("take.wav");
    let (take, dir) = take_for(&temp, &output, &samples);
    assert_eq!(dir, disk.0.join(".w4l"));
    assert_eq!(fs::metadata(&dir).expect("dir").mode() & 0o777, 0o700);
    assert_eq!(
        fs::metadata(&take.files()[0]).expect("journal").mode() & 0o777,
        0o600
    );
    assert_eq!(
        pointed_dirs(temp.dir()).len(),
        1,
        "no pointer to {}",
        dir.display()
    );

    let before = written();
    take.persist(&output).expect("save");
    let wrote = written() - before;
    println!("the save wrote {wrote} bytes for a {size}-byte take");
    assert!(
        wrote < size / 100,
        "the save wrote {wrote} bytes for a {size}-byte take: not a rename"
    );
    assert_eq!(common::read_i16(&output), samples);
    assert!(!dir.exists(), "{} is left", dir.display());
    assert!(pointed_dirs(temp.dir()).is_empty(), "the pointer is left");
    let mut left: Vec<_> = fs::read_dir(&disk.0)
        .expect("list")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["lost+found", "take.wav"]);
    drop(disk);
}
