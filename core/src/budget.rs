//! TODO(stub): budget
