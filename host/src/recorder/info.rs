//! Every figure of a recorder: [`RecorderInfo`], as `w4l record --json` prints it.

use std::sync::atomic::Ordering;

use w4l_core::accountant::Category;

use super::Recorder;
use crate::memory::monitor::Event;
use crate::source::SourceStats;
use crate::units::lock;

/// Where a recorder is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecorderState {
    /// Created, not started.
    Idle,
    /// Started, not stopped.
    Recording,
    /// Stopped; the take can be read and saved.
    Stopped,
}

/// Every figure of a recorder.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecorderInfo {
    /// `stream`, `file` or `memory`.
    pub mode: &'static str,
    /// Idle, recording or stopped.
    pub state: RecorderState,
    /// What the samples come from.
    pub source: String,
    /// Frames per second.
    pub rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// Frames taken from the ring into the take.
    pub frames_captured: u64,
    /// Samples (all channels) taken from the ring into the take.
    pub samples_captured: u64,
    /// `frames_captured` as seconds.
    pub seconds_captured: f64,
    /// Frames of the take held in memory (the cache).
    pub frames_held: u64,
    /// Blocks of the take held in memory.
    pub blocks_held: u64,
    /// Bytes per block.
    pub block_bytes: u64,
    /// Samples waiting in the ring now.
    pub ring_samples: u64,
    /// Capacity of the ring, samples.
    pub ring_capacity: u64,
    /// Frames in the rolling window.
    pub window_frames: u64,
    /// Capacity of the rolling window, frames.
    pub window_capacity_frames: u64,
    /// Audio bytes reserved from the accountant now (blocks, ring, window).
    pub memory_used: u64,
    /// Highest `memory_used` seen.
    pub memory_peak: u64,
    /// The accountant's memory budget.
    pub memory_budget: u64,
    /// The policy's level: `Normal`, `Elevated`, `High` or `Critical`.
    pub policy_level: &'static str,
    /// Pressure, per mille of the most pressed limit, at the last step.
    pub pressure_permille: u16,
    /// Samples a real-time source could not push because the ring was full.
    pub overruns: u64,
    /// Frames evicted from memory that are on disk (free: nothing lost).
    pub evicted_frames: u64,
    /// Samples of the take lost: evicted from memory while not on disk (memory mode, or after
    /// the disk failed), or not stored at all.
    pub lost_samples: u64,
    /// Output sample format: `i16` or `f32`.
    pub format: &'static str,
    /// Frames of the take on disk (the journal).
    pub frames_on_disk: u64,
    /// Bytes of the journal's files, charged to the disk budget.
    pub disk_bytes: u64,
    /// Files of the journal (more than one past 4 GiB, or after a write error).
    pub disk_files: u64,
    /// Buffers in the registry: the recorder's ring, window and take cache, and any its app
    /// registered there.
    pub buffers: u64,
    /// Bytes those buffers hold.
    pub buffer_bytes: u64,
    /// Level changes of the policy so far.
    pub transitions: u64,
    /// Peak level of the latest audio, dBFS.
    pub peak_dbfs: f32,
    /// The source's own counters (device errors, restarts, lost frames).
    pub source_stats: SourceStats,
}

impl Recorder {
    /// Every figure of the recorder.
    pub fn info(&self) -> RecorderInfo {
        let take = lock(&self.shared.take)
            .as_ref()
            .map(|t| t.stats())
            .unwrap_or_default();
        let (window_frames, window_capacity) = {
            let w = lock(&self.shared.window);
            (w.frames_available() as u64, w.capacity_frames() as u64)
        };
        let (state, ring_samples, overruns) = {
            let life = lock(&self.life);
            match &life.ring {
                Some(r) => (life.state, r.len() as u64, r.stats().dropped as u64),
                None => (life.state, 0, life.overruns_at_stop),
            }
        };
        let samples = self.shared.samples.load(Ordering::Acquire);
        let figures = self.accountant.figures();
        let audio = figures.category(Category::Audio);
        let (timeline, _) = self.monitor.timeline();
        let transitions = timeline
            .iter()
            .filter(|e| matches!(e, Event::Transition(t) if t.is_level_change()))
            .count() as u64;
        let channels = u64::from(self.channels);
        let buffers = self.buffers.info();
        RecorderInfo {
            mode: self.mode().as_str(),
            state,
            source: self.description.clone(),
            rate: self.rate,
            channels: self.channels,
            frames_captured: samples / channels,
            samples_captured: samples,
            seconds_captured: (samples / channels) as f64 / f64::from(self.rate),
            frames_held: take.cached_samples / channels,
            blocks_held: take.cached_blocks,
            block_bytes: self.sizes.block_bytes as u64,
            ring_samples,
            ring_capacity: self.sizes.ring as u64,
            window_frames,
            window_capacity_frames: window_capacity,
            memory_used: audio.used as u64,
            memory_peak: audio.peak as u64,
            memory_budget: figures.memory_budget as u64,
            policy_level: self.monitor.level().name(),
            pressure_permille: u16::try_from(self.shared.pressure_permille.load(Ordering::Relaxed))
                .unwrap_or(u16::MAX),
            overruns,
            evicted_frames: take.evicted_samples / channels,
            lost_samples: take.lost_samples,
            format: self.config.format.as_str(),
            frames_on_disk: take.journaled_samples / channels,
            disk_bytes: take.disk_bytes,
            disk_files: take.disk_files,
            buffers: buffers.count,
            buffer_bytes: buffers.bytes,
            transitions,
            peak_dbfs: f32::from_bits(self.shared.peak_bits.load(Ordering::Relaxed)),
            source_stats: self.source_stats(),
        }
    }
}
