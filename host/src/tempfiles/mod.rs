//! The temporary-file resource manager: every temporary file w4l creates, and every file an app
//! hands it, is removed — on [`ResourceManager::cleanup`], on drop, on a signal ([`signals`]),
//! after a panic ([`cleanup_after_panic`]), and, for what a killed process (SIGKILL, power loss)
//! left behind, by the next start or `w4l clean`. Except a take: a killed take is *recovered*
//! into a WAV file, never reaped (`w4l::take::recover`).
//!
//! # One manager per directory per process
//!
//! [`ResourceManager::open`] returns the manager this process already has for a directory, or
//! opens one: an app's manager and the recorder's are the same object, never two that fight
//! over the directory. [`ResourceManager::shared`] is the one of [`default_dir`].
//!
//! # Where the files live
//!
//! On a disk ([`default_dir`]): `$W4L_TEMP_DIR` if set (honoured wherever it points, then
//! [`ResourceManager::is_ram_backed`] says whether it is RAM), else `$XDG_CACHE_HOME/w4l`, else
//! `~/.cache/w4l`, else `<tmp>/w4l-<uid>`, each only if it is not a tmpfs or ramfs. The
//! directory is created with mode 0700; an existing one is used only if it is a real directory
//! (not a symbolic link) owned by this user with no permission bits for anyone else. Files are
//! created with mode 0600 and named `w4l-<pid>-<purpose>-<random>.wav`; outputs get ordinary
//! permissions ([`ordinary_permissions`]).
//!
//! # Who owns a file
//!
//! One `flock` per process on `w4l-<pid>.lock` in the directory (see `lock.rs`): a file of a
//! pid whose lock someone else can take is an orphan. What the reaper then does with it — a
//! take's journal (with its manifest) is left for recovery, scratch is removed, a recorded
//! outside file is removed if it is still the file recorded — is in `reap.rs`; it never
//! follows a symbolic link, never leaves its directory and never deletes a name it did not make.
//!
//! # Files outside the directory
//!
//! [`ResourceManager::adopt`] takes an app's file into the manager's care; [`OutsideFile`]
//! guards w4l's own unfinished files beside an output. Both leave a record in the directory, so
//! a kill leaves nothing that nothing removes.
//!
//! # Takes in another directory
//!
//! A take's journal may live beside its output instead (`w4l::take::beside`), in a directory
//! with a manager of its own; a *pointer* in this directory names it (`pointer.rs`), so
//! recovery and [`unfinished_takes`] look there too.
//!
//! # Memory pressure
//!
//! [`ResourceManager::reap_finished`] is the cleanup policy's `ReapTempFiles`: only this
//! process's [`FileState::Finished`] files and dead processes' scratch; never a take in
//! progress or an adopted file.
//!
//! # Disk accounting
//!
//! The bytes of temporary files count against the accountant's disk budget through the
//! [`DiskLedger`] seam ([`ResourceManager::create_charged`]).
//!
//! ```
//! use std::io::Write;
//! use w4l::tempfiles::ResourceManager;
//!
//! let base = tempfile::tempdir()?;
//! let manager = ResourceManager::open(base.path().join("w4l"))?;
//! let mut scratch = manager.create("scratch")?;
//! scratch.write_all(&[0; 1000])?;
//! let path = scratch.path().to_owned();
//! drop(scratch);
//! assert!(!path.exists());
//!
//! let app_file = base.path().join("notes.txt");
//! std::fs::write(&app_file, b"mine")?;
//! let adopted = manager.adopt(&app_file)?;
//! assert!(manager.reap_finished().files.is_empty()); // in use: memory pressure spares it
//! drop(adopted);
//! assert!(!app_file.exists());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod adopt;
mod dirs;
mod disk;
mod error;
mod file;
mod lock;
mod manager;
mod names;
mod orphans;
mod pointer;
mod reap;
mod record;
mod registry;
pub mod signals;

pub use adopt::{Adopted, OutsideFile};
pub(crate) use dirs::parent_dir;
pub use dirs::{DIR_ENV, current_uid, default_dir, is_ram_backed, ordinary_permissions};
pub use disk::{DiskHold, DiskLedger, DiskRefused};
pub(crate) use error::what_and_fix;
pub use error::{PersistError, TempError};
pub use file::TempFile;
pub use manager::{ResourceManager, TrackedFile};
pub use names::{MAX_PURPOSE_LEN, manifest_path};
pub use orphans::{OrphanTake, TakePart, UnfinishedTake, claim_orphan_takes, unfinished_takes};
pub use pointer::pointed_dirs;
pub(crate) use pointer::{forget_if_gone, tidy as tidy_pointed, write_pointer};
pub use reap::{ReapFailure, ReapReport, reap_dir};
pub use record::Manifest;
pub use registry::{FileState, cleanup_after_panic, cleanup_all};
