//! What the app tells the manager: a model's name and size, the manager's settings, and what a
//! load gave back.

use std::time::Duration;

use w4l_core::budget::Model;

/// How big a model is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// Exactly these bytes.
    Declared(usize),
    /// Measured as the RSS change of the load; `estimate` is reserved until then.
    Measured {
        /// Bytes reserved before the first measurement.
        estimate: usize,
    },
}

/// What a model is: its name, its place in the Whisper table (if any) and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// The name loads ask for.
    pub name: String,
    /// Its size in the Whisper table, which makes it a candidate for downsizing.
    pub whisper: Option<Model>,
    /// Its size.
    pub size: Size,
}

impl ModelSpec {
    /// A model named `name` of `bytes` declared bytes, outside the Whisper table.
    pub fn declared(name: impl Into<String>, bytes: usize) -> Self {
        Self {
            name: name.into(),
            whisper: None,
            size: Size::Declared(bytes),
        }
    }

    /// A Whisper model, named and sized by the table (`"small"`, 500 MiB).
    pub fn whisper(model: Model) -> Self {
        Self {
            name: model.name().to_owned(),
            whisper: Some(model),
            size: Size::Declared(model.footprint()),
        }
    }

    /// The same model, its size measured at load (the current size becomes the estimate).
    #[must_use]
    pub fn measured(mut self) -> Self {
        let (Size::Declared(estimate) | Size::Measured { estimate }) = self.size;
        self.size = Size::Measured { estimate };
        self
    }
}

/// How the manager behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelConfig {
    /// Unload a model unused for this long; `Duration::ZERO` never does. Default 5 min.
    pub idle_timeout: Duration,
    /// Load a smaller Whisper model when the one asked for does not fit. Default `false`.
    pub allow_downsize: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(5 * 60),
            allow_downsize: false,
        }
    }
}

/// What a successful [`ModelManager::load`](super::ModelManager::load) loaded (or found loaded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The model now loaded.
    pub name: String,
    /// Bytes it holds in the accountant.
    pub bytes: usize,
    /// The model asked for, when a smaller one was loaded instead.
    pub downsized_from: Option<String>,
}
