//! The use cases: one struct per thing a client can do, each with an `execute`-style entry point.

pub mod audit;
pub mod authenticate;
pub mod check_rate_limit;
pub mod check_readiness;
pub mod create_signed_url;
pub mod delete_file;
pub mod digest_legacy;
pub mod direct_uploads;
pub mod download_file;
pub mod get_file_info;
pub(crate) mod keys;
pub mod list_files;
pub mod read_access;
pub mod reconcile;
pub mod resumable;
pub mod set_visibility;
pub mod upload_file;
pub mod upload_policy;
pub mod upload_urls;
pub mod variants;

pub use audit::Audit;
pub use authenticate::{Authenticate, CredentialSource, PresentedCredential};
pub use check_rate_limit::CheckRateLimit;
pub use check_readiness::{CheckReadiness, ComponentStatus, Readiness};
pub use create_signed_url::{
    CreateSignedUrl, MAX_SIGNED_URL_LIFETIME, MAX_SIGNED_URLS, SignedUrl, check_signature,
};
pub use delete_file::DeleteFile;
pub use digest_legacy::{DigestLegacyRows, DigestReport, LegacyRow};
pub use direct_uploads::{
    CompleteDirectUpload, DirectTarget, DirectTicket, DirectUploadPorts, StartDirectRequest,
    StartDirectUpload,
};
pub use download_file::DownloadFile;
pub use get_file_info::GetFileInfo;
pub use list_files::ListFiles;
pub use read_access::ReadAccess;
pub use reconcile::{Reconcile, ReconcileReport};
pub use resumable::{
    AppendBody, AppendResumable, CreateResumable, RESUMABLE_LEASE, ResumablePorts,
    ResumableSettings, ResumableStatus, ResumableUploads, UploadMetadata,
};
pub use set_visibility::SetVisibility;
pub use upload_file::{UploadFile, UploadRequest};
pub use upload_policy::UploadPolicy;
pub use upload_urls::{
    CLAIM_LEASE, CreateUploadUrl, IssuedUploadUrl, MAX_UPLOAD_URL_LIFETIME, UploadUrlOptions,
    UploadWithUrl, UrlUpload,
};
pub use variants::{ChosenVariant, ImageLimits, Variants, may_have_variants};

#[cfg(test)]
pub(crate) mod fixtures {
    use stowage_domain::{
        AccountId, ContentType, Credential, CredentialForm, FileId, FileRecord, FileRecordParts,
        Filename, Principal, PrincipalKind, Sha256Digest, UserId,
    };
    use time::OffsetDateTime;

    use crate::ports::file_repository::MockFileRepository;

    pub fn user(user: i64, account: i64) -> Principal {
        Principal::new(
            PrincipalKind::User,
            Some(UserId::new(user)),
            AccountId::new(account),
            Credential::new(CredentialForm::Bearer, "tok".into()),
        )
    }

    pub fn public(account: i64) -> Principal {
        Principal::new(
            PrincipalKind::Public,
            None,
            AccountId::new(account),
            Credential::new(CredentialForm::Public, "pubtoken".into()),
        )
    }

    pub fn record(user: Option<i64>, account: i64) -> FileRecord {
        FileRecord::new(FileRecordParts {
            id: FileId::new_random(),
            filename: Filename::sanitize("a.txt"),
            content_type: ContentType::from_stored("text/plain".into()),
            size: 3,
            sha256: Some(Sha256Digest::from_bytes([7; 32])),
            created_at: OffsetDateTime::UNIX_EPOCH,
            account_id: AccountId::new(account),
            user_id: user.map(UserId::new),
        })
    }

    /// A repository that finds `rec`, whatever id it is asked for.
    pub fn repo_returning(rec: FileRecord) -> MockFileRepository {
        let mut repo = MockFileRepository::new();
        repo.expect_get().returning(move |_| Ok(rec.clone()));
        repo
    }
}
