//! Identifiers and small values clients send in paths and queries: file ids (and the ids of
//! direct and resumable uploads, spelled the same), SHA-256 digests, visibilities and listing
//! cursors. Whatever parses prints back as its one canonical spelling.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stowage_application::ports::{DirectUploadId, ListCursor, ResumableId};
use stowage_domain::{FileId, Sha256Digest, Visibility};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    let id = FileId::parse(&text);
    if let Ok(id) = id {
        assert_eq!(id.to_string(), text, "a file id has one spelling");
        assert_eq!(id.as_uuid().get_version_num(), 4);
    }
    assert_eq!(text.parse::<FileId>(), id);
    assert_eq!(DirectUploadId::parse(&text).is_some(), id.is_ok());
    if let Some(resumable) = ResumableId::parse(&text) {
        assert_eq!(resumable.as_uuid().hyphenated().to_string(), text);
    }
    assert_eq!(ResumableId::parse(&text).is_some(), id.is_ok());

    if let Ok(digest) = Sha256Digest::parse_hex(&text) {
        assert_eq!(digest.to_hex(), text.to_ascii_lowercase());
        assert_eq!(Sha256Digest::parse_hex(&digest.to_hex()), Ok(digest));
    }

    if let Some(visibility) = Visibility::parse(&text) {
        assert_eq!(visibility.as_str(), text);
    }

    if let Some(cursor) = ListCursor::decode(&text) {
        assert_eq!(
            ListCursor::decode(&cursor.encode()),
            Some(cursor),
            "cursor round trip"
        );
    }
});
