//! Takes recovered instead of reaped, and files an app hands over, against real directories and
//! real processes killed with SIGKILL.
//!
//! Child processes are this test binary run again with `W4L_TEST_CHILD` set: the
//! `child_process` test then records a take (or adopts a file) and waits to be killed.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

mod common;

use w4l::take::file::{TakeFile, TakeFileConfig};
use w4l::take::recover::{Placement, RecoveryConfig, recover_orphans, retire};
use w4l::tempfiles::{FileState, ResourceManager, TempError, unfinished_takes};
use w4l::wav::SampleFormat;
use w4l_core::accountant::Accountant;

const CHILD_ENV: &str = "W4L_TEST_CHILD";
const RATE: u32 = 16_000;
/// Samples the child writes per write (0.1 s).
const CHUNK: usize = 1_600;
const READY: &str = "@@READY ";

/// The samples every child take records: deterministic, both extremes.
fn signal(n: usize) -> Vec<i16> {
    common::signal(n, 9)
}

fn read_i16(path: &Path) -> Vec<i16> {
    let mut r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(r.spec().sample_rate, RATE);
    r.samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .expect("samples")
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).expect("stat").mode() & 0o7777
}

/// 0666 less this process's umask.
fn ordinary_mode() -> u32 {
    w4l::tempfiles::ordinary_permissions().mode() & 0o7777
}

/// A test's directories: the temporary one (`w4l`, private), an output directory, and the
/// recovered-takes directory (not created).
struct Dirs {
    base: tempfile::TempDir,
}

