//! w4l host: the std shell around `w4l-core`.
