//! Hashes that span requests: a resumable upload's SHA-256, saved between its requests, and the
//! checksum a tus client announces for one request's bytes.

use sha2_state::digest::common::hazmat::{SerializableState, SerializedState};
use sha2_state::digest::{Digest, DynDigest};
use stowage_domain::Sha256Digest;

/// The SHA-256 of an upload's bytes so far, which survives between requests (and replicas) as
/// bytes kept with the upload's state.
#[derive(Clone, Default)]
pub struct ResumableDigest {
    hasher: sha2_state::Sha256,
}

impl std::fmt::Debug for ResumableDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumableDigest").finish_non_exhaustive()
    }
}

/// The saved state of a [`ResumableDigest`] is not one it produced.
#[derive(Debug, thiserror::Error)]
#[error("the saved SHA-256 state is corrupt")]
pub struct CorruptDigestState;

impl ResumableDigest {
    /// The digest of no bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Restores a digest saved by [`ResumableDigest::save`]; empty bytes are the digest of no bytes.
    ///
    /// # Errors
    /// [`CorruptDigestState`] when `saved` is not such a state.
    pub fn restore(saved: &[u8]) -> Result<Self, CorruptDigestState> {
        if saved.is_empty() {
            return Ok(Self::new());
        }
        let state = SerializedState::<sha2_state::Sha256>::try_from(saved)
            .map_err(|_| CorruptDigestState)?;
        let hasher = sha2_state::Sha256::deserialize(&state).map_err(|_| CorruptDigestState)?;
        Ok(Self { hasher })
    }

    /// The state to keep, for [`ResumableDigest::restore`].
    pub fn save(&self) -> Vec<u8> {
        self.hasher.serialize().to_vec()
    }

    /// Feeds the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        Digest::update(&mut self.hasher, bytes);
    }

    /// The SHA-256 of every byte fed.
    pub fn finish(self) -> Sha256Digest {
        let mut out = [0u8; 32];
        out.copy_from_slice(&self.hasher.finalize());
        Sha256Digest::from_bytes(out)
    }
}

/// The algorithms tus's checksum extension may name in `Upload-Checksum`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumAlgorithm {
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
    /// MD5.
    Md5,
}

impl ChecksumAlgorithm {
    /// Every supported algorithm, by its tus name, in the order `Tus-Checksum-Algorithm` lists them.
    pub const ALL: [(&'static str, ChecksumAlgorithm); 3] = [
        ("sha1", ChecksumAlgorithm::Sha1),
        ("sha256", ChecksumAlgorithm::Sha256),
        ("md5", ChecksumAlgorithm::Md5),
    ];

    /// The algorithm of a tus name; `None` for one not supported.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|(_, algorithm)| *algorithm)
    }
}

/// A checksum a client announced for the bytes of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checksum {
    /// How it was computed.
    pub algorithm: ChecksumAlgorithm,
    /// The digest the client announced.
    pub expected: Vec<u8>,
}

/// Hashes one request's bytes to check them against an announced [`Checksum`].
pub struct ChecksumVerifier {
    hasher: Box<dyn DynDigest + Send>,
    expected: Vec<u8>,
}

impl ChecksumVerifier {
    /// A verifier of `checksum`.
    pub fn new(checksum: &Checksum) -> Self {
        let hasher: Box<dyn DynDigest + Send> = match checksum.algorithm {
            ChecksumAlgorithm::Sha1 => Box::new(sha1_checksum::Sha1::new()),
            ChecksumAlgorithm::Sha256 => Box::new(sha2_state::Sha256::new()),
            ChecksumAlgorithm::Md5 => Box::new(md5_checksum::Md5::new()),
        };
        Self {
            hasher,
            expected: checksum.expected.clone(),
        }
    }

    /// Feeds the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
    }

    /// Whether the bytes fed are those the checksum announced.
    pub fn matches(self) -> bool {
        *self.hasher.finalize() == *self.expected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_and_restored_digest_equals_one_over_all_bytes() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut whole = ResumableDigest::new();
        whole.update(&data);
        for cut in [0, 1, 63, 64, 65, 4_097, 10_000] {
            let mut first = ResumableDigest::new();
            first.update(&data[..cut]);
            let mut second = ResumableDigest::restore(&first.save()).expect("restores");
            second.update(&data[cut..]);
            assert_eq!(second.finish(), whole.clone().finish(), "cut at {cut}");
        }
        assert_eq!(
            ResumableDigest::restore(&[])
                .expect("empty")
                .finish()
                .to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn a_corrupt_state_is_refused() {
        assert!(ResumableDigest::restore(&[1, 2, 3]).is_err());
    }

    #[test]
    fn checksums_match_only_their_bytes() {
        let cases = [
            (
                ChecksumAlgorithm::Sha1,
                "a9993e364706816aba3e25717850c26c9cd0d89d",
            ),
            (
                ChecksumAlgorithm::Sha256,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (ChecksumAlgorithm::Md5, "900150983cd24fb0d6963f7d28e17f72"),
        ];
        for (algorithm, hex_digest) in cases {
            let checksum = Checksum {
                algorithm,
                expected: hex::decode(hex_digest).expect("hex"),
            };
            let mut good = ChecksumVerifier::new(&checksum);
            good.update(b"ab");
            good.update(b"c");
            assert!(good.matches(), "{algorithm:?}");
            let mut bad = ChecksumVerifier::new(&checksum);
            bad.update(b"abd");
            assert!(!bad.matches(), "{algorithm:?}");
        }
        assert_eq!(
            ChecksumAlgorithm::from_name("SHA256"),
            Some(ChecksumAlgorithm::Sha256)
        );
        assert_eq!(ChecksumAlgorithm::from_name("crc32"), None);
    }
}
