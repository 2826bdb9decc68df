//! The temporary-file resource manager: every temporary file w4l creates, and none that it
//! did not, is removed — on [`ResourceManager::cleanup`], on drop, on a signal
//! ([`crate::tempfiles::signals`]), after a panic ([`cleanup_after_panic`]), and, for files a killed
//! process (SIGKILL, power loss) left behind, by the next `w4l` start or `w4l clean`.
//!
//! # Where the files live
//!
//! In one private directory per user ([`default_dir`]): `$W4L_TEMP_DIR` if set (tests, CI),
//! else `$XDG_RUNTIME_DIR/w4l`, else `<system temp dir>/w4l-<uid>`. The directory is created
//! with mode 0700; an existing one is used only if it is a real directory (not a symbolic
//! link) owned by this user with no permission bits for anyone else. Files are created with
//! mode 0600 and named `w4l-<pid>-<purpose>-<10 random characters>.wav`.
//!
//! # Who owns a file: one `flock` per process
//!
//! Every process that creates files holds an exclusive `flock` on `w4l-<pid>.lock` in the
//! directory for as long as it lives; the kernel drops the lock when the process dies,
//! however it dies. A file `w4l-<pid>-…` is an orphan iff `w4l-<pid>.lock` can be locked by
//! someone else. The reaper takes that lock itself (creating the lock file if it is missing),
//! deletes the orphans while holding it, then unlinks the lock file and lets go. A process
//! starting with a reused pid takes its lock the same way and, after locking, checks that the
//! path still names the file it locked (it retries if a reaper unlinked it in between), so a
//! live process's files are never reaped and pid reuse does not matter. Locks held by
//! processes in other pid namespaces sharing the directory are honoured the same way.
//!
//! # What the reaper will touch
//!
//! Only entries directly in the directory (no recursion, no `..`) whose names match the
//! pattern above, that are regular files (checked with `symlink_metadata`: a symbolic link
//! is never followed, its target never touched) and owned by this user. Lock files are
//! opened with `O_NOFOLLOW`.
//!
//! # Takes in progress
//!
//! A file is [`FileState::InProgress`] from creation until [`TempFile::finish`]. Memory
//! pressure ([`ResourceManager::reap_finished`], the cleanup policy's `ReapTempFiles`
//! action) only removes this process's *finished* files and orphans: never the take being
//! recorded.
//!
//! # Disk accounting
//!
//! The bytes of temporary files count against the accountant's disk budget
//! ([`Category::Disk`]) through the [`DiskLedger`] seam: one [`DiskHold`] (a
//! [`Reservation`] for an [`Accountant`]) per file, resized as the file grows, released
//! when the file is removed or persisted. [`ResourceManager::set_accountant`] plugs the core
//! accountant in; writing past the budget fails with the accountant's refusal.
//!
//! ```
//! use std::io::Write;
//! use w4l::tempfiles::{FileState, ResourceManager};
//!
//! let base = tempfile::tempdir().unwrap();
//! let manager = ResourceManager::with_dir(base.path().join("w4l")).unwrap();
//! let mut take = manager.create("take").unwrap();
//! take.write_all(&[0; 1000]).unwrap();
//! assert_eq!(manager.total_bytes(), 1000);
//! assert_eq!(take.state(), Some(FileState::InProgress));
//!
//! // Memory pressure leaves the take being recorded alone.
//! assert!(manager.reap_finished().files.is_empty());
//! assert!(take.path().exists());
//!
//! take.finish().unwrap();
//! let out = base.path().join("take.wav");
//! take.persist(&out).unwrap();
//! assert!(out.exists());
//! assert_eq!(manager.total_bytes(), 0);
//! ```

pub mod signals;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Deref;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError, Weak};
use std::time::Duration;

use w4l_core::accountant::{Accountant, Category, Reservation};

/// Environment variable naming the temporary directory itself (overrides the default).
pub const DIR_ENV: &str = "W4L_TEMP_DIR";

/// Every name this module creates starts with this.
const PREFIX: &str = "w4l-";
/// Suffix of temporary files.
const SUFFIX: &str = ".wav";
/// Suffix of the per-process lock files.
const LOCK_SUFFIX: &str = ".lock";
/// Random characters in a temporary file's name.
const RAND_LEN: usize = 10;
/// Longest purpose accepted by [`ResourceManager::create`].
pub const MAX_PURPOSE_LEN: usize = 24;
/// How long a start waits for its own lock file while a reaper briefly holds it.
const OWN_LOCK_ATTEMPTS: u32 = 100;
/// How long the panic and signal paths wait for the registry before giving up.
const EMERGENCY_LOCK_ATTEMPTS: u32 = 200;

// ---------------------------------------------------------------------------------------------
// Errors and reports
// ---------------------------------------------------------------------------------------------

