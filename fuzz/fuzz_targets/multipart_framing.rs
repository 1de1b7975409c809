//! The multipart framing guard (the bounded reader in front of multer): whatever the body and
//! however the network cuts it, the guard passes the bytes through unchanged, fails at the same
//! byte and notes the same part starts as when the body arrives one byte at a time.
//!
//! Input: a boundary (a length byte, then its characters: ASCII letters, digits and `-` as sent,
//! any other byte one of `-`, `0`, `a`, so that boundaries that overlap themselves, like curl's
//! `-----…`, come often), then a chunk plan and a body (see [`Chunked`]). The limit is fixed small,
//! so that short inputs reach both ends of every region.

#![no_main]

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::StreamExt;
use libfuzzer_sys::fuzz_target;
use stowage_fuzz::{Chunked, ready};
use stowage_presentation::fuzzing::{FramingTooLong, PartStarts, bounded};

const LIMIT: usize = 96;

/// The boundary at the start of `data`, and the rest.
fn boundary(data: &[u8]) -> (String, &[u8]) {
    let Some((&spec, rest)) = data.split_first() else {
        return ("b0und".to_owned(), data);
    };
    let (chars, rest) = rest.split_at(rest.len().min(1 + usize::from(spec % 70)));
    let boundary = chars
        .iter()
        .map(|&b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' => char::from(b),
            _ => char::from(b"-0a"[usize::from(b % 3)]),
        })
        .collect::<String>();
    if boundary.is_empty() {
        return ("b0und".to_owned(), rest);
    }
    (boundary, rest)
}

/// What the guard made of a body delivered as `chunks`.
struct Outcome {
    /// The bytes passed through before the guard failed or the body ended.
    passed: Vec<u8>,
    /// The failure and the bytes of the body (a range) in the chunk that brought it.
    failure: Option<(FramingTooLong, std::ops::Range<usize>)>,
    starts: Vec<u64>,
}

fn guard(boundary: &str, chunks: &[&[u8]]) -> Outcome {
    let items: Vec<Result<Bytes, Infallible>> = chunks
        .iter()
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let mut stream = bounded(futures_util::stream::iter(items), boundary, LIMIT);
    let part_starts: PartStarts = stream.part_starts();
    let (mut passed, mut delivered, mut failure) = (Vec::new(), 0, None);
    for chunk in chunks {
        let next = ready(stream.next()).flatten();
        let range = delivered..delivered + chunk.len();
        delivered = range.end;
        match next {
            Some(Ok(bytes)) => {
                assert_eq!(&bytes[..], *chunk, "the guard changed a chunk");
                passed.extend_from_slice(&bytes);
            }
            Some(Err(e)) => {
                let too_long = e
                    .downcast::<FramingTooLong>()
                    .unwrap_or_else(|e| panic!("not a framing error: {e}"));
                failure = Some((*too_long, range));
                break;
            }
            None => panic!("the guard ended before its body"),
        }
    }
    if failure.is_some() {
        assert!(
            ready(stream.next()).flatten().is_none(),
            "a failed guard goes on"
        );
    }
    let starts = (0..).map_while(|i| part_starts.get(i)).collect();
    Outcome {
        passed,
        failure,
        starts,
    }
}

fuzz_target!(|data: &[u8]| {
    let (boundary, data) = boundary(data);
    let input = Chunked::new(data);
    let chunks = input.chunks();
    let as_cut = guard(&boundary, &chunks);
    let bytes: Vec<&[u8]> = input.file.chunks(1).collect();
    let one_by_one = guard(&boundary, &bytes);

    assert!(input.file.starts_with(&as_cut.passed));
    match (&as_cut.failure, &one_by_one.failure) {
        (None, None) => assert_eq!(as_cut.passed, input.file),
        (Some((cut_error, chunk)), Some((byte_error, byte))) => {
            assert_eq!(cut_error, byte_error);
            // It fails in the chunk holding the byte that fails it alone.
            assert!(chunk.contains(&byte.start), "{chunk:?} {byte:?}");
        }
        (cut, byte) => panic!("cut {cut:?}, one by one {byte:?}"),
    }
    assert_eq!(as_cut.starts, one_by_one.starts);
    for pair in as_cut.starts.windows(2) {
        assert!(
            pair[0] < pair[1],
            "part starts out of order: {:?}",
            as_cut.starts
        );
    }
});
