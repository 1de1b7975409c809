//! Upload grants and their signed tokens: what an upload URL allows, carried in the URL itself.

use stowage_domain::{
    AccountId, Credential, CredentialForm, FileKey, Principal, PrincipalKind, UserId, Visibility,
};
use uuid::Uuid;

/// The id of one upload grant: what makes its URL usable once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UploadGrantId(Uuid);

impl UploadGrantId {
    /// A fresh random (v4) id.
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }

    /// The id a token carries.
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    /// The id as a UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl std::fmt::Display for UploadGrantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// Who an upload URL uploads as: the principal who asked for it, without its credential (a URL
/// never carries one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantPrincipal {
    /// The kind of caller who asked.
    pub kind: PrincipalKind,
    /// Its user, `None` for account-level callers.
    pub user_id: Option<UserId>,
    /// Its account.
    pub account_id: AccountId,
}

impl GrantPrincipal {
    /// The grant's view of `principal`.
    pub fn of(principal: &Principal) -> Self {
        Self {
            kind: principal.kind(),
            user_id: principal.user_id(),
            account_id: principal.account_id(),
        }
    }

    /// The principal the upload runs as. Its credential is empty: an upload never forwards one
    /// (only reads ask the permission service).
    pub fn principal(&self) -> Principal {
        let form = match self.kind {
            PrincipalKind::User => CredentialForm::Bearer,
            PrincipalKind::Guest => CredentialForm::Guest,
            PrincipalKind::Public => CredentialForm::Public,
        };
        Principal::new(
            self.kind,
            self.user_id,
            self.account_id,
            Credential::new(form, String::new()),
        )
    }
}

/// What one upload URL allows: one upload, as `principal`, under these options, until `expires`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadGrant {
    /// Makes the URL single-use.
    pub id: UploadGrantId,
    /// Who uploads.
    pub principal: GrantPrincipal,
    /// Expiry, Unix seconds.
    pub expires: i64,
    /// The upload policy applied, by name.
    pub policy: Option<String>,
    /// The key the file is stored under.
    pub key: Option<FileKey>,
    /// The largest file accepted, below the policy's and the global limit.
    pub max_bytes: Option<u64>,
    /// Who may read the file; `None` leaves it to the policy.
    pub visibility: Option<Visibility>,
}

/// Turns a grant into a URL-safe token and back, refusing any token it did not make.
#[cfg_attr(test, mockall::automock)]
pub trait UploadUrlSigner: Send + Sync {
    /// The grant as a token of URL-safe characters (base64url and hex, with a `.`).
    fn sign(&self, grant: &UploadGrant) -> String;

    /// The grant of a token this signer made, checked in constant time; `None` for anything
    /// else (tampered, truncated, another key's, not a token at all). Expiry is not checked here.
    fn verify(&self, token: &str) -> Option<UploadGrant>;
}
