//! Upload URL tokens (`HmacUploadUrlSigner::verify`) and download URL signatures
//! (`HmacUrlSigner::verify`).
//!
//! Input: a mode byte, then by `mode % 3`:
//! - 0: a whole upload URL token, as a client may send it;
//! - 1: the grant's JSON text, encoded and signed here the way the signer does (a key derived
//!   from the secret, a MAC over a prefix and the encoded grant), so the grant decoding behind
//!   the MAC is reached;
//! - 2: 8 bytes of expiry, then a download URL's signed parameters, `|` and its signature.

#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use stowage_application::ports::{UploadUrlSigner, UrlSigner};
use stowage_domain::FileId;
use stowage_infrastructure::{HmacUploadUrlSigner, HmacUrlSigner};

const SECRET: &[u8] = b"fuzzing secret";

/// The signer's key derivation and MAC, as `stowage_infrastructure::upload_url` documents them.
fn signed(payload: &str) -> Option<String> {
    let mut derive = Hmac::<Sha256>::new_from_slice(SECRET).ok()?;
    derive.update(b"stowage upload-url key v1");
    let key = derive.finalize().into_bytes();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(b"stowage-upload-url\n");
    mac.update(payload.as_bytes());
    Some(format!(
        "{payload}.{}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let signer = HmacUploadUrlSigner::new(SECRET);
    match mode % 3 {
        0 | 1 => {
            let token = if mode % 3 == 0 {
                String::from_utf8_lossy(rest).into_owned()
            } else {
                let Some(token) = signed(&URL_SAFE_NO_PAD.encode(rest)) else {
                    return;
                };
                token
            };
            let Some(grant) = signer.verify(&token) else {
                return;
            };
            // What verifies signs again into a token that reads back as the same grant.
            let again = signer.sign(&grant);
            assert_eq!(signer.verify(&again), Some(grant), "from {again:?}");
            let other = HmacUploadUrlSigner::new(b"another secret");
            assert_eq!(other.verify(&token), None, "verified under two secrets");
        }
        _ => {
            let (expires, signature) = stowage_fuzz::take_u64(rest);
            let expires = i64::from_le_bytes(expires.to_le_bytes());
            // The variant parameters a URL was signed for, then the signature.
            let (scope, signature) = stowage_fuzz::split_at_byte(signature, b'|');
            let (scope, signature) = (
                String::from_utf8_lossy(scope),
                String::from_utf8_lossy(signature),
            );
            let Ok(id) = FileId::parse("6f1c2b8e-3d4a-4b5c-9d6e-7f8091a2b3c4") else {
                return;
            };
            let url_signer = HmacUrlSigner::new(SECRET);
            let good = url_signer.sign(id, expires, &scope);
            assert!(url_signer.verify(id, expires, &scope, &good));
            assert!(url_signer.verify(id, expires, &scope, &good.to_ascii_uppercase()));
            // No parameter can be added to a signed URL, nor its expiry moved.
            let widened = format!("{scope}&w=1");
            assert!(!url_signer.verify(id, expires, &widened, &good));
            assert!(!url_signer.verify(id, expires.wrapping_add(1), &scope, &good));
            // A sent signature verifies exactly when it is the signature, in either case.
            assert_eq!(
                url_signer.verify(id, expires, &scope, &signature),
                signature.to_ascii_lowercase() == good,
                "{signature:?}"
            );
        }
    }
});
