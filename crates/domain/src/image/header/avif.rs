//! AVIF: an ISO-BMFF `ftyp` box with an AVIF brand, then the `meta` box walked down to its item
//! properties. The size is the `ispe` (image spatial extents) property of the primary item, as
//! `pitm` names it and `ipma` associates it; every other box is skipped by its size.

use super::{ImageFormat, Step, found, read};

/// A box's size and type; a size of 1 adds a 64-bit size after them.
const BOX_HEAD: usize = 8;
const LARGE_HEAD: usize = 16;
/// The version and flags that open a full box.
const FULL: u64 = 4;
/// The smallest `ftyp` (size, type, major brand, minor version) and the largest read.
const FTYP_MIN: u32 = 16;
const FTYP_MAX: u32 = 4096;
/// The largest `pitm` and `ipma` read; a bigger `ipma` is skipped, and the size falls back to
/// the largest extent.
const PITM_MAX: u64 = 64;
const IPMA_MAX: u64 = 64 * 1024;
/// An `ispe` after its box header: version and flags, width, height.
const ISPE_LEN: u64 = 12;
/// How many extents are kept for the lookup by property index; the largest is kept regardless.
const EXTENTS_KEPT: usize = 256;

#[derive(Debug)]
pub(super) struct Avif {
    state: State,
    animated: bool,
    /// The boxes the cursor is inside, outermost first.
    open: Vec<Open>,
    primary: Option<u32>,
    /// The body of the `ipma` box, after its header.
    ipma: Option<Vec<u8>>,
    /// How many properties `ipco` has listed so far: a property's index is its position.
    properties: u32,
    extents: Vec<Extent>,
    largest: Option<(u32, u32)>,
}

#[derive(Debug, Clone, Copy)]
struct Open {
    kind: Container,
    end: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Meta,
    Iprp,
    Ipco,
}

#[derive(Debug, Clone, Copy)]
struct Extent {
    index: u32,
    width: u32,
    height: u32,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// At the `ftyp` box header.
    FileType,
    /// At the `ftyp` box, this long.
    Brands(u32),
    /// At a box header.
    Box,
    /// At a box header whose size is in 64 bits.
    LargeBox,
    /// At one of the boxes read whole, with its header length and size.
    Pitm(usize, u64),
    Ipma(usize, u64),
    Ispe(usize, u64),
}

impl Avif {
    pub(super) fn new() -> Self {
        Self {
            state: State::FileType,
            animated: false,
            open: Vec::new(),
            primary: None,
            ipma: None,
            properties: 0,
            extents: Vec::new(),
            largest: None,
        }
    }

    pub(super) fn want(&self) -> usize {
        match self.state {
            State::FileType | State::Box => BOX_HEAD,
            State::Brands(size) => size as usize,
            State::LargeBox => LARGE_HEAD,
            // Both are bounded by PITM_MAX and IPMA_MAX.
            State::Pitm(_, size) | State::Ipma(_, size) => size as usize,
            State::Ispe(head, _) => head + ISPE_LEN as usize,
        }
    }

    pub(super) fn step(&mut self, at: u64, window: &[u8]) -> Step {
        match self.state {
            State::FileType => match read::u32_be(window, 0) {
                Some(size @ FTYP_MIN..=FTYP_MAX) => {
                    self.state = State::Brands(size);
                    Step::Advance(0)
                }
                _ => Step::NotImage,
            },
            State::Brands(size) => self.brands(window, size),
            State::Box => {
                let (Some(size), Some(kind)) = (read::u32_be(window, 0), read::tag(window, 4))
                else {
                    return Step::NotImage;
                };
                match size {
                    1 => {
                        self.state = State::LargeBox;
                        Step::Advance(0)
                    }
                    // A size of 0 runs to the end of the enclosing box (or of the file).
                    0 => self.enter(at, BOX_HEAD, None, kind),
                    size => self.enter(at, BOX_HEAD, Some(u64::from(size)), kind),
                }
            }
            State::LargeBox => {
                let (Some(size), Some(kind)) = (read::u64_be(window, 8), read::tag(window, 4))
                else {
                    return Step::NotImage;
                };
                self.enter(at, LARGE_HEAD, Some(size), kind)
            }
            State::Pitm(head, size) => {
                let id = match window.get(head) {
                    Some(0) => read::u16_be(window, head + 4).map(u32::from),
                    Some(_) => read::u32_be(window, head + 4),
                    None => None,
                };
                let Some(id) = id else {
                    return Step::NotImage;
                };
                self.primary = Some(id);
                self.moved(at, size)
            }
            State::Ipma(head, size) => {
                self.ipma = window.get(head..).map(<[u8]>::to_vec);
                self.moved(at, size)
            }
            State::Ispe(head, size) => {
                let (Some(width), Some(height)) = (
                    read::u32_be(window, head + 4),
                    read::u32_be(window, head + 8),
                ) else {
                    return Step::NotImage;
                };
                self.extent(width, height);
                self.moved(at, size)
            }
        }
    }

