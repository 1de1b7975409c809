//! The tus request headers read as numbers, lengths, concatenations and checksums: any value a
//! client sends is either read or refused with `400 VALIDATION_ERROR` (never a `500`), and what
//! is read says what the header says.
//!
//! Input: `name: value` lines; lines that are not a valid header are skipped.

#![no_main]

use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use stowage_application::ports::Concat;
use stowage_presentation::ApiError;
use stowage_presentation::fuzzing::{
    concat_of, creation_length, optional_number, required_number, text, upload_checksum,
};

/// `result`'s value, after checking that a refusal is the client's mistake.
fn read<T>(result: Result<T, ApiError>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(e) => {
            assert_eq!(e.into_response().status(), StatusCode::BAD_REQUEST);
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let headers = stowage_fuzz::headers_of(data);

    for name in ["upload-length", "upload-offset", "upload-defer-length"] {
        let sent = read(text(&headers, name));
        if let Some(Some(number)) = read(optional_number(&headers, name)) {
            let sent = sent.flatten().unwrap_or_default();
            // The digits sent, without a sign or leading zeros, are the number read.
            let digits = sent.trim();
            let digits = digits
                .strip_prefix('+')
                .unwrap_or(digits)
                .trim_start_matches('0');
            let digits = if digits.is_empty() { "0" } else { digits };
            assert_eq!(digits, number.to_string(), "{sent:?} read as {number}");
        }
        if let Some(number) = read(required_number(&headers, name)) {
            assert_eq!(read(optional_number(&headers, name)), Some(Some(number)));
        }
    }

    let concat = read(concat_of(&headers)).flatten();
    if let Some(Concat::Final(ids)) = &concat {
        let sent = read(text(&headers, "upload-concat"))
            .flatten()
            .unwrap_or_default();
        let urls = sent
            .trim()
            .trim_start_matches("final;")
            .split_whitespace()
            .count();
        assert_eq!(ids.len(), urls);
    }
    if let Some(length) = read(creation_length(&headers, concat.as_ref())) {
        let sent = read(optional_number(&headers, "upload-length")).flatten();
        match length {
            Some(length) => assert_eq!(sent, Some(length)),
            None => assert!(
                matches!(concat, Some(Concat::Final(_))) || sent.is_none(),
                "an Upload-Length of {sent:?} dropped"
            ),
        }
    }

    if let Some(Some(checksum)) = read(upload_checksum(&headers)) {
        let sent = read(text(&headers, "upload-checksum"))
            .flatten()
            .unwrap_or_default();
        let digest = sent
            .trim()
            .split_once(' ')
            .map(|(_, d)| d.trim())
            .unwrap_or_default();
        assert_eq!(STANDARD.encode(&checksum.expected), digest);
    }
});
