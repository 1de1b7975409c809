//! JPEG: markers walked from SOI to the frame header (SOFn), an Exif APP1 segment on the way read
//! for its orientation, every other segment skipped by its length without being held.

use super::{ImageFormat, Step, exif::exif_orientation, found, read};

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const APP1: u8 = 0xE1;
/// A segment's length field and the `Exif\0\0` that marks an APP1 segment as Exif.
const EXIF_HEAD: usize = 8;
/// The frame header up to its component count: length, precision, height, width, components.
const FRAME_HEAD: usize = 8;

#[derive(Debug)]
pub(super) struct Jpeg {
    state: State,
    orientation: Option<u8>,
    /// The first Exif segment is the one decoders read; later ones are skipped.
    exif_seen: bool,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// At the SOI marker.
    Start,
    /// At a marker, or at a fill byte before one.
    Marker,
    /// At the length field of a segment with this marker.
    Length(u8),
    /// At the length field of the frame header.
    Frame,
    /// At the length field of an APP1 segment this long, which may be Exif.
    ExifHead(u16),
    /// At the length field of an Exif APP1 segment this long.
    ExifBody(u16),
}

/// SOF0 to SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but not
/// the meaning.
fn is_frame(marker: u8) -> bool {
    matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)
}

impl Jpeg {
    pub(super) fn new() -> Self {
        Self {
            state: State::Start,
            orientation: None,
            exif_seen: false,
        }
    }

    pub(super) fn want(&self) -> usize {
        match self.state {
            State::Start | State::Marker | State::Length(_) => 2,
            State::Frame => FRAME_HEAD,
            State::ExifHead(_) => EXIF_HEAD,
            State::ExifBody(len) => usize::from(len),
        }
    }

    pub(super) fn step(&mut self, window: &[u8]) -> Step {
        match self.state {
            State::Start => {
                if window != [0xFF, SOI] {
                    return Step::NotImage;
                }
                self.state = State::Marker;
                Step::Advance(2)
            }
            State::Marker => self.marker(window),
            State::Length(marker) => self.segment(marker, window),
            State::Frame => self.frame(window),
            State::ExifHead(len) => {
                if window.get(2..) == Some(b"Exif\0\0".as_slice()) {
                    self.state = State::ExifBody(len);
                    Step::Advance(0)
                } else {
                    self.state = State::Marker;
                    Step::Advance(u64::from(len))
                }
            }
            State::ExifBody(len) => {
                self.exif_seen = true;
                self.orientation = window.get(2..).and_then(exif_orientation);
                self.state = State::Marker;
                Step::Advance(u64::from(len))
            }
        }
    }

    fn marker(&mut self, window: &[u8]) -> Step {
        let [0xFF, marker] = window else {
            return Step::NotImage;
        };
        match *marker {
            // A fill byte: the marker is the next byte that is not 0xFF.
            0xFF => Step::Advance(1),
            // TEM and RSTn stand alone, without a length.
            0x01 | 0xD0..=0xD7 => Step::Advance(2),
            // A stuffed zero, a second SOI, or the end of the image or start of the scan before
            // any frame header: not a JPEG a decoder would read.
            0x00 | SOI | EOI | SOS => Step::NotImage,
            marker => {
                self.state = State::Length(marker);
                Step::Advance(2)
            }
        }
    }

    fn segment(&mut self, marker: u8, window: &[u8]) -> Step {
        let Some(len) = read::u16_be(window, 0).filter(|&len| len >= 2) else {
            return Step::NotImage;
        };
        if is_frame(marker) {
            self.state = State::Frame;
            return Step::Advance(0);
        }
        if marker == APP1 && !self.exif_seen && usize::from(len) >= EXIF_HEAD {
            self.state = State::ExifHead(len);
            return Step::Advance(0);
        }
        self.state = State::Marker;
        Step::Advance(u64::from(len))
    }

    fn frame(&self, window: &[u8]) -> Step {
        let (Some(len), Some(height), Some(width), Some(&components)) = (
            read::u16_be(window, 0),
            read::u16_be(window, 3),
            read::u16_be(window, 5),
            window.get(7),
        ) else {
            return Step::NotImage;
        };
        // Three bytes per component after the fixed part, as decoders insist.
        if components == 0 || usize::from(len) != 8 + 3 * usize::from(components) {
            return Step::NotImage;
        }
        // A height of 0 defers to a DNL marker after the first scan, which decoders do not support.
        found(
            ImageFormat::Jpeg,
            u32::from(width),
            u32::from(height),
            self.orientation,
            false,
        )
    }
}
