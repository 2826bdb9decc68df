//! w4l host: the std shell around `w4l-core`.
//!
//! The decisions (ring overruns, budget refusals, cleanup-policy levels and actions) stay in the
//! core; this crate does the I/O around them: audio devices, WAV files, memory readings,
//! threads. A dictation app embeds it through [`recorder::Recorder`] and
//! [`memory::monitor::MemoryMonitor`]; the `w4l` command line is one client of it (its code is
//! in `src/bin/w4l`, behind the `cli` feature, and nothing in the library can reach it).
//!
//! # Layers
//!
//! Each module imports only from the ones above it in this list (a test reads the `use crate::`
//! lines and holds it):
//!
//! | layer | modules | what it may touch |
//! |---|---|---|
//! | errors and units | [`error`], [`units`] | — |
//! | files and memory | [`wav`], [`tempfiles`], [`memory`], [`ring`] | WAV files, its temp dir, `/proc` |
//! | sources | [`source`] (replay, synthetic, [`source::device`]) | the audio server, input files |
//! | the take | [`take`] | its temp files |
//! | the recorder | [`recorder`] | threads |
//! | the front door | [`dictation`] | — |

pub mod dictation;
pub mod error;
pub mod memory;
pub mod recorder;
pub mod ring;
pub mod source;
pub mod take;
pub mod tempfiles;
pub mod units;
pub mod wav;

/// The no_std core: ring, window, accountant, policy, tracker, samples, FLAC.
pub use w4l_core as core;

pub use dictation::{Dictation, Session, Take};

/// What an app needs most: `use w4l::prelude::*;`.
pub mod prelude {
    pub use crate::dictation::{Dictation, Session, Take};
    pub use crate::error::{Error, Result};
    pub use crate::memory::monitor::{CleanupRequest, MemoryMonitor};
    pub use crate::recorder::RecorderInfo;
    pub use crate::take::Mode;
    pub use crate::wav::SampleFormat;
    pub use w4l_core::budget::Model;
    pub use w4l_core::policy::{Action, Level};
}
