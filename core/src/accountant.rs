//! TODO(stub): accountant
