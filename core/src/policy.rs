//! TODO(stub): policy
