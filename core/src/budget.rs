//! Model-aware memory budgets: the earlier design's Whisper model table as constants.
//!
//! | model | footprint | total limit (footprint + 512 MiB overhead) |
//! |---|---|---|
//! | tiny | 150 MiB | 662 MiB |
//! | base | 250 MiB | 762 MiB |
//! | small | 500 MiB | 1012 MiB |
//! | medium | 1500 MiB | 2012 MiB |
//! | large | 2500 MiB | 3012 MiB |
//!
//! Without a model the memory limit is [`DEFAULT_MEMORY_LIMIT`] (512 MiB). Audio buffers
//! are limited to [`AUDIO_BUFFER_LIMIT`] (100 MiB) and one buffer spans 1 to 30 seconds.
//!
//! # MB means MiB
//!
//! The earlier design said "MB". Here that is read as **MiB** (1 MiB = 1024 × 1024
//! bytes, [`MIB`]): operating systems report resident memory in KiB/MiB, and the model
//! footprints are rough estimates anyway; binary units leave about 5 % more room than
//! 10⁶ would. The largest total (3012 MiB) still fits in a 32-bit `usize` (< 4 GiB).
//!
//! ```
//! use w4l_core::budget::{Budget, Model, MIB};
//!
//! let budget = Budget::for_model("small".parse::<Model>()?);
//! assert_eq!(budget.memory, 1012 * MIB);
//! let accountant = budget.accountant();
//! assert_eq!(accountant.memory_budget(), 1012 * MIB);
//! # Ok::<(), w4l_core::budget::ParseModelError>(())
//! ```

use core::fmt;
use core::str::FromStr;

use crate::accountant::{Accountant, Category};

/// One mebibyte, 1024 × 1024 bytes: the unit of the model table ("MB" in the earlier
/// design).
pub const MIB: usize = 1024 * 1024;

/// Memory for everything besides the model (audio, inference state, the program): 512 MiB.
pub const OVERHEAD: usize = 512 * MIB;

/// Memory limit when no model is chosen: 512 MiB.
pub const DEFAULT_MEMORY_LIMIT: usize = 512 * MIB;

/// Limit of all audio buffers together: 100 MiB.
pub const AUDIO_BUFFER_LIMIT: usize = 100 * MIB;

/// Disk budget for spill and temporary files when none is given: 1024 MiB. (Not in the
/// earlier design's table; chosen here.)
pub const DEFAULT_DISK_LIMIT: usize = 1024 * MIB;

/// Shortest audio buffer: 1 second.
pub const MIN_BUFFER_SECONDS: u32 = 1;

/// Longest audio buffer: 30 seconds.
pub const MAX_BUFFER_SECONDS: u32 = 30;

/// A Whisper model size.
///
/// Parses from `"tiny"`, `"base"`, `"small"`, `"medium"`, `"large"` (ASCII
/// case-insensitive, surrounding whitespace ignored), the English-only variants
/// `"tiny.en"` … `"medium.en"` and `"large-v1"`, `"large-v2"`, `"large-v3"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Model {
    /// Whisper tiny, ≈ 150 MiB.
    Tiny,
    /// Whisper base, ≈ 250 MiB.
    Base,
    /// Whisper small, ≈ 500 MiB.
    Small,
    /// Whisper medium, ≈ 1500 MiB.
    Medium,
    /// Whisper large, ≈ 2500 MiB.
    Large,
}

impl Model {
    /// Every model, smallest first.
    pub const ALL: [Model; 5] = [
        Model::Tiny,
        Model::Base,
        Model::Small,
        Model::Medium,
        Model::Large,
    ];

    /// Estimated memory of the loaded model in bytes.
    pub const fn footprint(self) -> usize {
        let mib = match self {
            Model::Tiny => 150,
            Model::Base => 250,
            Model::Small => 500,
            Model::Medium => 1500,
            Model::Large => 2500,
        };
        mib * MIB
    }

    /// The total memory limit with this model: footprint + [`OVERHEAD`].
    pub const fn total_limit(self) -> usize {
        self.footprint() + OVERHEAD
    }

