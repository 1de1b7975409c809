//! GIF: the logical screen, then the blocks up to the first image descriptor, since a decoder
//! allocates for the first frame even when it overflows the screen.

use super::{ImageFormat, Step, found, read};

/// The signature and the logical screen descriptor.
const HEAD: usize = 13;
const IMAGE: u8 = 0x2C;
const EXTENSION: u8 = 0x21;
const APPLICATION: u8 = 0xFF;
/// The image descriptor: separator, left, top, width, height (flags not needed).
const DESCRIPTOR: usize = 9;
/// An application extension's first sub-block: its size (11) and identifier.
const APP_ID: usize = 12;

#[derive(Debug)]
pub(super) struct Gif {
    state: State,
    width: u16,
    height: u16,
    animated: bool,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Head,
    /// At a block introducer.
    Block,
    /// At an extension's label.
    Label,
    /// At an application extension's first sub-block.
    Application,
    /// At a data sub-block's size.
    SubBlock,
    /// At an image descriptor.
    Image,
}

impl Gif {
    pub(super) fn new() -> Self {
        Self {
            state: State::Head,
            width: 0,
            height: 0,
            animated: false,
        }
    }

    pub(super) fn want(&self) -> usize {
        match self.state {
            State::Head => HEAD,
            State::Block | State::Label | State::SubBlock => 1,
            State::Application => APP_ID,
            State::Image => DESCRIPTOR,
        }
    }

    pub(super) fn step(&mut self, window: &[u8]) -> Step {
        match (self.state, window) {
            (State::Head, _) => self.head(window),
            (State::Block, [IMAGE]) => {
                self.state = State::Image;
                Step::Advance(0)
            }
            (State::Block, [EXTENSION]) => {
                self.state = State::Label;
                Step::Advance(1)
            }
            (State::Label, [label]) => {
                self.state = if *label == APPLICATION {
                    State::Application
                } else {
                    State::SubBlock
                };
                Step::Advance(1)
            }
            (State::Application, [11, id @ ..]) => {
                // The looping extension is written by every encoder of animations.
                if id == b"NETSCAPE2.0" || id == b"ANIMEXTS1.0" {
                    self.animated = true;
                }
                self.state = State::SubBlock;
                Step::Advance(0)
            }
            (State::Application, _) => {
                self.state = State::SubBlock;
                Step::Advance(0)
            }
            (State::SubBlock, [0]) => {
                self.state = State::Block;
                Step::Advance(1)
            }
            (State::SubBlock, [size]) => Step::Advance(1 + u64::from(*size)),
            (State::Image, _) => self.image(window),
            // The trailer before any frame, or a byte that introduces no block.
            (State::Block | State::Label | State::SubBlock, _) => Step::NotImage,
        }
    }

    fn head(&mut self, window: &[u8]) -> Step {
        let (Some(width), Some(height), Some(&flags)) = (
            read::u16_le(window, 6),
            read::u16_le(window, 8),
            window.get(10),
        ) else {
            return Step::NotImage;
        };
        if width == 0 || height == 0 {
            return Step::NotImage;
        }
        self.width = width;
        self.height = height;
        self.state = State::Block;
        // The global colour table, when present, holds 2^(n+1) RGB triplets.
        let table = if flags & 0x80 != 0 {
            3u64 << ((flags & 0x07) + 1)
        } else {
            0
        };
        Step::Advance(HEAD as u64 + table)
    }

    fn image(&self, window: &[u8]) -> Step {
        let (Some(left), Some(top), Some(width), Some(height)) = (
            read::u16_le(window, 1),
            read::u16_le(window, 3),
            read::u16_le(window, 5),
            read::u16_le(window, 7),
        ) else {
            return Step::NotImage;
        };
        let right = u32::from(left) + u32::from(width);
        let bottom = u32::from(top) + u32::from(height);
        found(
            ImageFormat::Gif,
            right.max(u32::from(self.width)),
            bottom.max(u32::from(self.height)),
            None,
            self.animated,
        )
    }
}
