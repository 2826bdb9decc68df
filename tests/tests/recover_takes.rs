//! Takes recovered, not reaped, end to end (issue 13 point 3, issue 16 items 2-4): `w4l record`
//! killed with SIGKILL mid-take or mid-save, an output that cannot be written, and the default
//! directory on a machine whose cache and `/tmp` are RAM. Each test has its own temporary
//! directory (`W4L_TEMP_DIR`) and data directory (`XDG_DATA_HOME`, where takes without an
//! output path are recovered); every recovered take is compared with the input sample by sample.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use w4l_tests::faults::{
    LoopExt4, Spawned, Tmpfs, assert_no_leftovers, assert_prefix, data_bytes_on_disk, private_dir,
    temp_wavs, temp_wavs_of, w4l_leftovers,
};
use w4l_tests::{json_u64, read_wav_i16, test_signal, w4l_bin, w4l_with, write_wav_i16};

const RATE: u32 = 48_000;
const CHANNELS: u16 = 2;
const PER_SECOND: usize = RATE as usize * CHANNELS as usize;
const LIMIT: Duration = Duration::from_secs(60);

/// One test's directories and input.
struct Setup {
    base: tempfile::TempDir,
    temp: PathBuf,
    input: PathBuf,
    out: PathBuf,
    samples: Vec<i16>,
    /// `XDG_DATA_HOME` for w4l, as a string for [`Setup::env`].
    data: String,
}

impl Setup {
    fn new(seconds: usize, seed: u32) -> Setup {
        let base = tempfile::tempdir().expect("temp dir");
        let temp = private_dir(base.path());
        let input = base.path().join("in.wav");
        let samples = test_signal(seconds * RATE as usize, CHANNELS, seed);
        write_wav_i16(&input, RATE, CHANNELS, &samples);
        let out = base.path().join("out");
        fs::create_dir(&out).expect("out dir");
        let data = base.path().join("data").display().to_string();
        Setup {
            base,
            temp,
            input,
            out,
            samples,
            data,
        }
    }

    fn recovered_dir(&self) -> PathBuf {
        Path::new(&self.data).join("w4l/recovered")
    }

    fn env(&self) -> Vec<(&str, &str)> {
        vec![
            ("W4L_TEMP_DIR", self.temp.to_str().expect("utf-8")),
            ("XDG_DATA_HOME", &self.data),
        ]
    }

    fn record(&self, output: &Path, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = ["record", "--json", "--input"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        args.push(self.input.display().to_string());
        args.push("-o".into());
        args.push(output.display().to_string());
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }

    /// The recovered takes, sorted: at the intended output (`out/take.wav`, which the killed
    /// take's manifest names), else in the recovered directory.
    fn recovered(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(self.recovered_dir())
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        let intended = self.out.join("take.wav");
        if intended.exists() {
            files.push(intended);
        }
        files.sort();
        files
    }

    /// Nothing of w4l's in the temporary, output and test directories.
    #[track_caller]
    fn assert_clean(&self) {
        assert_no_leftovers(&self.temp, &[]);
        assert_no_leftovers(&self.out, &[]);
        assert_no_leftovers(self.base.path(), &[]);
    }
}

/// The permissions of a new file of this process (and of w4l, which inherits its umask).
fn ordinary_mode() -> u32 {
    let umask = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022);
    0o666 & !umask
}

/// Starts a real-time take in `mode`, waits until its journal holds `seconds` of audio on
/// disk, kills it; returns the samples that were on disk just before the kill.
fn kill_mid_take(s: &Setup, mode: &str, seconds: usize) -> usize {
    let output = s.out.join("take.wav");
    let args = s.record(&output, &["--realtime", "--mode", mode]);
    let mut w = Spawned::start(&args, &s.env());
    let pid = w.pid();
    let (journal, _) = w.until(LIMIT, "the journal holds audio", |_| {
        let journal = temp_wavs_of(&s.temp, pid).into_iter().next()?;
        let on_disk = data_bytes_on_disk(&journal);
        (on_disk >= (seconds * PER_SECOND * 2) as u64).then_some((journal, on_disk))
    });
    let on_disk = data_bytes_on_disk(&journal) as usize / 2;
    let run = w.kill();
    assert_eq!(run.code, None, "not killed: {run:#?}");
    assert!(journal.exists(), "SIGKILL left no journal");
    assert!(!output.exists());
    on_disk
}

