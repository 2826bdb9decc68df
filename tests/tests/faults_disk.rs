//! Disk faults, end to end: the disk filling up mid-take (ENOSPC on a 1 MiB tmpfs, or, where
//! mounting is not allowed, `RLIMIT_FSIZE` giving EFBIG at the same size) and an output
//! directory that does not accept files (a read-only tmpfs, else an immutable directory as root,
//! else mode 0500).
//!
//! A full disk must end the take with one clear error line and an output finalized up to the
//! last sample that was written (checked sample by sample against the input); an unwritable
//! output directory must be refused before anything is recorded. In every case no w4l file is
//! left behind.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use w4l_tests::faults::{Spawned, Tmpfs, assert_no_leftovers, current_uid, private_dir};
use w4l_tests::{Run, read_wav_i16, test_signal, w4l_bin, write_wav_i16};

const RATE: u32 = 48_000;
const CHANNELS: u16 = 2;
const LIMIT: Duration = Duration::from_secs(60);
/// The size of the small file system.
const SMALL: u64 = 1 << 20;

/// A directory that holds at most [`SMALL`] bytes: a tmpfs of that size where mounting is
/// allowed; otherwise a plain directory, and the limit comes from `RLIMIT_FSIZE` on w4l.
struct Small {
    dir: PathBuf,
    mount: Option<Tmpfs>,
}

impl Small {
    fn new(at: &Path) -> Small {
        let mount = Tmpfs::mount(at, &format!("size={SMALL}"));
        if mount.is_none() {
            fs::set_permissions(at, fs::Permissions::from_mode(0o700)).expect("chmod");
        }
        Small {
            dir: at.to_owned(),
            mount,
        }
    }

    /// `w4l args…` with `env`, under `RLIMIT_FSIZE` = [`SMALL`] (SIGXFSZ ignored, so a write
    /// past the limit fails with EFBIG) when there is no tmpfs.
    fn command(&self, args: &[String]) -> Command {
        let mut cmd = Command::new(w4l_bin());
        cmd.args(args);
        if self.mount.is_none() {
            // SAFETY: the closure runs in the forked child before exec and only calls
            // async-signal-safe functions (signal, setrlimit) on stack data.
            unsafe {
                cmd.pre_exec(|| limit_file_size(SMALL));
            }
        }
        cmd
    }

    fn run(&self, args: &[String], env: &[(&str, &str)]) -> Run {
        Spawned::start_command(self.command(args), env).wait(LIMIT)
    }
}

/// Ignores SIGXFSZ and sets `RLIMIT_FSIZE` through the `prlimit` syscall of the C library,
/// without a libc crate: `signal(2)` and `setrlimit(2)` declared here.
fn limit_file_size(bytes: u64) -> std::io::Result<()> {
    #[repr(C)]
    struct Rlimit {
        cur: u64,
        max: u64,
    }
    unsafe extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
        fn setrlimit(resource: i32, rlim: *const Rlimit) -> i32;
    }
    const SIGXFSZ: i32 = 25;
    const SIG_IGN: usize = 1;
    const RLIMIT_FSIZE: i32 = 1;
    let lim = Rlimit {
        cur: bytes,
        max: bytes,
    };
    // SAFETY: plain system calls with valid arguments; `lim` outlives the call.
    unsafe {
        signal(SIGXFSZ, SIG_IGN);
        if setrlimit(RLIMIT_FSIZE, &lim) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn input(base: &Path, seconds: usize, seed: u32) -> (PathBuf, Vec<i16>) {
    let path = base.join("in.wav");
    let samples = test_signal(seconds * RATE as usize, CHANNELS, seed);
    write_wav_i16(&path, RATE, CHANNELS, &samples);
    (path, samples)
}

fn record_args(input: &Path, output: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "record".into(),
        "--input".into(),
        input.display().to_string(),
        "-o".into(),
        output.display().to_string(),
    ];
    v.extend(extra.iter().map(|s| (*s).to_owned()));
    v
}