/// Why a temporary-file operation failed. Every message is one line: what was wrong and what
/// to do.
#[derive(Debug)]
pub enum TempError {
    /// The temporary directory exists but is not safe to use.
    UnsafeDir {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The temporary directory could not be created or inspected.
    Dir {
        /// The directory.
        dir: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The per-process lock file could not be taken.
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Another holder keeps this process's lock file locked.
    LockBusy {
        /// The lock file.
        path: PathBuf,
    },
    /// Another [`ResourceManager`] of this process already uses the directory.
    AlreadyOpen {
        /// The directory.
        dir: PathBuf,
    },
    /// The purpose given to [`ResourceManager::create`] is not `[a-z0-9_]{1,24}`.
    InvalidPurpose {
        /// The purpose given.
        purpose: String,
    },
    /// The manager was cleaned up for exit (signal, panic, drop): no new files.
    Closed,
    /// The file was already removed by a cleanup or a memory-pressure reap.
    Removed {
        /// The file.
        path: PathBuf,
    },
    /// Creating, writing, syncing or moving a file failed.
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The disk ledger refused to account for the file's growth.
    Budget(DiskRefused),
}

impl fmt::Display for TempError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsafeDir { dir, reason } => write!(
                f,
                "refusing to use the temporary directory {}: it {reason}; remove it or set {DIR_ENV} to a private directory",
                dir.display()
            ),
            Self::Dir { dir, source } => write!(
                f,
                "could not create the temporary directory {}: {source}; check that its parent exists and is writable, or set {DIR_ENV}",
                dir.display()
            ),
            Self::Lock { path, source } => write!(
                f,
                "could not take the lock file {}: {source}; check the temporary directory or set {DIR_ENV}",
                path.display()
            ),
            Self::LockBusy { path } => write!(
                f,
                "the lock file {} stays locked by someone else; another process with the same pid (another pid namespace?) shares the directory: set {DIR_ENV} to a separate one",
                path.display()
            ),
            Self::AlreadyOpen { dir } => write!(
                f,
                "this process already manages the temporary directory {}; share that ResourceManager instead of opening a second one",
                dir.display()
            ),
            Self::InvalidPurpose { purpose } => write!(
                f,
                "invalid temporary-file purpose {purpose:?}; use 1 to {MAX_PURPOSE_LEN} characters of a-z, 0-9 and _"
            ),
            Self::Closed => f.write_str(
                "the temporary-file manager was shut down (signal, panic or exit); no new temporary files can be created",
            ),
            Self::Removed { path } => write!(
                f,
                "the temporary file {} was already removed by a cleanup; the data written to it is lost, record again",
                path.display()
            ),
            Self::Io { op, path, source } => write!(
                f,
                "could not {op} {}: {source}; check free space and permissions",
                path.display()
            ),
            Self::Budget(refused) => write!(f, "{refused}"),
        }
    }
}

impl std::error::Error for TempError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Dir { source, .. } | Self::Lock { source, .. } | Self::Io { source, .. } => {
                Some(source)
            }
            Self::Budget(refused) => Some(refused),
            _ => None,
        }
    }
}

/// Splits a one-line `what; fix` message at its last `; `.
pub(crate) fn what_and_fix(message: &str) -> (&str, &str) {
    message.rsplit_once("; ").unwrap_or((message, ""))
}

impl From<TempError> for crate::error::Error {
    fn from(e: TempError) -> Self {
        let message = e.to_string();
        let (what, fix) = what_and_fix(&message);
        match e {
            TempError::InvalidPurpose { .. } => crate::error::Error::usage(what, fix),
            _ => crate::error::Error::runtime(what, fix),
        }
    }
}

/// A [`TempFile::persist`] that failed.
#[derive(Debug)]
pub struct PersistError {
    /// What went wrong.
    pub error: TempError,
    /// The temporary file, still registered and intact, if the recording did not reach its
    /// destination (retry with another path); `None` if it did and only the final sync
    /// failed.
    pub file: Option<TempFile>,
}

impl fmt::Display for PersistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for PersistError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// A file a reap could not remove.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReapFailure {
    /// The file.
    pub path: PathBuf,
    /// Why (the OS error).
    pub reason: String,
}

/// What a cleanup or a reap removed (or, for a dry run, would remove).
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReapReport {
    /// The temporary files removed (lock files are not listed).
    pub files: Vec<PathBuf>,
    /// Their total size in bytes.
    pub bytes: u64,
    /// Files that matched but could not be removed.
    pub failures: Vec<ReapFailure>,
    /// Whether this was a dry run (nothing removed).
    pub dry_run: bool,
}

impl ReapReport {
    fn merge(&mut self, other: ReapReport) {
        self.files.extend(other.files);
        self.bytes += other.bytes;
        self.failures.extend(other.failures);
    }

    fn removed(&mut self, path: PathBuf, bytes: u64) {
        self.files.push(path);
        self.bytes += bytes;
    }

    fn failed(&mut self, path: PathBuf, error: &io::Error) {
        self.failures.push(ReapFailure {
            path,
            reason: error.to_string(),
        });
    }
}

impl fmt::Display for ReapReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run {
            "would remove"
        } else {
            "removed"
        };
        let n = self.files.len();
        write!(
            f,
            "{verb} {n} temporary file{} ({} bytes)",
            if n == 1 { "" } else { "s" },
            self.bytes
        )?;
        if !self.failures.is_empty() {
            write!(f, "; {} could not be removed", self.failures.len())?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Disk accounting seam
// ---------------------------------------------------------------------------------------------

/// The disk ledger refused to account for more bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskRefused {
    /// The total size that was asked for.
    pub requested: u64,
    /// Why (from the ledger).
    pub reason: String,
}

impl fmt::Display for DiskRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a temporary file may not grow to {} bytes: {}",
            self.requested, self.reason
        )
    }
}

impl std::error::Error for DiskRefused {}

/// Where temporary files' bytes are charged: the memory accountant's `Disk` category.
///
/// [`ResourceManager::set_ledger`] installs one; each file then gets a [`DiskHold`].
pub trait DiskLedger: Send + Sync {
    /// A new, empty hold for one file.
    fn hold(&self) -> Box<dyn DiskHold>;
}

