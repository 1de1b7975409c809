//! WebP: the RIFF size comes first, before anything can be known about what follows, and the
//! output streams, so every chunk keeps its size and metadata is blanked in place.
//!
//! - `XMP ` becomes a [`NEUTRAL`] chunk whose payload is zeros.
//! - `EXIF` with an orientation other than 1 stays `EXIF`, holding a minimal TIFF with only that
//!   orientation followed by zeros (a valid TIFF with trailing padding); any other `EXIF` becomes
//!   a [`NEUTRAL`] chunk of zeros.
//! - `VP8X` loses its XMP flag. Its EXIF flag is left as it was: `VP8X` comes before the `EXIF`
//!   chunk, so whether an orientation survives is unknown when the flag is written. libwebp's
//!   demuxer (used by browsers and Pillow) only returns an `EXIF` chunk when the flag is set, so
//!   clearing it would lose a kept orientation; a set flag with no `EXIF` chunk is harmless, as
//!   readers look the chunk up and find none.
//!
//! Bytes after the RIFF size are not part of the image and are dropped.

use super::{StripError, fill, take, tiff, zeros};

/// The FourCC metadata chunks are renamed to. `JUNK` is RIFF's conventional filler chunk (AVI
/// and WAV use it for padding), it is not a WebP chunk, and the WebP container specification
/// (RFC 9649) tells readers to ignore unknown chunks, which may sit at the end of the file where
/// `EXIF` and `XMP ` live.
const NEUTRAL: &[u8; 4] = b"JUNK";
const XMP_FLAG: u8 = 0x04;
/// The payload length of a `VP8X` chunk.
const VP8X_LEN: u32 = 10;
/// How much of an `EXIF` chunk is read for its orientation; IFD0 sits at its start.
const EXIF_LIMIT: u32 = 64 * 1024;
/// The header some writers put before the TIFF, as in JPEG's APP1.
const EXIF_HEADER: &[u8; 6] = b"Exif\0\0";
/// A chunk header: FourCC and payload length.
const HEADER_LEN: u64 = 8;

/// Streams a WebP, blanking its metadata chunks in place.
#[derive(Debug)]
pub(super) struct WebpStripper {
    state: State,
    /// RIFF payload bytes not yet reached by a chunk header.
    riff_left: u64,
    /// The start of the `EXIF` chunk being read, at most [`EXIF_LIMIT`] bytes.
    exif: Vec<u8>,
    seen_chunk: bool,
    orientation_kept: bool,
}

#[derive(Debug)]
enum State {
    Riff {
        buf: [u8; 12],
        have: usize,
    },
    Header {
        buf: [u8; 8],
        have: usize,
    },
    /// A chunk's payload and padding byte.
    Body {
        remaining: u64,
        body: Body,
    },
    /// After the RIFF size.
    Done,
}

#[derive(Debug, Clone, Copy)]
enum Body {
    Copy,
    Zero,
    /// `VP8X`: the first payload byte holds the flags.
    Flags,
    /// `EXIF` of this payload length, its first `target` bytes held back until read.
    Exif {
        size: u32,
        target: usize,
    },
}

impl WebpStripper {
    pub(super) fn new() -> Self {
        Self {
            state: State::Riff {
                buf: [0; 12],
                have: 0,
            },
            riff_left: 0,
            exif: Vec::new(),
            seen_chunk: false,
            orientation_kept: false,
        }
    }

