//! Filename sanitising: a fixed point, at most 255 bytes, never empty, nothing a path or a header
//! could misread.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stowage_domain::Filename;

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let name = Filename::sanitize(&raw);
    let text = name.as_str();
    assert!(!text.is_empty());
    assert!(text.len() <= 255, "{} bytes", text.len());
    assert!(!text.contains('/'), "{text:?}");
    assert!(!text.chars().any(char::is_control), "{text:?}");
    assert_eq!(Filename::sanitize(text), name, "not a fixed point");
    let fallback = name.ascii_fallback();
    assert!(!fallback.is_empty());
    assert!(
        fallback
            .bytes()
            .all(|b| b.is_ascii() && !b.is_ascii_control() && b != b'"' && b != b'\\'),
        "{fallback:?}"
    );
});
