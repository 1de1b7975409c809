//! CRC-32 (ISO-HDLC, the polynomial PNG uses), table-driven.

/// The byte-wise table for the reflected polynomial `0xEDB88320`, built at compile time.
const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            bit += 1;
        }
        table[n] = c;
        n += 1;
    }
    table
};

/// The CRC-32 of the concatenation of `parts` (a PNG chunk's CRC covers its type and data).
pub(super) fn crc32(parts: &[&[u8]]) -> u32 {
    let mut c = u32::MAX;
    for part in parts {
        for &byte in *part {
            c = TABLE[usize::from(c.to_le_bytes()[0] ^ byte)] ^ (c >> 8);
        }
    }
    !c
}
