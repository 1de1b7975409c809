//! [`UrlSigner`] with HMAC-SHA256 over `"{file_id}:{expires}"` (and `":{scope}"` when there is one).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use stowage_application::ports::UrlSigner;
use stowage_domain::FileId;

type HmacSha256 = Hmac<Sha256>;

/// Domain separation: the signing key is derived from the configured secret, never the secret itself,
/// so a signature can never double as a JWT signature made with the same secret.
const KEY_CONTEXT: &[u8] = b"stowage signed-url key v1";

/// Signs download URLs with a key derived from `SIGNED_URL_SECRET` (or `AUTH_SECRET_KEY`).
#[derive(Clone)]
pub struct HmacUrlSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for HmacUrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HmacUrlSigner")
            .field("key", &"[REDACTED]")
            .finish()
    }
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; the fallback keeps this path panic-free.
    HmacSha256::new_from_slice(key)
        .unwrap_or_else(|_| <HmacSha256 as hmac::digest::KeyInit>::new(&Default::default()))
}

impl HmacUrlSigner {
    /// A signer whose key is derived from `secret`.
    pub fn new(secret: &[u8]) -> Self {
        let mut derive = mac(secret);
        derive.update(KEY_CONTEXT);
        Self {
            key: derive.finalize().into_bytes().into(),
        }
    }

    fn tag(&self, file_id: FileId, expires: i64, scope: &str) -> HmacSha256 {
        let mut m = mac(&self.key);
        m.update(format!("{file_id}:{expires}").as_bytes());
        if !scope.is_empty() {
            m.update(b":");
            m.update(scope.as_bytes());
        }
        m
    }
}

impl UrlSigner for HmacUrlSigner {
    fn sign(&self, file_id: FileId, expires: i64, scope: &str) -> String {
        hex::encode(self.tag(file_id, expires, scope).finalize().into_bytes())
    }

    fn verify(&self, file_id: FileId, expires: i64, scope: &str, signature: &str) -> bool {
        let Ok(given) = hex::decode(signature) else {
            return false;
        };
        self.tag(file_id, expires, scope)
            .verify_slice(&given)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_verifies_only_for_its_file_expiry_and_key() {
        let signer = HmacUrlSigner::new(b"secret");
        let id = FileId::new_random();
        let sig = signer.sign(id, 100, "");
        assert_eq!(sig.len(), 64);
        assert!(signer.verify(id, 100, "", &sig));
        assert!(
            signer.verify(id, 100, "", &sig.to_uppercase()),
            "hex case does not matter"
        );
        assert!(!signer.verify(id, 101, "", &sig));
        assert!(!signer.verify(FileId::new_random(), 100, "", &sig));
        assert!(!HmacUrlSigner::new(b"other").verify(id, 100, "", &sig));
        assert!(!signer.verify(id, 100, "", &sig[..62]));
        assert!(!signer.verify(id, 100, "", "zz"));
        let scoped = signer.sign(id, 100, "w=300");
        assert!(signer.verify(id, 100, "w=300", &scoped));
        assert_ne!(scoped, sig);
        assert!(!signer.verify(id, 100, "w=301", &scoped));
        assert!(!signer.verify(id, 100, "", &scoped));
        assert!(!signer.verify(id, 100, "", ""));
    }

    #[test]
    fn debug_hides_the_key() {
        assert!(format!("{:?}", HmacUrlSigner::new(b"s")).contains("REDACTED"));
    }
}