/// The one recovered take: the input's start, with every sample that was on disk before the
/// kill; ordinary permissions.
#[track_caller]
fn assert_one_recovered(s: &Setup, on_disk: usize) -> PathBuf {
    let recovered = s.recovered();
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    let (spec, back) = read_wav_i16(&recovered[0]);
    assert_eq!((spec.sample_rate, spec.channels), (RATE, CHANNELS));
    let n = assert_prefix(&back, &s.samples);
    assert!(
        n >= on_disk,
        "recovered {n} samples, {on_disk} were on disk"
    );
    let mode = fs::metadata(&recovered[0]).expect("stat").mode() & 0o777;
    assert_eq!(mode, ordinary_mode(), "{mode:o}");
    recovered[0].clone()
}

#[test]
fn a_killed_stream_take_is_recovered_by_the_next_record() {
    let s = Setup::new(20, 71);
    let on_disk = kill_mid_take(&s, "stream", 2);
    // Any start recovers it: here another take.
    let short = s.base.path().join("short.wav");
    let short_samples = test_signal(RATE as usize / 4, CHANNELS, 72);
    write_wav_i16(&short, RATE, CHANNELS, &short_samples);
    let next = s.out.join("next.wav");
    let args = [
        "record",
        "--input",
        short.to_str().expect("utf-8"),
        "-o",
        next.to_str().expect("utf-8"),
    ];
    let run = w4l_with(args, &s.env(), LIMIT).ok();
    let recovered = assert_one_recovered(&s, on_disk);
    assert!(
        run.stderr.contains("note: recovered")
            && run.stderr.contains(recovered.to_str().expect("utf-8")),
        "the start did not say so: {run:#?}"
    );
    assert_eq!(read_wav_i16(&next).1, short_samples);
    s.assert_clean();
}

#[test]
fn a_killed_file_take_is_listed_then_recovered_by_w4l_recover() {
    let s = Setup::new(20, 73);
    let on_disk = kill_mid_take(&s, "file", 2);
    let list = w4l_with(["recover", "--list"], &s.env(), LIMIT).ok();
    assert_eq!(list.stdout.lines().count(), 1, "{list:#?}");
    assert!(list.stdout.contains("left by a dead process"), "{list:#?}");
    assert!(s.recovered().is_empty(), "--list changed something");

    let run = w4l_with(["recover"], &s.env(), LIMIT).ok();
    let recovered = assert_one_recovered(&s, on_disk);
    assert!(
        run.stdout.contains(recovered.to_str().expect("utf-8")),
        "{run:#?}"
    );
    let list = w4l_with(["recover", "--list"], &s.env(), LIMIT).ok();
    assert!(list.stdout.starts_with("no unfinished takes"), "{list:#?}");
    s.assert_clean();
}

#[test]
fn w4l_clean_recovers_a_killed_take_instead_of_removing_it() {
    let s = Setup::new(20, 74);
    let on_disk = kill_mid_take(&s, "stream", 1);
    let dry = w4l_with(["clean", "--dry-run"], &s.env(), LIMIT).ok();
    assert!(dry.stdout.contains("would recover"), "{dry:#?}");
    assert!(s.recovered().is_empty());
    let run = w4l_with(["clean", "--json"], &s.env(), LIMIT).ok();
    assert_eq!(
        json_u64(&run.stdout, "bytes"),
        0,
        "a take was reaped: {run:#?}"
    );
    let recovered = assert_one_recovered(&s, on_disk);
    assert!(
        run.stdout.contains(recovered.to_str().expect("utf-8")),
        "{run:#?}"
    );
    s.assert_clean();
}

