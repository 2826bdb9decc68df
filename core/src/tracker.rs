//! TODO(stub): tracker
