//! What an image's header tells before any pixel is decoded: its format, size, EXIF orientation
//! and whether it is animated.
//!
//! The image limits (`IMAGE_MAX_SOURCE_PIXELS`, a policy's `max_pixels`) are checked from these
//! facts, so a decompression bomb (a PNG declaring 100 000 × 100 000 pixels over a few bytes of
//! IDAT) is refused without inflating anything. Every format is read by a walker that asks for a
//! fixed number of bytes at its cursor, then moves the cursor on, possibly past bytes it has not
//! received yet. Skipped spans (a 60 KiB XMP segment, an ICC profile, an `mdat` box) are never
//! held, and the outcome is the same however the input is cut into chunks.

mod avif;
mod detect;
mod exif;
mod gif;
mod jpeg;
mod png;
mod read;
mod webp;

#[cfg(test)]
mod tests;

pub use exif::{exif_orientation, trailing_orientation};

/// How far into a file the header must be complete.
///
/// Past this offset a header is refused rather than waited for: 1 MiB holds every JPEG segment
/// that precedes the frame header in practice (Exif and XMP segments are capped at 64 KiB each,
/// ICC profiles rarely exceed a few hundred KiB), and it bounds the work a hostile prefix can
/// cause. [`HeaderReader`] skips what it does not need, so it holds far less than this.
pub const MAX_HEADER_BYTES: usize = 1 << 20;

/// The formats whose headers Stowage reads: the ones the image variants decode.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum ImageFormat {
    /// JPEG (JFIF or Exif).
    Jpeg,
    /// PNG, animated (APNG) or not.
    Png,
    /// GIF87a or GIF89a.
    Gif,
    /// WebP, lossy, lossless or extended.
    WebP,
    /// AVIF still images and sequences.
    Avif,
}

impl ImageFormat {
    /// The media type the format is served as, so a header can be checked against a policy's types.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Gif => "image/gif",
            Self::WebP => "image/webp",
            Self::Avif => "image/avif",
        }
    }

    /// The format served as `media_type`, the inverse of [`ImageFormat::media_type`].
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        [Self::Jpeg, Self::Png, Self::Gif, Self::WebP, Self::Avif]
            .into_iter()
            .find(|format| format.media_type() == media_type)
    }
}

/// The facts an image header states, read before any pixel is decoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ImageHeader {
    /// The format the magic bytes and header belong to.
    pub format: ImageFormat,
    /// Width in pixels, never 0. For GIF, the logical screen grown to hold the first frame.
    pub width: u32,
    /// Height in pixels, never 0.
    pub height: u32,
    /// EXIF orientation (1..=8) when the header carries it before the image data: a JPEG APP1
    /// Exif segment before the frame header, a PNG `eXIf` chunk before `IDAT`, a WebP `EXIF`
    /// chunk before the image data. `None` otherwise, including when it is stored after them.
    pub orientation: Option<u8>,
    /// Whether the header announces an animation: an APNG `acTL` chunk, the WebP animation flag,
    /// an AVIF sequence brand, a GIF looping extension before the first frame. `false` means
    /// "not announced", not "a single frame".
    pub animated: bool,
}

impl ImageHeader {
    /// The pixel count the limits are checked against; `u64` so that no header can overflow it.
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// The size once the orientation is applied, which is what a variant's `w` and `h` refer to:
    /// orientations 5 to 8 turn the image by a quarter, swapping width and height.
    pub fn oriented_size(&self) -> (u32, u32) {
        match self.orientation {
            Some(5..=8) => (self.height, self.width),
            _ => (self.width, self.height),
        }
    }
}

/// What a file's first bytes tell.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Probe {
    /// The header is complete.
    Found(ImageHeader),
    /// The bytes so far are the start of a header that is not complete yet.
    NeedMore,
    /// Not an image of a known format, or a malformed header, or one that does not end within
    /// [`MAX_HEADER_BYTES`].
    NotImage,
}

/// Reads the header from the first bytes of a file.
///
/// Returns [`Probe::NeedMore`] only when `prefix` is shorter than [`MAX_HEADER_BYTES`]; a caller
/// that has the whole file treats it as [`Probe::NotImage`] (see [`HeaderReader::finish`]).
pub fn probe(prefix: &[u8]) -> Probe {
    let mut reader = HeaderReader::new();
    reader.push(prefix).unwrap_or(Probe::NeedMore)
}

/// Learns an image's header from a stream as its chunks arrive, so an upload can be refused as
/// soon as its header is known, while holding no more than the largest span a header needs
/// (64 KiB for an Exif block), never the skipped spans between.
#[derive(Debug)]
pub struct HeaderReader {
    walker: Walker,
    /// Offset in the file of the walker's cursor.
    cursor: u64,
    /// Bytes the walker moved past that have not arrived yet; they are dropped as they do.
    skip: u64,
    /// Bytes at the cursor, received but fewer than the walker wants (or more, after a short move).
    held: Vec<u8>,
    /// `Found` or `NotImage` once known.
    outcome: Option<Probe>,
}

impl Default for HeaderReader {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderReader {
    /// Starts reading at the first byte of a file.
    pub fn new() -> Self {
        Self {
            walker: Walker::Detect(detect::Detect::new()),
            cursor: 0,
            skip: 0,
            held: Vec::new(),
            outcome: None,
        }
    }

    /// Feeds the next chunk of the file.
    ///
    /// Returns the outcome ([`Probe::Found`] or [`Probe::NotImage`], never [`Probe::NeedMore`])
    /// once it is known, and again on every later call; `None` while more bytes are needed.
    pub fn push(&mut self, chunk: &[u8]) -> Option<Probe> {
        if self.outcome.is_none() {
            self.outcome = self.run(chunk);
        }
        self.outcome
    }