#[test]
fn any_command_recovers_a_killed_take_even_monitor() {
    let s = Setup::new(20, 79);
    let on_disk = kill_mid_take(&s, "file", 1);
    let args = ["monitor", "--count", "1", "--interval", "10ms"];
    let run = w4l_with(args, &s.env(), LIMIT).ok();
    let recovered = assert_one_recovered(&s, on_disk);
    assert!(
        run.stderr.contains(&format!("to {}", recovered.display())),
        "{run:#?}"
    );
    s.assert_clean();
}

/// The output on a full file system (a 1 MiB tmpfs), the take on disk: the save fails, the
/// error says where the take is, and it is all there.
#[test]
fn a_take_whose_output_cannot_be_written_is_kept_and_the_error_says_where() {
    let s = Setup::new(6, 75);
    let Some(full) = Tmpfs::mount(&s.base.path().join("full"), "size=1m") else {
        eprintln!("skipped: mounting a tmpfs is not allowed here");
        return;
    };
    for mode in ["file", "stream"] {
        let output = full.path().join(format!("{mode}.wav"));
        let run = w4l_with(s.record(&output, &["--mode", mode]), &s.env(), LIMIT);
        let line = run.fails(1, &["No space left", "the take is safe in"]);
        let recovered = s.recovered();
        let kept = recovered
            .iter()
            .find(|p| line.contains(p.to_str().expect("utf-8")))
            .unwrap_or_else(|| panic!("{line} names none of {recovered:?}"));
        assert_eq!(read_wav_i16(kept).1, s.samples, "{mode} mode");
        assert!(!output.exists());
        assert_no_leftovers(full.path(), &[]);
        s.assert_clean();
    }
}

/// Polls `dir` every millisecond for a name `hidden` accepts, while `w` runs; kills `w` as soon
/// as one appears. Returns whether it caught one (the save may have been too quick).
fn kill_when_hidden_file_appears(w: Spawned, dir: &Path, hidden: &dyn Fn(&str) -> bool) -> bool {
    // The whole replay comes first: a debug build on a loaded machine needs more than LIMIT.
    let deadline = Instant::now() + 3 * LIMIT;
    let mut w = w;
    while Instant::now() < deadline {
        let seen = fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .any(|e| hidden(&e.file_name().to_string_lossy()))
            })
            .unwrap_or(false);
        if seen {
            let run = w.kill();
            return run.code.is_none();
        }
        if w.has_exited() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("no hidden file appeared in {}", dir.display());
}

/// A kill during the save leaves hidden files beside the output; the next start removes them
/// (and finishes the take that was being saved, when its journal is still there).
fn killed_during_save(mode: &str, output_dir: &Path, s: &Setup, hidden: &dyn Fn(&str) -> bool) {
    for attempt in 0..5 {
        let output = output_dir.join(format!("take-{attempt}.wav"));
        let args = s.record(&output, &["--mode", mode, "--budget", "256MiB"]);
        let w = Spawned::start(&args, &s.env());
        if !kill_when_hidden_file_appears(w, output_dir, hidden) || output.exists() {
            let _ = fs::remove_file(&output);
            continue; // the save won the race; try again
        }
        let left = w4l_leftovers(output_dir, &[]);
        assert!(!left.is_empty(), "the kill left nothing to find");
        let run = w4l_with(["clean"], &s.env(), LIMIT).ok();
        assert_eq!(
            w4l_leftovers(output_dir, &[]),
            Vec::<String>::new(),
            "w4l clean left {left:?}: {run:#?}"
        );
        s.assert_clean();
        return;
    }
    panic!("the save was never caught in the act in {mode} mode");
}

#[test]
fn a_kill_during_a_memory_mode_save_leaves_nothing_after_the_next_start() {
    let s = Setup::new(200, 76);
    let out = s.out.clone();
    killed_during_save("memory", &out, &s, &|n| n.ends_with(".w4l-tmp"));
    assert!(s.recovered().is_empty(), "memory mode has no journal");
}

