//! Single byte ranges (RFC 9110 `Range: bytes=…`) and the contract's rules for answering them.

/// A non-empty, inclusive range of byte offsets.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ByteRange {
    start: u64,
    end: u64,
}

/// The error for a range whose end comes before its start.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("range end before its start")]
pub struct InvalidRange;

impl ByteRange {
    /// Makes the range `start..=end_inclusive`.
    ///
    /// # Errors
    ///
    /// [`InvalidRange`] when `end_inclusive < start`.
    pub fn new(start: u64, end_inclusive: u64) -> Result<Self, InvalidRange> {
        if end_inclusive < start {
            Err(InvalidRange)
        } else {
            Ok(Self {
                start,
                end: end_inclusive,
            })
        }
    }

    /// Returns the offset of the first byte.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Returns the offset of the last byte (inclusive).
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Returns the number of bytes, saturating at `u64::MAX` for the one range that would overflow.
    pub fn len(&self) -> u64 {
        (self.end - self.start).saturating_add(1)
    }

    /// Always `false`: a range holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// How a download answers a `Range` header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RangeOutcome {
    /// `200` with the whole file: no usable single range was asked for.
    Full,
    /// `206` with this part of the file.
    Partial(ByteRange),
    /// `416`: the range starts at or past the end of the file.
    Unsatisfiable,
}

/// Resolves a `Range` header value against a file of `size` bytes, by the contract's rules.
///
/// Several ranges and malformed headers give [`RangeOutcome::Full`] (RFC 9110 lets a server
/// ignore them); a well-formed range that starts at or past the end, a zero-length suffix,
/// and any range of an empty file give [`RangeOutcome::Unsatisfiable`].
pub fn resolve_range(header: &str, size: u64) -> RangeOutcome {
    match parse(header) {
        None => RangeOutcome::Full,
        Some(spec) => satisfy(spec, size),
    }
}

/// A syntactically valid single range, not yet checked against the file size.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Spec {
    /// `bytes=a-b` (with `a <= b`) or `bytes=a-`.
    From { first: u64, last: Option<u64> },
    /// `bytes=-n`.
    Suffix(u64),
}

fn parse(header: &str) -> Option<Spec> {
    let (unit, set) = header.split_once('=')?;
    if !trim_ows(unit).eq_ignore_ascii_case("bytes") || set.contains(',') {
        return None;
    }
    let (first, last) = set.split_once('-')?;
    let (first, last) = (trim_ows(first), trim_ows(last));
    match (first.is_empty(), last.is_empty()) {
        (true, true) => None,
        (true, false) => digits(last).map(Spec::Suffix),
        (false, true) => digits(first).map(|first| Spec::From { first, last: None }),
        (false, false) => {
            let first = digits(first)?;
            let last = digits(last)?;
            (first <= last).then_some(Spec::From {
                first,
                last: Some(last),
            })
        }
    }
}

fn satisfy(spec: Spec, size: u64) -> RangeOutcome {
    let Some(last_byte) = size.checked_sub(1) else {
        return RangeOutcome::Unsatisfiable;
    };
    let range = match spec {
        Spec::Suffix(0) => return RangeOutcome::Unsatisfiable,
        Spec::Suffix(n) => ByteRange::new(size.saturating_sub(n), last_byte),
        Spec::From { first, .. } if first >= size => return RangeOutcome::Unsatisfiable,
        Spec::From { first, last } => {
            ByteRange::new(first, last.map_or(last_byte, |l| l.min(last_byte)))
        }
    };
    // Every arm above yields start <= end, so the error branch is only a safe fallback.
    range.map_or(RangeOutcome::Full, RangeOutcome::Partial)
}

