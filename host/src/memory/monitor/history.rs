//! The samples and marks behind a session's memory timeline, kept by the monitor at its
//! periodic steps (for a recorder: one per second of audio) when [`MonitorConfig::history`]
//! asks for them.
//!
//! Bounded for a session of any length: when the samples fill the capacity, every other one
//! is dropped and the interval between two samples doubles, so the chart keeps the session's
//! whole shape at a coarser step (the default 3600 samples hold an hour at 1 s, two at 2 s, and
//! so on). Marks are kept the same way: when full, neighbouring marks of one kind become one,
//! their bytes added.
//!
//! [`MonitorConfig::history`]: super::MonitorConfig::history

use crate::memory::timeline::{Mark, Sample};

#[derive(Debug, Clone)]
pub(super) struct History {
    samples: Vec<Sample>,
    marks: Vec<Mark>,
    capacity: usize,
    every_ms: u64,
    /// Marks that could not be merged into a full list.
    marks_dropped: u64,
}

impl History {
    /// A history of at most `capacity` samples (at least 2), one per `every_ms` at first;
    /// `None` for a capacity of 0 (no history).
    pub(super) fn new(capacity: usize, every_ms: u64) -> Option<Self> {
        (capacity > 0).then(|| Self {
            samples: Vec::new(),
            marks: Vec::new(),
            capacity: capacity.max(2),
            every_ms: every_ms.max(1),
            marks_dropped: 0,
        })
    }

    /// Whether a sample at `t_ms` is due (the first one always is).
    pub(super) fn due(&self, t_ms: u64) -> bool {
        self.samples
            .last()
            .is_none_or(|s| t_ms >= s.t_ms.saturating_add(self.every_ms))
    }

    /// Appends `sample`, halving the resolution first when full.
    pub(super) fn push(&mut self, sample: Sample) {
        if self.samples.len() >= self.capacity {
            let mut index = 0usize;
            self.samples.retain(|_| {
                index += 1;
                index % 2 == 1
            });
            self.every_ms = self.every_ms.saturating_mul(2);
        }
        self.samples.push(sample);
    }

    /// Appends `mark`, merging neighbours of one kind first when full.
    pub(super) fn mark(&mut self, mark: Mark) {
        if self.marks.len() >= self.capacity {
            self.merge_marks();
        }
        if self.marks.len() >= self.capacity {
            self.marks_dropped += 1;
            return;
        }
        self.marks.push(mark);
    }

    fn merge_marks(&mut self) {
        let mut merged: Vec<Mark> = Vec::with_capacity(self.marks.len());
        let mut pending = false;
        for mark in self.marks.drain(..) {
            match merged.last_mut() {
                Some(last) if pending && last.kind == mark.kind => {
                    last.bytes = last.bytes.saturating_add(mark.bytes);
                    pending = false;
                }
                _ => {
                    merged.push(mark);
                    pending = true;
                }
            }
        }
        self.marks = merged;
    }

    pub(super) fn samples(&self) -> &[Sample] {
        &self.samples
    }

    pub(super) fn marks(&self) -> &[Mark] {
        &self.marks
    }

    pub(super) fn marks_dropped(&self) -> u64 {
        self.marks_dropped
    }
}

impl super::MemoryMonitor {
    /// Adds a line to the timeline at `mark.t_ms` that stands for `mark` on the chart (an
    /// eviction, a drop, a model unload).
    pub fn note_mark(&self, mark: Mark, text: impl Into<String>) {
        let mut state = super::lock(&self.shared.state);
        if let Some(history) = state.history.as_mut() {
            history.mark(mark);
        }
        self.shared.push(
            &mut state,
            super::Event::Note {
                at_ms: mark.t_ms,
                text: text.into(),
                mark: Some(mark),
            },
        );
    }

    /// The session so far as a chart's data: the kept samples and marks (empty without
    /// [`MonitorConfig::history`](super::MonitorConfig::history)) and the policy's thresholds.
    pub fn chart(&self, title: impl Into<String>) -> crate::memory::timeline::Timeline {
        let mut timeline =
            crate::memory::timeline::Timeline::new(title, &self.shared.config.policy);
        let state = super::lock(&self.shared.state);
        if let Some(history) = state.history.as_ref() {
            timeline.samples = history.samples().to_vec();
            timeline.marks = history.marks().to_vec();
            if history.marks_dropped() > 0 {
                tracing::debug!("{} marks did not fit the chart", history.marks_dropped());
            }
        }
        timeline
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::timeline::MarkKind;
    use w4l_core::policy::Level;

    fn sample(t_ms: u64) -> Sample {
        Sample {
            t_ms,
            rss: 0,
            accounted: [t_ms, 0, 0, 0],
            budget: 1,
            level: Level::Normal,
        }
    }

    #[test]
    fn a_full_history_halves_its_resolution_and_keeps_the_whole_session() {
        let mut h = History::new(4, 1000).expect("a history");
        let mut t = 0;
        for _ in 0..100 {
            if h.due(t) {
                h.push(sample(t));
            }
            t += 1000;
        }
        let times: Vec<u64> = h.samples().iter().map(|s| s.t_ms).collect();
        assert!(times.len() <= 4, "{times:?}");
        assert_eq!(times[0], 0, "the start stays");
        assert!(*times.last().expect("samples") >= 64_000, "{times:?}");
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
        assert!(History::new(0, 1000).is_none());
    }

    #[test]
    fn full_marks_merge_neighbours_of_one_kind() {
        let mut h = History::new(2, 1000).expect("a history");
        for t in 0..3 {
            h.mark(Mark {
                t_ms: t,
                kind: MarkKind::Spill,
                bytes: 10,
            });
        }
        assert_eq!(h.marks().len(), 2);
        assert_eq!(h.marks().iter().map(|m| m.bytes).sum::<u64>(), 30);
        assert_eq!(h.marks_dropped(), 0);
    }
}