#[test]
fn a_kill_during_a_copy_to_another_file_system_leaves_nothing_and_the_take_is_recovered() {
    let s = Setup::new(200, 77);
    let Some(other) = Tmpfs::mount(&s.base.path().join("other"), "size=200m") else {
        eprintln!("skipped: mounting a tmpfs is not allowed here");
        return;
    };
    killed_during_save("file", other.path(), &s, &|n| {
        n.starts_with(".w4l-partial-")
    });
    // Recovered at its intended output (the manifest names it), on the other file system.
    let recovered: Vec<PathBuf> = fs::read_dir(other.path())
        .expect("list")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    assert_eq!(read_wav_i16(&recovered[0]).1, s.samples);
}

/// `-o` on another disk (a loop-mounted ext4): the journal is written beside it, in
/// `<out>/.w4l/` (0700, the journal 0600), led to by a pointer in the temporary directory; a
/// `kill -9`'d take there is recovered by the next start to its output, every sample that was
/// on disk, and nothing of w4l's is left in either directory.
#[test]
fn a_killed_take_beside_an_output_on_another_disk_is_recovered_there() {
    let s = Setup::new(20, 78);
    let disk = match LoopExt4::mount(&s.base.path().join("ext4")) {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("skipped: no loop-mounted ext4 here ({why})");
            return;
        }
    };
    let beside = disk.path().join(".w4l");
    let output = disk.path().join("take.wav");
    let args = s.record(&output, &["--realtime", "--mode", "file"]);
    let mut w = Spawned::start(&args, &s.env());
    let pid = w.pid();
    let journal = w.until(LIMIT, "the journal beside the output holds audio", |_| {
        let journal = temp_wavs_of(&beside, pid).into_iter().next()?;
        (data_bytes_on_disk(&journal) >= 2 * PER_SECOND as u64 * 2).then_some(journal)
    });
    assert!(
        temp_wavs(&s.temp).is_empty(),
        "a journal in the temp dir too"
    );
    let pointers = w4l_leftovers(&s.temp, &[]);
    assert!(pointers.iter().any(|n| n.ends_with(".dir")), "{pointers:?}");
    assert_eq!(fs::metadata(&beside).expect("stat").mode() & 0o777, 0o700);
    assert_eq!(fs::metadata(&journal).expect("stat").mode() & 0o777, 0o600);
    let on_disk = data_bytes_on_disk(&journal) as usize / 2;
    assert_eq!(w.kill().code, None, "not killed");

    let run = w4l_with(["clean"], &s.env(), LIMIT).ok();
    let (_, back) = read_wav_i16(&output);
    let n = assert_prefix(&back, &s.samples);
    assert!(
        n >= on_disk,
        "recovered {n} samples, {on_disk} were on disk: {run:#?}"
    );
    assert!(!beside.exists(), "{} is left", beside.display());
    assert_no_leftovers(disk.path(), &[]);
    s.assert_clean();
}

/// `-o` on another disk, the take saved normally: the journal went beside it, and the save
/// left nothing there but the output (sample for sample) and nothing in the temporary
/// directory. The same take with `-o` on the temporary directory's file system keeps its
/// journal in the temporary directory as before (no `.w4l` beside the output).
#[test]
fn a_take_beside_an_output_on_another_disk_is_saved_and_leaves_nothing() {
    let s = Setup::new(3, 80);
    let disk = match LoopExt4::mount(&s.base.path().join("ext4")) {
        Ok(disk) => disk,
        Err(why) => {
            eprintln!("skipped: no loop-mounted ext4 here ({why})");
            return;
        }
    };
    for dir in [disk.path(), s.out.as_path()] {
        let output = dir.join("take.wav");
        let run = w4l_with(s.record(&output, &["--mode", "file"]), &s.env(), LIMIT).ok();
        assert_eq!(read_wav_i16(&output).1, s.samples, "{run:#?}");
        assert!(!dir.join(".w4l").exists());
        assert_no_leftovers(dir, &[]);
        s.assert_clean();
    }
}

