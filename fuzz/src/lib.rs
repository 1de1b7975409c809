//! What several fuzz targets share: reading a target's input as its parts or as headers, cutting
//! a byte stream into the chunks a network would deliver, a fixed clock, and running futures that
//! never wait.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use stowage_application::ports::Clock;
use time::OffsetDateTime;

/// The time every target that needs one runs at (2023-11-14), so a run is reproducible.
pub const NOW: i64 = 1_700_000_000;

/// A [`Clock`] stopped at [`NOW`].
#[derive(Clone, Copy, Debug, Default)]
pub struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(NOW).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// Splits off a little-endian `u64` from the first 8 bytes (missing bytes read as 0).
pub fn take_u64(data: &[u8]) -> (u64, &[u8]) {
    let (head, rest) = data.split_at(data.len().min(8));
    let mut bytes = [0u8; 8];
    bytes[..head.len()].copy_from_slice(head);
    (u64::from_le_bytes(bytes), rest)
}

/// The headers of `name: value` lines (one space after the colon is dropped); lines that are not
/// a valid header are skipped.
pub fn headers_of(data: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let (name, value) = split_at_byte(line, b':');
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    headers
}

/// Splits `data` at its first `separator` byte; all of it is the first part when there is none.
pub fn split_at_byte(data: &[u8], separator: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == separator) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[]),
    }
}

/// A chunk plan followed by a file: `[k][k length bytes][file…]`.
///
/// The `k % 16` length bytes are cycled over the file. A length byte below 128 is that many bytes
/// (0 is an empty chunk), one of 128 or more is `(b - 127) * 64` bytes, so a plan holds chunks from
/// single bytes to 8 KiB. An empty plan, or one of empty chunks only, delivers the file whole.
#[derive(Clone, Debug)]
pub struct Chunked<'a> {
    plan: &'a [u8],
    /// The file the chunks are cut from.
    pub file: &'a [u8],
}

impl<'a> Chunked<'a> {
    /// Reads a plan and a file from a target's input.
    pub fn new(data: &'a [u8]) -> Self {
        let Some((&k, rest)) = data.split_first() else {
            return Self {
                plan: &[],
                file: &[],
            };
        };
        let (plan, file) = rest.split_at(rest.len().min(usize::from(k % 16)));
        Self { plan, file }
    }

    /// The file, cut into chunks by the plan; empty chunks included.
    pub fn chunks(&self) -> Vec<&'a [u8]> {
        let lengths: Vec<usize> = self
            .plan
            .iter()
            .map(|&b| {
                if b < 128 {
                    usize::from(b)
                } else {
                    usize::from(b - 127) * 64
                }
            })
            .collect();
        if lengths.iter().all(|&n| n == 0) {
            let mut whole: Vec<&[u8]> = lengths.iter().map(|_| &[][..]).collect();
            whole.push(self.file);
            return whole;
        }
        let mut chunks = Vec::new();
        let mut rest = self.file;
        for &n in lengths.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (head, tail) = rest.split_at(n.min(rest.len()));
            chunks.push(head);
            rest = tail;
        }
        chunks
    }
}

/// Runs a future that completes without waiting (an extractor over a request already in memory);
/// `None` if it asks to wait, which such a future never should.
pub fn ready<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..16 {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return Some(out);
        }
    }
    None
}
