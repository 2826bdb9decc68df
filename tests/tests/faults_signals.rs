//! Signals mid-take, end to end: `w4l record` replaying a WAV file at real speed
//! (`--input … --realtime`, so a take is in progress for as long as the test wants) is stopped by
//! SIGINT, SIGTERM or SIGHUP, or killed by SIGKILL, in stream and in file mode; and a long
//! `w4l demo`, stopped by the first SIGINT, SIGTERM or SIGHUP with its report.
//!
//! Every test checks the audio sample by sample against the input: what was captured before the
//! signal is in the output (a graceful stop) or in the killed take's temporary file (SIGKILL,
//! readable as it lies thanks to the header checkpoints, and in full after `w4l recover`); and
//! that no w4l file is left behind once the process is gone (graceful stop) or once the next
//! `w4l` start or `w4l clean` has recovered the killed take into a WAV file under
//! `XDG_DATA_HOME` (SIGKILL). Each test has its own temporary
//! directory (`W4L_TEMP_DIR`); symbolic links planted there are never followed or removed.

use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use w4l_tests::faults::{
    Spawned, Tmpfs, assert_no_leftovers, assert_prefix, data_bytes_on_disk, data_chunk, dead_pid,
    private_dir, read_wav_f32, temp_wavs_of, w4l_leftovers,
};
use w4l_tests::{json_field, json_u64, read_wav_i16, test_signal, w4l_with, write_wav_i16};

const RATE: u32 = 48_000;
const CHANNELS: u16 = 2;
/// Samples per second of the input.
const PER_SECOND: usize = RATE as usize * CHANNELS as usize;
/// How long a test waits for a condition that should hold within a second or two.
const LIMIT: Duration = Duration::from_secs(30);
/// Frames the replay pushes ahead of the clock (one chunk).
const REPLAY_CHUNK_FRAMES: usize = 1024;

/// One test's files: a private `W4L_TEMP_DIR`, an input WAV (48 kHz stereo), an output path.
struct Take {
    base: tempfile::TempDir,
    temp: PathBuf,
    input: PathBuf,
    output: PathBuf,
    samples: Vec<i16>,
    /// `XDG_DATA_HOME` for w4l: killed takes are recovered under it.
    data: String,
}

impl Take {
    fn new(seconds: usize, seed: u32) -> Take {
        let base = tempfile::tempdir().expect("temp dir");
        let temp = private_dir(base.path());
        let input = base.path().join("in.wav");
        let samples = test_signal(seconds * RATE as usize, CHANNELS, seed);
        write_wav_i16(&input, RATE, CHANNELS, &samples);
        let output = base.path().join("out").join("take.wav");
        fs::create_dir(output.parent().expect("parent")).expect("out dir");
        let data = base.path().join("data").display().to_string();
        Take {
            base,
            temp,
            input,
            output,
            samples,
            data,
        }
    }

    fn env(&self) -> Vec<(&str, &str)> {
        vec![
            ("W4L_TEMP_DIR", self.temp.to_str().expect("utf-8 path")),
            ("XDG_DATA_HOME", &self.data),
        ]
    }

    /// The takes recovered after a SIGKILL: at the output the manifest names, if there, then
    /// those under `$XDG_DATA_HOME/w4l/recovered`, sorted.
    fn recovered(&self) -> Vec<PathBuf> {
        let dir = Path::new(&self.data).join("w4l/recovered");
        let mut files: Vec<PathBuf> = fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        if self.output.exists() {
            files.insert(0, self.output.clone());
        }
        files
    }

    /// `record --input IN -o OUT --realtime --json` and `extra`.
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = ["record", "--realtime", "--json", "--input"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        args.push(self.input.display().to_string());
        args.push("-o".into());
        args.push(self.output.display().to_string());
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }

    fn out_dir(&self) -> &Path {
        self.output.parent().expect("parent")
    }