impl Dirs {
    fn new() -> Dirs {
        let base = tempfile::tempdir().expect("test dir");
        let temp = base.path().join("w4l");
        fs::create_dir(&temp).unwrap();
        fs::set_permissions(&temp, fs::Permissions::from_mode(0o700)).unwrap();
        fs::create_dir(base.path().join("out")).unwrap();
        Dirs { base }
    }
    fn temp(&self) -> PathBuf {
        self.base.path().join("w4l")
    }
    fn out(&self, name: &str) -> PathBuf {
        self.base.path().join("out").join(name)
    }
    fn recovered(&self) -> PathBuf {
        self.base.path().join("data/w4l/recovered")
    }
    fn config(&self) -> RecoveryConfig {
        RecoveryConfig {
            recovered_dir: Some(self.recovered()),
            ..RecoveryConfig::default()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

/// A running child, killed on drop.
struct Spawned {
    child: Child,
    /// What it printed after the ready mark.
    said: String,
}

impl Spawned {
    fn kill(mut self) -> u32 {
        let pid = self.child.id();
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
        pid
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn spawn(mode: &str, env: &[(&str, &Path)]) -> Spawned {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args([
        "child_process",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, mode)
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn the child");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    for line in lines.by_ref() {
        let line = line.expect("read the child");
        if let Some(at) = line.find(READY) {
            std::thread::spawn(move || lines.for_each(drop));
            return Spawned {
                child,
                said: line[at + READY.len()..].to_owned(),
            };
        }
    }
    let status = child.wait().expect("wait");
    panic!("the child exited before it was ready: {status}");
}

fn ready(said: impl std::fmt::Display) {
    println!("{READY}{said}");
    std::io::stdout().flush().expect("flush");
}

fn var(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).map(PathBuf::from)
}

/// A take of `W4L_TEST_SAMPLES` samples (16 kHz mono) in `W4L_TEST_DIR`, for `W4L_TEST_OUT`.
fn child_take() -> TakeFile {
    let dir = var("W4L_TEST_DIR").expect("dir");
    let manager = ResourceManager::open(&dir).expect("open");
    let config = TakeFileConfig {
        rate: RATE,
        channels: 1,
        format: SampleFormat::I16,
        max_data_bytes: u64::MAX,
        purpose: "take",
        output: var("W4L_TEST_OUT"),
    };
    let ledger = Arc::new(Arc::new(Accountant::new(1 << 30, 1 << 30)));
    let mut take = TakeFile::create(manager, ledger, config).expect("take");
    let n: usize = std::env::var("W4L_TEST_SAMPLES")
        .map(|s| s.parse().expect("a number"))
        .unwrap_or(0);
    for chunk in signal(n).chunks(CHUNK) {
        take.write(chunk).expect("write");
    }
    take
}

/// The child side. Does nothing in a normal test run.
#[test]
fn child_process() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    match mode.as_str() {
        "take" => {
            let take = child_take();
            ready(take.files()[0].display());
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        "save_fails" => {
            let take = child_take();
            let err = take
                .persist(&var("W4L_TEST_OUT").expect("out"))
                .expect_err("the output cannot be written");
            ready(err);
        }
        "adopt" => {
            let dir = var("W4L_TEST_DIR").expect("dir");
            let manager = ResourceManager::open(&dir).expect("open");
            let adopted = manager
                .adopt(&var("W4L_TEST_OUT").expect("file"))
                .expect("adopt");
            ready(adopted.path().display());
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        other => panic!("unknown child mode {other}"),
    }
}

/// Records `samples` in a child for `out`, kills it; returns the journal it left.
fn killed_take(d: &Dirs, samples: usize, out: Option<&Path>) -> (PathBuf, u32) {
    let samples = samples.to_string();
    let mut env = vec![
        ("W4L_TEST_DIR", d.temp()),
        ("W4L_TEST_SAMPLES", PathBuf::from(&samples)),
    ];
    if let Some(out) = out {
        env.push(("W4L_TEST_OUT", out.to_path_buf()));
    }
    let env: Vec<(&str, &Path)> = env.iter().map(|(k, v)| (*k, v.as_path())).collect();
    let child = spawn("take", &env);
    let journal = PathBuf::from(&child.said);
    let pid = child.kill();
    assert!(journal.exists(), "SIGKILL left no journal");
    assert!(
        w4l::tempfiles::manifest_path(&journal).exists(),
        "no manifest beside the journal"
    );
    (journal, pid)
}

/// The recovered `file` is the signal's start, holding at least `at_least` samples.
#[track_caller]
fn assert_recovered(file: &Path, at_least: usize, written: usize) {
    let back = read_i16(file);
    let input = signal(written);
    assert!(back.len() <= written, "{} > {written}", back.len());
    assert!(
        back.len() >= at_least,
        "recovered {} samples, the last checkpoint had {at_least}",
        back.len()
    );
    assert!(
        back == input[..back.len()],
        "not the input's start, sample for sample"
    );
}

/// Nothing of process `pid` is left in the temporary directory.
#[track_caller]
fn assert_nothing_of(d: &Dirs, pid: u32) {
    let prefix = format!("w4l-{pid}");
    let left: Vec<String> = names(&d.temp())
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "left of process {pid}: {left:?}");
}

// ---------------------------------------------------------------------------------------------
// Recovery
// ---------------------------------------------------------------------------------------------

#[test]
fn a_killed_take_is_recovered_at_its_intended_path_sample_exact() {
    let d = Dirs::new();
    let out = d.out("take.wav");
    // 2.55 s: two header checkpoints, then more that may or may not have reached the disk.
    let written = 2 * RATE as usize + 8_800;
    let (journal, pid) = killed_take(&d, written, Some(&out));

    let report = recover_orphans(&d.temp(), &d.config()).expect("recover");
    assert_eq!(report.recovered.len(), 1, "{report:?}");
    let r = &report.recovered[0];
    assert_eq!((r.placement, r.pid), (Placement::Intended, pid));
    assert_eq!(r.files, vec![out.clone()]);
    assert_eq!(r.intended.as_deref(), Some(out.as_path()));
    assert_recovered(&out, 2 * RATE as usize, written);
    assert_eq!(r.frames, read_i16(&out).len() as u64);
    assert_eq!(mode(&out), ordinary_mode(), "an output's permissions");
    assert!(!journal.exists());
    assert_nothing_of(&d, pid);
    // Done once: the next start finds nothing.
    let again = recover_orphans(&d.temp(), &d.config()).expect("again");
    assert!(again.recovered.is_empty(), "{again:?}");
    assert!(
        !d.recovered().exists(),
        "the recovered-takes directory was not needed"
    );
}

#[test]
fn a_killed_take_goes_beside_its_path_when_that_is_taken() {
    let d = Dirs::new();
    let out = d.out("take.wav");
    fs::write(&out, b"the user's file").unwrap();
    fs::write(d.out("take.recovered-1.wav"), b"an earlier recovery").unwrap();
    let written = 3 * RATE as usize;
    let (_, pid) = killed_take(&d, written, Some(&out));

    let report = recover_orphans(&d.temp(), &d.config()).expect("recover");
    let r = &report.recovered[0];
    assert_eq!(r.placement, Placement::Beside);
    assert_eq!(r.files, vec![d.out("take.recovered-2.wav")]);
    assert_recovered(&r.files[0], 3 * RATE as usize, written);
    assert_eq!(fs::read(&out).unwrap(), b"the user's file");
    assert!(r.to_string().contains("was taken"), "{r}");
    assert_nothing_of(&d, pid);
}

#[test]
fn a_killed_take_without_an_output_goes_to_the_recovered_directory() {
    let d = Dirs::new();
    let written = RATE as usize + 3_200;
    let (_, pid) = killed_take(&d, written, None);
    let listed = unfinished_takes(&d.temp()).expect("list");
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].owner_alive);

    let report = recover_orphans(&d.temp(), &d.config()).expect("recover");
    let r = &report.recovered[0];
    assert_eq!(r.placement, Placement::RecoveredDir);
    let file = &r.files[0];
    assert_eq!(file.parent(), Some(d.recovered().as_path()));
    let name = file.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with("take-") && name.ends_with(&format!("-{pid}.wav")),
        "{name}"
    );
    assert_recovered(file, RATE as usize, written);
    assert_nothing_of(&d, pid);
    assert!(unfinished_takes(&d.temp()).expect("list").is_empty());
}

#[test]
fn a_live_take_is_listed_but_never_claimed_and_an_empty_one_is_dropped() {
    let d = Dirs::new();
    let samples = (RATE as usize).to_string();
    let temp = d.temp();
    let child = spawn(
        "take",
        &[
            ("W4L_TEST_DIR", &temp),
            ("W4L_TEST_SAMPLES", Path::new(&samples)),
        ],
    );
    let journal = PathBuf::from(&child.said);
    let listed = unfinished_takes(&temp).expect("list");
    assert_eq!(listed.len(), 1);
    assert!(listed[0].owner_alive);
    assert_eq!(listed[0].parts[0].journal, journal);
    let manifest = listed[0].manifest().expect("manifest");
    assert_eq!((manifest.rate, manifest.channels), (RATE, 1));
    assert_eq!(manifest.pid, child.child.id());
    // A live take is neither recovered nor reaped.
    let report = recover_orphans(&temp, &d.config()).expect("recover");
    assert!(report.recovered.is_empty());
    let manager = ResourceManager::open(&temp).expect("open");
    assert!(manager.reap(false).files.is_empty());
    assert!(manager.reap_finished().files.is_empty());
    assert!(journal.exists());
    drop(manager);
    child.kill();

    // A take killed before its first sample holds no audio: removed, not recovered.
    let (empty, pid) = killed_take(&d, 0, Some(&d.out("empty.wav")));
    let report = recover_orphans(&temp, &d.config()).expect("recover");
    assert_eq!(report.recovered.len(), 1, "the first one: {report:?}");
    assert_eq!(report.discarded, vec![empty]);
    assert!(!d.out("empty.wav").exists());
    assert_nothing_of(&d, pid);
}

#[test]
fn dead_scratch_is_reaped_but_a_dead_take_is_left_for_recovery() {
    let d = Dirs::new();
    let (journal, pid) = killed_take(&d, RATE as usize, None);
    let scratch = d.temp().join(format!("w4l-{pid}-scratch-AbCdEfGhIj.wav"));
    fs::write(&scratch, [0u8; 100]).unwrap();
    // A manifest whose journal is gone (a take saved just before its process died).
    let stale = d
        .temp()
        .join(format!("w4l-{pid}-take-ZyXwVuTsRq.wav.manifest"));
    fs::write(&stale, b"w4l-take 1\n").unwrap();

    let manager = ResourceManager::open(d.temp()).expect("open");
    assert_eq!(manager.startup_report().files, vec![scratch.clone()]);
    assert!(!scratch.exists() && !stale.exists());
    assert!(journal.exists(), "a take was reaped");
    assert!(w4l::tempfiles::manifest_path(&journal).exists());
}

#[test]
fn a_failed_save_keeps_the_take_and_says_where() {
    let d = Dirs::new();
    let data = d.base.path().join("data");
    let out = d.base.path().join("no/such/dir/take.wav");
    let written = RATE as usize * 2;
    let samples = written.to_string();
    let temp = d.temp();
    let child = spawn(
        "save_fails",
        &[
            ("W4L_TEST_DIR", &temp),
            ("W4L_TEST_SAMPLES", Path::new(&samples)),
            ("W4L_TEST_OUT", &out),
            ("XDG_DATA_HOME", &data),
        ],
    );
    let error = child.said.clone();
    let pid = child.kill();
    let recovered = names(&d.recovered());
    assert_eq!(recovered.len(), 1, "{recovered:?}; error: {error}");
    let file = d.recovered().join(&recovered[0]);
    assert!(
        error.contains(&format!("the take is safe in {}", file.display())),
        "{error}"
    );
    assert!(!error.contains('\n'));
    assert_recovered(&file, written, written);
    assert_nothing_of(&d, pid);
}

// ---------------------------------------------------------------------------------------------
// Retention
// ---------------------------------------------------------------------------------------------

fn aged(dir: &Path, name: &str, bytes: usize, days: u64) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, vec![0u8; bytes]).unwrap();
    let when = SystemTime::now() - Duration::from_secs(days * 86_400);
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(when)
        .unwrap();
    path
}