/// The one error line of a full-disk failure: exit 1, one line that says the disk is full.
#[track_caller]
fn assert_disk_full_error(run: &Run) {
    let line = run.fails(1, &[]);
    let lower = line.to_lowercase();
    assert!(
        [
            "no space left",
            "file too large",
            "disk is full",
            "disk full",
            "free space"
        ]
        .iter()
        .any(|n| lower.contains(n)),
        "the error does not say the disk is full: {line}"
    );
}

/// File mode, the journal's disk fills up after about 5 s of 48 kHz stereo: the take goes on
/// in memory (warned on stderr), and the output holds all of it, sample for sample.
#[test]
fn disk_full_in_file_mode_keeps_the_take_in_memory_and_loses_nothing() {
    let base = tempfile::tempdir().expect("temp dir");
    let small = Small::new(&base.path().join("small"));
    let temp = small.dir.join("w4l");
    let (input, samples) = input(base.path(), 10, 31);
    let output = base.path().join("take.wav");
    let env = [("W4L_TEMP_DIR", temp.to_str().expect("utf-8"))];
    let run = small.run(&record_args(&input, &output, &["--mode", "file"]), &env);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let lower = run.stderr.to_lowercase();
    assert!(
        lower.contains("file too large") || lower.contains("no space left"),
        "the warning does not say the disk is full: {run:#?}"
    );
    assert!(run.stderr.contains("goes on in memory"), "{run:#?}");

    let (spec, back) = read_wav_i16(&output);
    assert_eq!((spec.sample_rate, spec.channels), (RATE, CHANNELS));
    assert!(back == samples, "the output is not the take");
    assert_no_leftovers(&temp, &[]);
    assert_no_leftovers(base.path(), &[]);
}

/// Stream mode, the output directory is the small one: writing the take fails part-way. One
/// error line saying where the take is kept instead (the recovered-takes directory), the whole
/// take there, and nothing partial at the output.
#[test]
fn disk_full_in_stream_mode_keeps_the_whole_take_and_says_where() {
    let base = tempfile::tempdir().expect("temp dir");
    let temp = private_dir(base.path());
    let small = Small::new(&base.path().join("small"));
    let (input, samples) = input(base.path(), 10, 32);
    let output = small.dir.join("take.wav");
    let data = base.path().join("data");
    let env = [
        ("W4L_TEMP_DIR", temp.to_str().expect("utf-8")),
        ("XDG_DATA_HOME", data.to_str().expect("utf-8")),
    ];
    let run = small.run(&record_args(&input, &output, &[]), &env);
    assert_disk_full_error(&run);
    let kept = fs::read_dir(data.join("w4l/recovered"))
        .expect("the recovered-takes directory")
        .flatten()
        .map(|e| e.path())
        .next()
        .expect("the take was kept");
    assert!(
        run.stderr
            .contains(&format!("the take is safe in {}", kept.display())),
        "{run:#?}"
    );
    assert_eq!(read_wav_i16(&kept).1, samples);
    assert!(!output.exists());
    assert_no_leftovers(&temp, &[]);
    assert_no_leftovers(&small.dir, &[]);
}

/// A directory w4l cannot create files in, even as root: a read-only tmpfs; where mounting is
/// not allowed, an immutable directory (`chattr +i`, root) or mode 0500 (anyone else).
struct Unwritable {
    dir: PathBuf,
    _mount: Option<Tmpfs>,
    immutable: bool,
}

impl Unwritable {
    fn new(at: &Path) -> Unwritable {
        if let Some(m) = Tmpfs::mount(at, "ro,size=64k") {
            return Unwritable {
                dir: at.to_owned(),
                _mount: Some(m),
                immutable: false,
            };
        }
        let immutable = current_uid() == 0
            && Command::new("chattr")
                .arg("+i")
                .arg(at)
                .status()
                .is_ok_and(|s| s.success());
        if !immutable {
            fs::set_permissions(at, fs::Permissions::from_mode(0o500)).expect("chmod 500");
        }
        Unwritable {
            dir: at.to_owned(),
            _mount: None,
            immutable,
        }
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        if self.immutable {
            let _ = Command::new("chattr").arg("-i").arg(&self.dir).status();
        } else {
            let _ = fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700));
        }
    }
}

