//! The temporary-file manager against real directories, real locks and real processes.
//!
//! Child processes are this test binary run again with `W4L_TEST_CHILD` set: the
//! `child_process` test then plays the part of another w4l process (holds its lock and files,
//! waits to be killed or signalled, panics...).

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use w4l::tempfiles::{FileState, ResourceManager, TempError};
use w4l_core::accountant::Accountant;

const CHILD_ENV: &str = "W4L_TEST_CHILD";
const CHILD_DIR_ENV: &str = "W4L_TEST_CHILD_DIR";

/// A fresh base directory; the manager's directory is `<base>/w4l`.
fn base() -> tempfile::TempDir {
    tempfile::tempdir().expect("create a test directory")
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list the directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).expect("stat").mode() & 0o7777
}

// ---------------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------------

const FILE_MARK: &str = "@@FILE ";
const READY_MARK: &str = "@@READY";

/// A running child and the files it reported before it was ready. Killed on drop, so a
/// failing test leaves no process behind.
struct Spawned {
    child: Child,
    files: Vec<PathBuf>,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn spawn_child(mode: &str, dir: &Path) -> Spawned {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, mode)
        .env(CHILD_DIR_ENV, dir)
        .stdout(Stdio::piped())
        // The deliberate panics' messages would only look alarming in the test log.
        .stderr(if mode == "panic" {
            Stdio::null()
        } else {
            Stdio::inherit()
        })
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut spawned = Spawned {
        child,
        files: Vec::new(),
    };
    // The harness prints `test child_process ... ` before the test's own output, so the
    // markers are searched anywhere in a line.
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.expect("read the child's output");
        if let Some(at) = line.find(FILE_MARK) {
            spawned
                .files
                .push(PathBuf::from(&line[at + FILE_MARK.len()..]));
        } else if line.contains(READY_MARK) {
            // Keep draining, so the child's later output does not hit a closed pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return spawned;
        }
    }
    let status = spawned.child.wait().expect("wait for the child");
    panic!("the child exited before it was ready: {status}");
}

fn wait_with_timeout(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the child did not exit in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn send_signal(child: &Child, signo: i32) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
    // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
    let rc = unsafe { libc::kill(pid, signo) };
    assert_eq!(rc, 0, "kill({pid}, {signo}) failed");
}

fn ready(files: &[PathBuf]) {
    for f in files {
        println!("{FILE_MARK}{}", f.display());
    }
    println!("{READY_MARK}");
    std::io::stdout().flush().expect("flush stdout");
}

