//! Where recovered takes go and how long they stay.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

/// Days a recovered take is kept (`W4L_RECOVERED_KEEP_DAYS`, default 30).
pub const KEEP_DAYS_ENV: &str = "W4L_RECOVERED_KEEP_DAYS";
/// Bytes the recovered-takes directory may hold (`W4L_RECOVERED_KEEP_BYTES`, default 2 GiB).
pub const KEEP_BYTES_ENV: &str = "W4L_RECOVERED_KEEP_BYTES";

/// Where recovered takes go and how long they stay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryConfig {
    /// The recovered-takes directory (`None`: no `$XDG_DATA_HOME` or `$HOME`; then a take
    /// without a usable intended path stays where it is).
    pub recovered_dir: Option<PathBuf>,
    /// Recovered takes older than this are removed.
    pub max_age: Duration,
    /// The directory is trimmed (oldest first) to at most this many bytes.
    pub max_bytes: u64,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            recovered_dir: default_recovered_dir(),
            max_age: Duration::from_secs(30 * 24 * 3600),
            max_bytes: 2 << 30,
        }
    }
}

impl RecoveryConfig {
    /// The defaults, with [`KEEP_DAYS_ENV`] and [`KEEP_BYTES_ENV`] applied.
    ///
    /// # Errors
    ///
    /// One of them is set but is not a whole number.
    pub fn from_env() -> Result<Self> {
        let mut config = Self::default();
        if let Some(days) = env_number(KEEP_DAYS_ENV)? {
            config.max_age = Duration::from_secs(days.saturating_mul(24 * 3600));
        }
        if let Some(bytes) = env_number(KEEP_BYTES_ENV)? {
            config.max_bytes = bytes;
        }
        Ok(config)
    }
}

fn env_number(name: &str) -> Result<Option<u64>> {
    let Some(value) = std::env::var_os(name) else {
        return Ok(None);
    };
    let value = value.to_string_lossy();
    value.trim().parse().map(Some).map_err(|_| {
        Error::usage(
            format!("{name}={value:?} is not a whole number"),
            format!("set {name} to a number like 30, or unset it"),
        )
    })
}

/// `$XDG_DATA_HOME/w4l/recovered`, else `$HOME/.local/share/w4l/recovered`.
pub fn default_recovered_dir() -> Option<PathBuf> {
    let absolute = |name| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    absolute("XDG_DATA_HOME")
        .or_else(|| absolute("HOME").map(|h| h.join(".local").join("share")))
        .map(|d| d.join("w4l").join("recovered"))
}