    /// Nothing of w4l in the temporary directory, the output directory or the test directory.
    #[track_caller]
    fn assert_clean(&self, keep: &[&Path]) {
        assert_no_leftovers(&self.temp, keep);
        assert_no_leftovers(self.out_dir(), keep);
        assert_no_leftovers(self.base.path(), keep);
    }
}

/// The take's temporary file of `pid`, once it holds at least `bytes` of samples on disk.
fn take_file_with(w: &mut Spawned, temp: &Path, bytes: u64) -> (PathBuf, u64) {
    let pid = w.pid();
    w.until(
        LIMIT,
        &format!(
            "the take's temporary file in {} holds {bytes} bytes",
            temp.display()
        ),
        |_| {
            let file = temp_wavs_of(temp, pid).into_iter().next()?;
            let on_disk = data_bytes_on_disk(&file);
            (on_disk >= bytes).then_some((file, on_disk))
        },
    )
}

/// Stream mode: waits until the replay has run for `seconds` of audio; returns the samples
/// certainly captured by then.
fn stream_running_for(w: &mut Spawned, seconds: f64) -> usize {
    w.until(LIMIT, "the replay thread runs", |w| {
        w.has_thread("w4l-replay").then_some(())
    });
    let seen = Instant::now();
    let due = seen + Duration::from_secs_f64(seconds);
    w.until(LIMIT, "the take runs", |_| {
        (Instant::now() >= due).then_some(())
    });
    ((seconds * f64::from(RATE)) as usize - REPLAY_CHUNK_FRAMES) * usize::from(CHANNELS)
}

/// A graceful stop by `signal`: exit 0, `"interrupted":true`, the output is the input's start
/// and holds at least everything captured when the signal was sent, nothing left behind.
fn graceful_stop(mode: &str, signal: &str, seed: u32) {
    let t = Take::new(20, seed);
    let mut w = Spawned::start(&t.args(&["--mode", mode]), &t.env());
    let captured = if mode == "file" {
        // Everything that reached the take's file before the signal must be in the output.
        let (_, on_disk) = take_file_with(&mut w, &t.temp, 3 * PER_SECOND as u64);
        on_disk as usize / 2
    } else {
        stream_running_for(&mut w, 1.5)
    };
    w.signal(signal);
    let run = w.wait(LIMIT);
    assert_eq!(run.code, Some(0), "SIG{signal} in {mode} mode: {run:#?}");
    let json = run.stdout.trim();
    assert_eq!(json_field(json, "interrupted"), Some("true"), "{run:#?}");
    assert!(!run.stderr.contains("panicked"), "{run:#?}");

    let (spec, back) = read_wav_i16(&t.output);
    assert_eq!((spec.sample_rate, spec.channels), (RATE, CHANNELS));
    let n = assert_prefix(&back, &t.samples);
    assert!(
        n >= captured,
        "SIG{signal} in {mode} mode: the output holds {n} samples, {captured} were captured \
         before the signal"
    );
    assert!(n < t.samples.len(), "the take was not cut short: {json}");
    assert_eq!(
        json_u64(json, "frames_written"),
        (n / usize::from(CHANNELS)) as u64,
        "{json}"
    );
    assert_eq!(json_u64(json, "frames_dropped"), 0, "{json}");
    t.assert_clean(&[]);
}

#[test]
fn sigint_in_stream_mode_saves_the_take_up_to_the_signal() {
    graceful_stop("stream", "INT", 11);
}

#[test]
fn sigterm_in_stream_mode_saves_the_take_up_to_the_signal() {
    graceful_stop("stream", "TERM", 12);
}

#[test]
fn sigint_in_file_mode_saves_everything_that_reached_the_disk() {
    graceful_stop("file", "INT", 13);
}

#[test]
fn sigterm_in_file_mode_saves_everything_that_reached_the_disk() {
    graceful_stop("file", "TERM", 14);
}

#[test]
fn sighup_in_file_mode_saves_everything_that_reached_the_disk() {
    graceful_stop("file", "HUP", 15);
}

