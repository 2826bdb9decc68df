//! Recover, don't reap: a take whose process died (SIGKILL, a crash, a power cut) is finished
//! into a playable WAV or FLAC file (the take's format) by the next start.
//!
//! A take's journal carries a manifest ([`crate::tempfiles::Manifest`]: the intended output, format, start time,
//! owner). [`recover_orphans`] claims every take of a dead owner ([`claim_orphan_takes`]),
//! repairs each file to its last whole frame ([`crate::wav::fix`]: every sample that reached
//! the disk; a FLAC file's STREAMINFO gets its total and MD5) and moves it — never copying when a rename will do, never replacing a file:
//!
//! 1. to its intended path, if that is free;
//! 2. else beside it, as `name.recovered-1.wav` (`-2`, …);
//! 3. with no intended path, or one whose directory cannot be written, to the recovered-takes
//!    directory ([`RecoveryConfig::recovered_dir`]: `$XDG_DATA_HOME/w4l/recovered`, else
//!    `~/.local/share/w4l/recovered`) as `take-<UTC start>-<pid>.wav` (`.flac`).
//!
//! A journal with no audio in it is removed. Recovered files get ordinary permissions (0666
//! less the umask). A retention rule keeps the recovered-takes directory from piling up: files
//! older than [`RecoveryConfig::max_age`] go, then the oldest until the directory holds at most
//! [`RecoveryConfig::max_bytes`] — never one recovered in the same run, and never a file w4l did
//! not name.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::tempfiles::{
    ReapFailure, ResourceManager, TakePart, UnfinishedTake, claim_orphan_takes, default_dir,
    pointed_dirs, tidy_pointed,
};
use crate::wav::SampleFormat;
use crate::wav::fix::{FileReport, recover_file};
use crate::wav::repair::RecoverOptions;

mod config;
mod place;
mod retention;

pub use config::{KEEP_BYTES_ENV, KEEP_DAYS_ENV, RecoveryConfig, default_recovered_dir};
pub use retention::retire;

/// The longest header of a journal (hound's `WAVE_FORMAT_EXTENSIBLE`, 68 bytes; FLAC's 42),
/// with room.
const MAX_HEADER: u64 = 128;

/// Where a recovered take went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// At the path it was being recorded for.
    Intended,
    /// Beside it (`name.recovered-N.wav`): that path was taken.
    Beside,
    /// In the recovered-takes directory.
    RecoveredDir,
}

/// One take finished into a WAV or FLAC file.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Recovered {
    /// The process that recorded it.
    pub pid: u32,
    /// When it started (Unix seconds; the journal's time if the manifest was unreadable).
    pub started: u64,
    /// The files written, in order (more than one past 4 GiB).
    pub files: Vec<PathBuf>,
    /// Frames recovered.
    pub frames: u64,
    /// Seconds recovered.
    pub seconds: f64,
    /// Where it went.
    pub placement: Placement,
    /// The path it was being recorded for, if known.
    pub intended: Option<PathBuf>,
}

impl std::fmt::Display for Recovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = self.files.first().map(|p| p.display().to_string());
        write!(
            f,
            "recovered {:.3} s of an unfinished take (process {}, started {}) to {}",
            self.seconds,
            self.pid,
            utc(self.started),
            at.unwrap_or_default()
        )?;
        match (&self.placement, &self.intended) {
            (Placement::Beside, Some(i)) => write!(f, " ({} was taken)", i.display()),
            (Placement::RecoveredDir, Some(i)) => {
                write!(f, " (the directory of {} cannot take it)", i.display())
            }
            _ => Ok(()),
        }
    }
}

/// What a recovery did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RecoveryReport {
    /// The takes finished into WAV files.
    pub recovered: Vec<Recovered>,
    /// Journals removed because they held no audio.
    pub discarded: Vec<PathBuf>,
    /// Takes that could not be finished (left in place, to be tried again).
    pub failures: Vec<ReapFailure>,
    /// Recovered takes the retention rule removed.
    pub retired: Vec<PathBuf>,
}

