//! FLAC's two checksums: CRC-8 of a frame header, CRC-16 of a frame.

/// CRC-8 of a frame header: polynomial x^8 + x^2 + x + 1, initial value 0.
pub(crate) fn crc8(bytes: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &b in bytes {
        crc ^= b;
        for _ in 0..8 {
            crc = (crc << 1) ^ if crc & 0x80 != 0 { 0x07 } else { 0 };
        }
    }
    crc
}

/// CRC-16 of a frame: polynomial x^16 + x^15 + x^2 + 1, initial value 0. A table: it runs
/// over every compressed byte twice (encode and decode), where the bitwise form would cost
/// more than the Rice coding.
pub(crate) fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| {
        let i = usize::from((crc >> 8) as u8 ^ b);
        (crc << 8) ^ CRC16_TABLE.get(i).copied().unwrap_or(0)
    })
}

// Evaluated at compile time: an index out of bounds would fail the build, not panic.
#[allow(clippy::indexing_slicing)]
static CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = (crc << 1) ^ if crc & 0x8000 != 0 { 0x8005 } else { 0 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crcs_match_known_values() {
        // CRC-8/SMBUS and CRC-16/UMTS (the FLAC polynomials) of "123456789".
        assert_eq!(crc8(b"123456789"), 0xF4);
        assert_eq!(crc16(b"123456789"), 0xFEE8);
    }
}
