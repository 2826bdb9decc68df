//! What the manager reports: where a model stands, counters and events for the app to poll,
//! and its errors (one line each).

use std::fmt;

/// Where a model stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelStatus {
    /// Not in memory.
    Unloaded,
    /// Its load function runs.
    Loading,
    /// In memory.
    Loaded {
        /// Bytes it holds in the accountant.
        bytes: usize,
        /// `with` calls running on it now.
        users: usize,
        /// Time of its last use, ms.
        last_used_ms: u64,
    },
}

/// Counters since the manager was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelStats {
    /// Loads that completed.
    pub loads: u64,
    /// Loads whose function failed (or whose measurement did not fit).
    pub load_failures: u64,
    /// Loads refused by the budget before they started.
    pub refused: u64,
    /// Loads that took a smaller model instead.
    pub downsized: u64,
    /// Models unloaded after the idle timeout.
    pub unloaded_idle: u64,
    /// Models unloaded for the policy's `UnloadModel`.
    pub unloaded_pressure: u64,
    /// Models unloaded to make room for another (least recently used first).
    pub evicted: u64,
    /// Models unloaded by [`ModelManager::unload`](super::ModelManager::unload).
    pub unloaded_explicit: u64,
    /// Unload functions that failed (their reservation was released anyway).
    pub unload_failures: u64,
    /// Unloads skipped because the model was in use.
    pub skipped_busy: u64,
}

/// What happened to a model, for [`ModelEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelEventKind {
    /// Its load function started.
    LoadStarted,
    /// It was loaded (`bytes`: what it holds).
    Loaded,
    /// Its load failed (`detail`: why).
    LoadFailed,
    /// The budget refused it (`bytes`: what it needed).
    Refused,
    /// It was chosen instead of a larger model (`detail`: the model asked for).
    Downsized,
    /// Unloaded after the idle timeout.
    UnloadedIdle,
    /// Unloaded for the policy's `UnloadModel`.
    UnloadedPressure,
    /// Unloaded to make room for another model.
    Evicted,
    /// Unloaded on request.
    Unloaded,
    /// Its unload function failed (`detail`: why).
    UnloadFailed,
    /// An unload skipped it because it was in use.
    SkippedBusy,
}

impl ModelEventKind {
    /// Lower-case name with dashes, as printed.
    pub fn name(self) -> &'static str {
        match self {
            Self::LoadStarted => "load-started",
            Self::Loaded => "loaded",
            Self::LoadFailed => "load-failed",
            Self::Refused => "refused",
            Self::Downsized => "downsized",
            Self::UnloadedIdle => "unloaded-idle",
            Self::UnloadedPressure => "unloaded-pressure",
            Self::Evicted => "evicted",
            Self::Unloaded => "unloaded",
            Self::UnloadFailed => "unload-failed",
            Self::SkippedBusy => "skipped-busy",
        }
    }

    /// Whether the model left memory (any kind of unload).
    pub fn is_unload(self) -> bool {
        matches!(
            self,
            Self::UnloadedIdle | Self::UnloadedPressure | Self::Evicted | Self::Unloaded
        )
    }
}

/// One entry of the manager's event list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEvent {
    /// Time, ms (the manager's clock).
    pub at_ms: u64,
    /// What happened.
    pub kind: ModelEventKind,
    /// To which model.
    pub model: String,
    /// The bytes concerned (see the kind).
    pub bytes: usize,
    /// More, for some kinds (see the kind); empty otherwise.
    pub detail: String,
}

impl fmt::Display for ModelEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "t={}ms model {} {} {}",
            self.at_ms,
            self.model,
            self.kind.name(),
            mib(self.bytes)
        )?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

/// Why a model operation failed. Displays as one line: what was wrong; what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelError {
    /// No model of that name is registered.
    Unknown {
        /// The name asked for.
        name: String,
        /// The registered names.
        known: Vec<String>,
    },
    /// A model of that name is registered already.
    Duplicate {
        /// The name.
        name: String,
    },
    /// The budget cannot hold the model, even with every idle model unloaded.
    Refused {
        /// The model asked for.
        name: String,
        /// Bytes it needs.
        needed: usize,
        /// Bytes free for models now.
        available: usize,
        /// Bytes unloading every idle model would add.
        reclaimable: usize,
        /// The memory budget.
        budget: usize,
    },
    /// The load function failed (or panicked).
    LoadFailed {
        /// The model.
        name: String,
        /// What the load function said.
        reason: String,
    },
    /// The load measured more than the budget can hold; the model was unloaded again.
    OverBudget {
        /// The model.
        name: String,
        /// Bytes its load measured.
        measured: usize,
        /// The accountant's refusal.
        reason: String,
    },
    /// An explicit unload of a model in use.
    Busy {
        /// The model.
        name: String,
    },
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown { name, known } => write!(
                f,
                "no model named \"{name}\" is registered; use one of: {}",
                known.join(", ")
            ),
            Self::Duplicate { name } => write!(
                f,
                "a model named \"{name}\" is registered already; give each model its own name"
            ),
            Self::Refused {
                name,
                needed,
                available,
                reclaimable,
                budget,
            } => write!(
                f,
                "cannot load model {name}: it needs {}, {} of the {} memory budget is free \
                 (with idle models unloaded: {}); choose a smaller model or raise the budget",
                mib(*needed),
                mib(*available),
                mib(*budget),
                mib(available.saturating_add(*reclaimable))
            ),
            Self::LoadFailed { name, reason } => write!(
                f,
                "loading model {name} failed: {reason}; check the model's files and retry"
            ),
            Self::OverBudget {
                name,
                measured,
                reason,
            } => write!(
                f,
                "model {name} measured {} once loaded, more than the budget holds ({reason}); \
                 it was unloaded: choose a smaller model",
                mib(*measured)
            ),
            Self::Busy { name } => write!(
                f,
                "model {name} is in use and cannot be unloaded now; retry when its work is done"
            ),
        }
    }
}

impl std::error::Error for ModelError {}

impl From<ModelError> for crate::error::Error {
    /// Unknown and duplicate names and budget refusals are usage errors (the request cannot
    /// be met as asked); the rest are runtime errors. The text moves whole into `what`.
    fn from(e: ModelError) -> Self {
        let text = e.to_string();
        let (what, fix) = text.rsplit_once("; ").unwrap_or((&text, ""));
        match e {
            ModelError::Unknown { .. } | ModelError::Duplicate { .. } => Self::usage(what, fix),
            ModelError::Refused { .. } => Self::usage(what, fix),
            _ => Self::runtime(what, fix),
        }
    }
}

/// `12.5 MiB`.
pub(super) fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
