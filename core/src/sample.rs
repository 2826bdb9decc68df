//! TODO(stub): sample
