//! The two TIFF operations stripping needs: reading IFD0's Orientation, and writing a TIFF that
//! holds nothing else.

/// The EXIF Orientation tag.
const ORIENTATION: u16 = 0x0112;
/// The TIFF SHORT field type.
const SHORT: u16 = 3;
/// The length of [`minimal`]'s output: header, one-entry IFD0, next-IFD offset.
pub(super) const MINIMAL_LEN: usize = 26;

/// Reads IFD0's Orientation (1..=8) from a TIFF blob in either byte order.
///
/// Anything out of bounds, an IFD0 that does not fit entirely, or a value of the wrong type,
/// count or range gives `None`: a damaged EXIF block keeps no orientation.
pub(super) fn orientation(tiff: &[u8]) -> Option<u8> {
    let big_endian = match tiff.get(..4)? {
        [b'I', b'I', 42, 0] => false,
        [b'M', b'M', 0, 42] => true,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let bytes: [u8; 2] = tiff.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(if big_endian {
            u16::from_be_bytes(bytes)
        } else {
            u16::from_le_bytes(bytes)
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let bytes: [u8; 4] = tiff.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(if big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        })
    };
    let ifd = usize::try_from(u32_at(4)?).ok()?;
    let count = usize::from(u16_at(ifd)?);
    let entries = ifd.checked_add(2)?;
    let ifd_end = entries
        .checked_add(count.checked_mul(12)?)?
        .checked_add(4)?;
    if ifd_end > tiff.len() {
        return None;
    }
    for index in 0..count {
        let entry = entries.checked_add(index.checked_mul(12)?)?;
        if u16_at(entry)? != ORIENTATION {
            continue;
        }
        if u16_at(entry.checked_add(2)?)? != SHORT || u32_at(entry.checked_add(4)?)? != 1 {
            return None;
        }
        let value = u16_at(entry.checked_add(8)?)?;
        return u8::try_from(value).ok().filter(|v| (1..=8).contains(v));
    }
    None
}

/// A little-endian TIFF whose IFD0 holds only Orientation = `orientation`.
pub(super) fn minimal(orientation: u8) -> [u8; MINIMAL_LEN] {
    let mut tiff = [0u8; MINIMAL_LEN];
    // The value's two padding bytes and the next-IFD offset (0) stay zero.
    let parts: [&[u8]; 7] = [
        b"II*\0",
        &8u32.to_le_bytes(),
        &1u16.to_le_bytes(),
        &ORIENTATION.to_le_bytes(),
        &SHORT.to_le_bytes(),
        &1u32.to_le_bytes(),
        &u16::from(orientation).to_le_bytes(),
    ];
    let mut at = 0;
    for part in parts {
        if let Some(dst) = tiff.get_mut(at..at + part.len()) {
            dst.copy_from_slice(part);
        }
        at += part.len();
    }
    tiff
}