fn sleep_until_killed() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The child side. Does nothing in a normal test run.
#[test]
fn child_process() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(std::env::var(CHILD_DIR_ENV).expect("child dir"));
    match mode.as_str() {
        // Holds its lock with one take in progress and one finished spill file.
        "hold" => {
            let manager = ResourceManager::open(&dir).expect("open");
            let mut take = manager.create("take").expect("create");
            take.write_all(&[1; 1000]).expect("write");
            let mut spill = manager.create("spill").expect("create");
            spill.write_all(&[2; 500]).expect("write");
            spill.finish().expect("finish");
            ready(&[take.path().to_path_buf(), spill.path().to_path_buf()]);
            sleep_until_killed();
        }
        // Cleans up and exits 128+signo on the first signal.
        "signal" => {
            let _signals = w4l::tempfiles::signals::SignalCleanup::install(
                w4l::tempfiles::signals::OnSignal::CleanupAndExit,
            )
            .expect("install");
            let manager = ResourceManager::open(&dir).expect("open");
            let mut take = manager.create("take").expect("create");
            take.write_all(&[1; 100]).expect("write");
            ready(&[take.path().to_path_buf()]);
            sleep_until_killed();
        }
        // Stops gracefully on the first signal and exits with 128+signo.
        "notify" => {
            let signals = w4l::tempfiles::signals::SignalCleanup::install(
                w4l::tempfiles::signals::OnSignal::NotifyFirst,
            )
            .expect("install");
            let manager = ResourceManager::open(&dir).expect("open");
            let mut take = manager.create("take").expect("create");
            ready(&[take.path().to_path_buf()]);
            while signals.received().is_none() {
                take.write_all(&[0; 16]).expect("write");
                std::thread::sleep(Duration::from_millis(5));
            }
            drop(take);
            drop(manager);
            std::process::exit(signals.exit_code().unwrap_or(1));
        }
        // Leaks the manager and its file (no drop will run), so only the panic hook can
        // remove the file: a panic on a worker thread must leave it, one on the main thread
        // (simulated by a thread named "main": the harness runs this on its own thread) must
        // remove it.
        "panic" => {
            w4l::tempfiles::signals::install_panic_cleanup();
            let manager = ResourceManager::open(&dir).expect("open");
            let take = manager.create("take").expect("create");
            let path = take.path().to_path_buf();
            std::mem::forget(take);
            std::mem::forget(manager);
            let panic_on = |name: &str| {
                std::thread::Builder::new()
                    .name(name.into())
                    .spawn(|| panic!("deliberate test panic"))
                    .expect("spawn")
                    .join()
                    .expect_err("the thread panicked");
            };
            panic_on("worker");
            assert!(path.exists(), "a worker's panic removed the take");
            panic_on("main");
            assert!(!path.exists(), "the main thread's panic left the file");
            ready(&[path]);
        }
        // After an emergency cleanup no new file can be created.
        "closed" => {
            let manager = ResourceManager::open(&dir).expect("open");
            let take = manager.create("take").expect("create");
            let report = w4l::tempfiles::cleanup_all();
            assert_eq!(report.files, vec![take.path().to_path_buf()]);
            assert!(!take.path().exists());
            assert!(matches!(manager.create("take"), Err(TempError::Closed)));
            ready(&[]);
        }
        other => panic!("unknown child mode {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Directory and file safety
// ---------------------------------------------------------------------------------------------

#[test]
fn directory_is_0700_files_are_0600_and_named_for_the_process() {
    let base = base();
    let dir = base.path().join("w4l");
    let manager = ResourceManager::open(&dir).expect("open");
    assert_eq!(mode(&dir), 0o700);

    let take = manager.create("take").expect("create");
    assert_eq!(mode(take.path()), 0o600);
    let name = take
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let prefix = format!("w4l-{}-take-", std::process::id());
    assert!(name.starts_with(&prefix), "{name}");
    assert!(name.ends_with(".wav"), "{name}");
    assert_eq!(name.len(), prefix.len() + 10 + 4, "{name}");
    assert_eq!(take.path().parent(), Some(dir.as_path()));

    let lock = dir.join(format!("w4l-{}.lock", std::process::id()));
    assert_eq!(mode(&lock), 0o600);
    assert_eq!(manager.files().len(), 1);
    assert_eq!(manager.files()[0].state, FileState::InProgress);
}

#[test]
fn invalid_purposes_are_refused() {
    let base = base();
    let manager = ResourceManager::open(base.path().join("w4l")).expect("open");
    for purpose in [
        "",
        "Take",
        "a-b",
        "../x",
        "a/b",
        "abcdefghijklmnopqrstuvwxyz",
    ] {
        let err = manager.create(purpose).expect_err(purpose);
        assert!(matches!(err, TempError::InvalidPurpose { .. }), "{err}");
    }
}

#[test]
fn unsafe_existing_directories_are_refused() {
    let base = base();

    // A symbolic link, even to a private directory of ours.
    let real = base.path().join("real");
    fs::create_dir(&real).unwrap();
    fs::set_permissions(&real, fs::Permissions::from_mode(0o700)).unwrap();
    let link = base.path().join("link");
    symlink(&real, &link).unwrap();
    let err = ResourceManager::open(&link).expect_err("symlink");
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert!(!err.to_string().contains('\n'));
    assert!(
        names(&real).is_empty(),
        "nothing was created through the link"
    );

    // Open to other users.
    let open = base.path().join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
    let err = ResourceManager::open(&open).expect_err("0755");
    assert!(err.to_string().contains("755"), "{err}");

    // Not a directory.
    let file = base.path().join("file");
    fs::write(&file, b"x").unwrap();
    let err = ResourceManager::open(&file).expect_err("file");
    assert!(err.to_string().contains("not a directory"), "{err}");

    // Someone else's (only root can make one to test with).
    if w4l::tempfiles::current_uid() == 0 {
        let theirs = base.path().join("theirs");
        fs::create_dir(&theirs).unwrap();
        fs::set_permissions(&theirs, fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&theirs, Some(12345), Some(12345)).unwrap();
        let err = ResourceManager::open(&theirs).expect_err("foreign owner");
        assert!(err.to_string().contains("owned by uid 12345"), "{err}");
    }

    // Missing parent.
    let err = ResourceManager::open(base.path().join("no/such")).expect_err("no parent");
    assert!(matches!(err, TempError::Dir { .. }), "{err}");
}

#[test]
fn a_second_open_of_the_same_directory_shares_the_manager() {
    let base = base();
    let dir = base.path().join("w4l");
    let first = ResourceManager::open(&dir).expect("open");
    // Under another name for the same directory, too.
    let alias = base.path().join("alias");
    symlink(base.path(), &alias).unwrap();
    let second = ResourceManager::open(alias.join("w4l")).expect("second open");
    assert!(Arc::ptr_eq(&first, &second));
    // Files created through either are one set: one lock file, two files.
    let a = first.create("take").expect("create");
    let b = second.create("scratch").expect("create");
    assert_eq!(first.files().len(), 2);
    assert_eq!(names(&dir).len(), 3, "{:?}", names(&dir));
    drop((a, b));
    // The last holder closes it; a new open makes a new one.
    drop(first);
    assert_eq!(
        names(&dir).len(),
        1,
        "the lock stays while one holder is left"
    );
    drop(second);
    assert!(names(&dir).is_empty(), "{:?}", names(&dir));
    let again = ResourceManager::open(&dir).expect("reopen after drop");
    assert!(again.files().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Cleanup
// ---------------------------------------------------------------------------------------------

#[test]
fn dropping_the_manager_removes_files_and_lock_even_with_handles_alive() {
    let base = base();
    let dir = base.path().join("w4l");
    let manager = ResourceManager::open(&dir).expect("open");
    let mut a = manager.create("take").expect("create");
    a.write_all(&[0; 4096]).unwrap();
    let b = manager.create("spill").expect("create");
    assert_eq!(names(&dir).len(), 3, "two files and the lock");
    drop(manager);
    assert!(names(&dir).is_empty(), "{:?}", names(&dir));
    // The handles outlive the manager harmlessly.
    assert!(
        a.write_all(&[0; 4096]).is_err(),
        "growth after cleanup is reported"
    );
    drop((a, b));
    assert!(names(&dir).is_empty());
}

#[test]
fn dropping_a_file_removes_it_and_cleanup_removes_the_rest() {
    let base = base();
    let dir = base.path().join("w4l");
    let manager = ResourceManager::open(&dir).expect("open");
    let a = manager.create("take").expect("create");
    let a_path = a.path().to_path_buf();
    drop(a);
    assert!(!a_path.exists());
    assert!(manager.files().is_empty());

    let mut b = manager.create("take").expect("create");
    b.write_all(&[7; 300]).unwrap();
    let report = manager.cleanup();
    assert_eq!(report.files, vec![b.path().to_path_buf()]);
    assert_eq!(report.bytes, 300);
    assert!(!b.path().exists());
    assert_eq!(b.state(), None);
    let err = b.account(400).expect_err("removed");
    assert!(matches!(err, TempError::Removed { .. }), "{err}");
    // The manager stays usable after `cleanup`.
    let c = manager.create("take").expect("create after cleanup");
    assert!(c.path().exists());
}

#[test]
fn emergency_cleanup_closes_the_manager() {
    let base = base();
    let dir = base.path().join("w4l");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    let mut spawned = spawn_child("closed", &dir);
    assert!(wait_with_timeout(&mut spawned.child).success());
    assert!(names(&dir).is_empty(), "{:?}", names(&dir));
}

// ---------------------------------------------------------------------------------------------
// Reaping
// ---------------------------------------------------------------------------------------------

#[test]
fn files_of_a_live_process_survive_and_a_killed_ones_are_reaped() {
    let base = base();
    let dir = base.path().join("w4l");
    let manager = ResourceManager::open(&dir).expect("open");
    let mut spawned = spawn_child("hold", &dir);
    let files = spawned.files.clone();
    let child = &mut spawned.child;
    assert_eq!(files.len(), 2);
    let child_lock = dir.join(format!("w4l-{}.lock", child.id()));
    assert!(child_lock.exists());

    // Alive: neither a dry run nor a real reap (nor memory pressure) touches its files.
    assert!(manager.reap(true).files.is_empty());
    assert!(manager.reap(false).files.is_empty());
    assert!(manager.reap_finished().files.is_empty());
    for f in &files {
        assert!(
            f.exists(),
            "{} was reaped while its owner lives",
            f.display()
        );
    }

    // SIGKILL: no cleanup code runs in the child.
    child.kill().expect("SIGKILL");
    child.wait().expect("reap the zombie");
    for f in &files {
        assert!(f.exists(), "the kernel does not remove files");
    }

    // A dry run reports without removing.
    let dry = manager.reap(true);
    assert!(dry.dry_run);
    let mut reported = dry.files.clone();
    reported.sort();
    let mut expected = files.clone();
    expected.sort();
    assert_eq!(reported, expected);
    assert_eq!(dry.bytes, 1500);
    assert!(
        dry.to_string()
            .starts_with("would remove 2 temporary files (1500 bytes)")
    );
    for f in &files {
        assert!(f.exists(), "a dry run removed {}", f.display());
    }
    assert!(child_lock.exists(), "a dry run removed the lock file");

    let real = manager.reap(false);
    let mut removed = real.files.clone();
    removed.sort();
    assert_eq!(removed, expected);
    assert_eq!(real.bytes, 1500);
    assert!(real.failures.is_empty(), "{:?}", real.failures);
    for f in &files {
        assert!(!f.exists());
    }
    assert!(!child_lock.exists(), "the stale lock file is removed too");
    assert_eq!(
        names(&dir),
        vec![format!("w4l-{}.lock", std::process::id())]
    );
}

#[test]
fn a_new_manager_reaps_orphans_at_start() {
    let base = base();
    let dir = base.path().join("w4l");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    let mut spawned = spawn_child("hold", &dir);
    let files = spawned.files.clone();
    let child = &mut spawned.child;
    child.kill().expect("SIGKILL");
    child.wait().expect("reap the zombie");

    let manager = ResourceManager::open(&dir).expect("open");
    let mut reaped = manager.startup_report().files.clone();
    reaped.sort();
    let mut expected = files.clone();
    expected.sort();
    assert_eq!(reaped, expected);
    assert_eq!(manager.startup_report().bytes, 1500);
}

#[test]
fn files_left_by_an_earlier_process_with_our_pid_are_reaped() {
    let base = base();
    let dir = base.path().join("w4l");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    // A previous process with this pid died leaving a file and its (unlocked) lock file.
    let stale = dir.join(format!("w4l-{}-take-AbCdEf0123.wav", std::process::id()));
    fs::write(&stale, [0u8; 64]).unwrap();
    fs::write(dir.join(format!("w4l-{}.lock", std::process::id())), b"").unwrap();
    let manager = ResourceManager::open(&dir).expect("open");
    assert_eq!(manager.startup_report().files, vec![stale.clone()]);
    assert!(!stale.exists());
    // Our own registered files are never reaped.
    let take = manager.create("take").expect("create");
    assert!(manager.reap(false).files.is_empty());
    assert!(take.path().exists());
}

#[test]
fn symlinks_foreign_names_and_other_entries_are_never_touched() {
    let base = base();
    let dir = base.path().join("w4l");
    let outside = base.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let target = outside.join("precious.wav");
    fs::write(&target, b"precious").unwrap();
    let lock_target = outside.join("lock-target");
    fs::write(&lock_target, b"lock").unwrap();

    let manager = ResourceManager::open(&dir).expect("open");

    // A symlink with a valid temporary-file name of a dead pid, pointing outside.
    let link = dir.join("w4l-99991-take-AAAAAAAAAA.wav");
    symlink(&target, &link).unwrap();
    // A symlink to a directory outside, with a valid name.
    let dir_link = dir.join("w4l-99991-take-BBBBBBBBBB.wav");
    symlink(&outside, &dir_link).unwrap();
    // A directory with a valid name, holding a file.
    let subdir = dir.join("w4l-99991-take-CCCCCCCCCC.wav");
    fs::create_dir(&subdir).unwrap();
    fs::write(subdir.join("inner.wav"), b"inner").unwrap();
    // Foreign names.
    let foreign = [
        "notes.txt",
        "w4l-99991-take-short.wav",
        "w4l-99991-take-AAAAAAAAAA.wav.bak",
        "w4l-099991-take-AAAAAAAAAA.wav",
        "w4l-99991-Take-AAAAAAAAAA.wav",
        "w4l-99991-take-AAAAAAAAAA-x.wav",
        "x-w4l-99991-take-AAAAAAAAAA.wav",
        "w4l-99991.lock.old",
    ];
    for name in foreign {
        fs::write(dir.join(name), b"foreign").unwrap();
    }
    // A pid whose lock file is a symlink: liveness cannot be judged, its files stay.
    symlink(&lock_target, dir.join("w4l-99992.lock")).unwrap();
    let guarded = dir.join("w4l-99992-take-DDDDDDDDDD.wav");
    fs::write(&guarded, b"guarded").unwrap();
    // Control: a real orphan next to all that is removed.
    let orphan = dir.join("w4l-99993-take-EEEEEEEEEE.wav");
    fs::write(&orphan, b"orphan").unwrap();

    let report = manager.reap(false);
    assert_eq!(report.files, vec![orphan.clone()]);
    assert_eq!(report.bytes, 6);
    assert!(!orphan.exists());

    assert_eq!(fs::read(&target).unwrap(), b"precious");
    assert_eq!(fs::read(&lock_target).unwrap(), b"lock");
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        fs::symlink_metadata(&dir_link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read(subdir.join("inner.wav")).unwrap(), b"inner");
    assert!(
        fs::symlink_metadata(dir.join("w4l-99992.lock"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read(&guarded).unwrap(), b"guarded");
    for name in foreign {
        assert_eq!(fs::read(dir.join(name)).unwrap(), b"foreign", "{name}");
    }
    assert_eq!(names(&outside), vec!["lock-target", "precious.wav"]);

    // The same holds on drop and at the next start.
    drop(manager);
    let again = ResourceManager::open(&dir).expect("reopen");
    assert!(again.startup_report().files.is_empty());
    assert_eq!(fs::read(&target).unwrap(), b"precious");
    assert_eq!(fs::read(&guarded).unwrap(), b"guarded");
}

#[test]
fn memory_pressure_reap_spares_the_take_in_progress() {
    let base = base();
    let manager = ResourceManager::open(base.path().join("w4l")).expect("open");
    let mut take = manager.create("take").expect("create");
    take.write_all(&[1; 2048]).unwrap();
    let mut spill = manager.create("spill").expect("create");
    spill.write_all(&[2; 1024]).unwrap();
    spill.finish().unwrap();
    assert_eq!(spill.state(), Some(FileState::Finished));

    let report = manager.reap_finished();
    assert_eq!(report.files, vec![spill.path().to_path_buf()]);
    assert_eq!(report.bytes, 1024);
    assert!(!spill.path().exists());
    assert!(take.path().exists(), "the take in progress was reaped");
    assert_eq!(take.state(), Some(FileState::InProgress));
    take.write_all(&[1; 2048]).expect("the take goes on");
    assert_eq!(manager.total_bytes(), 4096);
    assert_eq!(fs::metadata(take.path()).unwrap().len(), 4096);
}

// ---------------------------------------------------------------------------------------------
// Accounting and persisting
// ---------------------------------------------------------------------------------------------

#[test]
fn disk_bytes_are_charged_to_the_accountant() {
    let base = base();
    let manager = ResourceManager::open(base.path().join("w4l")).expect("open");
    let accountant = Arc::new(Accountant::new(0, 10_000));

    // An uncharged file costs the accountant nothing.
    let mut free = manager.create("scratch").expect("create");
    free.write_all(&[0; 500]).unwrap();
    assert_eq!(accountant.disk_used(), 0);

    let mut early = manager
        .create_charged("spill", &accountant)
        .expect("create");
    early.write_all(&[0; 1000]).unwrap();
    assert_eq!(accountant.disk_used(), 1000);

    let mut take = manager.create_charged("take", &accountant).expect("create");
    take.write_all(&[0; 4000]).unwrap();
    assert_eq!(accountant.disk_used(), 5000);
    assert_eq!(take.size(), 4000);
    // Rewriting inside the file (a WAV header update) does not charge again.
    use std::io::Seek;
    take.seek(std::io::SeekFrom::Start(0)).unwrap();
    take.write_all(&[1; 44]).unwrap();
    assert_eq!(accountant.disk_used(), 5000);

    // Past the disk budget the write fails with the accountant's refusal.
    take.seek(std::io::SeekFrom::End(0)).unwrap();
    let err = take.write_all(&[0; 6000]).expect_err("over budget");
    assert!(err.to_string().contains("disk budget"), "{err}");
    assert!(accountant.disk_used() <= 10_000);

    drop(early);
    assert_eq!(accountant.disk_used(), 4000);
    manager.cleanup();
    assert_eq!(accountant.disk_used(), 0);
    drop(take);
    assert_eq!(accountant.disk_used(), 0);
}

#[test]
fn a_wav_written_through_hound_persists_intact() {
    let base = base();
    let manager = ResourceManager::open(base.path().join("w4l")).expect("open");
    let accountant = Arc::new(Accountant::new(0, 1 << 20));
    let mut take = manager.create_charged("take", &accountant).expect("create");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let samples: Vec<i16> = (0..16_000)
        .map(|i| (i * 7 % 65_536 - 32_768) as i16)
        .collect();
    {
        let mut writer =
            hound::WavWriter::new(std::io::BufWriter::new(&mut take), spec).expect("header");
        for &s in &samples {
            writer.write_sample(s).unwrap();
        }
        writer.finalize().unwrap();
    }
    assert_eq!(take.size(), 44 + 32_000);
    assert_eq!(accountant.disk_used(), 44 + 32_000);
    let temp_path = take.path().to_path_buf();

    let out = base.path().join("out").join("take.wav");
    fs::create_dir(out.parent().unwrap()).unwrap();
    take.persist(&out).expect("persist");
    assert!(!temp_path.exists());
    assert!(manager.files().is_empty());
    assert_eq!(accountant.disk_used(), 0);

    let mut reader = hound::WavReader::open(&out).expect("read back");
    let back: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    assert_eq!(back, samples);
}

#[test]
fn persist_failure_returns_the_file() {
    let base = base();
    let manager = ResourceManager::open(base.path().join("w4l")).expect("open");
    let mut take = manager.create("take").expect("create");
    take.write_all(b"data").unwrap();
    let err = take
        .persist(&base.path().join("no/such/dir/take.wav"))
        .expect_err("missing directory");
    assert!(!err.to_string().contains('\n'));
    let take = err.file.expect("the file comes back");
    assert!(take.path().exists());
    let out = base.path().join("take.wav");
    take.persist(&out).expect("retry");
    assert_eq!(fs::read(&out).unwrap(), b"data");
}

#[test]
fn persist_across_filesystems_copies() {
    // /dev/shm is a tmpfs; if it is on the same device as the test directory, there is no
    // second filesystem to test with and the rename path is exercised instead.
    let shm = Path::new("/dev/shm");
    let Ok(shm_base) = tempfile::tempdir_in(shm) else {
        return;
    };
    let base = base();
    let manager = ResourceManager::open(shm_base.path().join("w4l")).expect("open");
    let mut take = manager.create("take").expect("create");
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    take.write_all(&payload).unwrap();
    let temp_path = take.path().to_path_buf();
    let out = base.path().join("take.wav");
    take.persist(&out).expect("persist");
    assert!(!temp_path.exists());
    let mut back = Vec::new();
    fs::File::open(&out)
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, payload);
    assert_eq!(names(base.path()), vec!["take.wav"], "no partial file left");
    assert!(manager.files().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Signals and panics
// ---------------------------------------------------------------------------------------------

fn private_dir(base: &Path) -> PathBuf {
    let dir = base.join("w4l");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

#[test]
fn sigterm_removes_the_files_and_exits_143() {
    let base = base();
    let dir = private_dir(base.path());
    let mut spawned = spawn_child("signal", &dir);
    let files = spawned.files.clone();
    let child = &mut spawned.child;
    assert!(files[0].exists());
    send_signal(child, libc::SIGTERM);
    let status = wait_with_timeout(child);
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
    assert!(names(&dir).is_empty(), "{:?}", names(&dir));
}

#[test]
fn sighup_removes_the_files_and_exits_129() {
    let base = base();
    let dir = private_dir(base.path());
    let mut spawned = spawn_child("signal", &dir);
    let child = &mut spawned.child;
    send_signal(child, libc::SIGHUP);
    let status = wait_with_timeout(child);
    assert_eq!(status.code(), Some(128 + libc::SIGHUP));
    assert!(names(&dir).is_empty(), "{:?}", names(&dir));
}

#[test]
fn sigint_with_notify_first_stops_gracefully() {
    let base = base();
    let dir = private_dir(base.path());
    let mut spawned = spawn_child("notify", &dir);
    let files = spawned.files.clone();
    let child = &mut spawned.child;
    assert!(files[0].exists());
    send_signal(child, libc::SIGINT);
    let status = wait_with_timeout(child);
    assert_eq!(status.code(), Some(128 + libc::SIGINT));
    assert!(names(&dir).is_empty(), "{:?}", names(&dir));
}

#[test]
fn the_panic_path_removes_leaked_files() {
    let base = base();
    let dir = private_dir(base.path());
    let mut spawned = spawn_child("panic", &dir);
    let files = spawned.files.clone();
    let child = &mut spawned.child;
    assert_eq!(files.len(), 1);
    assert!(wait_with_timeout(child).success());
    assert!(!files[0].exists());
    assert!(names(&dir).is_empty(), "{:?}", names(&dir));
}

#[test]
fn reap_dir_cleans_without_a_manager_and_respects_live_ones() {
    let base = base();
    let dir = base.path().join("w4l");
    let report = w4l::tempfiles::reap_dir(&dir, true).expect("missing dir");
    assert!(report.files.is_empty());
    assert!(
        !dir.exists(),
        "a dry run on a missing directory creates nothing"
    );

    let manager = ResourceManager::open(&dir).expect("open");
    let mut take = manager.create("take").expect("create");
    take.write_all(&[0; 10]).unwrap();
    let orphan = dir.join("w4l-99994-take-FFFFFFFFFF.wav");
    fs::write(&orphan, [0u8; 32]).unwrap();

    let dry = w4l::tempfiles::reap_dir(&dir, true).expect("dry run");
    assert_eq!(dry.files, vec![orphan.clone()]);
    assert_eq!(dry.bytes, 32);
    assert!(orphan.exists());

    // This process's own manager holds its lock through another open file: still live.
    let real = w4l::tempfiles::reap_dir(&dir, false).expect("reap");
    assert_eq!(real.files, vec![orphan.clone()]);
    assert!(!orphan.exists());
    assert!(take.path().exists());
    take.write_all(&[0; 10]).expect("the take goes on");
    // Closing the reaper's probe descriptors did not release the manager's flock.
    let after = w4l::tempfiles::reap_dir(&dir, false).expect("reap again");
    assert!(after.files.is_empty(), "{after:?}");
    assert!(take.path().exists());
}
