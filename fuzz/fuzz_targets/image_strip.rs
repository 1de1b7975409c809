//! Metadata stripping, for every format: `strip` over the whole file and `MetadataStripper` over
//! the same bytes cut into arbitrary chunks must agree, never grow the file, and keep failing once
//! they have failed.
//!
//! Input: a chunk plan, then the file (see `stowage_fuzz::Chunked`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use stowage_domain::image::strip::{MetadataStripper, StripError, StripFormat, strip};

fn streamed(format: StripFormat, chunks: &[&[u8]]) -> Result<Vec<u8>, StripError> {
    let mut stripper = MetadataStripper::new(format);
    let mut out = Vec::new();
    for chunk in chunks {
        if let Err(e) = stripper.push(chunk, &mut out) {
            assert_eq!(
                stripper.push(b"more", &mut out),
                Err(e.clone()),
                "errors are sticky"
            );
            assert_eq!(
                stripper.finish(&mut out),
                Err(e.clone()),
                "errors are sticky"
            );
            return Err(e);
        }
    }
    stripper.finish(&mut out)?;
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    let input = stowage_fuzz::Chunked::new(data);
    let file = input.file;
    let chunks = input.chunks();
    for format in [StripFormat::Jpeg, StripFormat::Png, StripFormat::WebP] {
        let whole = strip(format, file);
        let pieces = streamed(format, &chunks);
        match (&whole, &pieces) {
            (Ok(a), Ok(b)) => assert!(a == b, "{format:?}: chunked output differs"),
            (Err(_), Err(_)) => {}
            _ => panic!(
                "{format:?}: whole {:?} but chunked {:?}",
                whole.as_ref().map(Vec::len),
                pieces.as_ref().map(Vec::len)
            ),
        }
        if let Ok(out) = whole {
            assert!(
                out.len() <= file.len(),
                "{format:?}: {} > {}",
                out.len(),
                file.len()
            );
            assert_eq!(
                strip(format, &out),
                Ok(out.clone()),
                "{format:?}: not idempotent"
            );
        }
    }
});
