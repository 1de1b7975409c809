//! A guard in front of the multipart parser that bounds the parts of a form the parser holds
//! whole: the preamble (everything before the first delimiter) and each part's header block.
//!
//! The parser (multer) buffers both until they end, and scans its whole buffer again each time
//! more bytes arrive. A body whose preamble or part header never ends would therefore hold as much
//! memory as the client sends and cost time quadratic in it. This guard watches the raw body as it
//! streams past, in time linear in its length and with a few bytes of state, and fails the stream
//! as soon as either exceeds the limit. File data passes untouched and is not counted.
//!
//! On the way it notes where each part's data starts in the body ([`PartStarts`]), so that the
//! upload can tell a file's length from the request's `Content-Length` without a second scanner.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use memchr::memmem::Finder;

/// Default for the longest preamble, and the longest header block of one part, a form may have.
///
/// Browsers and HTTP clients write a few hundred bytes of part headers; 16 KiB leaves room for
/// long file names while keeping what a client can make the parser hold small.
pub const DEFAULT_PART_HEADER_MAX: usize = 16 * 1024;

/// Parts whose data start is noted; a form with more parts before its file states no length.
const NOTED_PARTS: usize = 1024;

/// Where the data of each part of a form starts, as a byte offset in the body, filled in as the
/// guarded stream is read.
#[derive(Clone, Debug, Default)]
pub struct PartStarts(Arc<Mutex<Vec<u64>>>);

impl PartStarts {
    /// The offset of the data of the `index`-th part (from 0), once the stream has passed its
    /// header block.
    pub fn get(&self, index: usize) -> Option<u64> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(index)
            .copied()
    }

    fn note(&self, offset: u64) {
        let mut starts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if starts.len() < NOTED_PARTS {
            starts.push(offset);
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The error the guarded stream fails with, so that the upload can answer `400` rather than
/// treating it as a broken connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramingTooLong {
    region: Region,
    limit: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Region {
    Preamble,
    PartHeaders,
}

impl std::fmt::Display for FramingTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.region {
            Region::Preamble => "multipart preamble (the bytes before the first boundary)",
            Region::PartHeaders => "multipart part headers",
        };
        write!(f, "{what} longer than {} bytes", self.limit)
    }
}

impl std::error::Error for FramingTooLong {}

/// `inner`, a multipart body delimited by `boundary`, failing with [`FramingTooLong`] as soon as
/// its preamble or one part's header block exceeds `limit` bytes.
///
/// The errors of `inner` pass through (boxed), so a broken connection stays one.
pub fn bounded<S, E>(inner: S, boundary: &str, limit: usize) -> Bounded<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<BoxError>,
{
    Bounded {
        inner,
        framing: Framing::new(boundary, limit),
        failed: false,
    }
}

/// The stream [`bounded`] returns.
pub struct Bounded<S> {
    inner: S,
    framing: Framing,
    /// Set once the stream has failed: it then ends.
    failed: bool,
}

impl<S> Bounded<S> {
    /// Where the parts' data starts, filled in as this stream is read.
    pub fn part_starts(&self) -> PartStarts {
        self.framing.starts.clone()
    }
}

impl<S, E> Stream for Bounded<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<BoxError>,
{
    type Item = Result<Bytes, BoxError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        let item = match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => match this.framing.feed(&chunk) {
                Ok(()) => Ok(chunk),
                Err(too_long) => {
                    this.failed = true;
                    Err(Box::new(too_long) as BoxError)
                }
            },
            Poll::Ready(Some(Err(e))) => Err(e.into()),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        Poll::Ready(Some(item))
    }
}

/// A byte string searched for across chunk edges: `memmem` within a chunk, and a KMP automaton
/// over the first and last few bytes of each chunk for a match that spans an edge.
struct Needle {
    bytes: Vec<u8>,
    /// KMP failure function: `fail[i]` is the longest proper prefix of `bytes[..=i]` that is also
    /// its suffix.
    fail: Vec<usize>,
    finder: Finder<'static>,
}

