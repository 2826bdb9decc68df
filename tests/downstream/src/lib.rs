//! A stand-in application that embeds w4l from outside its workspace (see `Cargo.toml`): its
//! one function records a take the way a dictation app would, through the library alone.

use std::sync::Arc;
use std::time::Duration;

use w4l::source::device::{CaptureRequest, CaptureSource};
use w4l::memory::monitor::{MemoryMonitor, MonitorConfig};
use w4l::recorder::{Recorder, RecorderConfig, RecorderInfo};
use w4l_core::budget::Budget;

/// Records exactly `frames` frames from the default input into `out` (a WAV); returns the
/// recorder's figures.
///
/// # Errors
///
/// Whatever w4l reports, as its one-line message.
pub fn record(frames: u64, out: &std::path::Path) -> Result<RecorderInfo, String> {
    let source = CaptureSource::open(&CaptureRequest::default()).map_err(|e| e.to_string())?;
    let accountant = Arc::new(Budget::default().accountant());
    let monitor = Arc::new(
        MemoryMonitor::new(accountant, MonitorConfig::default()).map_err(|e| e.to_string())?,
    );
    let config = RecorderConfig {
        limit_frames: Some(frames),
        ..RecorderConfig::default()
    };
    let mut recorder =
        Recorder::new(Box::new(source), monitor, config).map_err(|e| e.to_string())?;
    recorder.start().map_err(|e| e.to_string())?;
    while !recorder.wait(Duration::from_millis(250)) {}
    recorder.stop().map_err(|e| e.to_string())?;
    let info = recorder.info();
    recorder.save(out).map_err(|e| e.to_string())?;
    Ok(info)
}
