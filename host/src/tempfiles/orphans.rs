//! Takes left unfinished in the directory: listed ([`unfinished_takes`]) and, when their owner
//! is dead, claimed for recovery ([`claim_orphan_takes`]).
//!
//! A take is a journal with a manifest beside it ([`super::Manifest`]); a take past 4 GiB is
//! several journals whose manifests share a `take` name. Claiming holds the dead owner's lock
//! until the claim is dropped, so two processes starting at once never finish the same take
//! twice. Finishing the take into a WAV file is `w4l::take::recover`'s work: this layer
//! knows files and owners, not audio.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::dirs::{check_private_dir, current_uid};
use super::error::TempError;
use super::lock::{Liveness, LockFile, probe_owner};
use super::manager::ResourceManager;
use super::names::manifest_path;
use super::reap::{Group, scan};
use super::record::Manifest;
use super::registry::remove_if_present;

/// One file of an unfinished take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakePart {
    /// The journal: a WAV file whose header may lag behind its samples.
    pub journal: PathBuf,
    /// What its manifest says (`None` if it cannot be read).
    pub manifest: Option<Manifest>,
    /// The journal's size in bytes.
    pub bytes: u64,
}

/// A take left in the directory, by a live process (being recorded) or a dead one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnfinishedTake {
    /// The recording process.
    pub pid: u32,
    /// Whether that process still holds its lock (the take is being recorded).
    pub owner_alive: bool,
    /// Its files, in order.
    pub parts: Vec<TakePart>,
}

impl UnfinishedTake {
    /// The first part's manifest, if readable.
    pub fn manifest(&self) -> Option<&Manifest> {
        self.parts.first().and_then(|p| p.manifest.as_ref())
    }

    /// Bytes of all its files.
    pub fn bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.bytes).sum()
    }

    /// Removes the manifests of the parts whose journal was moved away (or removed); a part
    /// still in place keeps its manifest, to be finished later.
    pub fn forget_moved(&self) {
        for part in &self.parts {
            if fs::symlink_metadata(&part.journal).is_err() {
                let _ = remove_if_present(&manifest_path(&part.journal));
            }
        }
    }
}

/// A dead owner's lock, held while its takes are recovered; released (unlinked) on drop.
#[derive(Debug)]
struct DeadOwner(Option<LockFile>);

impl Drop for DeadOwner {
    fn drop(&mut self) {
        if let Some(lock) = self.0.take() {
            lock.release();
        }
    }
}

/// A dead process's take, claimed for recovery: no other process touches it until this is
/// dropped.
#[derive(Debug)]
pub struct OrphanTake {
    take: UnfinishedTake,
    _owner: Option<Arc<DeadOwner>>,
}

impl OrphanTake {
    /// The take.
    pub fn take(&self) -> &UnfinishedTake {
        &self.take
    }

    /// Ends the claim: the manifests of the parts whose journal was moved away (or removed)
    /// go; a part still in place keeps its manifest (to be tried again).
    pub fn release(self) {
        self.take.forget_moved();
    }
}

/// Every unfinished take in `dir` and in the directories its pointers name
/// ([`super::pointed_dirs`]), live or not, oldest pid first in each. Changes nothing (creates
/// no lock file, holds no lock). A missing `dir` has none.
///
/// # Errors
///
/// `dir` is not a private directory of this user, or cannot be read. A pointed directory that
/// cannot be read is skipped (with a warning).
pub fn unfinished_takes(dir: &Path) -> Result<Vec<UnfinishedTake>, TempError> {
    let mut takes = unfinished_takes_in(dir)?;
    let mut others: Vec<PathBuf> = super::pointed_dirs(dir)
        .into_iter()
        .map(|(_, d)| d)
        .collect();
    others.sort();
    others.dedup();
    for other in others {
        match unfinished_takes_in(&other) {
            Ok(more) => takes.extend(more),
            Err(e) => tracing::warn!("{e}"),
        }
    }
    Ok(takes)
}

