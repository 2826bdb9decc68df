//! TODO(stub): adc