#[test]
fn sigterm_in_file_mode_with_f32_samples_saves_the_take_up_to_the_signal() {
    let t = Take::new(20, 16);
    let mut w = Spawned::start(&t.args(&["--mode", "file", "--format", "f32"]), &t.env());
    let (_, on_disk) = take_file_with(&mut w, &t.temp, 4 * 2 * PER_SECOND as u64);
    w.signal("TERM");
    let run = w.wait(LIMIT);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let (spec, back) = read_wav_f32(&t.output);
    assert_eq!(
        (spec.sample_format, spec.bits_per_sample),
        (hound::SampleFormat::Float, 32),
        "--format f32 wrote {spec:?}"
    );
    // The replay turns each 16-bit sample into x / 32768 exactly; f32 keeps it exactly.
    let expected: Vec<f32> = t.samples.iter().map(|&s| f32::from(s) / 32768.0).collect();
    assert!(back.len() <= expected.len());
    let first_diff = back
        .iter()
        .zip(&expected)
        .position(|(a, b)| a.to_bits() != b.to_bits());
    assert_eq!(first_diff, None, "the f32 output is not the input's start");
    assert!(
        back.len() as u64 >= on_disk / 4,
        "{} samples in the output, {} were on disk before the signal",
        back.len(),
        on_disk / 4
    );
    t.assert_clean(&[]);
}

/// Kills a file-mode take once at least `seconds` of audio are on disk and the header was
/// checkpointed; returns the orphaned take and the samples that were on disk before the kill.
fn kill_file_mode_take(t: &Take, seconds: usize) -> (PathBuf, usize) {
    let mut w = Spawned::start(&t.args(&["--mode", "file"]), &t.env());
    let pid = w.pid();
    let (file, on_disk) = w.until(
        LIMIT,
        "the take's file holds audio and a checkpointed header",
        |_| {
            let file = temp_wavs_of(&t.temp, pid).into_iter().next()?;
            let bytes = fs::read(&file).ok()?;
            let (start, declared) = data_chunk(&bytes)?;
            let on_disk = (bytes.len() - start) as u64;
            (declared > 0 && on_disk >= (seconds * PER_SECOND * 2) as u64)
                .then_some((file, on_disk))
        },
    );
    let run = w.kill();
    assert_eq!(run.code, None, "not killed: {run:#?}");
    assert!(file.exists(), "SIGKILL left no take behind");
    assert_eq!(temp_wavs_of(&t.temp, pid), std::slice::from_ref(&file));
    // The output never appeared, nor did a partial of it.
    assert!(!t.output.exists());
    assert_no_leftovers(t.out_dir(), &[]);
    (file, on_disk as usize / 2)
}

#[test]
fn sigkill_in_file_mode_leaves_a_take_that_the_next_start_recovers() {
    let t = Take::new(20, 21);
    let (orphan, on_disk) = kill_file_mode_take(&t, 3);

    // As it lies, the killed take is a WAV file up to its last header checkpoint (at most
    // about a second old).
    let as_is = t.base.path().join("as-is.wav");
    fs::copy(&orphan, &as_is).expect("copy the orphan");
    let (spec, back) = read_wav_i16(&as_is);
    assert_eq!((spec.sample_rate, spec.channels), (RATE, CHANNELS));
    let checkpointed = assert_prefix(&back, &t.samples);
    assert!(
        checkpointed + 2 * PER_SECOND >= on_disk,
        "the header checkpoint covers {checkpointed} samples, {on_disk} were on disk"
    );

    // `w4l recover` on a copy gets back every sample that reached the disk.
    let repaired = t.base.path().join("repaired.wav");
    fs::copy(&orphan, &repaired).expect("copy the orphan");
    let run = w4l_with(
        ["recover", "--json", repaired.to_str().expect("utf-8")],
        &t.env(),
        LIMIT,
    )
    .ok();
    let (_, back) = read_wav_i16(&repaired);
    let n = assert_prefix(&back, &t.samples);
    assert!(
        n >= on_disk,
        "recovered {n} samples, {on_disk} were on disk"
    );
    assert_eq!(
        json_u64(&run.stdout, "frames"),
        (n / usize::from(CHANNELS)) as u64,
        "{run:#?}"
    );

    // The next start (any w4l) finishes the dead take into a WAV file, removes its lock, and
    // records normally.
    let short = t.base.path().join("short.wav");
    let short_samples = test_signal(RATE as usize / 2, CHANNELS, 22);
    write_wav_i16(&short, RATE, CHANNELS, &short_samples);
    let next = t.base.path().join("next.wav");
    w4l_with(
        [
            "record",
            "--mode",
            "file",
            "--input",
            short.to_str().expect("utf-8"),
            "-o",
            next.to_str().expect("utf-8"),
        ],
        &t.env(),
        LIMIT,
    )
    .ok();
    assert!(
        !orphan.exists(),
        "the next start did not recover {}",
        orphan.display()
    );
    let recovered = t.recovered();
    assert_eq!(recovered.len(), 1);
    assert!(assert_prefix(&read_wav_i16(&recovered[0]).1, &t.samples) >= on_disk);
    assert_eq!(read_wav_i16(&next).1, short_samples);
    t.assert_clean(&[]);
}

