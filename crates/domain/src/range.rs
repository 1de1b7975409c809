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

    mod properties {
        use proptest::prelude::*;

        use super::super::*;
        use crate::properties::{config, text};

        /// A single range as a client asks for it.
        #[derive(Clone, Copy, Debug)]
        enum Asked {
            /// `bytes=a-b`, `a > b` included (malformed).
            FromTo(u64, u64),
            /// `bytes=a-`.
            From(u64),
            /// `bytes=-n`.
            Suffix(u64),
        }

        /// The contract's answer to `asked` for a file of `size` bytes.
        fn contract(asked: Asked, size: u64) -> RangeOutcome {
            let part = |start, end| RangeOutcome::Partial(ByteRange::new(start, end).unwrap());
            match asked {
                Asked::FromTo(a, b) if a > b => RangeOutcome::Full,
                _ if size == 0 => RangeOutcome::Unsatisfiable,
                Asked::FromTo(a, _) | Asked::From(a) if a >= size => RangeOutcome::Unsatisfiable,
                Asked::FromTo(a, b) => part(a, b.min(size - 1)),
                Asked::From(a) => part(a, size - 1),
                Asked::Suffix(0) => RangeOutcome::Unsatisfiable,
                Asked::Suffix(n) => part(size.saturating_sub(n), size - 1),
            }
        }

        /// Small numbers reach the edges (empty file, zero-length suffix, last byte) far more often
        /// than random ones.
        fn number() -> impl Strategy<Value = u64> {
            prop_oneof![Just(0), 0..=40u64, any::<u64>(), Just(u64::MAX)]
        }

        fn asked() -> impl Strategy<Value = Asked> {
            prop_oneof![
                (number(), number()).prop_map(|(a, b)| Asked::FromTo(a, b)),
                number().prop_map(Asked::From),
                number().prop_map(Asked::Suffix),
            ]
        }

        /// `asked` as a header may spell it: the unit in any case, optional white space around
        /// every part, leading zeros.
        fn header(asked: Asked) -> impl Strategy<Value = String> {
            let ows = prop::sample::select(vec!["", "", " ", "\t", " \t "]);
            let unit = prop::sample::select(vec!["bytes", "BYTES", "Bytes"]);
            (unit, prop::array::uniform6(ows), 0..3usize, 0..3usize).prop_map(
                move |(unit, [o0, o1, o2, o3, o4, o5], z1, z2)| {
                    let spell = |n: u64, zeros: usize| format!("{}{n}", "0".repeat(zeros));
                    let (first, last) = match asked {
                        Asked::FromTo(a, b) => (spell(a, z1), spell(b, z2)),
                        Asked::From(a) => (spell(a, z1), String::new()),
                        Asked::Suffix(n) => (String::new(), spell(n, z2)),
                    };
                    format!("{o0}{unit}{o1}={o2}{first}{o3}-{o4}{last}{o5}")
                },
            )
        }

        /// Headers of every shape: well-formed single ranges, numbers too long for 64 bits, and
        /// text made of what range headers are made of (with or without the unit), mixed with any
        /// character.
        fn any_header() -> impl Strategy<Value = String> {
            const POOL: &str = "bytesBYTES=-,0123456789 \t";
            let digits = || {
                let digit = prop::sample::select(('0'..='9').collect::<Vec<_>>());
                prop::collection::vec(digit, 0..=30).prop_map(String::from_iter)
            };
            prop_oneof![
                asked().prop_flat_map(header),
                (digits(), digits()).prop_map(|(first, last)| format!("bytes={first}-{last}")),
                text(POOL, 40),
                text(POOL, 30).prop_map(|t| format!("bytes={t}")),
            ]
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn a_single_range_is_answered_as_the_contract_says(
                (asked, header) in asked().prop_flat_map(|a| (Just(a), header(a))),
                size in number(),
            ) {
                prop_assert_eq!(resolve_range(&header, size), contract(asked, size));
            }

            #[test]
            fn a_partial_answer_lies_within_the_file(header in any_header(), size in number()) {
                match resolve_range(&header, size) {
                    RangeOutcome::Partial(range) => {
                        prop_assert!(range.start() <= range.end(), "{:?}", range);
                        prop_assert!(range.end() < size, "{:?} outside {} bytes", range, size);
                        prop_assert_eq!(range.len(), range.end() - range.start() + 1);
                    }
                    RangeOutcome::Full | RangeOutcome::Unsatisfiable => {}
                }
                // No unit, or several ranges: the whole file.
                if !header.contains('=') || header.contains(',') {
                    prop_assert_eq!(resolve_range(&header, size), RangeOutcome::Full);
                }
            }

            #[test]
            fn a_suffix_longer_than_the_file_is_the_whole_file(
                size in 1..=u64::MAX,
                extra in number(),
            ) {
                let header = format!("bytes=-{}", size.saturating_add(extra));
                let whole = RangeOutcome::Partial(ByteRange::new(0, size - 1).unwrap());
                prop_assert_eq!(resolve_range(&header, size), whole);
            }
        }
    }
}
