//! Repair of a FLAC file a crash left unfinished.
//!
//! A FLAC stream w4l is still writing has a STREAMINFO whose total and MD5 are "unknown" (0),
//! and a crash can cut its last frame anywhere ([`crate::wav::flac`]). Frames are
//! self-delimiting and checked (sync code, CRC-8 of the header, CRC-16 of the frame), so
//! [`recover_with`] reads them in order, stops at the first that is torn or does not decode,
//! cuts the file just after the last whole one, and writes the STREAMINFO the file should
//! have: the total of samples, the smallest and largest frame, and the MD5 of the audio.
//! A file that already says all that is left alone.
//!
//! Frames w4l's decoder does not read (LPC subframes: `flac -5` and up) cannot be checked, so
//! such a file is refused rather than cut; the other metadata blocks of a file (tags, seek
//! tables) stay as they are.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use w4l_core::flac::{FlacError, HEADER_LEN, Md5, StreamInfo};

use super::flac::{FrameError, FrameReader};
use super::repair::{RecoverError, RecoverOptions, back_up, open_regular};

/// What a FLAC file must become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlacRepair {
    /// STREAMINFO as the file has it.
    pub old_info: StreamInfo,
    /// STREAMINFO as the frames say.
    pub info: StreamInfo,
    /// The file length before the repair.
    pub old_file_len: u64,
    /// The length to cut the file to: just after its last whole frame.
    pub new_file_len: u64,
}

impl FlacRepair {
    /// Whether the file differs from the plan at all.
    pub fn needed(&self) -> bool {
        self.old_info != self.info || self.old_file_len != self.new_file_len
    }

    /// Whole frames of audio (samples per channel) the repaired file holds.
    pub fn frames(&self) -> u64 {
        self.info.total_samples
    }

    /// Bytes cut off the end of the file (a torn last frame, or what follows a damaged one).
    pub fn dropped_bytes(&self) -> u64 {
        self.old_file_len.saturating_sub(self.new_file_len)
    }
}

/// Reads every frame of the FLAC stream in `file` (`file_len` bytes) and works out the repair.
///
/// # Errors
///
/// Not a FLAC file, a header cut short, frames w4l does not decode, or a read error.
pub fn plan_flac(file: &mut File, file_len: u64, path: &Path) -> Result<FlacRepair, RecoverError> {
    let io_err = |source| RecoverError::Io {
        op: "read",
        path: path.to_path_buf(),
        source,
    };
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let mut reader = FrameReader::new(BufReader::new(file)).map_err(|e| match e {
        FrameError::Io(e) => io_err(e),
        FrameError::Flac(FlacError::Truncated) => RecoverError::Truncated {
            what: "FLAC header",
        },
        FrameError::Flac(e) => RecoverError::Flac(e),
    })?;
    let old_info = *reader.info();
    let bits = u32::from(old_info.format.bits_per_sample);
    let mut md5 = Md5::new();
    let (mut total, mut index) = (0u64, 0u64);
    let (mut min_frame, mut max_frame) = (u32::MAX, 0u32);
    let mut last_end = reader.offset();
    while let Some((frame, samples)) = reader.next_frame().map_err(io_err)? {
        // A frame carries its number (fixed block size) or its first sample's (variable):
        // anything else is not the next frame of this stream.
        if frame.number != index && frame.number != total {
            break;
        }
        md5.update_samples(samples, bits);
        total += frame.block_size as u64;
        index += 1;
        let bytes = u32::try_from(frame.bytes).unwrap_or(u32::MAX);
        (min_frame, max_frame) = (min_frame.min(bytes), max_frame.max(bytes));
        last_end = reader.offset();
    }
    if reader.stopped() == Some(FlacError::Unsupported) {
        return Err(RecoverError::Flac(FlacError::Unsupported));
    }
    let info = StreamInfo {
        min_frame_size: if index == 0 { 0 } else { min_frame },
        max_frame_size: max_frame,
        total_samples: total,
        md5: if index == 0 { [0; 16] } else { md5.finish() },
        ..old_info
    };
    Ok(FlacRepair {
        old_info,
        info,
        old_file_len: file_len,
        new_file_len: last_end,
    })
}

/// What [`recover_with`] did to a FLAC file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlacReport {
    /// The file.
    pub path: PathBuf,
    /// The plan that was applied (or found unnecessary, or only shown).
    pub repair: FlacRepair,
    /// Whether the file was changed.
    pub repaired: bool,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Where the original was copied before it was changed, if it was.
    pub backup: Option<PathBuf>,
}