#[test]
fn sigkill_in_file_mode_then_w4l_clean_recovers_the_orphan() {
    let t = Take::new(20, 23);
    let (orphan, on_disk) = kill_file_mode_take(&t, 2);
    let run = w4l_with(["clean", "--json"], &t.env(), LIMIT).ok();
    assert!(!orphan.exists());
    let recovered = t.recovered();
    assert_eq!(recovered.len(), 1, "{run:#?}");
    assert!(
        run.stdout.contains(recovered[0].to_str().expect("utf-8")),
        "{run:#?}"
    );
    assert_eq!(
        json_u64(&run.stdout, "bytes"),
        0,
        "a take is not scratch: {run:#?}"
    );
    let n = assert_prefix(&read_wav_i16(&recovered[0]).1, &t.samples);
    assert!(
        n >= on_disk,
        "recovered {n} samples, {on_disk} were on disk"
    );
    t.assert_clean(&[]);
}

#[test]
fn sigkill_in_stream_mode_leaves_nothing_after_w4l_clean() {
    let t = Take::new(20, 24);
    let mut w = Spawned::start(&t.args(&[]), &t.env());
    stream_running_for(&mut w, 1.0);
    let run = w.kill();
    assert_eq!(run.code, None, "not killed: {run:#?}");
    assert!(!t.output.exists());
    assert_no_leftovers(t.out_dir(), &[]);
    w4l_with(["clean"], &t.env(), LIMIT).ok();
    t.assert_clean(&[]);
}

/// Stream mode under a budget smaller than the take spills the oldest blocks to the temporary
/// directory: a graceful stop still writes the whole take from its first sample, and leaves no
/// spill file behind.
#[test]
fn sigint_in_stream_mode_while_spilling_keeps_the_spilled_start() {
    let t = Take::new(30, 25);
    let mut w = Spawned::start(&t.args(&["--budget", "1MiB", "--window", "1s"]), &t.env());
    let pid = w.pid();
    // About 1.5 s of 48 kHz stereo exceed what the budget leaves for blocks: wait for a spill.
    w.until(LIMIT, "a spill file appears", |_| {
        temp_wavs_of(&t.temp, pid)
            .into_iter()
            .find(|f| data_bytes_on_disk(f) > 0 || fs::metadata(f).is_ok_and(|m| m.len() > 0))
    });
    let captured = stream_running_for(&mut w, 1.0);
    w.signal("INT");
    let run = w.wait(LIMIT);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let json = run.stdout.trim();
    let (_, back) = read_wav_i16(&t.output);
    let n = assert_prefix(&back, &t.samples);
    assert!(n >= captured, "{n} samples written, {captured} captured");
    assert_eq!(json_u64(json, "frames_dropped"), 0, "{json}");
    assert_eq!(json_u64(json, "lost_samples"), 0, "{json}");
    t.assert_clean(&[]);
}

