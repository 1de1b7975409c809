//! JPEG: every marker segment is filtered, before the first scan and between scans; the
//! entropy-coded data passes as it is, and nothing after EOI is kept.
//!
//! Dropped: APP1 (Exif, XMP, extended XMP), APP2 `MPF` (the index of further images appended
//! after EOI, each with its own Exif and GPS: they are dropped with everything after EOI),
//! APP13 (Photoshop/IPTC) and COM. Everything else (APP0 JFIF, APP2 ICC, APP14 Adobe, tables,
//! frame and scan headers) is copied as it is. Fill bytes before a marker are dropped, which
//! changes no decoded sample.

use super::{StripError, fill, take, tiff};

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const APP1: u8 = 0xE1;
const APP2: u8 = 0xE2;
const APP13: u8 = 0xED;
const COM: u8 = 0xFE;
const TEM: u8 = 0x01;
const EXIF_HEADER: &[u8; 6] = b"Exif\0\0";
const MPF_HEADER: &[u8; 4] = b"MPF\0";

/// Streams a JPEG, dropping its metadata segments.
#[derive(Debug)]
pub(super) struct JpegStripper {
    state: State,
    /// The APP1 or APP2 segment being read, at most 65533 bytes (a segment length is a `u16`).
    segment: Vec<u8>,
    orientation_written: bool,
    /// A scan went past: the orientation is decided, an EOI may come.
    scanned: bool,
}

#[derive(Debug)]
enum State {
    Soi {
        buf: [u8; 2],
        have: usize,
    },
    Marker {
        seen_ff: bool,
    },
    Length {
        marker: u8,
        buf: [u8; 2],
        have: usize,
    },
    Body {
        marker: u8,
        remaining: u64,
        body: Body,
    },
    /// Entropy-coded data; `prev_ff` while a 0xFF was read and not yet written (its next byte
    /// says whether it is data or a marker).
    Scan {
        prev_ff: bool,
    },
    /// EOI went past: whatever follows is dropped.
    Done,
}

#[derive(Debug, Clone, Copy)]
enum Body {
    Copy,
    Skip,
    /// An APP1 read whole: its orientation is kept, the rest dropped.
    Capture,
    /// An APP2 read whole: kept unless it is the `MPF` index.
    Peek,
}

impl JpegStripper {
    pub(super) fn new() -> Self {
        Self {
            state: State::Soi {
                buf: [0; 2],
                have: 0,
            },
            segment: Vec::new(),
            orientation_written: false,
            scanned: false,
        }
    }

    pub(super) fn push(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), StripError> {
        loop {
            match &mut self.state {
                State::Body {
                    marker,
                    remaining: 0,
                    body,
                } => {
                    let (marker, body) = (*marker, *body);
                    self.end_segment(marker, body, out);
                }
                _ if input.is_empty() => return Ok(()),
                State::Soi { buf, have } => {
                    if fill(buf, have, &mut input) {
                        if *buf != [0xFF, SOI] {
                            return Err(StripError::Malformed("JPEG does not start with SOI"));
                        }
                        out.extend_from_slice(buf);
                        self.state = State::Marker { seen_ff: false };
                    }
                }
                State::Marker { seen_ff } => {
                    let Some((&byte, rest)) = input.split_first() else {
                        return Ok(());
                    };
                    input = rest;
                    match (*seen_ff, byte) {
                        (false, 0xFF) => *seen_ff = true,
                        (false, _) => {
                            return Err(StripError::Malformed(
                                "JPEG segment not followed by a marker",
                            ));
                        }
                        (true, 0xFF) => {}
                        (true, marker) => self.start_marker(marker, out)?,
                    }
                }
                State::Length { marker, buf, have } => {
                    if fill(buf, have, &mut input) {
                        let (marker, bytes) = (*marker, *buf);
                        self.start_body(marker, bytes, out)?;
                    }
                }
                State::Body {
                    remaining, body, ..
                } => {
                    let head = take(&mut input, remaining);
                    match body {
                        Body::Copy => out.extend_from_slice(head),
                        Body::Skip => {}
                        Body::Capture | Body::Peek => self.segment.extend_from_slice(head),
                    }
                }
                State::Scan { prev_ff } => {
                    let (read, marker) = scan(input, prev_ff, out);
                    input = &input[read..];
                    match marker {
                        Some(EOI) => {
                            out.extend_from_slice(&[0xFF, EOI]);
                            self.state = State::Done;
                        }
                        Some(marker) => self.start_marker(marker, out)?,
                        None => {}
                    }
                }
                State::Done => return Ok(()),
            }
        }
    }

    pub(super) fn finish(self, _out: &mut Vec<u8>) -> Result<(), StripError> {
        match self.state {
            State::Done => Ok(()),
            State::Soi { .. } => Err(StripError::Malformed("JPEG ends before SOI")),
            State::Scan { .. }
            | State::Marker { .. }
            | State::Length { .. }
            | State::Body { .. }
                if self.scanned =>
            {
                Err(StripError::Malformed("JPEG ends before its EOI marker"))
            }
            State::Scan { .. }
            | State::Marker { .. }
            | State::Length { .. }
            | State::Body { .. } => Err(StripError::Malformed("JPEG ends before its first scan")),
        }
    }

