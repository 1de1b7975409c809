//! Signed URLs: time-limited read access to one file, with no other credential.

use std::sync::Arc;
use std::time::Duration;

use stowage_domain::{FileId, Principal};
use time::OffsetDateTime;

use crate::error::Error;
use crate::events::RequestFacts;
use crate::ports::{Clock, UrlSigner};
use crate::use_cases::ReadAccess;

/// The longest a signed URL may live (7 days).
pub const MAX_SIGNED_URL_LIFETIME: Duration = Duration::from_secs(604_800);

/// A signed URL's query parameters.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedUrl {
    /// Expiry, Unix seconds (`expires=`).
    pub expires: i64,
    /// Hex HMAC (`signature=`).
    pub signature: String,
    /// Expiry as a time.
    pub expires_at: OffsetDateTime,
}

impl std::fmt::Debug for SignedUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedUrl")
            .field("expires", &self.expires)
            .field("signature", &"[REDACTED]")
            .finish()
    }
}

/// Issues signed URLs to readers of a file.
#[derive(Clone)]
pub struct CreateSignedUrl {
    access: ReadAccess,
    signer: Arc<dyn UrlSigner>,
    clock: Arc<dyn Clock>,
}

impl CreateSignedUrl {
    /// A use case over `access`, `signer` and `clock`.
    pub fn new(access: ReadAccess, signer: Arc<dyn UrlSigner>, clock: Arc<dyn Clock>) -> Self {
        Self {
            access,
            signer,
            clock,
        }
    }

    /// Signs `id` for `lifetime` if `principal` may read it; `scope` is the canonical form of the
    /// URL's other parameters (an image variant's), empty for the file itself.
    ///
    /// # Errors
    /// `Validation` for a lifetime of zero or over seven days; otherwise those of [`ReadAccess::authorize`].
    #[tracing::instrument(name = "create_signed_url", skip_all, fields(file_id = %id))]
    pub async fn execute(
        &self,
        principal: &Principal,
        id: FileId,
        lifetime: Duration,
        scope: &str,
        request: &RequestFacts,
    ) -> Result<SignedUrl, Error> {
        if lifetime.is_zero() || lifetime > MAX_SIGNED_URL_LIFETIME {
            return Err(Error::Validation(format!(
                "expires_in must be from 1 to {} seconds",
                MAX_SIGNED_URL_LIFETIME.as_secs()
            )));
        }
        self.access.authorize(principal, id, request).await?;
        let now = self.clock.now();
        let expires =
            now.unix_timestamp() + i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        let expires_at = OffsetDateTime::from_unix_timestamp(expires)
            .map_err(|e| Error::Internal(Box::new(e)))?;
        Ok(SignedUrl {
            expires,
            signature: self.signer.sign(id, expires, scope),
            expires_at,
        })
    }

    /// Signs each of `ids` (at most [`MAX_SIGNED_URLS`]) for `lifetime`, one result per id in
    /// order: a file `principal` may not read, or that does not exist, gets its own error.
    ///
    /// # Errors
    /// `Validation` for more than [`MAX_SIGNED_URLS`] ids or a lifetime out of range (then no id
    /// is signed).
    #[tracing::instrument(name = "create_signed_urls", skip_all, fields(count = ids.len()))]
    pub async fn execute_many(
        &self,
        principal: &Principal,
        ids: &[FileId],
        lifetime: Duration,
        request: &RequestFacts,
    ) -> Result<Vec<Result<SignedUrl, Error>>, Error> {
        if ids.len() > MAX_SIGNED_URLS {
            return Err(Error::Validation(format!(
                "file_ids holds at most {MAX_SIGNED_URLS} ids"
            )));
        }
        let mut signed = Vec::with_capacity(ids.len());
        for &id in ids {
            match self.execute(principal, id, lifetime, "", request).await {
                Err(e @ Error::Validation(_)) => return Err(e),
                result => signed.push(result),
            }
        }
        Ok(signed)
    }
}