#[test]
fn retention_removes_the_old_then_the_oldest_never_the_new_or_a_stranger() {
    let d = Dirs::new();
    let dir = d.recovered();
    fs::create_dir_all(&dir).unwrap();
    let ancient = aged(&dir, "take-20000101-000000-1.wav", 10, 40);
    let old = aged(&dir, "take-20000102-000000-2.wav", 600, 20);
    let middle = aged(&dir, "take-20000103-000000-3.wav", 600, 10);
    let young = aged(&dir, "take-20000104-000000-4.wav", 600, 1);
    let stranger = aged(&dir, "my-notes.wav", 5_000, 400);
    let just = aged(&dir, "take-20000105-000000-5.wav", 600, 60);
    let config = RecoveryConfig {
        recovered_dir: Some(dir.clone()),
        max_age: Duration::from_secs(30 * 86_400),
        max_bytes: 1_900,
    };
    let retired = retire(&config, std::slice::from_ref(&just));
    // Too old first; then 2 400 bytes of takes are over 1 900: the oldest goes.
    assert_eq!(retired, vec![ancient, old]);
    for kept in [&middle, &young, &stranger, &just] {
        assert!(kept.exists(), "{}", kept.display());
    }
}

// ---------------------------------------------------------------------------------------------
// Adopted files
// ---------------------------------------------------------------------------------------------