impl fmt::Display for FlacReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.repair;
        let seconds = r.frames() as f64 / f64::from(r.info.format.sample_rate.max(1));
        let path = self.path.display();
        if !r.needed() {
            return write!(
                f,
                "{path} is already a consistent FLAC file: {} frames ({seconds:.1} s), nothing changed",
                r.frames()
            );
        }
        let verb = if self.repaired {
            "repaired"
        } else {
            "would repair"
        };
        write!(
            f,
            "{verb} {path}: {} frames ({seconds:.1} s) of audio, {} trailing bytes of a torn frame dropped, STREAMINFO rewritten (total, MD5)",
            r.frames(),
            r.dropped_bytes()
        )?;
        match &self.backup {
            Some(b) => write!(f, "; the original is in {}", b.display()),
            None => Ok(()),
        }
    }
}

/// Repairs the FLAC file at `path` in place (see the [module docs](self)); `options` as for
/// WAV files (`samples_to_end` means nothing here: frames say where they end).
///
/// # Errors
///
/// As for [`plan_flac`], or the file cannot be written or backed up (it is unchanged then).
pub fn recover_with(path: &Path, options: RecoverOptions) -> Result<FlacReport, RecoverError> {
    let io_err = |op| RecoverError::io(op, path);
    let report = |repair: FlacRepair, backup: Option<PathBuf>| FlacReport {
        path: path.to_path_buf(),
        repaired: repair.needed() && !options.dry_run,
        repair,
        dry_run: options.dry_run,
        backup,
    };
    let (mut file, meta) = open_regular(path, false)?;
    let repair = plan_flac(&mut file, meta.len(), path)?;
    if !repair.needed() || options.dry_run {
        return Ok(report(repair, None));
    }
    let (mut file, write_meta) = open_regular(path, true)?;
    if (write_meta.dev(), write_meta.ino()) != (meta.dev(), meta.ino()) {
        return Err(io_err("repair")(io::Error::other(
            "the file was replaced while it was being inspected",
        )));
    }
    // Planned again if it changed meanwhile.
    let repair = if write_meta.len() == meta.len() {
        repair
    } else {
        plan_flac(&mut file, write_meta.len(), path)?
    };
    let backup = if options.backup {
        Some(back_up(path, &mut file, write_meta.mode())?)
    } else {
        None
    };
    let mut header = [0u8; HEADER_LEN];
    file.seek(SeekFrom::Start(0))
        .and_then(|_| io::Read::read_exact(&mut file, &mut header[..5]))
        .map_err(io_err("read"))?;
    let last_block = header[4] & 0x80;
    repair.info.write(&mut header).map_err(RecoverError::Flac)?;
    // Other metadata blocks after STREAMINFO stay where they are.
    header[4] = header[4] & 0x7F | last_block;
    // Cut first, then the header that describes the cut file: an interruption between the two
    // leaves a file the next run repairs the same way.
    file.set_len(repair.new_file_len)
        .map_err(io_err("truncate"))?;
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.write_all(&header))
        .map_err(io_err("write the header of"))?;
    file.sync_all().map_err(io_err("sync"))?;
    Ok(report(repair, backup))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wav::flac::{FlacWriter, take_format};

    fn write_flac(path: &Path, samples: &[i16], finish: bool) {
        let file = File::create(path).unwrap();
        let mut w =
            FlacWriter::new(io::BufWriter::new(file), take_format(16_000, 2).unwrap()).unwrap();
        w.write(samples).unwrap();
        if finish {
            w.finish().unwrap();
        } else {
            w.flush().unwrap();
        }
    }

    fn samples() -> Vec<i16> {
        (0..2 * 5000)
            .map(|i| ((i * 13) % 4000) as i16 - 2000)
            .collect()
    }

    #[test]
    fn a_torn_stream_is_cut_to_whole_frames_and_given_its_streaminfo() {
        let dir = tempfile::tempdir().unwrap();
        let finished = dir.path().join("finished.flac");
        write_flac(&finished, &samples(), true);
        let good = std::fs::read(&finished).unwrap();
        let report = recover_with(&finished, RecoverOptions::default()).unwrap();
        assert!(!report.repair.needed(), "{report}");
        assert_eq!(report.repair.frames(), 5000);

        // Killed while growing: 4 whole frames and half of the fifth are on disk.
        let torn = dir.path().join("torn.flac");
        write_flac(&torn, &samples(), false);
        let len = std::fs::metadata(&torn).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(&torn).unwrap();
        file.set_len(len - 100).unwrap();
        let options = RecoverOptions {
            backup: true,
            ..RecoverOptions::default()
        };
        let report = recover_with(&torn, options).unwrap();
        assert!(report.repaired && report.backup.is_some(), "{report}");
        assert_eq!(report.repair.frames(), 3 * 1024);
        let fixed = std::fs::read(&torn).unwrap();
        // The same bytes as the finished file's first three frames, but for the header.
        assert_eq!(fixed[HEADER_LEN..], good[HEADER_LEN..fixed.len()]);
        let again = recover_with(&torn, RecoverOptions::default()).unwrap();
        assert!(!again.repair.needed(), "{again}");
        assert!(matches!(
            recover_with(&dir.path().join("missing.flac"), RecoverOptions::default()),
            Err(RecoverError::Io { .. })
        ));
    }
}