/// [`unfinished_takes`] in `dir` alone.
fn unfinished_takes_in(dir: &Path) -> Result<Vec<UnfinishedTake>, TempError> {
    let uid = current_uid();
    let Some(groups) = scan_private(dir, uid)? else {
        return Ok(Vec::new());
    };
    let own = ResourceManager::open_here(dir).map(|m| m.inner().registered());
    let mut takes = Vec::new();
    for (pid, group) in groups {
        match &own {
            // Ours: what our manager registered is being recorded; the rest a previous
            // process with our pid left.
            Some(registered) if pid == std::process::id() => {
                takes.extend(takes_of(pid, &group, true, &|j| registered.contains(j)));
                takes.extend(takes_of(pid, &group, false, &|j| !registered.contains(j)));
            }
            _ => {
                let alive = matches!(probe_owner(dir, pid, uid, true), Ok(Liveness::Live));
                takes.extend(takes_of(pid, &group, alive, &|_| true));
            }
        }
    }
    Ok(takes)
}

/// Claims the takes in `dir` whose owner is dead (this process's own unregistered takes too:
/// a previous process with the same pid left them). A missing `dir` has none.
///
/// # Errors
///
/// `dir` is not a private directory of this user, or cannot be read.
pub fn claim_orphan_takes(dir: &Path) -> Result<Vec<OrphanTake>, TempError> {
    let uid = current_uid();
    let Some(groups) = scan_private(dir, uid)? else {
        return Ok(Vec::new());
    };
    let own = ResourceManager::open_here(dir).map(|m| m.inner().registered());
    let mut claimed = Vec::new();
    for (pid, group) in groups {
        if group.takes().is_empty() {
            continue;
        }
        let owner = match &own {
            Some(_) if pid == std::process::id() => None,
            _ => match probe_owner(dir, pid, uid, false) {
                Ok(Liveness::Dead(lock)) => Some(Arc::new(DeadOwner(lock))),
                Ok(Liveness::Live) | Err(_) => continue,
            },
        };
        let unregistered = |j: &Path| own.as_ref().is_none_or(|r| !r.contains(j));
        for take in takes_of(pid, &group, false, &unregistered) {
            claimed.push(OrphanTake {
                take,
                _owner: owner.clone(),
            });
        }
    }
    Ok(claimed)
}

/// The scan of `dir`, or `None` if it does not exist.
fn scan_private(dir: &Path, uid: u32) -> Result<Option<BTreeMap<u32, Group>>, TempError> {
    if let Err(e) = fs::symlink_metadata(dir)
        && e.kind() == io::ErrorKind::NotFound
    {
        return Ok(None);
    }
    check_private_dir(dir, uid)?;
    scan(dir).map(Some).map_err(|source| TempError::Dir {
        dir: dir.to_path_buf(),
        source,
    })
}

/// The takes of `pid`'s `group` whose journals `keep` accepts, parts grouped by their
/// manifests' `take` and in order.
fn takes_of(
    pid: u32,
    group: &Group,
    alive: bool,
    keep: &dyn Fn(&Path) -> bool,
) -> Vec<UnfinishedTake> {
    let mut by_take: BTreeMap<String, Vec<TakePart>> = BTreeMap::new();
    for journal in group.takes().into_iter().filter(|j| keep(j)) {
        let manifest = Manifest::read(&manifest_path(&journal));
        let key = manifest
            .as_ref()
            .map(|m| m.take.clone())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| journal.display().to_string());
        let bytes = fs::symlink_metadata(&journal).map_or(0, |m| m.len());
        by_take.entry(key).or_default().push(TakePart {
            journal,
            manifest,
            bytes,
        });
    }
    by_take
        .into_values()
        .map(|mut parts| {
            parts.sort_by_key(|p| p.manifest.as_ref().map_or(0, |m| m.part));
            UnfinishedTake {
                pid,
                owner_alive: alive,
                parts,
            }
        })
        .collect()
}
