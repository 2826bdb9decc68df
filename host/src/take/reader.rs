//! Reading a take's journal back ([`super::file::TakeFile::read_all`]): a WAV file through
//! `hound`, a FLAC file a frame at a time; both in 16-bit chunks.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use w4l_core::sample::convert;

use crate::error::{Error, Result};
use crate::wav::SampleFormat;
use crate::wav::flac::{FrameReader, to_i16};

/// A short reason for a WAV reader's error, without the OS error number noise.
fn reason(e: &hound::Error) -> String {
    match e {
        hound::Error::IoError(io) => crate::wav::io_reason(io),
        other => other.to_string(),
    }
}

/// Hands the samples of the WAV journal file at `path` (`format`) to `f` in 16-bit chunks.
pub(super) fn read_wav(
    path: &Path,
    format: SampleFormat,
    f: &mut dyn FnMut(&[i16]) -> Result<()>,
    read_error: &dyn Fn(String) -> Error,
) -> Result<()> {
    let read_error = |e: hound::Error| read_error(reason(&e));
    let mut reader = hound::WavReader::open(path).map_err(read_error)?;
    let mut i16s = vec![0i16; 1 << 16];
    if format == SampleFormat::F32 {
        let mut f32s = vec![0f32; 1 << 16];
        let mut samples = reader.samples::<f32>();
        loop {
            let mut n = 0;
            for (slot, s) in f32s.iter_mut().zip(samples.by_ref()) {
                *slot = s.map_err(read_error)?;
                n += 1;
            }
            if n == 0 {
                return Ok(());
            }
            convert(&f32s[..n], &mut i16s[..n]);
            f(&i16s[..n])?;
        }
    }
    let mut samples = reader.samples::<i16>();
    loop {
        let mut n = 0;
        for (slot, s) in i16s.iter_mut().zip(samples.by_ref()) {
            *slot = s.map_err(read_error)?;
            n += 1;
        }
        if n == 0 {
            return Ok(());
        }
        f(&i16s[..n])?;
    }
}

/// Hands the samples of the FLAC journal file at `path` to `f`, a frame at a time. Its frames
/// are this process's own, all whole (the file was just checkpointed): one that does not
/// decode is an error.
pub(super) fn read_flac(
    path: &Path,
    f: &mut dyn FnMut(&[i16]) -> Result<()>,
    read_error: &dyn Fn(String) -> Error,
) -> Result<()> {
    let file = File::open(path).map_err(|e| read_error(crate::wav::io_reason(&e)))?;
    let mut reader =
        FrameReader::new(BufReader::new(file)).map_err(|e| read_error(e.to_string()))?;
    let mut chunk = Vec::new();
    while let Some((_, samples)) = reader
        .next_frame()
        .map_err(|e| read_error(crate::wav::io_reason(&e)))?
    {
        to_i16(samples, &mut chunk);
        f(&chunk)?;
    }
    match reader.stopped() {
        None => Ok(()),
        Some(e) => Err(read_error(format!("a damaged frame: {e}"))),
    }
}