#[test]
fn an_adopted_file_goes_with_its_handle_or_stays_when_kept() {
    let d = Dirs::new();
    let manager = ResourceManager::open(d.temp()).expect("open");
    let file = d.out("chunk.raw");
    fs::write(&file, b"for the model").unwrap();
    let adopted = manager.adopt(&file).expect("adopt");
    assert_eq!(adopted.path(), file);
    let records: Vec<String> = names(&d.temp())
        .into_iter()
        .filter(|n| n.ends_with(".ref"))
        .collect();
    assert_eq!(records.len(), 1, "one record in the directory");
    assert_eq!(mode(&d.temp().join(&records[0])), 0o600);
    // In use: memory pressure leaves it alone; it is not a temporary file of w4l's.
    assert!(manager.reap_finished().files.is_empty());
    assert!(manager.files().is_empty());
    drop(adopted);
    assert!(!file.exists());
    assert_eq!(
        names(&d.temp()).len(),
        1,
        "only the lock: {:?}",
        names(&d.temp())
    );

    fs::write(&file, b"again").unwrap();
    let kept = manager.adopt(&file).expect("adopt").keep();
    assert_eq!(kept, file);
    assert_eq!(fs::read(&file).unwrap(), b"again");
    assert_eq!(names(&d.temp()).len(), 1, "the record went with keep()");

    // A cleanup (and so a signal) removes an adopted file too.
    let adopted = manager.adopt(&file).expect("adopt");
    let report = manager.cleanup();
    assert_eq!(report.files, vec![file.clone()]);
    assert!(!file.exists() && !adopted.is_registered());
}

