//! TODO(stub): level
