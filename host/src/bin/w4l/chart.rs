//! `--timeline FILE.svg` of `record` and `demo`: the monitor's samples (one per second of
//! audio, from the recorder's steps) and marks (evictions, drops, model unloads) drawn by
//! [`w4l::memory::timeline_svg`].

use std::path::Path;

use w4l::error::{Error, Result};
use w4l::memory::monitor::MemoryMonitor;
use w4l::memory::timeline_svg;

/// Samples a session's monitor keeps for the chart: an hour at one a second (230 KB), then
/// the resolution halves as often as needed (see `MonitorConfig::history`).
pub const HISTORY: usize = 3600;

/// Refuses, before anything is recorded, a `--timeline` path that cannot be written: the
/// recording's own output, or a path whose directory does not exist.
pub fn check_path(path: &Path, output: Option<&Path>) -> Result<()> {
    if output.is_some_and(|o| o == path) {
        return Err(Error::usage(
            format!("--timeline and -o both name {}", path.display()),
            "pass another file name to --timeline, e.g. --timeline take.svg",
        ));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if path.is_dir() || !dir.is_dir() {
        return Err(Error::usage(
            format!(
                "--timeline {} is not a file in an existing directory",
                path.display()
            ),
            "pass --timeline a file name in an existing directory, e.g. --timeline take.svg",
        ));
    }
    Ok(())
}

/// Draws what `monitor` kept to `path`; returns the number of samples drawn.
pub fn write(monitor: &MemoryMonitor, title: &str, path: &Path) -> Result<usize> {
    let timeline = monitor.chart(title);
    timeline_svg::write_file(&timeline, path)?;
    Ok(timeline.samples.len())
}
