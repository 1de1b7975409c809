//! `Range` header resolution: any header text against any file size.
//!
//! Input: 8 bytes of file size (little-endian), then the header value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stowage_domain::{RangeOutcome, resolve_range};

fuzz_target!(|data: &[u8]| {
    let (size, header) = stowage_fuzz::take_u64(data);
    let header = String::from_utf8_lossy(header);
    // Small sizes reach the edge cases (empty file, last byte) far more often than random u64s.
    for size in [size, size % 1024] {
        match resolve_range(&header, size) {
            RangeOutcome::Partial(range) => {
                assert!(size > 0, "a partial answer for an empty file");
                assert!(range.start() <= range.end(), "{range:?}");
                assert!(range.end() < size, "{range:?} outside {size} bytes");
                assert_eq!(range.len(), range.end() - range.start() + 1);
                assert!(range.len() <= size);
            }
            RangeOutcome::Unsatisfiable | RangeOutcome::Full => {}
        }
    }
    // Without a usable `bytes=` unit the whole file is sent.
    if !header.contains('=') {
        assert_eq!(resolve_range(&header, size), RangeOutcome::Full);
    }
});