#[test]
fn only_regular_files_of_ours_are_adopted() {
    let d = Dirs::new();
    let manager = ResourceManager::open(d.temp()).expect("open");
    let target = d.out("target.wav");
    fs::write(&target, b"precious").unwrap();
    let link = d.out("link.wav");
    symlink(&target, &link).unwrap();
    for refused in [link.as_path(), d.base.path(), &d.out("missing.wav")] {
        let err = manager.adopt(refused).expect_err("refused");
        assert!(matches!(err, TempError::NotAdoptable { .. }), "{err}");
        assert!(!err.to_string().contains('\n'));
    }
    assert_eq!(fs::read(&target).unwrap(), b"precious");
    assert_eq!(names(&d.temp()).len(), 1, "no record left");
}

#[test]
fn an_adopted_file_of_a_killed_process_is_removed_at_the_next_start() {
    let d = Dirs::new();
    let file = d.out("app.tmp");
    fs::write(&file, b"the app's scratch").unwrap();
    let kept = d.out("replaced.tmp");
    fs::write(&kept, b"adopted, then replaced").unwrap();
    let temp = d.temp();
    let a = spawn("adopt", &[("W4L_TEST_DIR", &temp), ("W4L_TEST_OUT", &file)]);
    let b = spawn("adopt", &[("W4L_TEST_DIR", &temp), ("W4L_TEST_OUT", &kept)]);
    // Alive: another process's start leaves both alone.
    let manager = ResourceManager::open(&temp).expect("open");
    assert!(manager.startup_report().files.is_empty());
    drop(manager);
    let (pa, pb) = (a.kill(), b.kill());
    // After b died, its file was replaced by a new one under the same name: not b's any more.
    fs::remove_file(&kept).unwrap();
    fs::write(&kept, b"a new file").unwrap();

    let manager = ResourceManager::open(&temp).expect("next start");
    assert_eq!(manager.startup_report().files, vec![file.clone()]);
    assert!(!file.exists());
    assert_eq!(fs::read(&kept).unwrap(), b"a new file");
    assert_nothing_of(&d, pa);
    assert_nothing_of(&d, pb);
}

// ---------------------------------------------------------------------------------------------
// Where the files live
// ---------------------------------------------------------------------------------------------

#[test]
fn a_ram_backed_directory_is_flagged_and_files_stay_private() {
    let d = Dirs::new();
    let disk = ResourceManager::open(d.temp()).expect("open");
    assert!(!disk.is_ram_backed());
    assert!(!w4l::tempfiles::is_ram_backed(&d.temp()).unwrap());
    let take = disk.create("take").expect("create");
    assert_eq!(mode(&d.temp()), 0o700);
    assert_eq!(mode(take.path()), 0o600);
    assert_eq!(take.state(), Some(FileState::InProgress));

    let shm = Path::new("/dev/shm");
    if !w4l::tempfiles::is_ram_backed(shm).unwrap_or(false) {
        return; // no tmpfs here
    }
    let base = tempfile::tempdir_in(shm).expect("a dir in /dev/shm");
    let ram = ResourceManager::open(base.path().join("w4l")).expect("open");
    assert!(ram.is_ram_backed());
    assert!(w4l::tempfiles::is_ram_backed(&base.path().join("not/yet")).unwrap());
}