/// The outcome of scanning one chunk for a [`Needle`].
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// The first match ends just before this offset of the chunk (it may have begun in an
    /// earlier chunk).
    Found(usize),
    /// No match; the chunk ends with the needle's first `n` bytes (the longest such `n`), which a
    /// later chunk may complete.
    Partial(usize),
}

impl Needle {
    fn new(bytes: Vec<u8>) -> Self {
        let mut fail = vec![0; bytes.len()];
        let mut k = 0;
        for i in 1..bytes.len() {
            while k > 0 && bytes[i] != bytes[k] {
                k = fail[k - 1];
            }
            if bytes[i] == bytes[k] {
                k += 1;
            }
            fail[i] = k;
        }
        let finder = Finder::new(&bytes).into_owned();
        Self {
            bytes,
            fail,
            finder,
        }
    }

    fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The automaton's state after `byte`, from `state` (how many of the needle's bytes match).
    fn step(&self, mut state: usize, byte: u8) -> usize {
        while state > 0 && self.bytes[state] != byte {
            state = self.fail[state - 1];
        }
        if self.bytes[state] == byte {
            state + 1
        } else {
            0
        }
    }

    /// Scans `chunk`, which follows bytes that ended with the needle's first `pending` bytes.
    ///
    /// Costs `O(chunk.len())` plus `O(needle)` when the chunk is longer than the needle, so a
    /// body costs time linear in its length however it is cut into chunks.
    fn scan(&self, pending: usize, chunk: &[u8]) -> Scan {
        let n = self.len();
        // A match ending within the first n - 1 bytes began in an earlier chunk.
        let edge = chunk.len().min(n - 1);
        let mut state = pending;
        for (i, &byte) in chunk[..edge].iter().enumerate() {
            state = self.step(state, byte);
            if state == n {
                return Scan::Found(i + 1);
            }
        }
        if edge == chunk.len() {
            return Scan::Partial(state);
        }
        if let Some(at) = self.finder.find(chunk) {
            return Scan::Found(at + n);
        }
        // No match: what a later chunk may complete lies within the last n - 1 bytes.
        let tail = &chunk[chunk.len() - (n - 1)..];
        Scan::Partial(tail.iter().fold(0, |state, &byte| self.step(state, byte)))
    }
}

/// Where in the form the guard is, following the parser's own reading of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Before the first `--boundary`, which may follow any bytes.
    Preamble,
    /// Just after a `--boundary`: `--` closes the form, anything else starts a part.
    AfterBoundary,
    /// After `--boundary-`.
    Dash,
    /// Spaces and tabs the parser skips before the delimiter line's CRLF.
    Padding,
    /// After the CR of the delimiter line.
    LineCr,
    /// The part's headers, up to and including the blank line: the parser looks for the first
    /// CRLF CRLF after the delimiter line.
    Headers,
    /// A part's data, up to the next CRLF `--boundary`.
    Data,
    /// After the closing `--boundary--`: the parser reads no further.
    Closed,
}

/// The guard's state machine over the raw body.
struct Framing {
    limit: usize,
    /// `--boundary`, which starts the first part after any preamble.
    first: Needle,
    /// CRLF CRLF, the end of a part's headers.
    blank_line: Needle,
    /// CRLF `--boundary`, the end of a part's data.
    delimiter: Needle,
    stage: Stage,
    /// Bytes of the current preamble or header block so far.
    counted: usize,
    /// How many of the searched needle's bytes the previous chunk ended with.
    pending: usize,
    /// Bytes of the body before the current chunk.
    fed: u64,
    starts: PartStarts,
}