    /// The outcome so far: [`Probe::NeedMore`] until the header is complete or refused.
    pub fn outcome(&self) -> Probe {
        self.outcome.unwrap_or(Probe::NeedMore)
    }

    /// Ends the stream: a header still incomplete belongs to a truncated file, which is no image.
    pub fn finish(self) -> Probe {
        self.outcome.unwrap_or(Probe::NotImage)
    }

    fn run(&mut self, mut input: &[u8]) -> Option<Probe> {
        loop {
            // The limit is checked before waiting for skipped bytes: a span skipped past it ends
            // the walk at once.
            let want = self.walker.want();
            let step = if self.cursor.saturating_add(want as u64) > MAX_HEADER_BYTES as u64 {
                self.walker.at_limit()
            } else if self.skip > 0 {
                let dropped =
                    usize::try_from(self.skip).map_or(input.len(), |s| s.min(input.len()));
                input = input.get(dropped..).unwrap_or_default();
                self.skip -= dropped as u64;
                if self.skip > 0 {
                    return None;
                }
                continue;
            } else if self.held.is_empty() && input.len() >= want {
                // The whole window is in this chunk: it is read in place, nothing is copied.
                match input.get(..want) {
                    Some(window) => self.walker.step(self.cursor, window),
                    None => Step::NotImage,
                }
            } else {
                let take = want.saturating_sub(self.held.len()).min(input.len());
                let (head, rest) = input.split_at_checked(take).unwrap_or((input, &[]));
                self.held.extend_from_slice(head);
                input = rest;
                match self.held.get(..want) {
                    Some(window) => self.walker.step(self.cursor, window),
                    None => return None,
                }
            };
            self.apply(step, &mut input);
            if let Some(done) = step.outcome() {
                return Some(done);
            }
        }
    }

    /// Moves the cursor on: first over the held bytes, then over the chunk, then over bytes to come.
    fn apply(&mut self, step: Step, input: &mut &[u8]) {
        let Step::Advance(n) = step else {
            self.held = Vec::new();
            return;
        };
        self.cursor = self.cursor.saturating_add(n);
        let from_held = usize::try_from(n).map_or(self.held.len(), |n| n.min(self.held.len()));
        self.held.drain(..from_held);
        let rest = n - from_held as u64;
        let from_input = usize::try_from(rest).map_or(input.len(), |r| r.min(input.len()));
        *input = input.get(from_input..).unwrap_or_default();
        self.skip = rest - from_input as u64;
    }
}

/// What a walker does with the window it asked for.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// Moves the cursor this many bytes on, where the walker's next window starts.
    Advance(u64),
    /// The header is complete.
    Found(ImageHeader),
    /// The bytes are not (or no longer) an image header.
    NotImage,
}

impl Step {
    fn outcome(self) -> Option<Probe> {
        match self {
            Self::Advance(_) => None,
            Self::Found(header) => Some(Probe::Found(header)),
            Self::NotImage => Some(Probe::NotImage),
        }
    }
}

/// Builds the outcome for a header, refusing the zero-sized images no decoder accepts.
fn found(
    format: ImageFormat,
    width: u32,
    height: u32,
    orientation: Option<u8>,
    animated: bool,
) -> Step {
    if width == 0 || height == 0 {
        return Step::NotImage;
    }
    Step::Found(ImageHeader {
        format,
        width,
        height,
        orientation,
        animated,
    })
}

/// The reader of the format recognised so far.
#[derive(Debug)]
enum Walker {
    Detect(detect::Detect),
    Jpeg(jpeg::Jpeg),
    Png(png::Png),
    Gif(gif::Gif),
    WebP(webp::WebP),
    Avif(avif::Avif),
}

impl Walker {
    /// How many bytes at the cursor the next step reads (at least one).
    fn want(&self) -> usize {
        match self {
            Self::Detect(w) => w.want(),
            Self::Jpeg(w) => w.want(),
            Self::Png(w) => w.want(),
            Self::Gif(w) => w.want(),
            Self::WebP(w) => w.want(),
            Self::Avif(w) => w.want(),
        }
    }

    /// Reads exactly [`Self::want`] bytes found at offset `at`.
    fn step(&mut self, at: u64, window: &[u8]) -> Step {
        match self {
            Self::Detect(w) => match w.step(window) {
                detect::Detected::More => Step::Advance(0),
                detect::Detected::Nothing => Step::NotImage,
                detect::Detected::Format(format) => {
                    *self = match format {
                        ImageFormat::Jpeg => Self::Jpeg(jpeg::Jpeg::new()),
                        ImageFormat::Png => Self::Png(png::Png::new()),
                        ImageFormat::Gif => Self::Gif(gif::Gif::new()),
                        ImageFormat::WebP => Self::WebP(webp::WebP::new()),
                        ImageFormat::Avif => Self::Avif(avif::Avif::new()),
                    };
                    Step::Advance(0)
                }
            },
            Self::Jpeg(w) => w.step(window),
            Self::Png(w) => w.step(window),
            Self::Gif(w) => w.step(window),
            Self::WebP(w) => w.step(window),
            Self::Avif(w) => w.step(at, window),
        }
    }

    /// The outcome when the next window would end past [`MAX_HEADER_BYTES`].
    fn at_limit(&self) -> Step {
        match self {
            Self::Png(w) => w.at_limit(),
            Self::Detect(_) | Self::Jpeg(_) | Self::Gif(_) | Self::WebP(_) | Self::Avif(_) => {
                Step::NotImage
            }
        }
    }
}
