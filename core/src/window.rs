//! TODO(stub): window
