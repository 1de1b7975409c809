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

/// The EXIF orientation of a whole PNG or WebP file whose Exif block follows its image data,
/// where a header read as the file streams does not wait for it (WebP writers put their `EXIF`
/// chunk last): the `eXIf` chunk of a PNG, the `EXIF` chunk of a WebP. `None` for other formats,
/// and when there is no such chunk or the chunk structure breaks off.
pub fn trailing_orientation(file: &[u8], format: super::ImageFormat) -> Option<u8> {
    let (mut at, wanted, big_endian_lengths) = match format {
        super::ImageFormat::Png => (8usize, b"eXIf", true),
        super::ImageFormat::WebP => (12usize, b"EXIF", false),
        _ => return None,
    };
    loop {
        // PNG: length, kind; WebP: kind, length.
        let (kind, len) = if big_endian_lengths {
            (file.get(at + 4..at + 8)?, read::u32_be(file, at)?)
        } else {
            (file.get(at..at + 4)?, read::u32_le(file, at + 4)?)
        };
        let len = usize::try_from(len).ok()?;
        let start = at + 8;
        let data = file.get(start..start.checked_add(len)?)?;
        if kind == wanted {
            return exif_orientation(data);
        }
        if kind == b"IEND" {
            return None;
        }
        // A PNG chunk ends with its CRC; a WebP chunk is padded to an even length.
        at = if big_endian_lengths {
            start + len + 4
        } else {
            start + len + (len & 1)
        };
    }
}

#[cfg(test)]
mod trailing_tests {
    use super::*;
    use crate::image::header::ImageFormat;

    /// A little-endian TIFF block whose IFD0 holds orientation 6.
    fn tiff() -> Vec<u8> {
        let mut t = b"II*\0\x08\0\0\0\x01\0".to_vec();
        t.extend([0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]);
        t
    }

    #[test]
    fn an_exif_block_after_the_image_data_is_found() {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        for (kind, data) in [
            (&b"IHDR"[..], vec![0; 13]),
            (b"IDAT", vec![1; 5]),
            (b"eXIf", tiff()),
        ] {
            png.extend(u32::try_from(data.len()).unwrap().to_be_bytes());
            png.extend(kind);
            png.extend(&data);
            png.extend([0; 4]);
        }
        assert_eq!(trailing_orientation(&png, ImageFormat::Png), Some(6));

        let mut webp = b"RIFF\0\0\0\0WEBP".to_vec();
        for (kind, data) in [(&b"VP8L"[..], vec![2; 7]), (b"EXIF", tiff())] {
            webp.extend(kind);
            webp.extend(u32::try_from(data.len()).unwrap().to_le_bytes());
            webp.extend(&data);
            if data.len() % 2 == 1 {
                webp.push(0);
            }
        }
        assert_eq!(trailing_orientation(&webp, ImageFormat::WebP), Some(6));

        // Cut short, or another format: nothing is invented.
        assert_eq!(
            trailing_orientation(&webp[..webp.len() - 3], ImageFormat::WebP),
            None
        );
        assert_eq!(trailing_orientation(&png, ImageFormat::Jpeg), None);
    }
}