#[test]
fn sigkill_in_stream_mode_under_a_small_budget_then_w4l_clean_recovers_the_journal() {
    let t = Take::new(30, 26);
    let mut w = Spawned::start(&t.args(&["--budget", "1MiB", "--window", "1s"]), &t.env());
    let pid = w.pid();
    let (journal, on_disk) = take_file_with(&mut w, &t.temp, 2 * PER_SECOND as u64);
    let run = w.kill();
    assert_eq!(run.code, None, "not killed: {run:#?}");
    assert!(journal.exists());
    assert!(!temp_wavs_of(&t.temp, pid).is_empty());
    w4l_with(["clean", "--json"], &t.env(), LIMIT).ok();
    let recovered = t.recovered();
    assert_eq!(recovered.len(), 1);
    let n = assert_prefix(&read_wav_i16(&recovered[0]).1, &t.samples);
    assert!(
        n as u64 * 2 >= on_disk,
        "recovered {n} samples, {on_disk} bytes were on disk"
    );
    t.assert_clean(&[]);
}

/// What a planted entry is, to compare before and after.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    link_target: PathBuf,
    target_bytes: Option<Vec<u8>>,
    target_mtime: i64,
    target_ino: u64,
}

fn snapshot(link: &Path) -> Snapshot {
    let meta = fs::symlink_metadata(link).expect("the planted link exists");
    assert!(
        meta.file_type().is_symlink(),
        "{} is no longer a link",
        link.display()
    );
    let target = fs::read_link(link).expect("read link");
    let tmeta = fs::metadata(&target).expect("the link's target exists");
    Snapshot {
        target_bytes: tmeta
            .is_file()
            .then(|| fs::read(&target).expect("read target")),
        target_mtime: tmeta.mtime(),
        target_ino: tmeta.ino(),
        link_target: target,
    }
}

/// Symbolic links planted in the temporary directory under w4l's own names (a take of a dead
/// process, its lock file, a spill file pointing at a directory) and under this very test's
/// recorder's pid survive a recording, its SIGINT, a SIGKILL, the next start's reap and
/// `w4l clean`, and so do their targets outside the directory.
#[test]
fn planted_symlinks_in_the_temporary_directory_survive_with_their_targets() {
    let t = Take::new(20, 27);
    let outside = t.base.path().join("outside");
    fs::create_dir(&outside).expect("outside");
    let precious = outside.join("precious.wav");
    fs::write(&precious, b"precious audio").expect("precious");
    let precious_lock = outside.join("precious.lock");
    fs::write(&precious_lock, b"a lock that is not w4l's").expect("lock");
    let inner = outside.join("dir");
    fs::create_dir(&inner).expect("dir");
    fs::write(inner.join("inside.wav"), b"inside").expect("inside");

    let dead = dead_pid();
    let links = [
        (
            t.temp.join(format!("w4l-{dead}-take-AbCdEfGhIj.wav")),
            &precious,
        ),
        (t.temp.join(format!("w4l-{dead}.lock")), &precious_lock),
        (
            t.temp.join(format!("w4l-{dead}-spill-0123456789.wav")),
            &inner,
        ),
    ];
    for (link, target) in &links {
        symlink(target, link).expect("plant link");
    }
    let keep: Vec<&Path> = links.iter().map(|(l, _)| l.as_path()).collect();
    let before: Vec<Snapshot> = keep.iter().map(|l| snapshot(l)).collect();
    let check = |when: &str| {
        let after: Vec<Snapshot> = keep.iter().map(|l| snapshot(l)).collect();
        assert_eq!(after, before, "a planted link or its target changed {when}");
        assert_eq!(
            fs::read(inner.join("inside.wav")).expect("inside"),
            b"inside",
            "{when}"
        );
    };

    // A take stopped by SIGINT (its start reaps, its exit cleans up).
    let mut w = Spawned::start(&t.args(&["--mode", "file"]), &t.env());
    take_file_with(&mut w, &t.temp, PER_SECOND as u64);
    w.signal("INT");
    let run = w.wait(LIMIT);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_prefix(&read_wav_i16(&t.output).1, &t.samples);
    check("after a take stopped by SIGINT");
    assert_no_leftovers(&t.temp, &keep);

    // A take killed, with a link planted under its own pid; then `w4l clean`.
    let mut w = Spawned::start(&t.args(&["--mode", "file"]), &t.env());
    let pid = w.pid();
    take_file_with(&mut w, &t.temp, PER_SECOND as u64);
    let own_link = t.temp.join(format!("w4l-{pid}-take-ZzZzZzZzZz.wav"));
    symlink(&precious, &own_link).expect("plant link");
    w.kill();
    let clean = w4l_with(["clean"], &t.env(), LIMIT);
    check("after SIGKILL and w4l clean");
    assert!(fs::symlink_metadata(&own_link).is_ok_and(|m| m.file_type().is_symlink()));
    let mut keep_all = keep.clone();
    keep_all.push(&own_link);
    assert_eq!(
        w4l_leftovers(&t.temp, &keep_all),
        Vec::<String>::new(),
        "w4l clean left files of the killed take"
    );
    assert_no_leftovers(t.out_dir(), &[]);
    // The links are not w4l's files: leaving them alone is not a failure to report.
    assert_eq!(
        clean.code,
        Some(0),
        "w4l clean fails over links it must leave alone: {clean:#?}"
    );
}

