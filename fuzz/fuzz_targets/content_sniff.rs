//! Content type sniffing and the upload rule that weighs a declared type against the first bytes.
//!
//! Input: one byte `n`; when `n < 128`, the next `n` bytes are the declared type (else none is
//! declared); the rest is the file's start.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stowage_domain::{ContentType, SNIFF_LEN};

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (declared, prefix) = if n < 128 {
        let (declared, prefix) = rest.split_at(rest.len().min(usize::from(n)));
        (Some(String::from_utf8_lossy(declared)), prefix)
    } else {
        (None, rest)
    };
    let declared = declared.as_deref();
    let head = &prefix[..prefix.len().min(SNIFF_LEN)];

    let sniffed = ContentType::sniff(prefix);
    assert_eq!(sniffed, ContentType::sniff(head), "looked past SNIFF_LEN");

    let resolved = ContentType::resolve(declared, prefix);
    assert_eq!(
        resolved,
        ContentType::resolve(declared, head),
        "looked past SNIFF_LEN"
    );
    // What the rule keeps is an allow-listed type in canonical form.
    assert_eq!(ContentType::from_legacy(resolved.as_str()), resolved);
    // Resolving again with the outcome declared changes nothing.
    assert_eq!(
        ContentType::resolve(Some(resolved.as_str()), prefix),
        resolved
    );
    // Without a declared type, the outcome is the sniffed type or octet-stream.
    let undeclared = ContentType::resolve(None, prefix);
    assert!(
        undeclared == ContentType::octet_stream() || Some(&undeclared) == sniffed.as_ref(),
        "{undeclared:?} from {sniffed:?}"
    );

    let _ = resolved.is_inline_safe();
    let _ = resolved.matches_any(&["image/*", "*/*", "text/plain"]);
    if let Some(declared) = declared {
        let _ = ContentType::from_legacy(declared);
        let _ = ContentType::from_stored(declared.to_owned()).is_inline_safe();
        let _ = resolved.matches_any(&[declared]);
    }
});