    pub(super) fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), StripError> {
        loop {
            match &mut self.state {
                State::Body {
                    body: Body::Exif { size, target },
                    ..
                } if self.exif.len() >= *target => {
                    let (size, target) = (*size, *target);
                    self.write_exif(size, target, out);
                    if let State::Body { body, .. } = &mut self.state {
                        *body = Body::Zero;
                    }
                }
                State::Body { remaining: 0, .. } => {
                    self.state = if self.riff_left == 0 {
                        State::Done
                    } else {
                        State::Header {
                            buf: [0; 8],
                            have: 0,
                        }
                    };
                }
                _ if input.is_empty() => return Ok(()),
                State::Riff { buf, have } => {
                    if fill(buf, have, &mut input) {
                        let header = *buf;
                        self.start_riff(header, out)?;
                    }
                }
                State::Header { buf, have } => {
                    if fill(buf, have, &mut input) {
                        let header = *buf;
                        self.start_chunk(header, out)?;
                    }
                }
                State::Body { remaining, body } => match body {
                    Body::Copy => out.extend_from_slice(take(&mut input, remaining)),
                    Body::Zero => zeros(out, take(&mut input, remaining).len()),
                    Body::Flags => {
                        let mut one = 1;
                        let flags = take(&mut input, &mut one);
                        *remaining = remaining.saturating_sub(1);
                        out.extend(flags.iter().map(|f| f & !XMP_FLAG));
                        *body = Body::Copy;
                    }
                    Body::Exif { target, .. } => {
                        let mut want = target.saturating_sub(self.exif.len()) as u64;
                        let head = take(&mut input, &mut want);
                        *remaining = remaining.saturating_sub(head.len() as u64);
                        self.exif.extend_from_slice(head);
                    }
                },
                State::Done => return Ok(()),
            }
        }
    }

    pub(super) fn finish(self, _out: &mut Vec<u8>) -> Result<(), StripError> {
        match self.state {
            State::Done => Ok(()),
            State::Riff { .. } => Err(StripError::Malformed("WebP ends inside its RIFF header")),
            State::Header { .. } | State::Body { .. } => {
                Err(StripError::Malformed("WebP ends before its RIFF size"))
            }
        }
    }

    fn start_riff(&mut self, header: [u8; 12], out: &mut Vec<u8>) -> Result<(), StripError> {
        let [r0, r1, r2, r3, s0, s1, s2, s3, w0, w1, w2, w3] = header;
        if &[r0, r1, r2, r3] != b"RIFF" || &[w0, w1, w2, w3] != b"WEBP" {
            return Err(StripError::Malformed(
                "WebP does not start with RIFF....WEBP",
            ));
        }
        let size = u32::from_le_bytes([s0, s1, s2, s3]);
        // The RIFF size counts the "WEBP" form type, then at least one chunk.
        self.riff_left = u64::from(size).saturating_sub(4);
        if self.riff_left < HEADER_LEN {
            return Err(StripError::Malformed("WebP has no chunks"));
        }
        out.extend_from_slice(&header);
        self.state = State::Header {
            buf: [0; 8],
            have: 0,
        };
        Ok(())
    }

    fn start_chunk(&mut self, header: [u8; 8], out: &mut Vec<u8>) -> Result<(), StripError> {
        let [f0, f1, f2, f3, s0, s1, s2, s3] = header;
        let fourcc = [f0, f1, f2, f3];
        let size = u32::from_le_bytes([s0, s1, s2, s3]);
        let padded = u64::from(size) + u64::from(size & 1);
        self.riff_left = self
            .riff_left
            .checked_sub(HEADER_LEN + padded)
            .ok_or(StripError::Malformed("WebP chunk runs past the RIFF size"))?;
        if !self.seen_chunk && !matches!(&fourcc, b"VP8 " | b"VP8L" | b"VP8X") {
            return Err(StripError::Malformed(
                "WebP does not start with an image chunk",
            ));
        }
        self.seen_chunk = true;
        let body = match &fourcc {
            b"VP8X" if size < VP8X_LEN => {
                return Err(StripError::Malformed("WebP VP8X chunk too short"));
            }
            b"VP8X" => {
                out.extend_from_slice(&header);
                Body::Flags
            }
            b"XMP " => {
                out.extend_from_slice(NEUTRAL);
                out.extend_from_slice(&size.to_le_bytes());
                Body::Zero
            }
            b"EXIF" => {
                let target = usize::try_from(size.min(EXIF_LIMIT)).unwrap_or(0);
                self.exif.clear();
                self.exif.reserve(target);
                Body::Exif { size, target }
            }
            _ => {
                out.extend_from_slice(&header);
                Body::Copy
            }
        };
        self.state = State::Body {
            remaining: padded,
            body,
        };
        Ok(())
    }

    /// Writes the header and the first `target` payload bytes of an `EXIF` chunk of `size`.
    fn write_exif(&mut self, size: u32, target: usize, out: &mut Vec<u8>) {
        let tiff = self.exif.strip_prefix(EXIF_HEADER).unwrap_or(&self.exif);
        let orientation = tiff::orientation(tiff).filter(|&o| o != 1);
        match orientation {
            Some(orientation) if !self.orientation_kept && target >= tiff::MINIMAL_LEN => {
                out.extend_from_slice(b"EXIF");
                out.extend_from_slice(&size.to_le_bytes());
                out.extend_from_slice(&tiff::minimal(orientation));
                zeros(out, target - tiff::MINIMAL_LEN);
                self.orientation_kept = true;
            }
            _ => {
                out.extend_from_slice(NEUTRAL);
                out.extend_from_slice(&size.to_le_bytes());
                zeros(out, target);
            }
        }
        self.exif.clear();
    }
}
