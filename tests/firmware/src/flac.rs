//! The streamed second as FLAC: a [`Recorder`] encodes blocks of [`BLOCK`] samples (64 ms)
//! into a static buffer as they fill; at the end the stream is decoded frame by frame and
//! compared with the waveform.

use w4l_core::flac::{Decoder, Encoder, FlacError, Format, HEADER_LEN};

/// Samples per FLAC block (64 ms at 16 kHz).
pub const BLOCK: usize = 1_024;
/// Room for the compressed stream: half the raw second, which it must fit in.
pub const OUT_BYTES: usize = 16_000;
/// The static storage of the compressed stream.
pub type Out = [u8; OUT_BYTES];

/// A mono 16-bit FLAC stream built block by block in caller-supplied memory.
pub struct Recorder {
    encoder: Encoder,
    block: [i16; BLOCK],
    filled: usize,
    out: &'static mut Out,
    len: usize,
    /// Blocks the encoder refused (the buffer was full, or a bug).
    pub errors: u32,
}

impl Recorder {
    pub fn new(out: &'static mut Out, sample_rate: u32) -> Result<Self, FlacError> {
        let format = Format {
            sample_rate,
            channels: 1,
            bits_per_sample: 16,
        };
        Ok(Recorder {
            encoder: Encoder::new(format, BLOCK)?,
            block: [0; BLOCK],
            filled: 0,
            out,
            len: HEADER_LEN,
            errors: 0,
        })
    }

    /// Buffers `samples`, encoding each block as it fills.
    pub fn push(&mut self, samples: &[i16]) {
        let mut rest = samples;
        while !rest.is_empty() {
            let take = rest.len().min(BLOCK - self.filled);
            self.block[self.filled..self.filled + take].copy_from_slice(&rest[..take]);
            self.filled += take;
            rest = &rest[take..];
            if self.filled == BLOCK {
                self.flush();
            }
        }
    }

    fn flush(&mut self) {
        match self
            .encoder
            .encode(&self.block[..self.filled], &mut self.out[self.len..])
        {
            Ok(n) => self.len += n,
            Err(e) => {
                defmt::error!("flac: block refused: {}", e);
                self.errors += 1;
            }
        }
        self.filled = 0;
    }

    /// Encodes what is buffered as the last (short) block, writes the final STREAMINFO,
    /// and returns the whole stream.
    pub fn finish(&mut self) -> &[u8] {
        if self.filled > 0 {
            self.flush();
        }
        if let Err(e) = self.encoder.stream_info().write(&mut self.out[..]) {
            defmt::error!("flac: header: {}", e);
            self.errors += 1;
        }
        &self.out[..self.len]
    }
}

/// Decodes `stream` frame by frame and counts the samples that differ from `expected(i)`;
/// returns (samples decoded, mismatches).
pub fn verify(stream: &[u8], expected: impl Fn(usize) -> i16) -> Result<(usize, usize), FlacError> {
    let (decoder, mut at) = Decoder::new(stream)?;
    let mut block = [0i32; BLOCK];
    let (mut decoded, mut mismatches) = (0, 0);
    while at < stream.len() {
        let frame = decoder.decode(&stream[at..], &mut block)?;
        for (i, &s) in block[..frame.block_size].iter().enumerate() {
            if s != i32::from(expected(decoded + i)) {
                mismatches += 1;
            }
        }
        decoded += frame.block_size;
        at += frame.bytes;
    }
    Ok((decoded, mismatches))
}
