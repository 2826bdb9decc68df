//! Big-endian bit I/O over caller-supplied byte slices: the encoder's writer and the
//! decoder's reader (apart, so that the firmware's size report tells them apart).

mod read;
mod write;

pub(crate) use read::BitReader;
pub(crate) use write::BitWriter;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flac::FlacError;

    #[test]
    fn writer_and_reader_agree() {
        let mut out = [0u8; 16];
        let mut w = BitWriter::new(0);
        w.put(&mut out, 3, 0b101).unwrap();
        w.put_signed(&mut out, 7, -5).unwrap();
        w.put_rice(&mut out, 40, 3, 0b110).unwrap();
        w.put(&mut out, 32, 0xDEAD_BEEF).unwrap();
        let len = w.finish(&mut out).unwrap();
        assert_eq!(len, (3 + 7 + 44 + 32usize).div_ceil(8));
        let mut r = BitReader::new(&out[..len]);
        assert_eq!(r.get(3).unwrap(), 0b101);
        assert_eq!(r.get_signed(7).unwrap(), -5);
        assert_eq!(r.unary().unwrap(), 40);
        assert_eq!(r.get(3).unwrap(), 0b110);
        assert_eq!(r.get(32).unwrap(), 0xDEAD_BEEF);
        assert_eq!(r.align(), len);
        assert_eq!(r.get(1), Err(FlacError::Truncated));
    }

    #[test]
    fn rice_codes_read_back_fast_and_slow() {
        let mut out = [0u8; 64];
        let mut w = BitWriter::new(0);
        let codes = [
            (0, 0, 0),
            (3, 5, 17),
            (70, 2, 3),
            (0, 30, (1 << 30) - 1),
            (12, 0, 0),
        ];
        for (q, k, low) in codes {
            w.put_rice(&mut out, q, k, low).unwrap();
        }
        let len = w.finish(&mut out).unwrap();
        let mut r = BitReader::new(&out[..len]);
        for (q, k, low) in codes {
            assert_eq!(r.rice(k).unwrap(), q << k | low);
        }
        assert_eq!(r.rice(3), Err(FlacError::Truncated));
    }

    #[test]
    fn writer_reports_a_full_buffer() {
        let mut out = [0u8; 3];
        let mut w = BitWriter::new(0);
        assert_eq!(w.put(&mut out, 32, 1), Err(FlacError::OutputFull));
    }
}
