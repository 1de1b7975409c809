//! File keys and metadata objects: what parses keeps its rules and reads back the same.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stowage_domain::{FileKey, MAX_KEY_BYTES, MAX_METADATA_BYTES, Metadata};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    if let Ok(key) = FileKey::parse(&text) {
        assert_eq!(key.as_str(), text, "a key is kept as given");
        assert_eq!(key.to_string(), text);
        assert!(!key.as_str().is_empty() && key.as_str().len() <= MAX_KEY_BYTES);
        assert!(!key.as_str().chars().any(char::is_control));
        assert!(
            key.as_str()
                .split('/')
                .all(|s| !s.is_empty() && s != "." && s != ".."),
            "{key:?}"
        );
        assert_eq!(FileKey::parse(key.as_str()), Ok(key));
    }

    if let Ok(metadata) = Metadata::parse(&text) {
        let kept = metadata.as_str();
        assert!(kept.starts_with('{') && kept.ends_with('}'), "{kept:?}");
        assert!(
            kept.len() <= MAX_METADATA_BYTES,
            "kept {} bytes",
            kept.len()
        );
        assert_eq!(
            Metadata::parse(kept),
            Ok(metadata.clone()),
            "not a fixed point"
        );
    }
});
