//! Real images encoded in code: quadrant JPEGs (with EXIF orientation, GPS and camera text),
//! PNGs, GIFs and WebPs, and the broken and oversized files a server must refuse.

use super::{Colour, QUADRANTS, quadrant_at, quadrants_rgb};

/// What the metadata of [`jpeg_oriented`], [`png_rgba`] and [`webp_with_exif`] holds, none of which a
/// variant may carry: the camera, a GPS position in words, and a comment.
pub const EXIF_SECRETS: [&[u8]; 3] = [b"Secret Camera", b"GPS 48.8584N 2.2945E", b"taken at home"];

/// A plain-text file, to be uploaded under an image's name and type.
pub const NOT_AN_IMAGE: &[u8] = b"This is a text file dressed up as a photo.\nNo pixels here.\n";

/// One TIFF directory entry: tag, type, count and value bytes (inline when at most 4).
struct Entry {
    tag: u16,
    kind: u16,
    count: u32,
    value: Vec<u8>,
}

const ASCII: u16 = 2;
const SHORT: u16 = 3;
const LONG: u16 = 4;
const RATIONAL: u16 = 5;

fn ascii(tag: u16, text: &[u8]) -> Entry {
    let mut value = text.to_vec();
    value.push(0);
    Entry {
        tag,
        kind: ASCII,
        count: value.len() as u32,
        value,
    }
}

fn rationals(tag: u16, values: &[(u32, u32)]) -> Entry {
    Entry {
        tag,
        kind: RATIONAL,
        count: values.len() as u32,
        value: values
            .iter()
            .flat_map(|(n, d)| n.to_le_bytes().into_iter().chain(d.to_le_bytes()))
            .collect(),
    }
}

/// Appends a little-endian IFD (entries sorted by tag) and the values that do not fit inline;
/// offsets count from the start of `out`, the TIFF header.
fn write_ifd(out: &mut Vec<u8>, entries: &[Entry]) {
    let data_start = out.len() + 2 + entries.len() * 12 + 4;
    let mut data = Vec::new();
    out.extend((entries.len() as u16).to_le_bytes());
    for entry in entries {
        out.extend(entry.tag.to_le_bytes());
        out.extend(entry.kind.to_le_bytes());
        out.extend(entry.count.to_le_bytes());
        if entry.value.len() <= 4 {
            let mut inline = entry.value.clone();
            inline.resize(4, 0);
            out.extend(inline);
        } else {
            out.extend(((data_start + data.len()) as u32).to_le_bytes());
            data.extend(&entry.value);
            // Offsets stay even, as TIFF wants.
            if data.len() % 2 == 1 {
                data.push(0);
            }
        }
    }
    out.extend(0u32.to_le_bytes());
    out.extend(data);
}

/// An EXIF payload (a little-endian TIFF, without the `Exif\0\0` prefix): `orientation`, the
/// camera's make, a description with a GPS position in words, and a GPS directory with that
/// position in numbers.
pub fn exif_tiff(orientation: u16) -> Vec<u8> {
    let mut out = b"II*\0\x08\0\0\0".to_vec();
    let ifd0 = [
        ascii(0x010E, EXIF_SECRETS[1]),
        ascii(0x010F, EXIF_SECRETS[0]),
        Entry {
            tag: 0x0112,
            kind: SHORT,
            count: 1,
            value: orientation.to_le_bytes().to_vec(),
        },
        // The GPS directory's offset, patched below once it is known.
        Entry {
            tag: 0x8825,
            kind: LONG,
            count: 1,
            value: 0u32.to_le_bytes().to_vec(),
        },
    ];
    write_ifd(&mut out, &ifd0);
    let gps_at = out.len() as u32;
    let pointer = 8 + 2 + 3 * 12 + 8;
    out[pointer..pointer + 4].copy_from_slice(&gps_at.to_le_bytes());
    let gps = [
        ascii(0x0001, b"N"),
        rationals(0x0002, &[(48, 1), (51, 1), (3024, 100)]),
        ascii(0x0003, b"E"),
        rationals(0x0004, &[(2, 1), (17, 1), (4020, 100)]),
    ];
    write_ifd(&mut out, &gps);
    out
}

/// A baseline JPEG of the quadrants, `width` × `height`, at `quality`, without metadata.
pub fn jpeg(width: u16, height: u16, quality: u8) -> Vec<u8> {
    encode_jpeg(width, height, quality, None)
}

/// A JPEG of the quadrants (quality 95, so flat colours stay flat) whose EXIF says `orientation`
/// (1..=8) and holds [`EXIF_SECRETS`]' camera and GPS position, with an XMP packet and a comment.
pub fn jpeg_oriented(width: u16, height: u16, orientation: u16) -> Vec<u8> {
    encode_jpeg(width, height, 95, Some(orientation))
}

