//! Test images, made with the encoders: no binary fixtures.

use std::borrow::Cow;

use stowage_domain::image::header::{ImageHeader, Probe, probe};

use crate::image::decode;
use crate::image::pixels::{Layout, Pixels};

pub(crate) const RED: [u8; 3] = [220, 20, 20];
pub(crate) const GREEN: [u8; 3] = [20, 200, 20];
pub(crate) const BLUE: [u8; 3] = [20, 20, 220];
pub(crate) const YELLOW: [u8; 3] = [230, 230, 20];
pub(crate) const WHITE: [u8; 3] = [255, 255, 255];

/// Samples of `w` × `h` pixels of `channels` each, from `f(x, y)`.
pub(crate) fn image<const N: usize>(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; N]) -> Vec<u8> {
    let mut data = Vec::with_capacity((w * h) as usize * N);
    for y in 0..h {
        for x in 0..w {
            data.extend_from_slice(&f(x, y));
        }
    }
    data
}

/// Quadrants: red top-left, green top-right, blue bottom-left, yellow bottom-right.
pub(crate) fn quadrants(w: u32, h: u32) -> Vec<u8> {
    image(w, h, |x, y| match (x < w / 2, y < h / 2) {
        (true, true) => RED,
        (false, true) => GREEN,
        (true, false) => BLUE,
        (false, false) => YELLOW,
    })
}

/// A little-endian TIFF block with IFD0's orientation and, if asked, a GPS IFD.
pub(crate) fn exif(orientation: u16, gps: bool) -> Vec<u8> {
    let entries: u16 = if gps { 2 } else { 1 };
    let mut t = b"II*\0".to_vec();
    t.extend_from_slice(&8u32.to_le_bytes());
    t.extend_from_slice(&entries.to_le_bytes());
    // Orientation: tag 0x0112, SHORT, one value, padded to four bytes.
    t.extend_from_slice(&0x0112u16.to_le_bytes());
    t.extend_from_slice(&3u16.to_le_bytes());
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&orientation.to_le_bytes());
    t.extend_from_slice(&[0, 0]);
    let gps_at = 8 + 2 + 12 * u32::from(entries) + 4;
    if gps {
        // GPSInfo pointer: tag 0x8825, LONG.
        t.extend_from_slice(&0x8825u16.to_le_bytes());
        t.extend_from_slice(&4u16.to_le_bytes());
        t.extend_from_slice(&1u32.to_le_bytes());
        t.extend_from_slice(&gps_at.to_le_bytes());
    }
    t.extend_from_slice(&0u32.to_le_bytes());
    if gps {
        t.extend_from_slice(&2u16.to_le_bytes());
        // GPSVersionID 2.3.0.0 (BYTE × 4), GPSLatitudeRef "N" (ASCII × 2).
        t.extend_from_slice(&0u16.to_le_bytes());
        t.extend_from_slice(&1u16.to_le_bytes());
        t.extend_from_slice(&4u32.to_le_bytes());
        t.extend_from_slice(&[2, 3, 0, 0]);
        t.extend_from_slice(&1u16.to_le_bytes());
        t.extend_from_slice(&2u16.to_le_bytes());
        t.extend_from_slice(&2u32.to_le_bytes());
        t.extend_from_slice(b"N\0\0\0");
        t.extend_from_slice(&0u32.to_le_bytes());
    }
    t
}

/// A JPEG of RGB (3 channels) or gray (1) samples, with an APP1 Exif segment if given.
pub(crate) fn jpeg(w: u32, h: u32, samples: &[u8], quality: u8, exif: Option<&[u8]>) -> Vec<u8> {
    jpeg_with(w, h, samples, quality, exif, false)
}