impl RecoveryReport {
    fn merge(&mut self, other: RecoveryReport) {
        self.recovered.extend(other.recovered);
        self.discarded.extend(other.discarded);
        self.failures.extend(other.failures);
        self.retired.extend(other.retired);
    }

    /// Whether nothing happened.
    pub fn is_empty(&self) -> bool {
        self.recovered.is_empty() && self.failures.is_empty() && self.retired.is_empty()
    }
}

impl std::fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for r in &self.recovered {
            writeln!(f, "{r}")?;
        }
        for failure in &self.failures {
            writeln!(
                f,
                "could not recover the unfinished take {}: {}",
                failure.path.display(),
                failure.reason
            )?;
        }
        for old in &self.retired {
            writeln!(f, "removed the old recovered take {}", old.display())?;
        }
        Ok(())
    }
}

/// Finishes every take in the temporary directory `dir` whose owner is dead (see the
/// [module docs](self)), and those in the directories its pointers name (journals kept
/// beside their outputs, `take::beside`), removing each pointer and its directory once
/// empty. A missing `dir` has none. Opens (or shares) the directory's manager,
/// which reaps dead processes' scratch on the way.
///
/// ```
/// use w4l::take::recover::{RecoveryConfig, recover_orphans};
///
/// let base = tempfile::tempdir()?;
/// let config = RecoveryConfig {
///     recovered_dir: Some(base.path().join("recovered")),
///     ..RecoveryConfig::default()
/// };
/// let report = recover_orphans(&base.path().join("w4l"), &config)?;
/// assert!(report.recovered.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// `dir` is not a private directory of this user, or cannot be read. A take that cannot be
/// finished is a [`RecoveryReport::failures`] entry, not an error.
pub fn recover_orphans(dir: &Path, config: &RecoveryConfig) -> Result<RecoveryReport> {
    let mut report = recover_in(dir, config)?;
    // Journals kept beside their outputs (`take::beside`), found by their pointers.
    for (pointer, other) in pointed_dirs(dir) {
        match recover_in(&other, config) {
            Ok(more) => report.merge(more),
            Err(e) => report.failures.push(ReapFailure {
                path: other.clone(),
                reason: e.to_string(),
            }),
        }
        tidy_pointed(&pointer, &other);
    }
    if report
        .recovered
        .iter()
        .any(|r| r.placement == Placement::RecoveredDir)
    {
        let keep: Vec<PathBuf> = report
            .recovered
            .iter()
            .flat_map(|r| r.files.clone())
            .collect();
        report.retired = retire(config, &keep);
    }
    Ok(report)
}

/// [`recover_orphans`] in `dir` alone, without the retention rule.
fn recover_in(dir: &Path, config: &RecoveryConfig) -> Result<RecoveryReport> {
    let mut report = RecoveryReport::default();
    let takes = claim_orphan_takes(dir)?;
    if takes.is_empty() {
        return Ok(report);
    }
    let manager = ResourceManager::open(dir)?;
    for claim in takes {
        let take = claim.take();
        match finish(take, config, &manager, false) {
            Ok(Some(recovered)) => report.recovered.push(recovered),
            Ok(None) => report
                .discarded
                .extend(take.parts.iter().map(|p| p.journal.clone())),
            Err(e) => report.failures.push(ReapFailure {
                path: take
                    .parts
                    .first()
                    .map(|p| p.journal.clone())
                    .unwrap_or_default(),
                reason: e.to_string(),
            }),
        }
        claim.release();
    }
    Ok(report)
}

/// [`recover_orphans`] in [`default_dir`], for every start of an application: nothing (and no
/// error) when there is no default directory yet or it is not usable (the command that needs
/// it says why).
pub fn recover_at_start(config: &RecoveryConfig) -> RecoveryReport {
    match default_dir() {
        Ok(dir) => recover_orphans(&dir, config).unwrap_or_default(),
        Err(_) => RecoveryReport::default(),
    }
}

