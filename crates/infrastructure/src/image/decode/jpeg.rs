//! JPEG decoding at a reduced DCT scale: a 1/8-scale decode does an eighth of the IDCT work and
//! holds 1/64 of the pixels, so a thumbnail of a large photo costs little more than its file.

use jpeg_decoder::{Decoder, PixelFormat};
use stowage_application::ports::RenderError;
use stowage_domain::image::header::ImageHeader;

use super::{check_size, unsupported};
use crate::image::pixels::{Layout, Pixels, buffer_len};

/// The scales, in eighths, that the decoder's IDCT can produce.
const SCALES: [u32; 3] = [1, 2, 4];

/// A side of `side` pixels decoded at `eighths`/8, as the decoder rounds it (up).
fn scaled(side: u32, eighths: u32) -> u32 {
    let v = (u64::from(side) * u64::from(eighths)).div_ceil(8);
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// The scale, in eighths (1, 2, 4 or 8), at which a JPEG stored `width` × `height` is decoded
/// when at least `need` pixels are needed on each axis: the smallest that gives that many.
fn jpeg_scale(width: u32, height: u32, need: (u32, u32)) -> u32 {
    SCALES
        .into_iter()
        .find(|&e| scaled(width, e) >= need.0 && scaled(height, e) >= need.1)
        .unwrap_or(8)
}

/// What to pass to `Decoder::scale` so that it picks `eighths`: it takes the smallest scale that
/// reaches the request on *either* axis, so the request is made on an axis that the next smaller
/// scale leaves short (one exists, `eighths` being the smallest that fits), and the other axis
/// asks for more than any reduced scale gives.
fn scale_request(width: u32, height: u32, eighths: u32) -> (u16, u16) {
    let side = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
    if eighths <= 1 {
        return (1, 1);
    }
    let smaller = eighths / 2;
    if scaled(width, smaller) < scaled(width, eighths) {
        (side(scaled(width, eighths)), u16::MAX)
    } else {
        (u16::MAX, side(scaled(height, eighths)))
    }
}

pub(super) fn decode(
    source: &[u8],
    header: &ImageHeader,
    need: (u32, u32),
) -> Result<Pixels, RenderError> {
    let mut decoder = Decoder::new(source);
    decoder.read_info().map_err(unsupported)?;
    let info = decoder
        .info()
        .ok_or_else(|| unsupported("the JPEG has no frame header"))?;
    check_size((u32::from(info.width), u32::from(info.height)), header)?;
    let layout = match info.pixel_format {
        PixelFormat::L8 => Layout::Gray,
        PixelFormat::RGB24 | PixelFormat::CMYK32 => Layout::Rgb,
        PixelFormat::L16 => return Err(unsupported("16-bit lossless JPEG is not decoded")),
    };
    let eighths = jpeg_scale(header.width, header.height, need);
    let (width, height) = if eighths < 8 {
        let (w, h) = scale_request(header.width, header.height, eighths);
        let (w, h) = decoder.scale(w, h).map_err(unsupported)?;
        (u32::from(w), u32::from(h))
    } else {
        (header.width, header.height)
    };
    let samples = if info.pixel_format == PixelFormat::CMYK32 {
        4
    } else {
        layout.channels()
    };
    let limit = buffer_len(width, height, Layout::Gray)
        .and_then(|n| n.checked_mul(samples))
        .ok_or_else(|| unsupported("the JPEG is too large"))?;
    decoder.set_max_decoding_buffer_size(limit);
    let mut data = decoder.decode().map_err(unsupported)?;
    if info.pixel_format == PixelFormat::CMYK32 {
        data = cmyk_to_rgb(data);
    }
    Pixels::new(width, height, layout, data)
}

/// The decoder hands CMYK (and YCCK) out as ink amounts, Adobe's inversion undone: each colour
/// is its ink's complement darkened by the black ink. Done in place.
fn cmyk_to_rgb(mut data: Vec<u8>) -> Vec<u8> {
    let pixels = data.len() / 4;
    for i in 0..pixels {
        let at = i * 4;
        let Some(&[c, m, y, k]) = data
            .get(at..at + 4)
            .and_then(|p| <&[u8; 4]>::try_from(p).ok())
        else {
            break;
        };
        let k = 255 - u16::from(k);
        for (n, ink) in [c, m, y].into_iter().enumerate() {
            let value = (255 - u16::from(ink)) * k / 255;
            if let Some(out) = data.get_mut(i * 3 + n) {
                *out = u8::try_from(value).unwrap_or(u8::MAX);
            }
        }
    }
    data.truncate(pixels * 3);
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_scale_that_covers_both_axes_is_chosen() {
        // 4000×3000 for a 300×300 cover (crop 3000×3000): 400×300 are needed.
        assert_eq!(jpeg_scale(4000, 3000, (400, 300)), 1);
        assert_eq!(jpeg_scale(4000, 3000, (501, 300)), 2);
        assert_eq!(jpeg_scale(4000, 3000, (400, 376)), 2);
        assert_eq!(jpeg_scale(4000, 3000, (1001, 10)), 4);
        assert_eq!(jpeg_scale(4000, 3000, (2001, 10)), 8);
        assert_eq!(jpeg_scale(4000, 3000, (4000, 3000)), 8);
        // Rounding up: 9 px at 1/8 is 2 px.
        assert_eq!(jpeg_scale(9, 9, (2, 2)), 1);
    }

    #[test]
    fn the_request_makes_the_decoder_pick_that_scale() {
        // The decoder's rule, restated: the smallest scale reaching the request on either axis.
        let picks = |w: u32, h: u32, (rw, rh): (u16, u16)| {
            SCALES
                .into_iter()
                .find(|&e| scaled(w, e) >= u32::from(rw) || scaled(h, e) >= u32::from(rh))
                .unwrap_or(8)
        };
        for (w, h) in [(4000, 3000), (1, 4000), (4000, 1), (9, 17), (65535, 2)] {
            for need in [
                (1, 1),
                (2, 500),
                (500, 2),
                (w / 3, h / 5),
                (w / 2 + 1, 1),
                (w, h),
            ] {
                let eighths = jpeg_scale(w, h, need);
                if eighths < 8 {
                    let request = scale_request(w, h, eighths);
                    assert_eq!(picks(w, h, request), eighths, "{w}x{h} {need:?}");
                }
            }
        }
    }

    #[test]
    fn cmyk_becomes_rgb() {
        // No ink, full cyan, full black.
        let rgb = cmyk_to_rgb(vec![0, 0, 0, 0, 255, 0, 0, 0, 0, 0, 0, 255]);
        assert_eq!(rgb, vec![255, 255, 255, 0, 255, 255, 0, 0, 0]);
    }
}
