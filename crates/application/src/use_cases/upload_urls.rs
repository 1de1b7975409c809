//! Upload URLs: a principal asks for a URL on which exactly one upload succeeds, as that
//! principal and under the options signed into the URL, with no other credential.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{Either, select};
use stowage_domain::{FileKey, FileRecord, Metadata, Principal, Visibility};
use time::OffsetDateTime;

use crate::error::Error;
use crate::events::RequestFacts;
use crate::ports::{
    ClaimToken, Clock, GrantPrincipal, UploadGrant, UploadGrantId, UploadGrantStore,
    UploadUrlSigner,
};
use crate::stream::{ByteStream, limit_stream};
use crate::use_cases::{UploadFile, UploadRequest};

/// The longest an upload URL may live (one day).
pub const MAX_UPLOAD_URL_LIFETIME: Duration = Duration::from_secs(86_400);

/// How long a claim on a grant lasts unless renewed. The upload holding it renews it every third
/// of that while it runs, so this bounds only how long a claim left by a crashed process keeps
/// the URL unusable.
pub const CLAIM_LEASE: Duration = Duration::from_secs(60);

/// The options an upload URL is signed with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UploadUrlOptions {
    /// How long the URL stays usable.
    pub lifetime: Duration,
    /// An upload policy, by name.
    pub policy: Option<String>,
    /// The key the file is stored under (replacing the file holding it, as an upload would).
    pub key: Option<FileKey>,
    /// The largest file accepted, at most the global limit.
    pub max_bytes: Option<u64>,
    /// Who may read the file; `None` leaves it to the policy.
    pub visibility: Option<Visibility>,
}

/// An issued upload URL's token and expiry.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedUploadUrl {
    /// The signed grant, the last segment of the URL.
    pub token: String,
    /// When the URL stops working.
    pub expires_at: OffsetDateTime,
}