/// The output directory is checked before recording starts: a usage error (exit 2) at once,
/// even with a 20 s real-time input, and no file anywhere.
fn unwritable_output_dir_is_refused_before_recording(mode: &str) {
    let base = tempfile::tempdir().expect("temp dir");
    let temp = private_dir(base.path());
    let (input, _) = input(base.path(), 20, 33);
    let unwritable = Unwritable::new(&base.path().join("readonly"));
    let dir = unwritable.dir.clone();
    let output = dir.join("take.wav");
    let env = [("W4L_TEMP_DIR", temp.to_str().expect("utf-8"))];
    let started = Instant::now();
    let run = Spawned::start(
        &record_args(&input, &output, &["--realtime", "--mode", mode]),
        &env,
    )
    .wait(LIMIT);
    let took = started.elapsed();
    run.fails(2, &["cannot create files in", "readonly"]);
    assert!(
        took < Duration::from_secs(10),
        "the refusal took {took:?}: recording started first"
    );
    assert!(!output.exists());
    assert_eq!(
        fs::read_dir(&dir).expect("list").count(),
        0,
        "files in the unwritable directory"
    );
    assert_no_leftovers(&temp, &[]);
    assert_eq!(
        fs::read_dir(&temp).expect("list").count(),
        0,
        "files in the temporary directory"
    );
    assert_no_leftovers(base.path(), &[]);
}

#[test]
fn unwritable_output_dir_is_refused_before_recording_in_stream_mode() {
    unwritable_output_dir_is_refused_before_recording("stream");
}

#[test]
fn unwritable_output_dir_is_refused_before_recording_in_file_mode() {
    unwritable_output_dir_is_refused_before_recording("file");
}

/// A take that had to drop blocks because its spill file could not be created (the temporary
/// directory is unusable: here a path through a regular file, which stops root too) is saved,
/// but the exit status says audio was lost (3), and so does the summary, in text and JSON.
#[test]
fn a_take_that_lost_audio_to_an_unusable_temporary_directory_exits_3() {
    let base = tempfile::tempdir().expect("temp dir");
    let input = base.path().join("in.wav");
    let samples = test_signal(20 * 16_000, 1, 71);
    write_wav_i16(&input, 16_000, 1, &samples);
    let not_a_dir = base.path().join("file");
    fs::write(&not_a_dir, b"a file").expect("write");
    let temp = not_a_dir.join("w4l");
    let env = [("W4L_TEMP_DIR", temp.to_str().expect("utf-8"))];
    for (json, budget) in [(false, "400k"), (true, "400k"), (false, "300k")] {
        let output = base.path().join(format!("out-{json}-{budget}.wav"));
        let mut args: Vec<String> = ["record", "--window", "1s", "--budget", budget, "--input"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        args.push(input.display().to_string());
        args.push("-o".into());
        args.push(output.display().to_string());
        if json {
            args.push("--json".into());
        }
        let run = Spawned::start(&args, &env).wait(LIMIT);
        assert_eq!(run.code, Some(3), "{run:#?}");
        let (_, back) = read_wav_i16(&output);
        let lost = samples.len() - back.len();
        assert!(lost > 0, "{run:#?}");
        // The output is the take's newest part, exactly.
        assert_eq!(back[..], samples[lost..]);
        if json {
            let line = run.stdout.trim();
            assert_eq!(w4l_tests::json_u64(line, "frames_dropped"), lost as u64);
        } else {
            let expected = format!(
                "lost: {:.3} s of audio ({lost} frames) missing from",
                lost as f64 / 16_000.0
            );
            assert!(run.stdout.contains(&expected), "{expected:?} in {run:#?}");
        }
        assert!(run.stderr.contains("given up"), "{run:#?}");
        assert_no_leftovers(base.path(), &[]);
    }
    // With room in memory nothing is lost: exit 0.
    let output = base.path().join("whole.wav");
    let args = [
        "record".to_owned(),
        "--input".to_owned(),
        input.display().to_string(),
        "-o".to_owned(),
        output.display().to_string(),
    ];
    let run = Spawned::start(&args, &env).wait(LIMIT);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(read_wav_i16(&output).1, samples);
}
