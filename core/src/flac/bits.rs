//! Big-endian bit I/O over caller-supplied byte slices: the encoder's writer and the
//! decoder's reader (apart, so that the firmware's size report tells them apart).

mod read;
mod write;

pub(crate) use read::BitReader;
pub(crate) use write::BitWriter;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_and_reader_agree() {
        let mut out = [0u8; 16];
        let mut w = BitWriter::new(&mut out);
        w.put(3, 0b101);
        w.put_signed(7, -5);
        w.put_rice(40, 3, 0b110);
        w.put(32, 0xDEAD_BEEF);
        let len = w.flush();
        assert!(!w.full());
        assert_eq!(len, (3 + 7 + 44 + 32usize).div_ceil(8));
        let mut r = BitReader::new(&out[..len]);
        assert_eq!(r.get(3), 0b101);
        assert_eq!(r.get_signed(7), -5);
        assert_eq!(r.unary(), 40);
        assert_eq!(r.get(3), 0b110);
        assert_eq!(r.get(32), 0xDEAD_BEEF);
        assert_eq!(r.align(), len);
        assert!(!r.short());
        assert_eq!(r.get(1), 0);
        assert!(r.short());
    }

    #[test]
    fn rice_codes_read_back_fast_and_slow() {
        let mut out = [0u8; 64];
        let mut w = BitWriter::new(&mut out);
        let codes = [
            (0, 0, 0),
            (3, 5, 17),
            (70, 2, 3),
            (0, 30, (1 << 30) - 1),
            (12, 0, 0),
        ];
        for (q, k, low) in codes {
            w.put_rice(q, k, low);
        }
        let len = w.flush();
        let mut r = BitReader::new(&out[..len]);
        for (q, k, low) in codes {
            assert_eq!(r.rice(k), q << k | low);
        }
        assert!(!r.short());
        r.rice(3);
        assert!(r.short());
    }

    #[test]
    fn a_full_writer_drops_bits_and_says_so_until_rewound() {
        let mut out = [0u8; 5];
        let mut w = BitWriter::new(&mut out);
        w.put(32, 1);
        let mark = w.mark();
        w.put(16, 2);
        w.flush();
        assert!(w.full());
        assert_eq!(w.bits(), 48);
        w.rewind(mark);
        assert!(!w.full());
        w.put(8, 3);
        assert_eq!(w.flush(), 5);
        assert!(!w.full());
        assert_eq!(w.written(), [0, 0, 0, 1, 3]);
    }
}
