//! WebP: the first chunk of the RIFF container (VP8, VP8L or VP8X). An extended file's chunks are
//! then walked to the image data, for an `EXIF` chunk stored before it and to check that the
//! bitstream's size is the canvas's, as decoders do.

use super::{ImageFormat, Step, exif::exif_orientation, found, read};

/// `RIFF`, the RIFF size and `WEBP`.
const RIFF_HEAD: usize = 12;
/// A chunk's id and size.
const CHUNK_HEAD: usize = 8;
/// A lossy frame header: frame tag, start code, width, height.
const VP8_HEAD: u32 = 10;
/// A lossless header: signature byte, then the packed size, alpha and version bits.
const VP8L_HEAD: u32 = 5;
const VP8X_LEN: u32 = 10;
const ANIMATION: u8 = 0x02;
const EXIF: u8 = 0x08;
/// How much of an `EXIF` chunk is read: IFD0, where the orientation sits, comes first.
const EXIF_SCAN: u32 = 64 * 1024;
/// Decoders refuse a canvas of 2^32 pixels or more.
const MAX_AREA: u64 = 1 << 32;

#[derive(Debug)]
pub(super) struct WebP {
    state: State,
    /// Set by a VP8X chunk: the size every later bitstream must match.
    canvas: Option<Canvas>,
    orientation: Option<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Canvas {
    width: u32,
    height: u32,
    animated: bool,
    exif: bool,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Riff,
    /// At a chunk header.
    Chunk,
    /// At the data of a VP8 chunk.
    Lossy,
    /// At the data of a VP8L chunk.
    Lossless,
    /// At the data of the VP8X chunk.
    Extended,
    /// At the data of an `EXIF` chunk of this size.
    Exif(u32),
}

/// A chunk's size on disk: its data is padded to an even length.
fn padded(size: u32) -> u64 {
    u64::from(size) + u64::from(size & 1)
}

impl WebP {
    pub(super) fn new() -> Self {
        Self {
            state: State::Riff,
            canvas: None,
            orientation: None,
        }
    }

    pub(super) fn want(&self) -> usize {
        match self.state {
            State::Riff => RIFF_HEAD,
            State::Chunk => CHUNK_HEAD,
            State::Lossy => VP8_HEAD as usize,
            State::Lossless => VP8L_HEAD as usize,
            State::Extended => VP8X_LEN as usize,
            State::Exif(size) => size.clamp(1, EXIF_SCAN) as usize,
        }
    }

    pub(super) fn step(&mut self, window: &[u8]) -> Step {
        match self.state {
            State::Riff => {
                let riff_size = read::u32_le(window, 4).unwrap_or(0);
                if window.get(8..) != Some(b"WEBP".as_slice()) || riff_size < 12 {
                    return Step::NotImage;
                }
                self.state = State::Chunk;
                Step::Advance(RIFF_HEAD as u64)
            }
            State::Chunk => self.chunk(window),
            State::Lossy => self.lossy(window),
            State::Lossless => self.lossless(window),
            State::Extended => self.extended(window),
            State::Exif(size) => {
                self.orientation = exif_orientation(window);
                self.state = State::Chunk;
                Step::Advance(padded(size))
            }
        }
    }

    fn chunk(&mut self, window: &[u8]) -> Step {
        let (Some(id), Some(size)) = (read::tag(window, 0), read::u32_le(window, 4)) else {
            return Step::NotImage;
        };
        let (state, least) = match (&id, self.canvas) {
            (b"VP8 ", _) => (State::Lossy, VP8_HEAD),
            (b"VP8L", _) => (State::Lossless, VP8L_HEAD),
            (b"VP8X", None) => {
                if size != VP8X_LEN {
                    return Step::NotImage;
                }
                (State::Extended, VP8X_LEN)
            }
            (_, None) => return Step::NotImage,
            (b"ANMF", Some(canvas)) => return self.found(canvas),
            (b"EXIF", Some(canvas)) if canvas.exif && self.orientation.is_none() && size > 0 => {
                (State::Exif(size), 1)
            }
            // ICCP, ANIM, ALPH, XMP and unknown chunks.
            (_, Some(_)) => return Step::Advance(CHUNK_HEAD as u64 + padded(size)),
        };
        if size < least {
            return Step::NotImage;
        }
        self.state = state;
        Step::Advance(CHUNK_HEAD as u64)
    }

    fn extended(&mut self, window: &[u8]) -> Step {
        let (Some(&flags), Some(width), Some(height)) = (
            window.first(),
            read::u24_le(window, 4),
            read::u24_le(window, 7),
        ) else {
            return Step::NotImage;
        };
        let (width, height) = (width + 1, height + 1);
        if u64::from(width) * u64::from(height) >= MAX_AREA {
            return Step::NotImage;
        }
        self.canvas = Some(Canvas {
            width,
            height,
            animated: flags & ANIMATION != 0,
            exif: flags & EXIF != 0,
        });
        self.state = State::Chunk;
        Step::Advance(u64::from(VP8X_LEN))
    }

    fn lossy(&self, window: &[u8]) -> Step {
        let (Some(&[tag, ..]), Some(start), Some(width), Some(height)) = (
            window.get(..3),
            window.get(3..6),
            read::u16_le(window, 6),
            read::u16_le(window, 8),
        ) else {
            return Step::NotImage;
        };
        // A key frame (bit 0 clear), a known profile (bits 1-3 at most 3), shown (bit 4).
        let key_frame = tag & 0x01 == 0;
        let profile = (tag >> 1) & 0x07;
        let shown = tag & 0x10 != 0;
        if !key_frame || profile > 3 || !shown || start != [0x9D, 0x01, 0x2A] {
            return Step::NotImage;
        }
        // The top two bits of each dimension are an upscaling hint, not part of the size.
        self.bitstream(u32::from(width & 0x3FFF), u32::from(height & 0x3FFF))
    }

    fn lossless(&self, window: &[u8]) -> Step {
        let (Some(0x2F), Some(bits)) = (window.first(), read::u32_le(window, 1)) else {
            return Step::NotImage;
        };
        if bits >> 29 != 0 {
            return Step::NotImage;
        }
        self.bitstream((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    }

    fn bitstream(&self, width: u32, height: u32) -> Step {
        match self.canvas {
            None => found(ImageFormat::WebP, width, height, None, false),
            Some(canvas) if (canvas.width, canvas.height) == (width, height) => self.found(canvas),
            Some(_) => Step::NotImage,
        }
    }

    fn found(&self, canvas: Canvas) -> Step {
        found(
            ImageFormat::WebP,
            canvas.width,
            canvas.height,
            self.orientation,
            canvas.animated,
        )
    }
}