impl Framing {
    fn new(boundary: &str, limit: usize) -> Self {
        let dashed = [b"--", boundary.as_bytes()].concat();
        let delimiter = [b"\r\n", dashed.as_slice()].concat();
        Self {
            limit,
            first: Needle::new(dashed),
            blank_line: Needle::new(b"\r\n\r\n".to_vec()),
            delimiter: Needle::new(delimiter),
            stage: Stage::Preamble,
            counted: 0,
            pending: 0,
            fed: 0,
            starts: PartStarts::default(),
        }
    }

    fn enter(&mut self, stage: Stage) {
        self.stage = stage;
        self.pending = 0;
    }

    fn too_long(&self, region: Region) -> FramingTooLong {
        FramingTooLong {
            region,
            limit: self.limit,
        }
    }

    /// Follows the next chunk of the body.
    ///
    /// # Errors
    /// When the preamble, or a part's header block (from just after its `--boundary` to the end of
    /// its blank line), is longer than the limit.
    fn feed(&mut self, chunk: &[u8]) -> Result<(), FramingTooLong> {
        let result = self.follow(chunk);
        self.fed += chunk.len() as u64;
        result
    }

    fn follow(&mut self, whole: &[u8]) -> Result<(), FramingTooLong> {
        let mut chunk = whole;
        while let Some(&byte) = chunk.first() {
            match self.stage {
                Stage::Closed => return Ok(()),
                Stage::Preamble => match self.first.scan(self.pending, chunk) {
                    Scan::Found(end) => {
                        let preamble = (self.counted + end).saturating_sub(self.first.len());
                        if preamble > self.limit {
                            return Err(self.too_long(Region::Preamble));
                        }
                        self.counted = 0;
                        self.enter(Stage::AfterBoundary);
                        chunk = &chunk[end..];
                    }
                    Scan::Partial(pending) => {
                        self.counted += chunk.len();
                        self.pending = pending;
                        // The last `pending` bytes may yet be the start of the boundary.
                        if self.counted - pending > self.limit {
                            return Err(self.too_long(Region::Preamble));
                        }
                        return Ok(());
                    }
                },
                Stage::AfterBoundary | Stage::Dash | Stage::Padding | Stage::LineCr => {
                    chunk = &chunk[1..];
                    self.counted += 1;
                    if self.counted > self.limit {
                        return Err(self.too_long(Region::PartHeaders));
                    }
                    let next = match (self.stage, byte) {
                        (Stage::AfterBoundary, b'-') => Stage::Dash,
                        (Stage::Dash, b'-') => Stage::Closed,
                        (Stage::AfterBoundary | Stage::Padding, b' ' | b'\t') => Stage::Padding,
                        (Stage::AfterBoundary | Stage::Padding, b'\r') => Stage::LineCr,
                        (Stage::LineCr, b'\n') => Stage::Headers,
                        // The parser refuses any other delimiter line; counting what follows as
                        // header bytes keeps the guard on the safe side all the same.
                        _ => Stage::Headers,
                    };
                    self.enter(next);
                }
                Stage::Headers => match self.blank_line.scan(self.pending, chunk) {
                    Scan::Found(end) => {
                        self.counted += end;
                        if self.counted > self.limit {
                            return Err(self.too_long(Region::PartHeaders));
                        }
                        self.enter(Stage::Data);
                        chunk = &chunk[end..];
                        self.starts
                            .note(self.fed + (whole.len() - chunk.len()) as u64);
                    }
                    Scan::Partial(pending) => {
                        self.counted += chunk.len();
                        self.pending = pending;
                        if self.counted > self.limit {
                            return Err(self.too_long(Region::PartHeaders));
                        }
                        return Ok(());
                    }
                },
                Stage::Data => match self.delimiter.scan(self.pending, chunk) {
                    Scan::Found(end) => {
                        self.counted = 0;
                        self.enter(Stage::AfterBoundary);
                        chunk = &chunk[end..];
                    }
                    Scan::Partial(pending) => {
                        self.pending = pending;
                        return Ok(());
                    }
                },
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
