//! PNG: the IHDR chunk, which must come first, then the chunks before the first IDAT, read for an
//! `eXIf` orientation and an APNG `acTL`, and otherwise skipped by their length.

use super::{ImageFormat, Step, exif::exif_orientation, found, read};

const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1A\n";
/// A chunk's length and type; its CRC (4 more bytes) follows the data.
const CHUNK_HEAD: usize = 8;
const CRC: u64 = 4;
const IHDR_LEN: u32 = 13;
/// The largest value a PNG length or dimension may hold.
const PNG_MAX: u32 = 0x7FFF_FFFF;
/// How much of an `eXIf` chunk is read: IFD0, where the orientation sits, comes first.
const EXIF_SCAN: u32 = 64 * 1024;

#[derive(Debug)]
pub(super) struct Png {
    state: State,
    width: u32,
    height: u32,
    orientation: Option<u8>,
    animated: bool,
    exif_seen: bool,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Signature,
    /// At the first chunk, which must be IHDR.
    Header,
    /// At a chunk after IHDR.
    Chunk,
    /// At the data of an `eXIf` chunk this long.
    Exif(u32),
}

impl Png {
    pub(super) fn new() -> Self {
        Self {
            state: State::Signature,
            width: 0,
            height: 0,
            orientation: None,
            animated: false,
            exif_seen: false,
        }
    }

    pub(super) fn want(&self) -> usize {
        match self.state {
            State::Signature => SIGNATURE.len(),
            State::Header => CHUNK_HEAD + IHDR_LEN as usize,
            State::Chunk => CHUNK_HEAD,
            // At least one byte, so that an empty chunk still moves the cursor on.
            State::Exif(len) => len.clamp(1, EXIF_SCAN) as usize,
        }
    }

    pub(super) fn step(&mut self, window: &[u8]) -> Step {
        match self.state {
            State::Signature => {
                if window != SIGNATURE {
                    return Step::NotImage;
                }
                self.state = State::Header;
                Step::Advance(SIGNATURE.len() as u64)
            }
            State::Header => self.header(window),
            State::Chunk => self.chunk(window),
            State::Exif(len) => {
                self.orientation = exif_orientation(window);
                self.state = State::Chunk;
                Step::Advance(u64::from(len) + CRC)
            }
        }
    }

    /// IHDR gives the size, so a PNG whose ancillary chunks run past the limit is still measured.
    pub(super) fn at_limit(&self) -> Step {
        match self.state {
            State::Chunk | State::Exif(_) => self.found(),
            State::Signature | State::Header => Step::NotImage,
        }
    }

    fn found(&self) -> Step {
        found(
            ImageFormat::Png,
            self.width,
            self.height,
            self.orientation,
            self.animated,
        )
    }

    fn header(&mut self, window: &[u8]) -> Step {
        let (Some(IHDR_LEN), Some(b"IHDR"), Some(width), Some(height), Some(&[depth, color])) = (
            read::u32_be(window, 0),
            read::tag(window, 4).as_ref(),
            read::u32_be(window, 8),
            read::u32_be(window, 12),
            window.get(16..18),
        ) else {
            return Step::NotImage;
        };
        let valid_depth = match color {
            0 => matches!(depth, 1 | 2 | 4 | 8 | 16),
            3 => matches!(depth, 1 | 2 | 4 | 8),
            2 | 4 | 6 => matches!(depth, 8 | 16),
            _ => false,
        };
        if !valid_depth || width > PNG_MAX || height > PNG_MAX || width == 0 || height == 0 {
            return Step::NotImage;
        }
        self.width = width;
        self.height = height;
        self.state = State::Chunk;
        Step::Advance(CHUNK_HEAD as u64 + u64::from(IHDR_LEN) + CRC)
    }

    fn chunk(&mut self, window: &[u8]) -> Step {
        let (Some(len), Some(kind)) = (read::u32_be(window, 0), read::tag(window, 4)) else {
            return Step::NotImage;
        };
        if len > PNG_MAX || !kind.iter().all(u8::is_ascii_alphabetic) {
            return Step::NotImage;
        }
        let next = CHUNK_HEAD as u64 + u64::from(len) + CRC;
        match &kind {
            b"IDAT" => self.found(),
            // No image data before the end, or a second header: not a PNG a decoder reads.
            b"IEND" | b"IHDR" => Step::NotImage,
            b"acTL" => {
                self.animated = true;
                Step::Advance(next)
            }
            b"eXIf" if !self.exif_seen && len > 0 => {
                self.exif_seen = true;
                self.state = State::Exif(len);
                Step::Advance(CHUNK_HEAD as u64)
            }
            _ => Step::Advance(next),
        }
    }
}
