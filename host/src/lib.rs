//! w4l host: the std shell around `w4l-core`.
//!
//! The decisions (ring overruns, budget refusals, cleanup-policy levels and actions) stay in the
//! core; this crate does the I/O around them: audio devices, WAV files, memory readings,
//! threads, the command line. A dictation GUI embeds it through [`recorder::Recorder`] and
//! [`monitor::MemoryMonitor`].

pub mod capture;
pub mod cli;
pub mod demo;
pub mod devices;
pub mod error;
pub mod memory;
pub mod monitor;
pub mod progress;
pub mod recorder;
pub mod recover;
pub mod ring;
pub mod signals;
pub mod source;
pub mod takefile;
pub mod tempfiles;
pub mod wav;
