//! PNG: `eXIf`, `tEXt`, `zTXt`, `iTXt` and `tIME` chunks are dropped whole (no other CRC changes);
//! every other chunk streams through untouched. Bytes after `IEND` are not part of the image and
//! are dropped too.

use super::{StripError, crc::crc32, fill, take, tiff};

const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1A, b'\n'];
const EXIF: &[u8; 4] = b"eXIf";
const DROPPED: [&[u8; 4]; 4] = [b"tEXt", b"zTXt", b"iTXt", b"tIME"];
/// PNG chunk lengths are limited to 2^31 - 1.
const MAX_CHUNK_LEN: u32 = 0x7FFF_FFFF;
/// The largest `eXIf` chunk read for its orientation; a larger one is dropped without it.
const EXIF_LIMIT: u32 = 64 * 1024;
/// The length of a chunk's CRC.
const CRC_LEN: u64 = 4;

/// Streams a PNG, dropping its metadata chunks.
#[derive(Debug)]
pub(super) struct PngStripper {
    state: State,
    /// The `eXIf` chunk being read (data then CRC), at most [`EXIF_LIMIT`] + 4 bytes.
    exif: Vec<u8>,
    seen_chunk: bool,
    seen_idat: bool,
    orientation_written: bool,
}

#[derive(Debug)]
enum State {
    Signature {
        buf: [u8; 8],
        have: usize,
    },
    Header {
        buf: [u8; 8],
        have: usize,
    },
    /// A chunk's data and CRC.
    Body {
        remaining: u64,
        body: Body,
        iend: bool,
    },
    /// After `IEND`.
    Done,
}

#[derive(Debug, Clone, Copy)]
enum Body {
    Copy,
    Skip,
    Capture,
}

impl PngStripper {
    pub(super) fn new() -> Self {
        Self {
            state: State::Signature {
                buf: [0; 8],
                have: 0,
            },
            exif: Vec::new(),
            seen_chunk: false,
            seen_idat: false,
            orientation_written: false,
        }
    }

    pub(super) fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), StripError> {
        loop {
            match &mut self.state {
                State::Body {
                    remaining: 0,
                    body,
                    iend,
                } => {
                    let (body, iend) = (*body, *iend);
                    self.end_chunk(body, iend, out);
                }
                _ if input.is_empty() => return Ok(()),
                State::Signature { buf, have } => {
                    if fill(buf, have, &mut input) {
                        if *buf != SIGNATURE {
                            return Err(StripError::Malformed("PNG signature missing"));
                        }
                        out.extend_from_slice(buf);
                        self.state = State::Header {
                            buf: [0; 8],
                            have: 0,
                        };
                    }
                }
                State::Header { buf, have } => {
                    if fill(buf, have, &mut input) {
                        let header = *buf;
                        self.start_chunk(header, out)?;
                    }
                }
                State::Body {
                    remaining, body, ..
                } => {
                    let head = take(&mut input, remaining);
                    match body {
                        Body::Copy => out.extend_from_slice(head),
                        Body::Skip => {}
                        Body::Capture => self.exif.extend_from_slice(head),
                    }
                }
                State::Done => return Ok(()),
            }
        }
    }

    pub(super) fn finish(self, _out: &mut Vec<u8>) -> Result<(), StripError> {
        match self.state {
            State::Done => Ok(()),
            State::Signature { .. } => Err(StripError::Malformed("PNG ends inside its signature")),
            State::Header { .. } | State::Body { .. } => {
                Err(StripError::Malformed("PNG ends before IEND"))
            }
        }
    }

    fn start_chunk(&mut self, header: [u8; 8], out: &mut Vec<u8>) -> Result<(), StripError> {
        let [l0, l1, l2, l3, t0, t1, t2, t3] = header;
        let length = u32::from_be_bytes([l0, l1, l2, l3]);
        let kind = [t0, t1, t2, t3];
        if length > MAX_CHUNK_LEN {
            return Err(StripError::Malformed("PNG chunk length above 2^31 - 1"));
        }
        if !kind.iter().all(u8::is_ascii_alphabetic) {
            return Err(StripError::Malformed("PNG chunk type is not four letters"));
        }
        if !self.seen_chunk && &kind != b"IHDR" {
            return Err(StripError::Malformed("PNG does not start with IHDR"));
        }
        self.seen_chunk = true;
        if &kind == b"IDAT" {
            self.seen_idat = true;
        }
        let body = if &kind == EXIF {
            // An orientation must precede IDAT to count, and only one is kept.
            if !self.seen_idat && !self.orientation_written && length <= EXIF_LIMIT {
                self.exif.clear();
                Body::Capture
            } else {
                Body::Skip
            }
        } else if DROPPED.contains(&&kind) {
            Body::Skip
        } else {
            out.extend_from_slice(&header);
            Body::Copy
        };
        self.state = State::Body {
            remaining: u64::from(length) + CRC_LEN,
            body,
            iend: &kind == b"IEND",
        };
        Ok(())
    }

    fn end_chunk(&mut self, body: Body, iend: bool, out: &mut Vec<u8>) {
        if let Body::Capture = body {
            if let Some(orientation) = captured_orientation(&self.exif) {
                write_orientation_chunk(orientation, out);
                self.orientation_written = true;
            }
            self.exif.clear();
        }
        self.state = if iend {
            State::Done
        } else {
            State::Header {
                buf: [0; 8],
                have: 0,
            }
        };
    }
}

/// The orientation other than 1 in a captured `eXIf` chunk (data then CRC) whose CRC is right.
fn captured_orientation(chunk: &[u8]) -> Option<u8> {
    let split = chunk.len().checked_sub(4)?;
    let (data, crc) = chunk.split_at(split);
    if crc32(&[EXIF, data]).to_be_bytes() != crc {
        return None;
    }
    tiff::orientation(data).filter(|&o| o != 1)
}

/// Writes an `eXIf` chunk holding nothing but the orientation.
fn write_orientation_chunk(orientation: u8, out: &mut Vec<u8>) {
    let tiff = tiff::minimal(orientation);
    out.extend_from_slice(&(tiff::MINIMAL_LEN as u32).to_be_bytes());
    out.extend_from_slice(EXIF);
    out.extend_from_slice(&tiff);
    out.extend_from_slice(&crc32(&[EXIF, &tiff]).to_be_bytes());
}
