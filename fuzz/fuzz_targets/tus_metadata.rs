//! tus `Upload-Metadata`: what parses is what the fields say, and writing the parsed fields back
//! as a header reads the same again. Also the other small tus and token spellings clients send:
//! `Upload-Checksum` algorithm names and the JWT shape test.

#![no_main]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use stowage_application::checksum::ChecksumAlgorithm;
use stowage_application::use_cases::UploadMetadata;
use stowage_application::use_cases::authenticate::looks_like_jwt;
use stowage_domain::FileKey;

/// The header a client would send for `metadata`.
fn header_of(metadata: &UploadMetadata) -> String {
    let fields = [
        ("filename", metadata.filename.as_deref()),
        ("filetype", metadata.declared_type.as_deref()),
        ("policy", metadata.policy.as_deref()),
        ("key", metadata.key.as_ref().map(FileKey::as_str)),
        ("visibility", metadata.visibility.map(|v| v.as_str())),
    ];
    fields
        .iter()
        .filter_map(|(name, value)| value.map(|v| format!("{name} {}", STANDARD.encode(v))))
        .collect::<Vec<_>>()
        .join(",")
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    if let Ok(metadata) = UploadMetadata::parse(Some(&text)) {
        for value in [
            &metadata.filename,
            &metadata.declared_type,
            &metadata.policy,
        ] {
            assert!(value.as_ref().is_none_or(|v| !v.is_empty()), "{metadata:?}");
        }
        if let Some(key) = &metadata.key {
            assert_eq!(FileKey::parse(key.as_str()).as_ref(), Ok(key));
        }
        let again = header_of(&metadata);
        match UploadMetadata::parse(Some(&again)) {
            Ok(reparsed) => assert_eq!(reparsed, metadata, "from {again:?}"),
            Err(e) => panic!("{again:?} written from {metadata:?} is refused: {e}"),
        }
    }
    if text.trim().is_empty() {
        assert!(UploadMetadata::parse(Some(&text)).is_ok_and(|m| m == UploadMetadata::default()));
    }

    if let Some(algorithm) = ChecksumAlgorithm::from_name(&text) {
        assert!(
            ChecksumAlgorithm::ALL
                .iter()
                .any(|(name, a)| *a == algorithm && name.eq_ignore_ascii_case(&text))
        );
    }
    if looks_like_jwt(&text) {
        assert_eq!(text.split('.').count(), 3);
    }
});
