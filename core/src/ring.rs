//! TODO(stub): ring