/// With `$XDG_CACHE_HOME` and the temporary directory on a tmpfs, the journal goes to
/// `~/.cache/w4l` on disk; nothing is written to RAM.
#[test]
fn the_default_directory_is_never_a_tmpfs() {
    let s = Setup::new(20, 78);
    let Some(ram) = Tmpfs::mount(&s.base.path().join("ram"), "size=64m") else {
        eprintln!("skipped: mounting a tmpfs is not allowed here");
        return;
    };
    let home = s.base.path().join("home");
    fs::create_dir(&home).expect("home");
    let output = s.out.join("take.wav");
    let mut cmd = Command::new(w4l_bin());
    cmd.args(s.record(&output, &["--realtime", "--mode", "file"]))
        .env_remove("W4L_TEMP_DIR")
        .env("XDG_CACHE_HOME", ram.path().join("cache"))
        .env("TMPDIR", ram.path())
        .env("HOME", &home)
        .env("XDG_DATA_HOME", &s.data);
    let mut w = Spawned::start_command(cmd, &[]);
    let cache = home.join(".cache/w4l");
    let pid = w.pid();
    let journal = w.until(LIMIT, "a journal in ~/.cache/w4l", |_| {
        temp_wavs_of(&cache, pid)
            .into_iter()
            .find(|j| data_bytes_on_disk(j) > PER_SECOND as u64)
    });
    let mode = |p: &Path| fs::metadata(p).expect("stat").mode() & 0o777;
    assert_eq!((mode(&cache), mode(&journal)), (0o700, 0o600));
    let manifest = PathBuf::from(format!("{}.manifest", journal.display()));
    assert_eq!(mode(&manifest), 0o600);
    assert_eq!(
        fs::read_dir(ram.path()).expect("ram").count(),
        0,
        "something was written to the tmpfs"
    );
    w.signal("INT");
    let run = w.wait(LIMIT);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_prefix(&read_wav_i16(&output).1, &s.samples);
    assert_eq!(mode(&output), ordinary_mode(), "an output's permissions");
    assert_no_leftovers(&cache, &[]);
}

/// `kill -9` at 20 moments (10 in stream mode, 10 in file mode; pseudo-random, from a fixed
/// seed, between 0.3 s and 2.5 s of a real-time replay): the take the next start recovers is the
/// input's start, sample for sample, and misses at most the last second before the kill; no
/// file of the take is left besides the recovered WAV.
#[test]
fn kill_9_at_20_moments_loses_at_most_the_last_second() {
    let mut x: u32 = 0x9e37_79b9;
    for i in 0..20 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let delay = Duration::from_millis(300 + u64::from(x % 2200));
        let mode = if i % 2 == 0 { "stream" } else { "file" };
        let s = Setup::new(6, 100 + i);
        let output = s.out.join("take.wav");
        let args = s.record(&output, &["--realtime", "--mode", mode]);
        let mut w = Spawned::start(&args, &s.env());
        let pid = w.pid();
        // The replay's clock starts about when the journal appears.
        w.until(LIMIT, "the journal appears", |_| {
            temp_wavs_of(&s.temp, pid).into_iter().next()
        });
        let started = Instant::now();
        std::thread::sleep(delay);
        let heard = started.elapsed().as_secs_f64();
        let run = w.kill();
        assert_eq!(run.code, None, "not killed: {run:#?}");
        w4l_with(["recover"], &s.env(), LIMIT).ok();
        let recovered = s.recovered();
        assert_eq!(recovered.len(), 1, "{mode} at {delay:?}: {recovered:?}");
        let (_, back) = read_wav_i16(&recovered[0]);
        let n = assert_prefix(&back, &s.samples);
        let frames = n / usize::from(CHANNELS);
        let due = ((heard - 1.0).max(0.0) * f64::from(RATE)) as usize;
        assert!(
            frames >= due,
            "{mode} mode, killed after {heard:.2} s: {frames} frames recovered, at least {due} due"
        );
        s.assert_clean();
    }
}
