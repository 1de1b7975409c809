//! Reading what a server answered: pixels of a JPEG, PNG or WebP, and the metadata containers
//! a file still carries.

use std::io::Cursor;

use super::{Colour, format_of};

/// A decoded image: its size and its pixels as RGBA, row by row.
#[derive(Clone, Debug)]
pub struct Decoded {
    pub width: u32,
    pub height: u32,
    pub rgba: Vec<u8>,
}

impl Decoded {
    /// The RGBA pixel at `(x, y)`.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 4] {
        let at = (y as usize * self.width as usize + x as usize) * 4;
        [
            self.rgba[at],
            self.rgba[at + 1],
            self.rgba[at + 2],
            self.rgba[at + 3],
        ]
    }

    /// The pixel at the centre of each quadrant: top-left, top-right, bottom-left, bottom-right.
    pub fn quadrant_pixels(&self) -> [[u8; 4]; 4] {
        let (left, right) = (self.width / 4, self.width * 3 / 4);
        let (top, bottom) = (self.height / 4, self.height * 3 / 4);
        [
            self.pixel(left, top),
            self.pixel(right, top),
            self.pixel(left, bottom),
            self.pixel(right, bottom),
        ]
    }

    /// The colour at the centre of each quadrant (`None` where it is none of [`Colour`]).
    pub fn quadrants(&self) -> [Option<Colour>; 4] {
        self.quadrant_pixels()
            .map(|[r, g, b, _]| Colour::of([r, g, b]))
    }
}

/// Decodes a JPEG, PNG or WebP (by its magic bytes) to RGBA; panics on anything else, or on a
/// file that does not decode.
pub fn decode(bytes: &[u8]) -> Decoded {
    match format_of(bytes) {
        Some("jpeg") => decode_jpeg(bytes),
        Some("png") => decode_png(bytes),
        Some("webp") => decode_webp(bytes),
        other => panic!(
            "not a JPEG, PNG or WebP ({other:?}): {:?}",
            &bytes[..bytes.len().min(16)]
        ),
    }
}

fn decode_jpeg(bytes: &[u8]) -> Decoded {
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    let pixels = decoder
        .decode()
        .unwrap_or_else(|e| panic!("the JPEG does not decode: {e}"));
    let info = decoder.info().unwrap();
    let rgba = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => pixels.iter().flat_map(|&l| [l, l, l, 255]).collect(),
        jpeg_decoder::PixelFormat::L16 => pixels
            .chunks_exact(2)
            .flat_map(|l| [l[0], l[0], l[0], 255])
            .collect(),
        jpeg_decoder::PixelFormat::RGB24 => pixels
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        jpeg_decoder::PixelFormat::CMYK32 => pixels
            .chunks_exact(4)
            .flat_map(|p| {
                let k = u32::from(p[3]);
                let channel = |c: u8| (u32::from(c) * k / 255) as u8;
                [channel(p[0]), channel(p[1]), channel(p[2]), 255]
            })
            .collect(),
    };
    Decoded {
        width: u32::from(info.width),
        height: u32::from(info.height),
        rgba,
    }
}

fn decode_png(bytes: &[u8]) -> Decoded {
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder
        .read_info()
        .unwrap_or_else(|e| panic!("the PNG does not decode: {e}"));
    let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader
        .next_frame(&mut buffer)
        .unwrap_or_else(|e| panic!("the PNG does not decode: {e}"));
    buffer.truncate(frame.buffer_size());
    let rgba = match frame.color_type {
        png::ColorType::Grayscale => buffer.iter().flat_map(|&l| [l, l, l, 255]).collect(),
        png::ColorType::GrayscaleAlpha => buffer
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0], p[1]])
            .collect(),
        png::ColorType::Rgb => buffer
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        png::ColorType::Rgba => buffer,
        png::ColorType::Indexed => panic!("an indexed PNG was not expanded"),
    };
    Decoded {
        width: frame.width,
        height: frame.height,
        rgba,
    }
}

fn decode_webp(bytes: &[u8]) -> Decoded {
    let mut decoder = image_webp::WebPDecoder::new(Cursor::new(bytes))
        .unwrap_or_else(|e| panic!("the WebP does not decode: {e}"));
    let (width, height) = decoder.dimensions();
    let mut buffer = vec![0; decoder.output_buffer_size().unwrap()];
    decoder
        .read_image(&mut buffer)
        .unwrap_or_else(|e| panic!("the WebP does not decode: {e}"));
    let rgba = if decoder.has_alpha() {
        buffer
    } else {
        buffer
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect()
    };
    Decoded {
        width,
        height,
        rgba,
    }
}

/// The chunk types of a PNG, in order.
pub fn png_chunks(bytes: &[u8]) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut at = 8;
    while at + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        chunks.push(String::from_utf8_lossy(&bytes[at + 4..at + 8]).into_owned());
        at += 12 + len;
    }
    chunks
}

/// The containers of metadata `bytes` carries, by name: a JPEG's APPn segments but JFIF's APP0
/// and Adobe's APP14 (which say how to read the pixels) and its COM segments; a PNG's text, EXIF
/// and ICC chunks; a WebP's EXIF, XMP and ICC chunks. Empty for a file that carries none.
pub fn metadata_containers(bytes: &[u8]) -> Vec<String> {
    match format_of(bytes) {
        Some("jpeg") => jpeg_segments(bytes)
            .into_iter()
            .filter(|m| (0xE1..=0xED).contains(m) || *m == 0xEF || *m == 0xFE)
            .map(|m| format!("JPEG segment FF{m:02X}"))
            .collect(),
        Some("png") => png_chunks(bytes)
            .into_iter()
            .filter(|c| ["tEXt", "zTXt", "iTXt", "eXIf", "iCCP"].contains(&c.as_str()))
            .collect(),
        Some("webp") => webp_chunks(bytes)
            .into_iter()
            .filter(|c| ["EXIF", "XMP ", "ICCP"].contains(&c.as_str()))
            .collect(),
        other => panic!("no metadata reader for {other:?}"),
    }
}

/// The markers of a JPEG's segments before its first scan.
fn jpeg_segments(bytes: &[u8]) -> Vec<u8> {
    let mut markers = Vec::new();
    let mut at = 2;
    while at + 4 <= bytes.len() && bytes[at] == 0xFF {
        let marker = bytes[at + 1];
        markers.push(marker);
        if marker == 0xDA {
            break;
        }
        let len = u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]);
        at += 2 + usize::from(len);
    }
    markers
}

/// The chunk names of a WebP (RIFF) file.
fn webp_chunks(bytes: &[u8]) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        chunks.push(String::from_utf8_lossy(&bytes[at..at + 4]).into_owned());
        at += 8 + len + len % 2;
    }
    chunks
}
