//! Repair of a recording by its kind, told by its first bytes: a WAV file
//! ([`super::repair`]) or a FLAC file ([`super::flac_repair`]).
//!
//! ```
//! use w4l::wav::fix::recover_file;
//! use w4l::wav::repair::RecoverOptions;
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("not-audio.txt");
//! std::fs::write(&path, "hello, these are notes")?;
//! let e = recover_file(&path, RecoverOptions::default()).unwrap_err();
//! assert!(e.to_string().starts_with("not a WAV or FLAC file"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::flac_repair::{self, FlacReport};
use super::repair::{self, RecoverError, RecoverOptions, RecoverReport};

/// What [`recover_file`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileReport {
    /// A WAV file's repair.
    Wav(RecoverReport),
    /// A FLAC file's repair.
    Flac(FlacReport),
}

/// A [`FileReport`] in figures, the same for both kinds (`w4l recover --json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    /// The file.
    pub path: PathBuf,
    /// Whether it was changed.
    pub repaired: bool,
    /// Whether it needed a change.
    pub needed: bool,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Where the original was copied, if it was.
    pub backup: Option<PathBuf>,
    /// Whole frames of audio it holds (after the repair).
    pub frames: u64,
    /// The same in seconds.
    pub seconds: f64,
    /// Bytes cut off its end.
    pub dropped_bytes: u64,
    /// Bytes kept after the samples (WAV chunks the header left out; 0 for FLAC).
    pub kept_bytes_after: u64,
}

impl FileReport {
    /// The report in figures.
    pub fn summary(&self) -> Summary {
        match self {
            Self::Wav(r) => Summary {
                path: r.path.clone(),
                repaired: r.repaired,
                needed: r.repair.needed(),
                dry_run: r.dry_run,
                backup: r.backup.clone(),
                frames: r.repair.frames(),
                seconds: r.repair.frames() as f64 / f64::from(r.repair.format.sample_rate),
                dropped_bytes: r.repair.dropped_bytes(),
                kept_bytes_after: r.repair.kept_after(),
            },
            Self::Flac(r) => Summary {
                path: r.path.clone(),
                repaired: r.repaired,
                needed: r.repair.needed(),
                dry_run: r.dry_run,
                backup: r.backup.clone(),
                frames: r.repair.frames(),
                seconds: r.repair.frames() as f64
                    / f64::from(r.repair.info.format.sample_rate.max(1)),
                dropped_bytes: r.repair.dropped_bytes(),
                kept_bytes_after: 0,
            },
        }
    }
}

impl fmt::Display for FileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Wav(r) => r.fmt(f),
            Self::Flac(r) => r.fmt(f),
        }
    }
}

/// Whether the file at `path` starts like a FLAC stream (`fLaC`).
pub fn is_flac(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| &magic == b"fLaC")
}

/// Repairs the recording at `path` in place as its kind needs: [`repair::recover_with`] for a
/// WAV file, [`flac_repair::recover_with`] for a FLAC file.
///
/// # Errors
///
/// As for those two.
pub fn recover_file(path: &Path, options: RecoverOptions) -> Result<FileReport, RecoverError> {
    if is_flac(path) {
        flac_repair::recover_with(path, options).map(FileReport::Flac)
    } else {
        repair::recover_with(path, options).map(FileReport::Wav)
    }
}