    /// Lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Model::Tiny => "tiny",
            Model::Base => "base",
            Model::Small => "small",
            Model::Medium => "medium",
            Model::Large => "large",
        }
    }

    /// Parses a model name (see the type's documentation for what is accepted).
    ///
    /// # Errors
    ///
    /// [`ParseModelError`] for any other text.
    pub fn parse(text: &str) -> Result<Model, ParseModelError> {
        let name = text.trim();
        let eq = |s: &str| name.eq_ignore_ascii_case(s);
        let found = Model::ALL.into_iter().find(|m| {
            let base = m.name();
            if eq(base) {
                return true;
            }
            let Some(rest) = name
                .get(..base.len())
                .filter(|head| head.eq_ignore_ascii_case(base))
                .and_then(|_| name.get(base.len()..))
            else {
                return false;
            };
            match m {
                Model::Large => ["-v1", "-v2", "-v3"]
                    .iter()
                    .any(|v| rest.eq_ignore_ascii_case(v)),
                _ => rest.eq_ignore_ascii_case(".en"),
            }
        });
        found.ok_or_else(|| ParseModelError::new(name))
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Model {
    type Err = ParseModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Model::parse(s)
    }
}

/// How many bytes of the rejected text a [`ParseModelError`] keeps.
const KEPT: usize = 24;

/// The text did not name a Whisper model. Keeps (up to 24 bytes of) the text, without
/// allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ParseModelError {
    kept: [u8; KEPT],
    len: usize,
    truncated: bool,
}

impl ParseModelError {
    fn new(text: &str) -> Self {
        let mut len = text.len().min(KEPT);
        while !text.is_char_boundary(len) {
            len -= 1;
        }
        let mut kept = [0u8; KEPT];
        if let (Some(dst), Some(src)) = (kept.get_mut(..len), text.as_bytes().get(..len)) {
            dst.copy_from_slice(src);
        }
        ParseModelError {
            kept,
            len,
            truncated: len < text.len(),
        }
    }

    /// The rejected text (its first 24 bytes at most, cut at a character boundary).
    pub fn text(&self) -> &str {
        self.kept
            .get(..self.len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or("")
    }

    /// `true` when the rejected text was longer than what [`text`](Self::text) keeps.
    pub fn truncated(&self) -> bool {
        self.truncated
    }
}

impl fmt::Display for ParseModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let more = if self.truncated { "..." } else { "" };
        write!(
            f,
            "unknown Whisper model \"{}{more}\": known models are tiny, base, small, medium and large \
             (also tiny.en to medium.en and large-v1 to large-v3); pass one of those",
            self.text()
        )
    }
}

impl core::error::Error for ParseModelError {}

/// Memory and disk limits for one configuration.
///
/// ```
/// use w4l_core::accountant::Category;
/// use w4l_core::budget::{Budget, Model, MIB};
///
/// let b = Budget::for_model(Model::Tiny);
/// assert_eq!((b.memory, b.audio_limit, b.model), (662 * MIB, 100 * MIB, Some(Model::Tiny)));
/// let acc = b.accountant();
/// assert_eq!(acc.limit(Category::Audio), Some(100 * MIB));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Budget {
    /// Total memory budget in bytes (audio + model + other).
    pub memory: usize,
    /// Limit of the audio category in bytes.
    pub audio_limit: usize,
    /// The model the budget was made for, if any.
    pub model: Option<Model>,
    /// Limit of the model category in bytes, if any. [`Budget::for_model`] leaves it
    /// `None`: the footprints are estimates, and the memory budget bounds the model anyway.
    pub model_limit: Option<usize>,
    /// Disk budget for spill and temporary files in bytes.
    pub disk: usize,
}

impl Budget {
    /// The budget for `model`: memory = footprint + [`OVERHEAD`], audio
    /// [`AUDIO_BUFFER_LIMIT`], disk [`DEFAULT_DISK_LIMIT`].
    pub const fn for_model(model: Model) -> Budget {
        Budget {
            memory: model.total_limit(),
            audio_limit: AUDIO_BUFFER_LIMIT,
            model: Some(model),
            model_limit: None,
            disk: DEFAULT_DISK_LIMIT,
        }
    }