    fn brands(&mut self, window: &[u8], size: u32) -> Step {
        let compatible = window.get(16..).unwrap_or_default().chunks_exact(4);
        let mut brands = window.get(8..12).into_iter().chain(compatible);
        let mut still = false;
        for brand in &mut brands {
            match brand {
                b"avif" => still = true,
                b"avis" => self.animated = true,
                _ => {}
            }
        }
        if !still && !self.animated {
            return Step::NotImage;
        }
        self.state = State::Box;
        Step::Advance(u64::from(size))
    }

    /// Handles the box at `at` whose header is `head` bytes long: enters the containers on the
    /// way to the properties, reads the few boxes needed, skips the rest.
    fn enter(&mut self, at: u64, head: usize, size: Option<u64>, kind: [u8; 4]) -> Step {
        let parent = self.open.last().copied();
        let parent_end = parent.map_or(u64::MAX, |open| open.end);
        let Some(end) = size.map_or(Some(parent_end), |size| at.checked_add(size)) else {
            return Step::NotImage;
        };
        let size = end.saturating_sub(at);
        let head_len = head as u64;
        if size < head_len || end > parent_end {
            return Step::NotImage;
        }
        self.state = State::Box;
        let within = |container| parent.map(|open| open.kind) == container;
        match &kind {
            b"meta" if within(None) => {
                self.open_container(Container::Meta, at, head_len + FULL, end)
            }
            b"iprp" if within(Some(Container::Meta)) => {
                self.open_container(Container::Iprp, at, head_len, end)
            }
            b"ipco" if within(Some(Container::Iprp)) => {
                self.open_container(Container::Ipco, at, head_len, end)
            }
            b"pitm" if within(Some(Container::Meta)) && size <= PITM_MAX => {
                self.state = State::Pitm(head, size);
                Step::Advance(0)
            }
            b"ipma" if within(Some(Container::Iprp)) && size <= IPMA_MAX && self.ipma.is_none() => {
                self.state = State::Ipma(head, size);
                Step::Advance(0)
            }
            _ if within(Some(Container::Ipco)) => {
                self.properties = self.properties.saturating_add(1);
                if &kind == b"ispe" && size >= head_len + ISPE_LEN {
                    self.state = State::Ispe(head, size);
                    Step::Advance(0)
                } else {
                    self.moved(at, size)
                }
            }
            _ => self.moved(at, size),
        }
    }

    fn open_container(&mut self, kind: Container, at: u64, head: u64, end: u64) -> Step {
        if at.saturating_add(head) > end {
            return Step::NotImage;
        }
        self.open.push(Open { kind, end });
        self.moved(at, head)
    }

    /// Moves the cursor `n` bytes on from `at`, closing the boxes that end there. The header is
    /// known once `meta` closes, or `iprp` does after `pitm` was read.
    fn moved(&mut self, at: u64, n: u64) -> Step {
        self.state = State::Box;
        let Some(pos) = at.checked_add(n) else {
            return Step::NotImage;
        };
        while let Some(open) = self.open.last().copied()
            && open.end == pos
        {
            self.open.pop();
            match open.kind {
                Container::Meta => return self.resolve(),
                Container::Iprp if self.primary.is_some() => return self.resolve(),
                Container::Iprp | Container::Ipco => {}
            }
        }
        Step::Advance(n)
    }

    fn extent(&mut self, width: u32, height: u32) {
        if self.extents.len() < EXTENTS_KEPT {
            self.extents.push(Extent {
                index: self.properties,
                width,
                height,
            });
        }
        let pixels = |(w, h): (u32, u32)| u64::from(w) * u64::from(h);
        if self
            .largest
            .is_none_or(|largest| pixels((width, height)) > pixels(largest))
        {
            self.largest = Some((width, height));
        }
    }

    /// The primary item's extent; when it cannot be told, the largest, so a hostile file cannot
    /// pass a small extent off as its size.
    fn resolve(&self) -> Step {
        let primary = self.primary.and_then(|id| self.primary_extent(id));
        match primary.or(self.largest) {
            Some((width, height)) => found(ImageFormat::Avif, width, height, None, self.animated),
            None => Step::NotImage,
        }
    }

    fn primary_extent(&self, id: u32) -> Option<(u32, u32)> {
        let ipma = self.ipma.as_deref()?;
        let version = *ipma.first()?;
        let wide_index = ipma.get(3)? & 1 != 0;
        let count = read::u32_be(ipma, 4)?;
        let mut pos = 8usize;
        for _ in 0..count {
            let item = if version == 0 {
                pos += 2;
                u32::from(read::u16_be(ipma, pos - 2)?)
            } else {
                pos += 4;
                read::u32_be(ipma, pos - 4)?
            };
            let associations = *ipma.get(pos)?;
            pos += 1;
            for _ in 0..associations {
                let index = if wide_index {
                    pos += 2;
                    u32::from(read::u16_be(ipma, pos - 2)? & 0x7FFF)
                } else {
                    pos += 1;
                    u32::from(ipma.get(pos - 1)? & 0x7F)
                };
                let extent = self.extents.iter().find(|extent| extent.index == index);
                if let (true, Some(extent)) = (item == id, extent) {
                    return Some((extent.width, extent.height));
                }
            }
            if item == id {
                return None;
            }
        }
        None
    }
}