/// The bytes charged for one file (a reservation in the `Disk` category). Dropping it
/// releases them.
pub trait DiskHold: Send {
    /// Sets the charge to `bytes` in total (the file's current size). On refusal the previous
    /// charge stays.
    fn resize(&mut self, bytes: u64) -> Result<(), DiskRefused>;
}

/// The core accountant as a ledger: each file holds a [`Category::Disk`] reservation.
/// Implemented for any shared handle of an [`Accountant`] (`Arc<Accountant>`,
/// `&'static Accountant`).
impl<A> DiskLedger for A
where
    A: Deref<Target = Accountant> + Clone + Send + Sync + 'static,
{
    fn hold(&self) -> Box<dyn DiskHold> {
        Box::new(AccountantHold {
            handle: self.clone(),
            reservation: None,
        })
    }
}

/// A file's [`Category::Disk`] reservation, taken at its first growth.
struct AccountantHold<A: Deref<Target = Accountant>> {
    handle: A,
    reservation: Option<Reservation<A>>,
}

impl<A> DiskHold for AccountantHold<A>
where
    A: Deref<Target = Accountant> + Clone + Send,
{
    fn resize(&mut self, bytes: u64) -> Result<(), DiskRefused> {
        let refused = |reason: String| DiskRefused {
            requested: bytes,
            reason,
        };
        let want = usize::try_from(bytes)
            .map_err(|_| refused("more bytes than this machine can address".into()))?;
        let result = match self.reservation.as_mut() {
            Some(reservation) => reservation.resize(want),
            None => Accountant::try_reserve_in(self.handle.clone(), Category::Disk, want)
                .map(|r| self.reservation = Some(r)),
        };
        result.map_err(|e| refused(e.to_string()))
    }
}

// ---------------------------------------------------------------------------------------------
// Registry shared by the manager, its files and the emergency paths
// ---------------------------------------------------------------------------------------------

/// Whether the take a file holds is still being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// Being written: never removed by a memory-pressure reap.
    InProgress,
    /// Complete: may be removed under memory pressure.
    Finished,
}

/// One tracked temporary file, as [`ResourceManager::files`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedFile {
    /// The file.
    pub path: PathBuf,
    /// Its size as last reported.
    pub bytes: u64,
    /// In progress or finished.
    pub state: FileState,
}

/// A registered path.
struct Entry {
    path: PathBuf,
    bytes: u64,
    state: FileState,
    hold: Option<Box<dyn DiskHold>>,
    /// A partial copy in a destination directory ([`TempFile::persist`] across
    /// filesystems): removed by cleanups, but not a temporary file of ours.
    partial: bool,
    /// Charged to a ledger of its own ([`ResourceManager::create_charged`]), which
    /// [`ResourceManager::set_ledger`] leaves alone.
    own_ledger: bool,
}

/// The exclusive `flock` on `w4l-<pid>.lock`.
struct LockFile {
    file: File,
    path: PathBuf,
}

impl LockFile {
    /// Unlinks the lock file while still holding the lock, then lets go.
    fn release(self) {
        let _ = fs::remove_file(&self.path);
        drop(self.file);
    }
}

struct Registry {
    closed: bool,
    next_id: u64,
    entries: BTreeMap<u64, Entry>,
    ledger: Option<Arc<dyn DiskLedger>>,
    lock: Option<LockFile>,
}

struct Shared {
    dir: PathBuf,
    /// Device and inode of the directory, to spot a second manager on it in this process.
    dir_id: (u64, u64),
    pid: u32,
    uid: u32,
    registry: Mutex<Registry>,
}

/// Every live manager of this process, for the signal and panic paths.
static MANAGERS: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