/// Writes a 16-bit WAV file of `frames` frames quickly (no per-sample calls): sample `i` is
/// `i * 7919` wrapped, so every part of the file differs from its neighbours.
fn write_big_wav(path: &Path, frames: usize) {
    use std::io::Write;
    let data = (frames * usize::from(CHANNELS) * 2) as u32;
    let mut bytes = Vec::with_capacity(44 + data as usize);
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&CHANNELS.to_le_bytes());
    bytes.extend_from_slice(&RATE.to_le_bytes());
    bytes.extend_from_slice(&(RATE * u32::from(CHANNELS) * 2).to_le_bytes());
    bytes.extend_from_slice(&(CHANNELS * 2).to_le_bytes());
    bytes.extend_from_slice(&16u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data.to_le_bytes());
    for i in 0..frames * usize::from(CHANNELS) {
        bytes.extend_from_slice(&((i as u32).wrapping_mul(7919) as i16).to_le_bytes());
    }
    fs::File::create(path)
        .and_then(|mut f| f.write_all(&bytes))
        .expect("write the big input");
}

/// A second signal while the take is being saved exits at once (`128 + signo`): it must not
/// leave the output's half-written temporary file (`.NAME.*.w4l-tmp` or `.w4l-partial-*`,
/// beside the output) behind, nor a partial output; the take's journal stays (with its
/// manifest) and the next start (`w4l clean` here) recovers it to the output, whole. Or, if the
/// save won the race, the output is complete.
fn second_signal_while_saving(mode: &str) {
    let base = tempfile::tempdir().expect("temp dir");
    // A save moves the take's journal to the output: a rename on one file system (atomic, no
    // partial file to catch), a copy (through a partial file beside the output) from a tmpfs,
    // where one can be mounted.
    let mount = Tmpfs::mount(&base.path().join("tmpfs"), "size=128m");
    let temp = match &mount {
        Some(m) => m.path().join("w4l"),
        None => private_dir(base.path()),
    };
    let input = base.path().join("big.wav");
    let frames = 180 * RATE as usize;
    write_big_wav(&input, frames);
    let out_dir = base.path().join("out");
    fs::create_dir(&out_dir).expect("out dir");
    let output = out_dir.join("take.wav");
    let env = [("W4L_TEMP_DIR", temp.to_str().expect("utf-8"))];
    let mut w = Spawned::start(
        &[
            "record",
            "--json",
            "--mode",
            mode,
            "--input",
            input.to_str().expect("utf-8"),
            "-o",
            output.to_str().expect("utf-8"),
        ],
        &env,
    );
    // The save is under way once its temporary file shows up beside the output.
    let seen = w.until(LIMIT, "the output's temporary file appears", |_| {
        let partial = fs::read_dir(&out_dir).ok()?.flatten().any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.ends_with(".w4l-tmp") || name.starts_with(".w4l-partial-")
        });
        (partial || output.exists()).then_some(partial)
    });
    // Two different signals, so that neither is merged into the other: the first asks to
    // stop, the second exits at once.
    w.signal("INT");
    w.signal("TERM");
    let run = w.wait(LIMIT);
    match run.code {
        // Whichever of the two the watcher thread saw second decides the status.
        // A save by rename (the journal on the output's file system) is atomic: the output
        // is whole or absent. Absent, the journal waits for the next start.
        Some(130 | 143) if output.exists() => {}
        Some(130 | 143) => {
            let clean = Spawned::start(&["clean"], &env).wait(LIMIT);
            assert_eq!(clean.code, Some(0), "{clean:#?}");
            assert!(
                clean.stdout.contains("recovered") || clean.stderr.contains("recovered"),
                "{clean:#?}"
            );
        }
        Some(0) => {}
        _ => panic!("SIGINT + SIGTERM while saving: {run:#?}"),
    }
    let (_, back) = read_wav_i16(&output);
    assert_eq!(back.len(), frames * usize::from(CHANNELS), "{run:#?}");
    assert_no_leftovers(&out_dir, &[&output]);
    assert_no_leftovers(&temp, &[]);
    // Signalled while saving by a copy, or after a rename.
    assert!(seen || run.code == Some(0) || mount.is_none(), "{run:#?}");
}