/// Trims RFC 9110 optional white space (spaces and tabs).
fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// Parses a non-empty run of ASCII digits; signs, other characters and overflow are refused.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partial(start: u64, end: u64) -> RangeOutcome {
        RangeOutcome::Partial(ByteRange::new(start, end).unwrap())
    }

    #[test]
    fn resolve_range_follows_the_contract() {
        use RangeOutcome::{Full, Unsatisfiable};
        let cases: &[(&str, u64, RangeOutcome)] = &[
            // bytes=a-b, with the end clamped
            ("bytes=0-0", 10, partial(0, 0)),
            ("bytes=0-9", 10, partial(0, 9)),
            ("bytes=2-5", 10, partial(2, 5)),
            ("bytes=5-5", 10, partial(5, 5)),
            ("bytes=5-100", 10, partial(5, 9)),
            ("bytes=0-18446744073709551615", 10, partial(0, 9)),
            ("bytes=9-9", 10, partial(9, 9)),
            // bytes=a-
            ("bytes=0-", 10, partial(0, 9)),
            ("bytes=7-", 10, partial(7, 9)),
            ("bytes=9-", 10, partial(9, 9)),
            // bytes=-n
            ("bytes=-1", 10, partial(9, 9)),
            ("bytes=-3", 10, partial(7, 9)),
            ("bytes=-10", 10, partial(0, 9)),
            ("bytes=-11", 10, partial(0, 9)),
            ("bytes=-18446744073709551615", 10, partial(0, 9)),
            ("bytes=-0", 10, Unsatisfiable),
            ("bytes=-000", 10, Unsatisfiable),
            // start at or past the size
            ("bytes=10-", 10, Unsatisfiable),
            ("bytes=10-20", 10, Unsatisfiable),
            ("bytes=11-12", 10, Unsatisfiable),
            // empty file
            ("bytes=0-", 0, Unsatisfiable),
            ("bytes=0-0", 0, Unsatisfiable),
            ("bytes=-1", 0, Unsatisfiable),
            ("bytes=-0", 0, Unsatisfiable),
            ("bytes=5-10", 0, Unsatisfiable),
            // case and optional white space
            ("BYTES=0-1", 10, partial(0, 1)),
            ("Bytes=0-1", 10, partial(0, 1)),
            ("bytes = 0 - 1", 10, partial(0, 1)),
            (" bytes=\t2-\t", 10, partial(2, 9)),
            ("bytes= -2 ", 10, partial(8, 9)),
            ("bytes=007-008", 10, partial(7, 8)),
            // several ranges
            ("bytes=0-1,3-4", 10, Full),
            ("bytes=0-1, 3-4", 10, Full),
            ("bytes=0-1,", 10, Full),
            ("bytes=20-30,40-50", 10, Full),
            ("bytes=0-1,3-4", 0, Full),
            // malformed
            ("", 10, Full),
            ("bytes", 10, Full),
            ("bytes=", 10, Full),
            ("bytes=-", 10, Full),
            ("bytes=-", 0, Full),
            ("bytes=5", 10, Full),
            ("bytes=5-2", 10, Full),
            ("bytes=5-2", 0, Full),
            ("bytes=a-b", 10, Full),
            ("bytes=0x1-2", 10, Full),
            ("bytes=+1-2", 10, Full),
            ("bytes=1-+2", 10, Full),
            ("bytes=--1", 10, Full),
            ("bytes=-1-2", 10, Full),
            ("bytes=1-2-3", 10, Full),
            ("bytes=1 0-20", 10, Full),
            ("bytes=18446744073709551616-", 10, Full),
            ("bytes=0-18446744073709551616", 10, Full),
            ("bytes=-18446744073709551616", 10, Full),
            ("bytes=１-2", 10, Full),
            ("items=0-1", 10, Full),
            ("bytes:0-1", 10, Full),
            ("bytes0-1", 10, Full),
            ("=0-1", 10, Full),
        ];
        for &(header, size, expected) in cases {
            assert_eq!(
                resolve_range(header, size),
                expected,
                "header {header:?}, size {size}"
            );
        }
    }

    #[test]
    fn byte_range_new_refuses_end_before_start() {
        let cases: &[(u64, u64, Result<u64, InvalidRange>)] = &[
            (0, 0, Ok(1)),
            (3, 7, Ok(5)),
            (7, 3, Err(InvalidRange)),
            (1, 0, Err(InvalidRange)),
            (0, u64::MAX, Ok(u64::MAX)),
            (u64::MAX, u64::MAX, Ok(1)),
        ];
        for (start, end, expected) in cases {
            let range = ByteRange::new(*start, *end);
            assert_eq!(&range.clone().map(|r| r.len()), expected, "{start}..={end}");
            if let Ok(range) = range {
                assert_eq!((range.start(), range.end()), (*start, *end));
                assert!(!range.is_empty());
            }
        }
    }
}
