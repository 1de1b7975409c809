//! HS256 JWT verification.
//!
//! Input: a mode byte, then either a whole token (even mode: what a client may send, which almost
//! never carries a valid signature) or a header JSON and a claims JSON separated by a newline (odd
//! mode: signed here with the verifier's secret, so the claims parsing and expiry checks behind
//! the signature are reached too).

#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use std::sync::Arc;
use stowage_application::ports::{TokenKind, TokenVerifier};
use stowage_infrastructure::{Hs256Jwt, JwtClaims};

const SECRET: &[u8] = b"fuzzing secret";

fn signed(header: &[u8], claims: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(SECRET) else {
        return input;
    };
    mac.update(input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{input}.{signature}")
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let jwt = Hs256Jwt::new(SECRET, Arc::new(stowage_fuzz::FixedClock));
    let token = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let (header, claims) = stowage_fuzz::split_at_byte(rest, b'\n');
        signed(header, claims)
    };
    let Ok(claims) = jwt.verify(&token) else {
        return;
    };
    // A verified token was signed with the secret, and its claims sign and verify again.
    let reissued = jwt.sign(&JwtClaims {
        user_id: claims.user_id.map(|u| u.get()),
        account_id: claims.account_id.get(),
        exp: None,
        nbf: None,
        iat: None,
        token_type: None,
        task_id: None,
    });
    match jwt.verify(&reissued) {
        Ok(again) => {
            assert_eq!(again.user_id, claims.user_id);
            assert_eq!(again.account_id, claims.account_id);
            assert_eq!(again.kind, TokenKind::User);
        }
        Err(e) => panic!("a token signed for {claims:?} is refused: {e}"),
    }
    // The same token under another secret is refused.
    let other = Hs256Jwt::new(b"another secret", Arc::new(stowage_fuzz::FixedClock));
    assert!(other.verify(&token).is_err(), "verified under two secrets");
});
