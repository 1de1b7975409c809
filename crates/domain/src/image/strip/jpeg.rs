//! JPEG: the marker segments before the first SOS are filtered; from SOS on every byte passes.
//!
//! Dropped: APP1 (Exif, XMP, extended XMP), APP13 (Photoshop/IPTC) and COM. Everything else
//! (APP0 JFIF, APP2 ICC, APP14 Adobe, tables, frame headers) is copied as it is. Fill bytes
//! before a marker are dropped, which changes no decoded sample.

use super::{StripError, fill, take, tiff};

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const APP1: u8 = 0xE1;
const APP13: u8 = 0xED;
const COM: u8 = 0xFE;
const TEM: u8 = 0x01;
const EXIF_HEADER: &[u8; 6] = b"Exif\0\0";

/// Streams a JPEG, dropping its metadata segments.
#[derive(Debug)]
pub(super) struct JpegStripper {
    state: State,
    /// The APP1 segment being read, at most 65533 bytes (a segment length is a `u16`).
    segment: Vec<u8>,
    orientation_written: bool,
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
    /// Entropy-coded data and whatever follows; `ended` once an EOI marker went past.
    Scan {
        prev_ff: bool,
        ended: bool,
    },
}

#[derive(Debug, Clone, Copy)]
enum Body {
    Copy,
    Skip,
    Capture,
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
                        Body::Capture => self.segment.extend_from_slice(head),
                    }
                }
                State::Scan { prev_ff, ended } => {
                    if !*ended {
                        for &byte in input {
                            // Inside entropy-coded data 0xFF is always followed by 0x00 or RSTn,
                            // so FF D9 is a real EOI.
                            if *prev_ff && byte == EOI {
                                *ended = true;
                                break;
                            }
                            *prev_ff = byte == 0xFF;
                        }
                    }
                    out.extend_from_slice(input);
                    input = &[];
                }
            }
        }
    }

    pub(super) fn finish(self, _out: &mut Vec<u8>) -> Result<(), StripError> {
        match self.state {
            State::Scan { ended: true, .. } => Ok(()),
            State::Scan { ended: false, .. } => {
                Err(StripError::Malformed("JPEG ends before its EOI marker"))
            }
            State::Soi { .. } => Err(StripError::Malformed("JPEG ends before SOI")),
            State::Marker { .. } | State::Length { .. } | State::Body { .. } => {
                Err(StripError::Malformed("JPEG ends before its first scan"))
            }
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
            APP13 | COM => Body::Skip,
            _ => Body::Copy,
        };
        match body {
            Body::Copy => {
                out.extend_from_slice(&[0xFF, marker]);
                out.extend_from_slice(&length);
            }
            Body::Capture => {
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
        if let Body::Capture = body {
            let orientation = self
                .segment
                .strip_prefix(EXIF_HEADER)
                .and_then(tiff::orientation)
                .filter(|&o| o != 1);
            if let Some(orientation) = orientation
                && !self.orientation_written
            {
                write_orientation_app1(orientation, out);
                self.orientation_written = true;
            }
            self.segment.clear();
        }
        self.state = if marker == SOS {
            State::Scan {
                prev_ff: false,
                ended: false,
            }
        } else {
            State::Marker { seen_ff: false }
        };
    }
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