impl std::fmt::Debug for IssuedUploadUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedUploadUrl")
            .field("token", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Issues upload URLs (`POST /files/upload-url`).
pub struct CreateUploadUrl {
    signer: Arc<dyn UploadUrlSigner>,
    clock: Arc<dyn Clock>,
    policies: HashSet<String>,
    max_bytes: u64,
}

impl CreateUploadUrl {
    /// A use case signing with `signer`, knowing the upload `policies` by name and the global
    /// upload limit `max_bytes`.
    pub fn new(
        signer: Arc<dyn UploadUrlSigner>,
        clock: Arc<dyn Clock>,
        policies: HashSet<String>,
        max_bytes: u64,
    ) -> Self {
        Self {
            signer,
            clock,
            policies,
            max_bytes,
        }
    }

    /// A URL token granting `principal` one upload under `options`. Any principal who may
    /// upload may ask.
    ///
    /// # Errors
    /// `Validation` for a lifetime outside 1 s..1 day, an unknown policy or a `max_bytes`
    /// outside 1..the global limit.
    #[tracing::instrument(name = "create_upload_url", skip_all)]
    pub fn execute(
        &self,
        principal: &Principal,
        options: UploadUrlOptions,
    ) -> Result<IssuedUploadUrl, Error> {
        let lifetime = options.lifetime;
        if lifetime.is_zero() || lifetime > MAX_UPLOAD_URL_LIFETIME {
            return Err(Error::Validation(format!(
                "expires_in must be from 1 to {} seconds",
                MAX_UPLOAD_URL_LIFETIME.as_secs()
            )));
        }
        if let Some(name) = &options.policy
            && !self.policies.contains(name)
        {
            return Err(Error::Validation(format!("unknown upload policy '{name}'")));
        }
        if let Some(max) = options.max_bytes
            && (max == 0 || max > self.max_bytes)
        {
            return Err(Error::Validation(format!(
                "max_bytes must be from 1 to {}",
                self.max_bytes
            )));
        }
        let expires = self.clock.now().unix_timestamp()
            + i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        let expires_at = OffsetDateTime::from_unix_timestamp(expires)
            .map_err(|e| Error::Internal(Box::new(e)))?;
        let grant = UploadGrant {
            id: UploadGrantId::new_random(),
            principal: GrantPrincipal::of(principal),
            expires,
            policy: options.policy,
            key: options.key,
            max_bytes: options.max_bytes,
            visibility: options.visibility,
        };
        Ok(IssuedUploadUrl {
            token: self.signer.sign(&grant),
            expires_at,
        })
    }
}

/// One upload on an upload URL, as the presentation layer hands it over.
pub struct UrlUpload {
    /// The client's file name, unsanitised.
    pub filename: Option<String>,
    /// The client's declared content type, unnormalised.
    pub declared_type: Option<String>,
    /// The file's bytes.
    pub body: ByteStream,
    /// The file's length as the request announces it, when it does: a raw body's
    /// `Content-Length`, or what a form's `Content-Length` leaves for its file part.
    pub length: Option<u64>,
    /// A key the request names (a form field): only the signed key itself is accepted.
    pub key: Option<FileKey>,
    /// The client's metadata.
    pub metadata: Metadata,
    /// The client behind the upload, for the events that report it.
    pub request: RequestFacts,
}

/// Runs the one upload an upload URL allows (`POST`/`PUT /files/upload-url/{token}`).
pub struct UploadWithUrl {
    upload: UploadFile,
    signer: Arc<dyn UploadUrlSigner>,
    grants: Arc<dyn UploadGrantStore>,
    clock: Arc<dyn Clock>,
}

impl UploadWithUrl {
    /// Uploads through `upload`, checking tokens with `signer` and their single use in `grants`.
    pub fn new(
        upload: UploadFile,
        signer: Arc<dyn UploadUrlSigner>,
        grants: Arc<dyn UploadGrantStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            upload,
            signer,
            grants,
            clock,
        }
    }

    /// The grant `token` carries, checked before any byte of the upload is read.
    ///
    /// # Errors
    /// `InvalidSignature` when the token was tampered with, is not one, or has expired.
    pub fn grant(&self, token: &str) -> Result<UploadGrant, Error> {
        let grant = self.signer.verify(token).ok_or(Error::InvalidSignature)?;
        if grant.expires <= self.clock.now().unix_timestamp() {
            return Err(Error::InvalidSignature);
        }
        Ok(grant)
    }

    /// The largest file `grant` accepts (a policy may lower it further).
    pub fn max_bytes(&self, grant: &UploadGrant) -> u64 {
        grant.max_bytes.map_or(self.upload.max_bytes(), |max| {
            max.min(self.upload.max_bytes())
        })
    }

    /// Stores `upload` under `grant`, which it uses up; an upload the rules refuse (or that
    /// fails) leaves the grant usable. A file stored but whose grant cannot be marked used is
    /// deleted again, so a URL never yields two files.
    ///
    /// # Errors
    /// `Validation` for a key other than the signed one; `InvalidSignature` when the grant is
    /// used, or claimed by another upload in flight, or the claim was lost before the grant was
    /// marked used; `DatabaseUnavailable` when the claim or the use cannot be recorded;
    /// otherwise those of [`UploadFile::execute`].
    #[tracing::instrument(name = "upload_with_url", skip_all, fields(grant_id = %grant.id))]
    pub async fn execute(
        &self,
        grant: UploadGrant,
        upload: UrlUpload,
    ) -> Result<FileRecord, Error> {
        let key = match (grant.key, upload.key) {
            (Some(signed), Some(asked)) if signed != asked => {
                return Err(Error::Validation(
                    "the key differs from the one this upload URL was signed with".to_owned(),
                ));
            }
            // Without a signed key the URL's holder could replace any file of the principal.
            (None, Some(_)) => {
                return Err(Error::Validation(
                    "this upload URL was signed without a key; it takes none".to_owned(),
                ));
            }
            (signed, _) => signed,
        };
        // A stated length is only announced (a form's is derived from its framing), so the
        // grant's limit also bounds the bytes actually read.
        let body = match (grant.max_bytes, upload.length) {
            (Some(limit), Some(len)) if len > limit => return Err(Error::TooLarge { limit }),
            (Some(limit), _) => limit_stream(upload.body, limit),
            (None, _) => upload.body,
        };
        let token = ClaimToken::new_random();
        let expires_at = OffsetDateTime::from_unix_timestamp(grant.expires)
            .map_err(|e| Error::Internal(Box::new(e)))?;
        if !self
            .grants
            .claim(grant.id, token, expires_at, CLAIM_LEASE)
            .await?
        {
            return Err(Error::InvalidSignature);
        }
        // Kept until the outcome is recorded: dropping it releases a claim still held.
        let mut hold = self.grants.hold(grant.id, token, CLAIM_LEASE);
        let principal = grant.principal.principal();
        let request = upload.request.clone();
        let stored = Box::pin(self.upload.execute(UploadRequest {
            principal: principal.clone(),
            filename: upload.filename,
            declared_type: upload.declared_type,
            policy: grant.policy,
            body,
            length: upload.length,
            request: upload.request,
            key,
            metadata: upload.metadata,
            visibility: grant.visibility,
            replaces: None,
        }));
        let stored = match select(stored, &mut hold).await {
            Either::Left((stored, _)) => stored,
            // Another upload took the claim over: this one must not be stored under it.
            Either::Right(((), _)) => return Err(Error::InvalidSignature),
        };
        let record = match stored {
            Ok(record) => record,
            // The file may be recorded all the same (an insert whose answer was lost): released,
            // the claim would let the URL store a second one. Forgotten, it lapses.
            Err(e @ Error::DatabaseUnavailable(_)) => {
                std::mem::forget(hold);
                return Err(e);
            }
            Err(e) => {
                self.release(grant.id, token).await;
                return Err(e);
            }
        };
        let Err(refused) = self.complete(grant.id, token, &record).await else {
            drop(hold);
            return Ok(record);
        };
        // The grant is not marked used by this file, so the URL may yet store another: this one
        // goes, or one URL would yield two files.
        if let Err(e) = self.upload.discard(&principal, &record, &request).await {
            tracing::error!(error = %e, file_id = %record.id(), "a file stored on an upload URL not marked used could not be deleted");
            // Released, the claim would free the URL for a second file while this one is kept;
            // forgotten, the hold neither renews nor releases it, and the claim lapses.
            std::mem::forget(hold);
            return Err(refused);
        }
        self.release(grant.id, token).await;
        drop(hold);
        Err(refused)
    }

    /// Frees the claim of `token` on `grant`, whose upload stored nothing (or nothing kept).
    async fn release(&self, grant: UploadGrantId, token: ClaimToken) {
        if let Err(e) = self.grants.release(grant, token).await {
            tracing::warn!(error = %e, "the upload URL's claim could not be released; it lapses");
        }
    }

    /// Marks the grant used by `record`, trying again a few times, since the file is stored.
    ///
    /// # Errors
    /// `InvalidSignature` when the claim was lost (another upload may hold it);
    /// `DatabaseUnavailable` when the grant store keeps failing.
    async fn complete(
        &self,
        grant: UploadGrantId,
        token: ClaimToken,
        record: &FileRecord,
    ) -> Result<(), Error> {
        let mut attempt = 1;
        loop {
            match self.grants.complete(grant, token, record.id()).await {
                Ok(true) => return Ok(()),
                Ok(false) => {
                    tracing::warn!("the upload URL's claim was lost before it was marked used");
                    return Err(Error::InvalidSignature);
                }
                Err(e) if attempt >= COMPLETE_ATTEMPTS => {
                    tracing::error!(error = %e, "the upload URL could not be marked used");
                    return Err(e.into());
                }
                Err(_) => attempt += 1,
            }
        }
    }
}

/// Attempts at marking a grant used once its file is stored.
const COMPLETE_ATTEMPTS: u32 = 3;

#[cfg(test)]
mod tests;
