//! TODO(stub): scenario
