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

/// CRC-16 of a frame: polynomial x^16 + x^15 + x^2 + 1, initial value 0. It runs over
/// every compressed byte on both sides, where a bitwise loop would cost more than the Rice
/// coding. On 64-bit targets four bytes per step through four tables (a third of the time
/// of one table, for 1.5 KiB more); elsewhere (microcontrollers) a byte per step.
pub(crate) fn crc16(bytes: &[u8]) -> u16 {
    if cfg!(target_pointer_width = "64") {
        crc16_by_words(bytes)
    } else {
        crc16_by_bytes(0, bytes)
    }
}

fn crc16_by_bytes(crc: u16, bytes: &[u8]) -> u16 {
    bytes.iter().fold(crc, |crc, &b| {
        (crc << 8) ^ at(&CRC16_TABLE, (crc >> 8) ^ u16::from(b))
    })
}

fn crc16_by_words(bytes: &[u8]) -> u16 {
    let [t1, t2, t3] = &CRC16_MORE_TABLES;
    let mut words = bytes.chunks_exact(4);
    let mut crc = 0u16;
    for w in &mut words {
        let [b0, b1, b2, b3] = [0, 1, 2, 3].map(|i| u16::from(w.get(i).copied().unwrap_or(0)));
        crc = at(t3, (crc >> 8) ^ b0) ^ at(t2, crc ^ b1) ^ at(t1, b2) ^ at(&CRC16_TABLE, b3);
    }
    crc16_by_bytes(crc, words.remainder())
}

fn at(table: &[u16; 256], i: u16) -> u16 {
    table.get(usize::from(i & 0xFF)).copied().unwrap_or(0)
}

/// The CRC of each byte value.
static CRC16_TABLE: [u16; 256] = CRC16_TABLES[0];
/// `CRC16_MORE_TABLES[k - 1][i]`: the CRC of byte `i` followed by `k` zero bytes (only
/// linked on 64-bit targets).
static CRC16_MORE_TABLES: [[u16; 256]; 3] = [CRC16_TABLES[1], CRC16_TABLES[2], CRC16_TABLES[3]];

// Evaluated at compile time: an index out of bounds would fail the build, not panic.
#[allow(clippy::indexing_slicing)]
const CRC16_TABLES: [[u16; 256]; 4] = {
    let mut t = [[0u16; 256]; 4];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = (crc << 1) ^ if crc & 0x8000 != 0 { 0x8005 } else { 0 };
            bit += 1;
        }
        t[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 4 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev << 8) ^ t[0][(prev >> 8) as usize];
            i += 1;
        }
        k += 1;
    }
    t
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

    #[test]
    fn both_crc16_forms_equal_the_bitwise_definition() {
        let bytes: std::vec::Vec<u8> = (0..203u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in [0, 1, 3, 4, 5, 8, 63, 203] {
            let by_bytes = bytes[..len].iter().fold(0u16, |crc, &b| {
                (0..8).fold(crc ^ (u16::from(b) << 8), |c, _| {
                    (c << 1) ^ if c & 0x8000 != 0 { 0x8005 } else { 0 }
                })
            });
            assert_eq!(crc16_by_words(&bytes[..len]), by_bytes, "{len} bytes");
            assert_eq!(crc16_by_bytes(0, &bytes[..len]), by_bytes, "{len} bytes");
        }
    }
}