/// Locks `m`, recovering from poisoning (the registry stays consistent: no code panics while
/// holding it).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Locks `m` without risking a deadlock on the panic path (the panicking thread may hold
/// it): tries for about two seconds, then gives up.
fn lock_patiently<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    for _ in 0..EMERGENCY_LOCK_ATTEMPTS {
        match m.try_lock() {
            Ok(guard) => return Some(guard),
            Err(TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    None
}

impl Shared {
    /// Removes every registered file and, if `close`, shuts the registry: unlinks the lock
    /// file and refuses new files.
    fn remove_all(&self, registry: &mut Registry, close: bool) -> ReapReport {
        let mut report = ReapReport::default();
        let entries = std::mem::take(&mut registry.entries);
        for (_, entry) in entries {
            match fs::remove_file(&entry.path) {
                Ok(()) => {
                    if !entry.partial {
                        report.removed(entry.path, entry.bytes);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => report.failed(entry.path, &e),
            }
            // `entry.hold` drops here: its bytes are released.
        }
        if close {
            registry.closed = true;
            if let Some(lock) = registry.lock.take() {
                lock.release();
            }
        }
        report
    }
}

/// Removes every temporary file of every manager of this process and shuts them down (no new
/// files; lock files unlinked). For the signal path ([`crate::tempfiles::signals`]) and anything about
/// to call [`std::process::exit`]. Never blocks for more than a few seconds, never panics.
pub fn cleanup_all() -> ReapReport {
    let managers: Vec<Arc<Shared>> = match lock_patiently(&MANAGERS) {
        Some(list) => list.iter().filter_map(Weak::upgrade).collect(),
        None => return ReapReport::default(),
    };
    let mut report = ReapReport::default();
    for shared in managers {
        if let Some(mut registry) = lock_patiently(&shared.registry) {
            report.merge(shared.remove_all(&mut registry, true));
        }
    }
    if let Some(mut outside) = lock_patiently(&OUTSIDE) {
        for path in outside.drain(..) {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => report.failed(path, &e),
            }
        }
    }
    report
}

/// Files w4l writes outside its temporary directory while they are unfinished (an output's
/// hidden temporary beside `-o`), which [`cleanup_all`] removes too: a signal or panic that
/// ends the process with [`std::process::exit`] runs no destructor.
static OUTSIDE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Keeps an unfinished file outside the temporary directory on the list [`cleanup_all`]
/// removes, until dropped (drop it once the file is finished or gone).
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join(".out.wav.w4l-tmp");
/// std::fs::write(&path, b"unfinished")?;
/// let guard = w4l::tempfiles::OutsideFile::register(&path);
/// w4l::tempfiles::cleanup_all();
/// assert!(!path.exists());
/// drop(guard);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct OutsideFile(PathBuf);

impl OutsideFile {
    /// Puts `path` on the list.
    pub fn register(path: &Path) -> Self {
        lock(&OUTSIDE).push(path.to_path_buf());
        Self(path.to_path_buf())
    }
}

impl Drop for OutsideFile {
    fn drop(&mut self) {
        let mut outside = lock(&OUTSIDE);
        if let Some(i) = outside.iter().position(|p| *p == self.0) {
            outside.swap_remove(i);
        }
    }
}

/// For the application's panic hook: removes every temporary file of this process, as
/// [`cleanup_all`] does. Safe to call from a hook running on a thread that holds a manager's
/// lock (it gives up on that manager after about two seconds instead of deadlocking).
///
/// [`crate::tempfiles::signals::install_panic_cleanup`] installs a hook that calls it.
pub fn cleanup_after_panic() -> ReapReport {
    cleanup_all()
}

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

/// What a directory entry's name says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owned {
    /// `w4l-<pid>-<purpose>-<random>.wav`
    File(u32),
    /// `w4l-<pid>.lock`
    Lock(u32),
}

/// Parses a canonical decimal pid (no sign, no leading zero).
fn parse_pid(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    s.parse().ok()
}

fn valid_purpose(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= MAX_PURPOSE_LEN
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Classifies a name; `None` for anything this module did not create.
fn parse_name(name: &OsStr) -> Option<Owned> {
    let name = name.to_str()?.strip_prefix(PREFIX)?;
    if let Some(pid) = name.strip_suffix(LOCK_SUFFIX) {
        return parse_pid(pid).map(Owned::Lock);
    }
    let stem = name.strip_suffix(SUFFIX)?;
    let mut parts = stem.split('-');
    let pid = parse_pid(parts.next()?)?;
    let purpose = parts.next()?;
    let random = parts.next()?;
    if parts.next().is_some()
        || !valid_purpose(purpose)
        || random.len() != RAND_LEN
        || !random.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return None;
    }
    Some(Owned::File(pid))
}

fn lock_name(pid: u32) -> String {
    format!("{PREFIX}{pid}{LOCK_SUFFIX}")
}

// ---------------------------------------------------------------------------------------------
// Directory and locks
// ---------------------------------------------------------------------------------------------

/// The effective user id.
pub fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions, touches no memory and cannot fail.
    unsafe { libc::geteuid() }
}

/// The directory [`ResourceManager::new`] uses: `$W4L_TEMP_DIR` if set, else
/// `$XDG_RUNTIME_DIR/w4l` if that variable holds an absolute path, else
/// `<system temp dir>/w4l-<uid>`.
pub fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute())
    {
        return runtime.join("w4l");
    }
    std::env::temp_dir().join(format!("w4l-{}", current_uid()))
}

/// Creates `dir` (mode 0700) if needed and checks that it is ours and private.
fn ensure_private_dir(dir: &Path, uid: u32) -> Result<fs::Metadata, TempError> {
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(TempError::Dir {
                dir: dir.to_path_buf(),
                source,
            });
        }
    }
    let meta = fs::symlink_metadata(dir).map_err(|source| TempError::Dir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let unsafe_dir = |reason: String| TempError::UnsafeDir {
        dir: dir.to_path_buf(),
        reason,
    };
    if meta.file_type().is_symlink() {
        return Err(unsafe_dir("is a symbolic link".into()));
    }
    if !meta.is_dir() {
        return Err(unsafe_dir("is not a directory".into()));
    }
    if meta.uid() != uid {
        return Err(unsafe_dir(format!(
            "is owned by uid {}, not by you (uid {uid})",
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(unsafe_dir(format!(
            "has mode {:o}, open to other users (it must be 700)",
            meta.mode() & 0o7777
        )));
    }
    Ok(meta)
}

/// Opens a lock file without following a symbolic link and checks it is our regular file.
fn open_lock_file(path: &Path, create: bool, uid: u32) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.uid() != uid {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "not a regular file owned by this user",
        ));
    }
    Ok(file)
}