/// The most ids one `POST /files/signed-urls` signs.
pub const MAX_SIGNED_URLS: usize = 100;

/// Checks a signed URL's parameters (`scope` being the canonical form of those beyond `expires`
/// and `signature`): signature first, then expiry, before any database call.
///
/// # Errors
/// `InvalidSignature` when the signature does not match or the URL has expired.
pub fn check_signature(
    signer: &dyn UrlSigner,
    clock: &dyn Clock,
    id: FileId,
    expires: i64,
    scope: &str,
    signature: &str,
) -> Result<(), Error> {
    if !signer.verify(id, expires, scope, signature) || clock.now().unix_timestamp() >= expires {
        return Err(Error::InvalidSignature);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::clock::MockClock;
    use crate::ports::file_repository::MockFileRepository;
    use crate::ports::url_signer::MockUrlSigner;
    use crate::use_cases::fixtures::{record, repo_returning, user};
    use stowage_domain::AccessPolicy;

    fn clock_at(t: i64) -> MockClock {
        let mut clock = MockClock::new();
        clock
            .expect_now()
            .returning(move || OffsetDateTime::from_unix_timestamp(t).unwrap());
        clock
    }

    /// Signed URLs for files in `repo`, signed by `signer`, at `now`, for their owners only.
    fn signing(repo: MockFileRepository, signer: MockUrlSigner, now: i64) -> CreateSignedUrl {
        CreateSignedUrl::new(
            ReadAccess::new(Arc::new(repo), None, AccessPolicy::Owner),
            Arc::new(signer),
            Arc::new(clock_at(now)),
        )
    }

    #[tokio::test]
    async fn readers_get_a_url_expiring_after_the_lifetime() {
        let rec = record(Some(1), 1);
        let id = rec.id();
        let mut signer = MockUrlSigner::new();
        signer.expect_sign().returning(|_, e, _| format!("sig{e}"));
        let use_case = signing(repo_returning(rec), signer, 1_000);
        let url = use_case
            .execute(
                &user(1, 1),
                id,
                Duration::from_secs(60),
                "",
                &RequestFacts::default(),
            )
            .await
            .unwrap();
        assert_eq!(url.expires, 1_060);
        assert_eq!(url.signature, "sig1060");
    }

    #[tokio::test]
    async fn non_readers_get_no_url() {
        let rec = record(Some(1), 1);
        let id = rec.id();
        let mut signer = MockUrlSigner::new();
        signer.expect_sign().times(0);
        let use_case = signing(repo_returning(rec), signer, 1_000);
        let err = use_case
            .execute(
                &user(2, 1),
                id,
                Duration::from_secs(60),
                "",
                &RequestFacts::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::AccessDenied));
    }

    #[tokio::test]
    async fn lifetime_out_of_bounds_is_a_validation_error() {
        let use_case = signing(MockFileRepository::new(), MockUrlSigner::new(), 0);
        for bad in [
            Duration::ZERO,
            MAX_SIGNED_URL_LIFETIME + Duration::from_secs(1),
        ] {
            let err = use_case
                .execute(
                    &user(1, 1),
                    FileId::new_random(),
                    bad,
                    "",
                    &RequestFacts::default(),
                )
                .await
                .unwrap_err();
            assert!(matches!(err, Error::Validation(_)));
        }
    }

    #[test]
    fn expired_or_forged_signatures_are_refused() {
        let mut signer = MockUrlSigner::new();
        signer.expect_verify().returning(|_, _, _, s| s == "good");
        let clock = clock_at(100);
        let id = FileId::new_random();
        assert!(check_signature(&signer, &clock, id, 101, "", "good").is_ok());
        assert!(matches!(
            check_signature(&signer, &clock, id, 100, "", "good"),
            Err(Error::InvalidSignature)
        ));
        assert!(matches!(
            check_signature(&signer, &clock, id, 200, "", "bad"),
            Err(Error::InvalidSignature)
        ));
    }
}