fn encode_jpeg(width: u16, height: u16, quality: u8, orientation: Option<u16>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality);
    if let Some(orientation) = orientation {
        encoder.add_exif_metadata(&exif_tiff(orientation)).unwrap();
        let xmp = [
            b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta><tiff:Make>".as_slice(),
            EXIF_SECRETS[0],
            b"</tiff:Make></x:xmpmeta>",
        ]
        .concat();
        encoder.add_app_segment(1, xmp).unwrap();
    }
    encoder
        .encode(
            &quadrants_rgb(u32::from(width), u32::from(height)),
            width,
            height,
            jpeg_encoder::ColorType::Rgb,
        )
        .unwrap();
    if orientation.is_some() {
        insert_jpeg_comment(&mut out, EXIF_SECRETS[2]);
    }
    out
}

/// Inserts a COM segment after the APPn segments that follow SOI.
fn insert_jpeg_comment(jpeg: &mut Vec<u8>, text: &[u8]) {
    let mut at = 2;
    while jpeg.get(at) == Some(&0xFF) && jpeg.get(at + 1).is_some_and(|m| (0xE0..=0xEF).contains(m))
    {
        let len = u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]);
        at += 2 + usize::from(len);
    }
    let mut segment = vec![0xFF, 0xFE];
    segment.extend(u16::try_from(text.len() + 2).unwrap().to_be_bytes());
    segment.extend(text);
    jpeg.splice(at..at, segment);
}

/// A PNG of the quadrants with alpha: opaque in the top half, alpha 128 in the bottom half; a
/// `tEXt` comment holds [`EXIF_SECRETS`]' comment and an `eXIf` chunk the camera and GPS.
pub fn png_rgba(width: u32, height: u32) -> Vec<u8> {
    let mut rgba = Vec::with_capacity(width as usize * height as usize * 4);
    for y in 0..height {
        for x in 0..width {
            rgba.extend(quadrant_at(x, y, width, height).rgb());
            rgba.push(if y < height / 2 { 255 } else { 128 });
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .add_text_chunk(
            "Comment".to_owned(),
            String::from_utf8_lossy(EXIF_SECRETS[2]).into_owned(),
        )
        .unwrap();
    let mut writer = encoder.write_header().unwrap();
    writer.write_chunk(png::chunk::eXIf, &exif_tiff(1)).unwrap();
    writer.write_image_data(&rgba).unwrap();
    writer.finish().unwrap();
    out
}

/// A grayscale PNG: black on the left half, white on the right.
pub fn png_gray(width: u32, height: u32) -> Vec<u8> {
    let gray: Vec<u8> = (0..height)
        .flat_map(|_| (0..width).map(move |x| if x < width / 2 { 0 } else { 255 }))
        .collect();
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(&gray).unwrap();
    writer.finish().unwrap();
    out
}

/// An opaque RGB PNG of pseudo-random pixels (from `seed`): detail that lossy encoders can only
/// keep by spending bytes, so quality shows in the output's size.
pub fn png_noise(width: u32, height: u32, seed: u64) -> Vec<u8> {
    let rgb = crate::http::pattern(width as usize * height as usize * 3, seed);
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(&rgb).unwrap();
    writer.finish().unwrap();
    out
}

/// A baseline JPEG of pseudo-random pixels (from `seed`) at `quality`: a file whose every block
/// is detail, so that decoding it takes time in proportion to its size.
pub fn jpeg_noise(width: u16, height: u16, quality: u8, seed: u64) -> Vec<u8> {
    let rgb = crate::http::pattern(usize::from(width) * usize::from(height) * 3, seed);
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, quality)
        .encode(&rgb, width, height, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    out
}

/// The palette of the GIFs: the quadrant colours, then black.
fn gif_palette() -> Vec<u8> {
    QUADRANTS
        .iter()
        .chain(&[Colour::Black])
        .flat_map(|c| c.rgb())
        .collect()
}

fn quadrant_indices(width: u16, height: u16) -> Vec<u8> {
    let (w, h) = (u32::from(width), u32::from(height));
    (0..h)
        .flat_map(|y| {
            (0..w).map(move |x| {
                let colour = quadrant_at(x, y, w, h);
                QUADRANTS.iter().position(|c| *c == colour).unwrap() as u8
            })
        })
        .collect()
}

/// A single-frame GIF of the quadrants.
pub fn gif(width: u16, height: u16) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = gif::Encoder::new(&mut out, width, height, &gif_palette()).unwrap();
        let frame =
            gif::Frame::from_indexed_pixels(width, height, quadrant_indices(width, height), None);
        encoder.write_frame(&frame).unwrap();
    }
    out
}