    fn start_marker(&mut self, marker: u8, out: &mut Vec<u8>) -> Result<(), StripError> {
        match marker {
            0x00 => Err(StripError::Malformed(
                "JPEG has a stuffed byte outside a scan",
            )),
            SOI => Err(StripError::Malformed("JPEG has a second SOI")),
            EOI => Err(StripError::Malformed("JPEG ends before any scan")),
            TEM | 0xD0..=0xD7 => {
                out.extend_from_slice(&[0xFF, marker]);
                self.state = State::Marker { seen_ff: false };
                Ok(())
            }
            _ => {
                self.state = State::Length {
                    marker,
                    buf: [0; 2],
                    have: 0,
                };
                Ok(())
            }
        }
    }

    fn start_body(
        &mut self,
        marker: u8,
        length: [u8; 2],
        out: &mut Vec<u8>,
    ) -> Result<(), StripError> {
        let Some(payload) = u16::from_be_bytes(length).checked_sub(2) else {
            return Err(StripError::Malformed("JPEG segment length below 2"));
        };
        let body = match marker {
            APP1 => Body::Capture,
            APP2 => Body::Peek,
            APP13 | COM => Body::Skip,
            _ => Body::Copy,
        };
        match body {
            Body::Copy => {
                out.extend_from_slice(&[0xFF, marker]);
                out.extend_from_slice(&length);
            }
            Body::Capture | Body::Peek => {
                self.segment.clear();
                self.segment.reserve(usize::from(payload));
            }
            Body::Skip => {}
        }
        self.state = State::Body {
            marker,
            remaining: u64::from(payload),
            body,
        };
        Ok(())
    }

    fn end_segment(&mut self, marker: u8, body: Body, out: &mut Vec<u8>) {
        match body {
            Body::Capture => {
                let orientation = self
                    .segment
                    .strip_prefix(EXIF_HEADER)
                    .and_then(tiff::orientation)
                    .filter(|&o| o != 1);
                // Only the Exif before the image decides its orientation.
                if let Some(orientation) = orientation
                    && !self.orientation_written
                    && !self.scanned
                {
                    write_orientation_app1(orientation, out);
                    self.orientation_written = true;
                }
                self.segment.clear();
            }
            Body::Peek => {
                if !self.segment.starts_with(MPF_HEADER) {
                    // The segment fits its u16 length, which it was read by.
                    let length = u16::try_from(self.segment.len() + 2).unwrap_or(u16::MAX);
                    out.extend_from_slice(&[0xFF, marker]);
                    out.extend_from_slice(&length.to_be_bytes());
                    out.extend_from_slice(&self.segment);
                }
                self.segment.clear();
            }
            Body::Copy | Body::Skip => {}
        }
        self.state = if marker == SOS {
            self.scanned = true;
            State::Scan { prev_ff: false }
        } else {
            State::Marker { seen_ff: false }
        };
    }
}

/// Copies the entropy-coded data at the start of `input` to `out`, up to the first marker (a
/// 0xFF not followed by 0x00, RSTn or fill); returns how many bytes were read and that marker.
/// A 0xFF at the end of `input` is held in `prev_ff` until the next byte tells what it is.
fn scan(input: &[u8], prev_ff: &mut bool, out: &mut Vec<u8>) -> (usize, Option<u8>) {
    // `input[run..]` is what is read and not yet written.
    let mut run = 0;
    for (i, &byte) in input.iter().enumerate() {
        if *prev_ff {
            match byte {
                // Fill bytes before a marker: the pending 0xFF stands for them all.
                0xFF => run = i + 1,
                // Data: the pending 0xFF is written, this byte goes with the run.
                0x00 | 0xD0..=0xD7 => {
                    out.push(0xFF);
                    *prev_ff = false;
                    run = i;
                }
                marker => {
                    *prev_ff = false;
                    return (i + 1, Some(marker));
                }
            }
        } else if byte == 0xFF {
            out.extend_from_slice(&input[run..i]);
            *prev_ff = true;
            run = i + 1;
        }
    }
    out.extend_from_slice(&input[run..]);
    (input.len(), None)
}

/// Writes an APP1 segment holding an Exif block with nothing but the orientation.
fn write_orientation_app1(orientation: u8, out: &mut Vec<u8>) {
    let tiff = tiff::minimal(orientation);
    // Marker length counts itself (2 bytes), the Exif header and the TIFF: 34, well below u16::MAX.
    let length = (2 + EXIF_HEADER.len() + tiff.len()) as u16;
    out.extend_from_slice(&[0xFF, APP1]);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(EXIF_HEADER);
    out.extend_from_slice(&tiff);
}
