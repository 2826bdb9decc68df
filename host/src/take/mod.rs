//! The take: what a recording keeps, in memory (fixed-size blocks charged to the budget) and on
//! disk (a temporary WAV), and where it keeps it ([`Mode`]).

pub mod blocks;
pub mod file;

use std::fmt;
use std::str::FromStr;

/// Where a take is kept while it is being recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The take in memory, in fixed-size blocks charged to the budget; under memory pressure
    /// the oldest blocks are spilled to a temporary file.
    #[default]
    Stream,
    /// The take goes to a temporary WAV file as it is captured (header checkpointed every
    /// second), moved to the output at the end.
    File,
}

impl Mode {
    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Stream => "stream",
            Mode::File => "file",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not `stream` or `file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownMode(pub String);

impl fmt::Display for UnknownMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown mode '{}'; use stream or file", self.0)
    }
}

impl std::error::Error for UnknownMode {}

impl FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "stream" => Ok(Mode::Stream),
            "file" => Ok(Mode::File),
            _ => Err(UnknownMode(s.into())),
        }
    }
}