#[test]
fn a_second_signal_while_saving_in_stream_mode_leaves_no_partial_file() {
    second_signal_while_saving("stream");
}

#[test]
fn a_second_signal_while_saving_in_file_mode_leaves_no_partial_file() {
    second_signal_while_saving("file");
}

/// `w4l demo` of 100 hours (faster than real time, still many minutes) is stopped by the first
/// `signal` within seconds: exit 0 as for `record`, the report printed up to there (marked
/// interrupted), its spill file removed.
fn demo_stops_on_the_first(signal: &str, json: bool) {
    let base = tempfile::tempdir().expect("temp dir");
    let temp = private_dir(base.path());
    let mut args = vec!["demo", "--seconds", "100h"];
    if json {
        args.push("--json");
    }
    let mut w = Spawned::start(&args, &[("W4L_TEMP_DIR", temp.to_str().expect("utf-8"))]);
    w.until(LIMIT, "the synthetic voice runs", |w| {
        w.has_thread("w4l-synthetic").then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    w.signal(signal);
    let run = w.wait(LIMIT);
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "SIG{signal} took {:?} to stop the demo",
        sent.elapsed()
    );
    assert_eq!(run.code, Some(0), "SIG{signal}: {run:#?}");
    assert!(run.stderr.is_empty(), "{run:#?}");
    if json {
        assert_eq!(
            json_field(&run.stdout, "interrupted"),
            Some("true"),
            "{run:#?}"
        );
    } else {
        assert!(run.stdout.contains("final figures"), "{run:#?}");
        assert!(run.stdout.contains("; interrupted by a signal"), "{run:#?}");
    }
    assert_no_leftovers(&temp, &[]);
}

#[test]
fn the_first_sigint_stops_the_demo_with_its_report() {
    demo_stops_on_the_first("INT", false);
}

#[test]
fn the_first_sigterm_stops_the_demo_with_its_report() {
    demo_stops_on_the_first("TERM", false);
}

#[test]
fn the_first_sighup_stops_the_demo_with_its_json_report() {
    demo_stops_on_the_first("HUP", true);
}
