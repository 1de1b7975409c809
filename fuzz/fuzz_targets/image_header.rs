//! Image headers: `probe` over the whole file and `HeaderReader` over the same bytes cut into
//! arbitrary chunks must agree, and a found header states a real size.
//!
//! Input: a chunk plan, then the file (see `stowage_fuzz::Chunked`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use stowage_domain::image::header::{HeaderReader, Probe, exif_orientation, probe};

fuzz_target!(|data: &[u8]| {
    let input = stowage_fuzz::Chunked::new(data);
    let file = input.file;

    let whole = probe(file);
    let mut reader = HeaderReader::new();
    let mut first: Option<Probe> = None;
    for chunk in input.chunks() {
        let outcome = reader.push(chunk);
        if let Some(known) = first {
            assert_eq!(outcome, Some(known), "an outcome changed once known");
        }
        assert_ne!(outcome, Some(Probe::NeedMore));
        first = first.or(outcome);
    }
    assert_eq!(reader.outcome(), whole, "chunked and whole disagree");
    assert_eq!(first.unwrap_or(Probe::NeedMore), whole);
    let expected_end = match whole {
        Probe::NeedMore => Probe::NotImage,
        known => known,
    };
    assert_eq!(reader.finish(), expected_end);

    if let Probe::Found(header) = whole {
        assert!(header.width > 0 && header.height > 0, "{header:?}");
        assert!(
            header.orientation.is_none_or(|o| (1..=8).contains(&o)),
            "{header:?}"
        );
        assert_eq!(
            header.pixels(),
            u64::from(header.width) * u64::from(header.height)
        );
        let (w, h) = header.oriented_size();
        assert_eq!(u64::from(w) * u64::from(h), header.pixels());
        assert!(header.format.media_type().starts_with("image/"));
    }

    assert!(exif_orientation(file).is_none_or(|o| (1..=8).contains(&o)));
});