/// A looping two-frame GIF: the quadrants first, then all black.
pub fn gif_animated(width: u16, height: u16) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = gif::Encoder::new(&mut out, width, height, &gif_palette()).unwrap();
        encoder.set_repeat(gif::Repeat::Infinite).unwrap();
        let mut first =
            gif::Frame::from_indexed_pixels(width, height, quadrant_indices(width, height), None);
        first.delay = 50;
        encoder.write_frame(&first).unwrap();
        let black = vec![4u8; usize::from(width) * usize::from(height)];
        let mut second = gif::Frame::from_indexed_pixels(width, height, black, None);
        second.delay = 50;
        encoder.write_frame(&second).unwrap();
    }
    out
}

/// A lossless WebP of the quadrants, without metadata.
pub fn webp(width: u32, height: u32) -> Vec<u8> {
    encode_webp(width, height, None)
}

/// A lossless WebP of the quadrants with an EXIF chunk (orientation 1) holding the camera and
/// GPS position of [`EXIF_SECRETS`].
pub fn webp_with_exif(width: u32, height: u32) -> Vec<u8> {
    encode_webp(width, height, Some(exif_tiff(1)))
}

fn encode_webp(width: u32, height: u32, exif: Option<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = image_webp::WebPEncoder::new(&mut out);
    if let Some(exif) = exif {
        encoder.set_exif_metadata(exif);
    }
    encoder
        .encode(
            &quadrants_rgb(width, height),
            width,
            height,
            image_webp::ColorType::Rgb8,
        )
        .unwrap();
    out
}

/// A GIF of a few dozen bytes whose logical screen is 65535 × 65535 pixels (over 4 billion),
/// holding one 1 × 1 frame.
pub fn gif_bomb() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = gif::Encoder::new(&mut out, 65535, 65535, &gif_palette()).unwrap();
        let frame = gif::Frame::from_indexed_pixels(1, 1, vec![0u8], None);
        encoder.write_frame(&frame).unwrap();
    }
    out
}

/// A JPEG header whose SOF declares 65500 × 65500 pixels, then a scan of a few bytes.
pub fn jpeg_bomb() -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    let mut segment = |marker: u8, data: &[u8]| {
        out.extend([0xFF, marker]);
        out.extend(u16::try_from(data.len() + 2).unwrap().to_be_bytes());
        out.extend(data);
    };
    segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
    segment(0xDB, &[[0u8].as_slice(), &[1u8; 64]].concat());
    let side = 65500u16.to_be_bytes();
    segment(
        0xC0,
        &[8, side[0], side[1], side[0], side[1], 1, 1, 0x11, 0],
    );
    // One DC and one AC table, each with a single 1-bit code.
    let mut dht = vec![0x00, 1];
    dht.extend([0u8; 15]);
    dht.push(0);
    dht.extend([0x10, 1]);
    dht.extend([0u8; 15]);
    dht.push(0);
    segment(0xC4, &dht);
    segment(0xDA, &[1, 1, 0x00, 0, 63, 0]);
    out.extend([0x00, 0x00, 0x00, 0x00, 0xFF, 0xD9]);
    out
}

/// An AVIF as far as its header goes: the `ftyp` box, a `meta` box whose only property is the
/// image's extent (`width` × `height`), and a few bytes of `mdat` that hold no image.
pub fn avif_header_only(width: u32, height: u32) -> Vec<u8> {
    let boxed = |kind: &[u8; 4], body: &[u8]| {
        let mut out = u32::try_from(body.len() + 8)
            .unwrap()
            .to_be_bytes()
            .to_vec();
        out.extend(kind);
        out.extend(body);
        out
    };
    let ispe = boxed(
        b"ispe",
        &[[0u8; 4], width.to_be_bytes(), height.to_be_bytes()].concat(),
    );
    let ipco = boxed(b"ipco", &ispe);
    let iprp = boxed(b"iprp", &ipco);
    let meta = boxed(b"meta", &[[0u8; 4].as_slice(), &iprp].concat());
    [
        boxed(b"ftyp", b"avif\0\0\0\0avifmif1miaf"),
        meta,
        boxed(b"mdat", &[0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0]),
    ]
    .concat()
}

/// The first half of `image`: its header intact, its pixel data cut short.
pub fn truncated(image: &[u8]) -> Vec<u8> {
    image[..image.len() / 2].to_vec()
}
