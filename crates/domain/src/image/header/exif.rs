//! The orientation tag of an EXIF (TIFF) block.

use super::read;

/// The tag of IFD0's orientation entry.
const ORIENTATION: u16 = 0x0112;
/// The TIFF field types the orientation may be written as: SHORT (the standard) and LONG.
const SHORT: u16 = 3;
const LONG: u16 = 4;
/// How large an IFD entry is.
const ENTRY_LEN: usize = 12;

/// Reads the EXIF orientation (1..=8) from a TIFF block, as found in a JPEG APP1 segment (with
/// its leading `Exif\0\0`, which is accepted and skipped), a PNG `eXIf` chunk or a WebP `EXIF`
/// chunk (without it).
///
/// Metadata stripping keeps this one tag, and variants apply it, so it is read on its own: `None`
/// when the block is malformed, has no orientation in IFD0, or holds a value outside 1..=8. A
/// block cut short still yields the orientation if IFD0's entry lies in the bytes given.
pub fn exif_orientation(tiff: &[u8]) -> Option<u8> {
    let tiff = tiff.strip_prefix(b"Exif\0\0").unwrap_or(tiff);
    let big_endian = match tiff.get(..4)? {
        b"II*\0" => false,
        b"MM\0*" => true,
        _ => return None,
    };
    let u16_at = |at| {
        if big_endian {
            read::u16_be(tiff, at)
        } else {
            read::u16_le(tiff, at)
        }
    };
    let u32_at = |at| {
        if big_endian {
            read::u32_be(tiff, at)
        } else {
            read::u32_le(tiff, at)
        }
    };
    let ifd0 = usize::try_from(u32_at(4)?).ok().filter(|&at| at >= 8)?;
    let count = usize::from(u16_at(ifd0)?);
    let entries = ifd0.checked_add(2)?;
    (0..count)
        .map_while(|i| entries.checked_add(i.checked_mul(ENTRY_LEN)?))
        .map_while(|entry| Some((entry, u16_at(entry)?)))
        .find(|&(_, tag)| tag == ORIENTATION)
        .and_then(|(entry, _)| {
            let field_type = u16_at(entry.checked_add(2)?)?;
            if u32_at(entry.checked_add(4)?)? == 0 {
                return None;
            }
            let value_at = entry.checked_add(8)?;
            let value = match field_type {
                SHORT => u32::from(u16_at(value_at)?),
                LONG => u32_at(value_at)?,
                _ => return None,
            };
            u8::try_from(value).ok().filter(|v| (1..=8).contains(v))
        })
}
