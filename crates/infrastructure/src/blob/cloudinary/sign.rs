//! Cloudinary's two signatures: API parameters and delivery URLs.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use secrecy::{ExposeSecret, SecretString};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::settings::SignatureAlgorithm;

/// Signs requests and URLs with one account's secret.
#[derive(Clone)]
pub(super) struct Signer {
    pub(super) api_key: String,
    secret: SecretString,
    algorithm: SignatureAlgorithm,
}

impl Signer {
    pub(super) fn new(
        api_key: String,
        secret: SecretString,
        algorithm: SignatureAlgorithm,
    ) -> Self {
        Self {
            api_key,
            secret,
            algorithm,
        }
    }

    fn digest(&self, text: &str) -> Vec<u8> {
        let secret = self.secret.expose_secret().as_bytes();
        match self.algorithm {
            SignatureAlgorithm::Sha1 => {
                let mut hasher = Sha1::new();
                hasher.update(text.as_bytes());
                hasher.update(secret);
                hasher.finalize().to_vec()
            }
            SignatureAlgorithm::Sha256 => {
                let mut hasher = Sha256::new();
                hasher.update(text.as_bytes());
                hasher.update(secret);
                hasher.finalize().to_vec()
            }
        }
    }

    /// The parameters of an Upload API call with `timestamp`, `api_key` and `signature` added:
    /// the signature covers every parameter but the file and the key, sorted by name, as
    /// `name=value` joined with `&`, followed by the secret.
    pub(super) fn signed_params(
        &self,
        mut params: Vec<(&'static str, String)>,
        timestamp: u64,
    ) -> Vec<(&'static str, String)> {
        params.push(("timestamp", timestamp.to_string()));
        params.sort_by(|a, b| a.0.cmp(b.0));
        let to_sign = params
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("&");
        let signature = hex::encode(self.digest(&to_sign));
        params.push(("api_key", self.api_key.clone()));
        params.push(("signature", signature));
        params
    }

    /// The `s--…--` component of a delivery URL of `public_id` (no transformation, no version):
    /// URL-safe base64 of the digest of the public id and the secret, 8 characters with SHA-1 and
    /// 32 with SHA-256.
    pub(super) fn url_signature(&self, public_id: &str) -> String {
        let encoded = URL_SAFE.encode(self.digest(public_id));
        let len = match self.algorithm {
            SignatureAlgorithm::Sha1 => 8,
            SignatureAlgorithm::Sha256 => 32,
        };
        format!("s--{}--", encoded.get(..len).unwrap_or(&encoded))
    }

    /// The secret, for the Admin API's HTTP Basic credentials.
    pub(super) fn secret(&self) -> &str {
        self.secret.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(algorithm: SignatureAlgorithm) -> Signer {
        Signer::new("1234".into(), "abcd".into(), algorithm)
    }

    #[test]
    fn api_parameters_are_signed_sorted_with_the_secret_appended() {
        // Cloudinary's documented example: public_id=sample_image&timestamp=1315060510abcd.
        let params = signer(SignatureAlgorithm::Sha1)
            .signed_params(vec![("public_id", "sample_image".into())], 1_315_060_510);

        let signature = &params.iter().find(|(n, _)| *n == "signature").unwrap().1;
        let expected = hex::encode(Sha1::digest(
            b"public_id=sample_image&timestamp=1315060510abcd",
        ));
        assert_eq!(signature, &expected);
        assert!(params.contains(&("api_key", "1234".into())));
    }

    #[test]
    fn sha256_accounts_sign_with_sha256() {
        let params = signer(SignatureAlgorithm::Sha256)
            .signed_params(vec![("type", "authenticated".into())], 1);

        let signature = &params.iter().find(|(n, _)| *n == "signature").unwrap().1;
        assert_eq!(
            signature,
            &hex::encode(Sha256::digest(b"timestamp=1&type=authenticatedabcd"))
        );
    }

    #[test]
    fn delivery_signatures_are_url_safe_prefixes_of_the_digest() {
        let short = signer(SignatureAlgorithm::Sha1).url_signature("folder/7/id");
        let long = signer(SignatureAlgorithm::Sha256).url_signature("folder/7/id");

        let full = URL_SAFE.encode(Sha1::digest(b"folder/7/idabcd"));
        assert_eq!(short, format!("s--{}--", &full[..8]));
        assert_eq!(long.len(), "s----".len() + 32);
        assert!(!long.contains('+') && !long.contains('/'));
    }
}