    /// The budget without a model: memory [`DEFAULT_MEMORY_LIMIT`], audio
    /// [`AUDIO_BUFFER_LIMIT`], disk [`DEFAULT_DISK_LIMIT`]. Same as `Budget::default()`.
    pub const DEFAULT: Budget = Budget {
        memory: DEFAULT_MEMORY_LIMIT,
        audio_limit: AUDIO_BUFFER_LIMIT,
        model: None,
        model_limit: None,
        disk: DEFAULT_DISK_LIMIT,
    };

    /// The same budget with a different disk budget.
    #[must_use]
    pub const fn with_disk(mut self, disk: usize) -> Budget {
        self.disk = disk;
        self
    }

    /// An [`Accountant`] enforcing this budget: the memory budget, the disk budget, the
    /// audio limit and the model limit (if any).
    ///
    /// `const fn` (except under `cfg(loom)`), so a firmware can keep the result in a
    /// `static`.
    #[cfg(not(loom))]
    pub const fn accountant(&self) -> Accountant {
        let acc =
            Accountant::new(self.memory, self.disk).with_limit(Category::Audio, self.audio_limit);
        match self.model_limit {
            Some(limit) => acc.with_limit(Category::Model, limit),
            None => acc,
        }
    }

    /// An [`Accountant`] enforcing this budget (see the `const fn` version).
    #[cfg(loom)]
    pub fn accountant(&self) -> Accountant {
        let acc =
            Accountant::new(self.memory, self.disk).with_limit(Category::Audio, self.audio_limit);
        match self.model_limit {
            Some(limit) => acc.with_limit(Category::Model, limit),
            None => acc,
        }
    }
}

impl Default for Budget {
    fn default() -> Self {
        Budget::DEFAULT
    }
}

impl From<Budget> for Accountant {
    fn from(budget: Budget) -> Self {
        budget.accountant()
    }
}

impl From<Model> for Budget {
    fn from(model: Model) -> Self {
        Budget::for_model(model)
    }
}

/// Buffer length outside 1..=30 seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BufferSecondsError {
    /// The length asked for.
    pub seconds: u32,
}

impl fmt::Display for BufferSecondsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "buffer length of {} s is out of range: buffers span {MIN_BUFFER_SECONDS} to \
             {MAX_BUFFER_SECONDS} s; choose a length in that range",
            self.seconds
        )
    }
}

impl core::error::Error for BufferSecondsError {}

/// Checks a buffer length in seconds: `Ok(seconds)` within
/// [`MIN_BUFFER_SECONDS`]..=[`MAX_BUFFER_SECONDS`].
///
/// # Errors
///
/// [`BufferSecondsError`] outside that range.
pub const fn buffer_seconds(seconds: u32) -> Result<u32, BufferSecondsError> {
    if seconds >= MIN_BUFFER_SECONDS && seconds <= MAX_BUFFER_SECONDS {
        Ok(seconds)
    } else {
        Err(BufferSecondsError { seconds })
    }
}

/// Clamps a buffer length into [`MIN_BUFFER_SECONDS`]..=[`MAX_BUFFER_SECONDS`].
pub const fn clamp_buffer_seconds(seconds: u32) -> u32 {
    if seconds < MIN_BUFFER_SECONDS {
        MIN_BUFFER_SECONDS
    } else if seconds > MAX_BUFFER_SECONDS {
        MAX_BUFFER_SECONDS
    } else {
        seconds
    }
}

/// Bytes of an audio buffer of `seconds` at `sample_rate` frames per second with
/// `channels` channels of `bytes_per_sample` bytes each; `None` if that overflows `usize`.
pub const fn buffer_bytes(
    seconds: u32,
    sample_rate: u32,
    channels: u16,
    bytes_per_sample: usize,
) -> Option<usize> {
    let Some(frames) = (seconds as usize).checked_mul(sample_rate as usize) else {
        return None;
    };
    let Some(samples) = frames.checked_mul(channels as usize) else {
        return None;
    };
    samples.checked_mul(bytes_per_sample)
}