/// [`jpeg`], progressive if asked.
pub(crate) fn jpeg_with(
    w: u32,
    h: u32,
    samples: &[u8],
    quality: u8,
    exif: Option<&[u8]>,
    progressive: bool,
) -> Vec<u8> {
    let color = if samples.len() == (w * h) as usize {
        jpeg_encoder::ColorType::Luma
    } else {
        jpeg_encoder::ColorType::Rgb
    };
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality);
    encoder.set_progressive(progressive);
    if let Some(exif) = exif {
        encoder.add_exif_metadata(exif).unwrap();
    }
    encoder.encode(samples, w as u16, h as u16, color).unwrap();
    out
}

/// A PNG; `palette` (with its `tRNS` alphas) for indexed colour; `exif` as an `eXIf` chunk.
pub(crate) fn png(
    w: u32,
    h: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    samples: &[u8],
    palette: Option<(&[u8], &[u8])>,
    exif: Option<&[u8]>,
) -> Vec<u8> {
    let mut info = png::Info::with_size(w, h);
    info.color_type = color;
    info.bit_depth = depth;
    if let Some((palette, trns)) = palette {
        info.palette = Some(Cow::Owned(palette.to_vec()));
        if !trns.is_empty() {
            info.trns = Some(Cow::Owned(trns.to_vec()));
        }
    }
    info.exif_metadata = exif.map(|e| Cow::Owned(e.to_vec()));
    let mut out = Vec::new();
    {
        let encoder = png::Encoder::with_info(&mut out, info).unwrap();
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(samples).unwrap();
        writer.finish().unwrap();
    }
    out
}

/// A GIF with one frame of palette indices placed at `left`, `top` on a `screen`.
pub(crate) fn gif(
    screen: (u16, u16),
    (left, top, w, h): (u16, u16, u16, u16),
    indices: &[u8],
    palette: &[u8],
    transparent: Option<u8>,
) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = gif::Encoder::new(&mut out, screen.0, screen.1, palette).unwrap();
        let frame = gif::Frame {
            left,
            top,
            width: w,
            height: h,
            transparent,
            buffer: Cow::Borrowed(indices),
            ..gif::Frame::default()
        };
        encoder.write_frame(&frame).unwrap();
    }
    out
}

/// A lossy WebP of RGB samples.
pub(crate) fn webp_lossy(w: u32, h: u32, rgb: &[u8]) -> Vec<u8> {
    webp::Encoder::from_rgb(rgb, w, h).encode(90.0).to_vec()
}

/// A lossless WebP of RGBA samples.
pub(crate) fn webp_lossless(w: u32, h: u32, rgba: &[u8]) -> Vec<u8> {
    webp::Encoder::from_rgba(rgba, w, h)
        .encode_lossless()
        .to_vec()
}

/// The header Stowage's reader finds.
pub(crate) fn header(bytes: &[u8]) -> ImageHeader {
    match probe(bytes) {
        Probe::Found(header) => header,
        other => panic!("no header: {other:?}"),
    }
}

/// Decodes an output at full size.
pub(crate) fn decoded(bytes: &[u8]) -> Pixels {
    let header = header(bytes);
    decode::decode(bytes, &header, (header.width, header.height)).unwrap()
}

/// The pixel at `(x, y)` as RGBA.
pub(crate) fn rgba_at(p: &Pixels, x: u32, y: u32) -> [u8; 4] {
    let n = p.layout.channels();
    let at = (y * p.width + x) as usize * n;
    let s = &p.data[at..at + n];
    match p.layout {
        Layout::Gray => [s[0], s[0], s[0], 255],
        Layout::GrayAlpha => [s[0], s[0], s[0], s[1]],
        Layout::Rgb => [s[0], s[1], s[2], 255],
        Layout::Rgba => [s[0], s[1], s[2], s[3]],
    }
}

/// Whether two colours are within `tolerance` on every channel.
pub(crate) fn near(actual: [u8; 4], expected: [u8; 3], tolerance: u8) -> bool {
    actual[..3]
        .iter()
        .zip(expected)
        .all(|(&a, e)| a.abs_diff(e) <= tolerance)
}
