//! The data of a memory timeline: samples of the figures over time and marks for what was
//! done to memory. Plain data, filled by the app (from the accountant's figures, the
//! monitor's readings and timeline, the model manager's events) and drawn by
//! [`timeline_svg`](super::timeline_svg) and [`sparkline`](super::sparkline).

use w4l_core::accountant::{Category, Figures};
use w4l_core::policy::{Level, PolicyConfig};

use super::models::{ModelEvent, ModelEventKind};

/// One sample of the memory figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Time, ms (any origin; the chart's axis starts at the first sample).
    pub t_ms: u64,
    /// The process's resident set, bytes; 0 when not observed.
    pub rss: u64,
    /// Accounted bytes by category, indexed by [`Category::index`] (audio, model, other,
    /// disk).
    pub accounted: [u64; 4],
    /// The memory budget, bytes.
    pub budget: u64,
    /// The policy's level.
    pub level: Level,
}

impl Sample {
    /// A sample from an accountant snapshot ([`Accountant::figures`]), the RSS (0: not
    /// observed) and the policy's level.
    ///
    /// [`Accountant::figures`]: w4l_core::accountant::Accountant::figures
    pub fn from_figures(t_ms: u64, figures: &Figures, rss: u64, level: Level) -> Self {
        Self {
            t_ms,
            rss,
            accounted: Category::ALL.map(|c| figures.category(c).used as u64),
            budget: figures.memory_budget as u64,
            level,
        }
    }

    /// Accounted bytes of `category`.
    pub fn bytes(&self, category: Category) -> u64 {
        self.accounted[category.index()]
    }

    /// Accounted bytes of the memory categories (audio + model + other).
    pub fn memory(&self) -> u64 {
        Category::MEMORY.iter().map(|&c| self.bytes(c)).sum()
    }
}

/// What a mark on the timeline stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MarkKind {
    /// Audio moved from memory to disk.
    Spill,
    /// A model unloaded to make room for another (least recently used).
    Eviction,
    /// A model unloaded (idle, pressure or on request).
    Unload,
    /// Audio discarded to stay within the budget (data lost).
    Drop,
}

impl MarkKind {
    /// Every kind, in legend order.
    pub const ALL: [MarkKind; 4] = [Self::Spill, Self::Eviction, Self::Unload, Self::Drop];

    /// Lower-case name, as used in the SVG's classes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Spill => "spill",
            Self::Eviction => "eviction",
            Self::Unload => "unload",
            Self::Drop => "drop",
        }
    }
}

/// Something done to memory at one time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// Time, ms (the samples' clock).
    pub t_ms: u64,
    /// What was done.
    pub kind: MarkKind,
    /// Bytes it moved or freed.
    pub bytes: u64,
}

impl Mark {
    /// The mark for a model event: evictions and unloads; `None` for the other kinds. The
    /// event's time is the model manager's clock: give the manager the samples' clock.
    pub fn from_model_event(event: &ModelEvent) -> Option<Self> {
        let kind = match event.kind {
            ModelEventKind::Evicted => MarkKind::Eviction,
            k if k.is_unload() => MarkKind::Unload,
            _ => return None,
        };
        Some(Self {
            t_ms: event.at_ms,
            kind,
            bytes: event.bytes as u64,
        })
    }
}

/// Everything a timeline chart shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    /// The chart's title.
    pub title: String,
    /// Samples, oldest first.
    pub samples: Vec<Sample>,
    /// Marks, in any order.
    pub marks: Vec<Mark>,
    /// Enter thresholds of `Elevated`, `High` and `Critical`, per mille of the budget.
    pub thresholds_permille: [u16; 3],
}

impl Timeline {
    /// An empty timeline with `policy`'s enter thresholds (600/750/900 ‰ by default).
    pub fn new(title: impl Into<String>, policy: &PolicyConfig) -> Self {
        Self {
            title: title.into(),
            samples: Vec::new(),
            marks: Vec::new(),
            thresholds_permille: policy.params().enter_permille,
        }
    }
}