/// Whether `path` still names the file `file` has open.
fn still_named(file: &File, path: &Path) -> io::Result<bool> {
    let open = file.metadata()?;
    match fs::symlink_metadata(path) {
        Ok(named) => Ok(named.dev() == open.dev() && named.ino() == open.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Outcome of trying to take another process's lock.
enum Liveness {
    /// Its owner is alive (or its lock file is not ours to judge): leave its files alone.
    Live,
    /// Its owner is gone; for a real reap we now hold its lock.
    Dead(Option<LockFile>),
}

/// Takes the lock of `pid` if its owner is dead. A dry run creates nothing and holds nothing.
fn probe_owner(dir: &Path, pid: u32, uid: u32, dry_run: bool) -> io::Result<Liveness> {
    let path = dir.join(lock_name(pid));
    let file = match open_lock_file(&path, !dry_run, uid) {
        Ok(file) => file,
        Err(e) if dry_run && e.kind() == io::ErrorKind::NotFound => {
            return Ok(Liveness::Dead(None));
        }
        // A symbolic link (ELOOP under O_NOFOLLOW), or a file that is not a regular file of
        // ours: not a lock w4l made, so its pid's files are not ours to judge. Leaving them
        // alone is the answer, not a failure to report.
        Err(e)
            if e.raw_os_error() == Some(libc::ELOOP)
                || e.kind() == io::ErrorKind::PermissionDenied =>
        {
            return Ok(Liveness::Live);
        }
        Err(e) => return Err(e),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(Liveness::Live),
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    if dry_run {
        return Ok(Liveness::Dead(None));
    }
    // Someone unlinked the file between our open and our lock: it is in flux, judge later.
    if !still_named(&file, &path)? {
        return Ok(Liveness::Live);
    }
    Ok(Liveness::Dead(Some(LockFile { file, path })))
}

/// Takes this process's own lock, waiting out a reaper that briefly holds it.
fn take_own_lock(dir: &Path, pid: u32, uid: u32) -> Result<LockFile, TempError> {
    let path = dir.join(lock_name(pid));
    let lock_err = |source| TempError::Lock {
        path: path.clone(),
        source,
    };
    for _ in 0..OWN_LOCK_ATTEMPTS {
        let file = open_lock_file(&path, true, uid).map_err(lock_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(lock_err(e)),
        }
        // A reaper may have unlinked the file we opened before we locked it: then our lock
        // protects nothing, start over with the file the path names now.
        if still_named(&file, &path).map_err(lock_err)? {
            return Ok(LockFile { file, path });
        }
    }
    Err(TempError::LockBusy { path })
}

/// Removes (or, for a dry run, measures) `path` if it is a regular file owned by `uid`.
/// Returns its size, or `None` if it is gone or not ours to touch.
fn remove_checked(path: &Path, uid: u32, dry_run: bool) -> io::Result<Option<u64>> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_file() || meta.uid() != uid {
        return Ok(None);
    }
    if !dry_run {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Ok(Some(meta.len()))
}

/// Fsyncs a directory so a rename or unlink in it is durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

// ---------------------------------------------------------------------------------------------
// ResourceManager
// ---------------------------------------------------------------------------------------------

/// Owns this process's temporary files: creates, tracks, accounts, removes them, and reaps
/// what dead processes left behind. See the [module documentation](self).
pub struct ResourceManager {
    shared: Arc<Shared>,
    startup: ReapReport,
}

impl fmt::Debug for ResourceManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceManager")
            .field("dir", &self.shared.dir)
            .field("pid", &self.shared.pid)
            .finish_non_exhaustive()
    }
}

impl ResourceManager {
    /// Opens the manager on [`default_dir`]: creates or checks the directory, takes this
    /// process's lock and reaps orphans of dead processes ([`ResourceManager::startup_report`]).
    pub fn new() -> Result<Self, TempError> {
        Self::with_dir(default_dir())
    }

    /// The process's manager of [`default_dir`], shared by everyone who does not bring their
    /// own: opened on first use, and kept as long as someone holds it.
    ///
    /// # Errors
    ///
    /// As for [`new`](Self::new).
    pub fn shared() -> Result<Arc<Self>, TempError> {
        static SHARED: Mutex<Weak<ResourceManager>> = Mutex::new(Weak::new());
        let mut slot = lock(&SHARED);
        if let Some(m) = slot.upgrade() {
            return Ok(m);
        }
        let manager = Arc::new(Self::new()?);
        *slot = Arc::downgrade(&manager);
        Ok(manager)
    }

    /// Opens the manager on `dir` (created with mode 0700 if missing; its parent must exist).
    pub fn with_dir(dir: impl Into<PathBuf>) -> Result<Self, TempError> {
        let dir = dir.into();
        let uid = current_uid();
        let pid = std::process::id();
        let meta = ensure_private_dir(&dir, uid)?;
        let dir_id = (meta.dev(), meta.ino());

        let mut managers = lock(&MANAGERS);
        managers.retain(|w| w.strong_count() > 0);
        let open_here = managers
            .iter()
            .filter_map(Weak::upgrade)
            .any(|s| s.dir_id == dir_id && !lock(&s.registry).closed);
        if open_here {
            return Err(TempError::AlreadyOpen { dir });
        }
        let own_lock = take_own_lock(&dir, pid, uid)?;
        let shared = Arc::new(Shared {
            dir,
            dir_id,
            pid,
            uid,
            registry: Mutex::new(Registry {
                closed: false,
                next_id: 0,
                entries: BTreeMap::new(),
                ledger: None,
                lock: Some(own_lock),
            }),
        });
        managers.push(Arc::downgrade(&shared));
        drop(managers);

        let mut manager = Self {
            shared,
            startup: ReapReport::default(),
        };
        manager.startup = manager.reap(false);
        Ok(manager)
    }

    /// What the start-up reap removed.
    pub fn startup_report(&self) -> &ReapReport {
        &self.startup
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Charges every file, present and future, to `ledger` (the accountant's `Disk`
    /// category). Files already open are charged at once; a refusal for one of them is
    /// returned, the others stay charged. Files made with [`create_charged`](Self::create_charged)
    /// keep their own ledger.
    pub fn set_ledger(&self, ledger: Arc<dyn DiskLedger>) -> Result<(), TempError> {
        let mut registry = lock(&self.shared.registry);
        let mut first_refusal = None;
        for entry in registry
            .entries
            .values_mut()
            .filter(|e| !e.partial && !e.own_ledger)
        {
            let mut hold = ledger.hold();
            if let Err(refused) = hold.resize(entry.bytes) {
                first_refusal.get_or_insert(refused);
            }
            entry.hold = Some(hold);
        }
        registry.ledger = Some(ledger);
        match first_refusal {
            Some(refused) => Err(TempError::Budget(refused)),
            None => Ok(()),
        }
    }

    /// Charges every file, present and future, to `accountant`'s [`Category::Disk`] (see
    /// [`ResourceManager::set_ledger`]).
    pub fn set_accountant(&self, accountant: Arc<Accountant>) -> Result<(), TempError> {
        self.set_ledger(Arc::new(accountant))
    }

    /// Creates a new temporary file `w4l-<pid>-<purpose>-<random>.wav` (mode 0600), registered
    /// and [`FileState::InProgress`]. `purpose` is 1 to [`MAX_PURPOSE_LEN`] characters of
    /// `a-z`, `0-9`, `_` (e.g. `take`, `spill`).
    pub fn create(&self, purpose: &str) -> Result<TempFile, TempError> {
        self.create_in_ledger(purpose, None)
    }

    /// Like [`ResourceManager::create`], but the file's bytes are charged to `ledger` instead
    /// of the manager's: several recorders sharing one manager each charge their own
    /// accountant's [`Category::Disk`].
    pub fn create_charged(
        &self,
        purpose: &str,
        ledger: &dyn DiskLedger,
    ) -> Result<TempFile, TempError> {
        self.create_in_ledger(purpose, Some(ledger))
    }

    fn create_in_ledger(
        &self,
        purpose: &str,
        ledger: Option<&dyn DiskLedger>,
    ) -> Result<TempFile, TempError> {
        if !valid_purpose(purpose) {
            return Err(TempError::InvalidPurpose {
                purpose: purpose.to_owned(),
            });
        }
        let shared = &self.shared;
        // Created and registered under the registry lock, so no cleanup can miss it.
        let mut registry = lock(&shared.registry);
        if registry.closed {
            return Err(TempError::Closed);
        }
        let named = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{}-{purpose}-", shared.pid))
            .suffix(SUFFIX)
            .rand_bytes(RAND_LEN)
            .permissions(Permissions::from_mode(0o600))
            .tempfile_in(&shared.dir)
            .map_err(|source| TempError::Io {
                op: "create a temporary file in",
                path: shared.dir.clone(),
                source,
            })?;
        let (file, path) = named.keep().map_err(|e| TempError::Io {
            op: "keep the temporary file",
            path: e.file.path().to_path_buf(),
            source: e.error,
        })?;
        let hold = match ledger {
            Some(ledger) => Some(ledger.hold()),
            None => registry.ledger.as_ref().map(|l| l.hold()),
        };
        let id = registry.next_id;
        registry.next_id += 1;
        registry.entries.insert(
            id,
            Entry {
                path: path.clone(),
                bytes: 0,
                state: FileState::InProgress,
                hold,
                partial: false,
                own_ledger: ledger.is_some(),
            },
        );
        Ok(TempFile {
            file,
            path,
            id,
            shared: Arc::clone(shared),
            pos: 0,
            accounted: AtomicU64::new(0),
        })
    }

    /// The tracked temporary files, oldest first.
    pub fn files(&self) -> Vec<TrackedFile> {
        lock(&self.shared.registry)
            .entries
            .values()
            .filter(|e| !e.partial)
            .map(|e| TrackedFile {
                path: e.path.clone(),
                bytes: e.bytes,
                state: e.state,
            })
            .collect()
    }

    /// Total bytes of the tracked temporary files.
    pub fn total_bytes(&self) -> u64 {
        lock(&self.shared.registry)
            .entries
            .values()
            .filter(|e| !e.partial)
            .map(|e| e.bytes)
            .sum()
    }

    /// Removes every temporary file of this process (in progress or not). The manager stays
    /// usable; handles of removed files report [`TempError::Removed`] on their next growth.
    pub fn cleanup(&self) -> ReapReport {
        let mut registry = lock(&self.shared.registry);
        self.shared.remove_all(&mut registry, false)
    }

    /// Removes the temporary files of dead processes (orphans). With `dry_run`, removes
    /// nothing and reports what it would remove. Never touches a live process's files, this
    /// process's registered files, or anything it did not create.
    pub fn reap(&self, dry_run: bool) -> ReapReport {
        let shared = &self.shared;
        let registered = || -> BTreeSet<PathBuf> {
            lock(&shared.registry)
                .entries
                .values()
                .map(|e| e.path.clone())
                .collect()
        };
        reap_in(
            &shared.dir,
            shared.uid,
            Some((shared.pid, &registered)),
            dry_run,
        )
    }

    /// Memory-pressure reap (the cleanup policy's `ReapTempFiles`): removes this process's
    /// [`FileState::Finished`] files and the orphans of dead processes. A take in progress is
    /// never touched.
    pub fn reap_finished(&self) -> ReapReport {
        let mut report = ReapReport::default();
        {
            let mut registry = lock(&self.shared.registry);
            let finished: Vec<u64> = registry
                .entries
                .iter()
                .filter(|(_, e)| e.state == FileState::Finished && !e.partial)
                .map(|(id, _)| *id)
                .collect();
            for id in finished {
                if let Some(entry) = registry.entries.remove(&id) {
                    match fs::remove_file(&entry.path) {
                        Ok(()) => report.removed(entry.path, entry.bytes),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => {
                            report.failed(entry.path.clone(), &e);
                            // Still there: keep tracking it.
                            registry.entries.insert(id, entry);
                        }
                    }
                }
            }
        }
        report.merge(self.reap(false));
        report
    }
}

impl Drop for ResourceManager {
    fn drop(&mut self) {
        let mut registry = lock(&self.shared.registry);
        self.shared.remove_all(&mut registry, true);
    }
}

/// `w4l clean [--dry-run]`: removes (or only reports) the temporary files that dead
/// processes left in `dir`, without opening a manager. A missing `dir` has nothing to clean
/// (and is not created); an unsafe one is refused like [`ResourceManager::with_dir`] does.
pub fn reap_dir(dir: &Path, dry_run: bool) -> Result<ReapReport, TempError> {
    let uid = current_uid();
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(ReapReport {
                dry_run,
                ..ReapReport::default()
            });
        }
        Err(source) => {
            return Err(TempError::Dir {
                dir: dir.to_path_buf(),
                source,
            });
        }
        Ok(_) => {}
    }
    ensure_private_dir(dir, uid)?;
    Ok(reap_in(dir, uid, None, dry_run))
}

/// The reaper. `own` is this process's pid and its registered files when it holds its own
/// lock in `dir` (a manager); files with that pid that are not registered are a previous
/// process's. Without `own`, every pid is judged by its lock.
fn reap_in(
    dir: &Path,
    uid: u32,
    own: Option<(u32, &dyn Fn() -> BTreeSet<PathBuf>)>,
    dry_run: bool,
) -> ReapReport {
    let mut report = ReapReport {
        dry_run,
        ..ReapReport::default()
    };
    let groups = match scan(dir) {
        Ok(groups) => groups,
        Err(e) => {
            report.failed(dir.to_path_buf(), &e);
            return report;
        }
    };
    for (pid, files) in groups {
        if let Some((own_pid, registered)) = own
            && pid == own_pid
        {
            // Our own lock is held: unregistered files with our pid are a previous
            // process's with the same pid. (Listed after the scan: a file created since is
            // not in `files`.)
            let registered = registered();
            for name in files {
                let path = dir.join(name);
                if !registered.contains(&path) {
                    reap_one(&mut report, path, uid, dry_run);
                }
            }
            continue;
        }
        match probe_owner(dir, pid, uid, dry_run) {
            Ok(Liveness::Live) => {}
            Ok(Liveness::Dead(lock)) => {
                for name in files {
                    reap_one(&mut report, dir.join(name), uid, dry_run);
                }
                if let Some(lock) = lock {
                    lock.release();
                }
            }
            Err(e) => report.failed(dir.join(lock_name(pid)), &e),
        }
    }
    report
}

/// Reaps one orphan into `report`.
fn reap_one(report: &mut ReapReport, path: PathBuf, uid: u32, dry_run: bool) {
    match remove_checked(&path, uid, dry_run) {
        Ok(Some(bytes)) => report.removed(path, bytes),
        Ok(None) => {}
        Err(e) => report.failed(path, &e),
    }
}

/// Lists the directory's temporary files by owner pid; a pid with only a lock file gets an
/// empty list (so its stale lock file is reaped).
fn scan(dir: &Path) -> io::Result<BTreeMap<u32, Vec<std::ffi::OsString>>> {
    let mut groups: BTreeMap<u32, Vec<std::ffi::OsString>> = BTreeMap::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        match parse_name(&name) {
            Some(Owned::File(pid)) => groups.entry(pid).or_default().push(name),
            Some(Owned::Lock(pid)) => {
                groups.entry(pid).or_default();
            }
            None => {}
        }
    }
    Ok(groups)
}

// ---------------------------------------------------------------------------------------------
// TempFile
// ---------------------------------------------------------------------------------------------

/// One registered temporary file. Reads, writes and seeks like a [`File`] (wrap it in a
/// `BufWriter` for hound's `WavWriter`); writing past the end charges the growth to the disk
/// ledger. Dropping it removes the file unless it was [persisted](TempFile::persist).
pub struct TempFile {
    file: File,
    path: PathBuf,
    id: u64,
    shared: Arc<Shared>,
    pos: u64,
    accounted: AtomicU64,
}

impl fmt::Debug for TempFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TempFile")
            .field("path", &self.path)
            .field("bytes", &self.accounted.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl TempFile {
    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file, for writers that need a [`File`].
    pub fn as_file(&self) -> &File {
        &self.file
    }

    /// The file's size as last accounted (by a write past the end, [`TempFile::account`] or
    /// [`TempFile::finish`]).
    pub fn size(&self) -> u64 {
        self.accounted.load(Ordering::Relaxed)
    }

    /// In progress or finished; `None` if a cleanup or memory-pressure reap removed it.
    pub fn state(&self) -> Option<FileState> {
        lock(&self.shared.registry)
            .entries
            .get(&self.id)
            .map(|e| e.state)
    }

    /// Whether the file is still registered (a cleanup or memory-pressure reap removes it).
    pub fn is_registered(&self) -> bool {
        lock(&self.shared.registry).entries.contains_key(&self.id)
    }

    /// Reports the file's total size (for writers that bypass this handle's `Write`): updates
    /// the tracked size and the disk ledger's hold. On refusal the previous charge stays.
    pub fn account(&self, total_bytes: u64) -> Result<(), TempError> {
        let mut registry = lock(&self.shared.registry);
        let Some(entry) = registry.entries.get_mut(&self.id) else {
            return Err(TempError::Removed {
                path: self.path.clone(),
            });
        };
        if let Some(hold) = entry.hold.as_mut() {
            hold.resize(total_bytes).map_err(TempError::Budget)?;
        }
        entry.bytes = total_bytes;
        self.accounted.store(total_bytes, Ordering::Relaxed);
        Ok(())
    }

    /// Marks the take complete: syncs it to disk and makes it [`FileState::Finished`] (from
    /// now on a memory-pressure reap may remove it). Accounts the file's real size.
    pub fn finish(&mut self) -> Result<(), TempError> {
        let io_err = |op| {
            let path = self.path.clone();
            move |source| TempError::Io { op, path, source }
        };
        self.file.sync_data().map_err(io_err("sync"))?;
        let len = self.file.metadata().map_err(io_err("inspect"))?.len();
        self.account(len)?;
        let mut registry = lock(&self.shared.registry);
        match registry.entries.get_mut(&self.id) {
            Some(entry) => {
                entry.state = FileState::Finished;
                Ok(())
            }
            None => Err(TempError::Removed {
                path: self.path.clone(),
            }),
        }
    }

    /// Moves the take to `to` (replacing a file there, like `mv`), finishing it first: a
    /// rename when `to` is on the same filesystem, else a copy to a hidden file beside `to`,
    /// fsync, rename, and removal of the temporary file. The destination's directory is
    /// fsynced. The file keeps mode 0600 (recordings are private). On failure before the
    /// recording reached `to`, the temporary file comes back in [`PersistError::file`].
    pub fn persist(mut self, to: &Path) -> Result<(), PersistError> {
        if let Err(error) = self.finish() {
            let file = self.is_registered().then_some(self);
            return Err(PersistError { error, file });
        }
        let dest_dir = parent_dir(to).to_path_buf();
        match fs::rename(&self.path, to) {
            Ok(()) => {
                // The file is the user's now: forget it (releasing its disk charge).
                lock(&self.shared.registry).entries.remove(&self.id);
                drop(self);
                sync_dir(&dest_dir).map_err(|source| PersistError {
                    error: TempError::Io {
                        op: "sync the directory of",
                        path: to.to_path_buf(),
                        source,
                    },
                    file: None,
                })
            }
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => self.persist_by_copy(to),
            Err(source) => Err(PersistError {
                error: TempError::Io {
                    op: "move the recording to",
                    path: to.to_path_buf(),
                    source,
                },
                file: Some(self),
            }),
        }
    }

    /// [`TempFile::persist`] across filesystems.
    fn persist_by_copy(mut self, to: &Path) -> Result<(), PersistError> {
        let dest_dir = parent_dir(to).to_path_buf();
        let io_err = |op, source| TempError::Io {
            op,
            path: to.to_path_buf(),
            source,
        };
        // Registered so that a signal or panic during the copy removes it too.
        let partial = {
            let mut registry = lock(&self.shared.registry);
            let partial = tempfile::Builder::new()
                .prefix(".w4l-partial-")
                .suffix(SUFFIX)
                .permissions(Permissions::from_mode(0o600))
                .tempfile_in(&dest_dir);
            match partial {
                Ok(partial) => {
                    let id = registry.next_id;
                    registry.next_id += 1;
                    registry.entries.insert(
                        id,
                        Entry {
                            path: partial.path().to_path_buf(),
                            bytes: 0,
                            state: FileState::InProgress,
                            hold: None,
                            partial: true,
                            own_ledger: false,
                        },
                    );
                    (partial, id)
                }
                Err(source) => {
                    drop(registry);
                    return Err(PersistError {
                        error: io_err("create a file beside", source),
                        file: Some(self),
                    });
                }
            }
        };
        let (mut partial, partial_id) = partial;
        let copied = self
            .file
            .seek(SeekFrom::Start(0))
            .and_then(|_| io::copy(&mut self.file, partial.as_file_mut()))
            .and_then(|_| partial.as_file().sync_all());
        let result = match copied {
            Ok(()) => partial
                .persist(to)
                .map(drop)
                .map_err(|e| io_err("move the recording to", e.error)),
            Err(source) => Err(io_err("copy the recording to", source)),
        };
        lock(&self.shared.registry).entries.remove(&partial_id);
        if let Err(error) = result {
            return Err(PersistError {
                error,
                file: Some(self),
            });
        }
        // `to` holds the recording now; dropping `self` removes the temporary file.
        drop(self);
        sync_dir(&dest_dir).map_err(|source| PersistError {
            error: io_err("sync the directory of", source),
            file: None,
        })
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let mut registry = lock(&self.shared.registry);
        if let Some(entry) = registry.entries.remove(&self.id) {
            let _ = fs::remove_file(&entry.path);
        }
    }
}

impl Write for TempFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.pos += n as u64;
        if self.pos > self.accounted.load(Ordering::Relaxed) {
            self.account(self.pos).map_err(io::Error::other)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Seek for TempFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.pos = self.file.seek(pos)?;
        Ok(self.pos)
    }
}

impl Read for TempFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}
