//! w4l host: the std shell around `w4l-core`.

pub mod recover;
pub mod signals;
pub mod tempfiles;
