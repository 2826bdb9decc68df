//! The journal beside the output: where the temporary directory is on another file system
//! than the take's output, the journal goes to `<output dir>/.w4l/` instead, so finishing the
//! take is a rename, never a copy.
//!
//! The choice ([`beside_output`]) is made once per take, when its [`super::file::TakeFile`] is
//! made. `<output dir>/.w4l` is used only if all of these hold; otherwise the journal stays in
//! the temporary directory, exactly as before:
//!
//! * the output's path is known (`-o`);
//! * the temporary directory is on a disk: one in RAM is there only because the user chose it
//!   (`$W4L_TEMP_DIR`; never by default), and that choice is honoured — its bytes are charged
//!   to memory — rather than overruled;
//! * its directory is on a different file system (`st_dev`) than the temporary directory — on
//!   the same one the save is a rename already;
//! * that directory is on a disk: `statfs` says it is not a tmpfs or ramfs
//!   ([`crate::tempfiles::is_ram_backed`]) — a journal in RAM would cost the memory the journal
//!   is there to save;
//! * `.w4l` can be created there (mode 0700) or is already a private directory of this user,
//!   and this process's lock can be taken in it: it gets its own
//!   [`ResourceManager`](crate::tempfiles::ResourceManager), so the journal and its manifest
//!   are 0600 in a 0700 directory, and the signal and panic paths treat them like any other.
//!
//! Before the journal is created, a *pointer* naming `.w4l` is written in the temporary
//! directory (`crate::tempfiles` `pointer.rs`): a start after a `kill -9` follows it and
//! recovers the take to its output like any other. One [`Beside`] per directory per process,
//! shared by the takes in it; when the last of them is gone, its manager is closed, the
//! emptied `.w4l` removed, then the pointer. A take that could not be saved stays in `.w4l`
//! with its manifest, and so do the directory and the pointer, for the next start.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use crate::tempfiles::{ResourceManager, forget_if_gone, is_ram_backed, parent_dir, write_pointer};
use crate::units::lock;

/// The name of the journal's directory beside the output.
pub(crate) const BESIDE_DIR: &str = ".w4l";

/// A journal directory beside an output: its manager and the pointer that leads to it.
#[derive(Debug)]
pub(crate) struct Beside {
    /// `Some` until dropped: the manager must close before the directory can go.
    manager: Option<Arc<ResourceManager>>,
    pointer: PathBuf,
}

impl Beside {
    /// The manager of the directory.
    pub(crate) fn manager(&self) -> Option<&Arc<ResourceManager>> {
        self.manager.as_ref()
    }
}

impl Drop for Beside {
    fn drop(&mut self) {
        let Some(manager) = self.manager.take() else {
            return;
        };
        let dir = manager.dir().to_owned();
        // The last handle: closing it removes this process's files and lock there (a take kept
        // for recovery excepted), so the directory is empty if every take in it was saved.
        drop(manager);
        let _ = fs::remove_dir(&dir);
        forget_if_gone(&self.pointer, &dir);
    }
}

/// The open [`Beside`]s of this process.
static OPEN: Mutex<Vec<Weak<Beside>>> = Mutex::new(Vec::new());

/// The journal directory beside `output`, if the take's journal belongs there rather than in
/// `temp`'s directory (see the [module docs](self)); `None` keeps it in `temp`.
pub(crate) fn beside_output(temp: &ResourceManager, output: &Path) -> Option<Arc<Beside>> {
    if temp.is_ram_backed() {
        return None; // chosen explicitly (never by default): honoured, and charged to memory
    }
    let out_dir = std::path::absolute(parent_dir(output)).ok()?;
    let out_dev = fs::metadata(&out_dir).ok()?.dev();
    if fs::metadata(temp.dir()).ok()?.dev() == out_dev || is_ram_backed(&out_dir).ok()? {
        return None;
    }
    let dir = out_dir.join(BESIDE_DIR);
    let mut open = lock(&OPEN);
    open.retain(|w| w.strong_count() > 0);
    if let Some(found) = open
        .iter()
        .filter_map(Weak::upgrade)
        .find(|b| b.manager().is_some_and(|m| m.dir() == dir))
    {
        return Some(found);
    }
    let existed = dir.exists();
    let opened = ResourceManager::open(&dir).and_then(|manager| {
        let pointer = write_pointer(temp.dir(), &dir)?;
        Ok(Beside {
            manager: Some(manager),
            pointer,
        })
    });
    match opened {
        Ok(beside) => {
            let beside = Arc::new(beside);
            open.push(Arc::downgrade(&beside));
            Some(beside)
        }
        Err(e) => {
            tracing::debug!("the journal stays in the temporary directory: {e}");
            if !existed {
                let _ = fs::remove_dir(&dir);
            }
            None
        }
    }
}