/// One line about an unfinished take, for `w4l recover --list`: its owner, start, size,
/// intended output and first file.
pub fn describe(take: &UnfinishedTake) -> String {
    let manifest = take.manifest();
    let state = if take.owner_alive {
        "being recorded"
    } else {
        "left by a dead process"
    };
    let intended = manifest.and_then(|m| m.output.as_ref()).map_or_else(
        || "no output path".to_owned(),
        |o| format!("for {}", o.display()),
    );
    format!(
        "{} (process {}, {state}, started {}, {} bytes, {intended})",
        take.parts
            .first()
            .map(|p| p.journal.display().to_string())
            .unwrap_or_default(),
        take.pid,
        manifest.map_or_else(|| "at an unknown time".to_owned(), |m| utc(m.started)),
        take.bytes()
    )
}

/// Finishes `take` into a WAV file (`Ok(None)` if it held no audio: its files are removed).
/// With `skip_intended` it goes straight to the recovered-takes directory (its intended path
/// just failed).
pub(crate) fn finish(
    take: &UnfinishedTake,
    config: &RecoveryConfig,
    manager: &ResourceManager,
    skip_intended: bool,
) -> Result<Option<Recovered>> {
    let mut frames = 0;
    let mut rate = 0;
    let mut parts = Vec::new();
    for part in &take.parts {
        let (n, part_rate) = repair(part)?;
        if n == 0 {
            fs::remove_file(&part.journal).map_err(|e| io_error("remove", &part.journal, &e))?;
            continue;
        }
        frames += n;
        rate = part_rate;
        parts.push(part.journal.clone());
    }
    if parts.is_empty() {
        return Ok(None);
    }
    let manifest = take.manifest();
    let started = manifest
        .map(|m| m.started)
        .filter(|&s| s > 0)
        .unwrap_or_else(|| modified(&parts[0]));
    let intended = manifest.and_then(|m| m.output.clone());
    let pid = take.pid;
    let flac = manifest.is_some_and(|m| m.format == SampleFormat::Flac.as_str())
        || crate::wav::fix::is_flac(&parts[0]);
    let name = recovered_name(started, pid, flac);
    let (files, placement) = place::place(
        &parts,
        intended.as_deref().filter(|_| !skip_intended),
        &name,
        config,
        manager,
    )?;
    Ok(Some(Recovered {
        pid,
        started,
        files,
        frames,
        seconds: frames as f64 / f64::from(rate.max(1)),
        placement,
        intended,
    }))
}

/// Repairs a journal to its last whole frame; returns (frames, rate). A journal no longer
/// than a header (killed before its header was complete) holds no audio.
fn repair(part: &TakePart) -> Result<(u64, u32)> {
    match recover_file(&part.journal, RecoverOptions::default()) {
        Ok(report) => {
            let rate = match &report {
                FileReport::Wav(r) => r.repair.format.sample_rate,
                FileReport::Flac(r) => r.repair.info.format.sample_rate,
            };
            Ok((report.summary().frames, rate))
        }
        Err(_) if part.bytes <= MAX_HEADER => Ok((0, 0)),
        Err(e) => Err(e.into()),
    }
}

/// The file's modification time (Unix seconds; now if unknown).
fn modified(path: &Path) -> u64 {
    fs::symlink_metadata(path)
        .ok()
        .and_then(|m| u64::try_from(m.mtime()).ok())
        .unwrap_or_else(now)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `take-YYYYMMDD-HHMMSS-<pid>.wav` (UTC; `.flac` for a FLAC take).
fn recovered_name(started: u64, pid: u32, flac: bool) -> String {
    let stamp = utc(started).replace(['-', ':'], "").replace(' ', "-");
    let ext = if flac { "flac" } else { "wav" };
    format!("{}{stamp}-{pid}.{ext}", retention::NAME_PREFIX)
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) for Unix seconds.
fn utc(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn io_error(op: &str, path: &Path, e: &io::Error) -> Error {
    Error::runtime(
        format!(
            "cannot {op} {} ({})",
            path.display(),
            crate::wav::io_reason(e)
        ),
        "check the permissions and free space there",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(
            recovered_name(1_700_000_000, 42, false),
            "take-20231114-221320-42.wav"
        );
        assert_eq!(
            recovered_name(1_700_000_000, 42, true),
            "take-20231114-221320-42.flac"
        );
    }
}
