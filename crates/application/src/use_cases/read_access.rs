//! The read rule of the contract, applied in one place for every read route.

use std::sync::Arc;

use stowage_domain::{
    AccessPolicy, FileId, FileKey, FileRecord, Principal, ReadDecision, ReadFallback, decide_read,
};

use crate::error::Error;
use crate::events::{Actor, EventKind, RequestFacts};
use crate::ports::{FileRepository, PermissionChecker, PermissionVerdict, RepoError};
use crate::use_cases::Audit;

/// Loads a record and decides whether a principal may read it.
#[derive(Clone)]
pub struct ReadAccess {
    repo: Arc<dyn FileRepository>,
    permissions: Option<Arc<dyn PermissionChecker>>,
    policy: AccessPolicy,
    audit: Option<Audit>,
}

impl ReadAccess {
    /// Uses `permissions` when it is set, else `policy`, for readers that are neither owner nor same-account null user.
    pub fn new(
        repo: Arc<dyn FileRepository>,
        permissions: Option<Arc<dyn PermissionChecker>>,
        policy: AccessPolicy,
    ) -> Self {
        Self {
            repo,
            permissions,
            policy,
            audit: None,
        }
    }

    /// This access rule, reporting each read the permission service refuses through `audit`.
    #[must_use]
    pub fn with_audit(mut self, audit: Audit) -> Self {
        self.audit = Some(audit);
        self
    }

    /// The repository records are read from.
    pub(crate) fn repo(&self) -> &dyn FileRepository {
        self.repo.as_ref()
    }

    /// Reports that the permission service refused `principal` the read of `record`.
    async fn report_denial(
        &self,
        principal: &Principal,
        record: &FileRecord,
        request: &RequestFacts,
    ) {
        if let Some(audit) = &self.audit {
            let event = audit.event(
                EventKind::AccessDenied,
                Actor::of(principal),
                record,
                request,
            );
            audit.report(self.repo.as_ref(), event).await;
        }
    }

    /// The record of `id`, if `principal` may read it.
    ///
    /// A missing record is reported as such only after the permission service (when configured) had
    /// its say, keeping the contract's order: access (403) before existence (404).
    ///
    /// # Errors
    /// `AccessDenied`, `NotFound`, `DatabaseUnavailable`, `PermissionServiceUnavailable`.
    pub async fn authorize(
        &self,
        principal: &Principal,
        id: FileId,
        request: &RequestFacts,
    ) -> Result<FileRecord, Error> {
        let record = match self.repo.get(id).await {
            Ok(record) => record,
            Err(RepoError::NotFound) => {
                if let Some(checker) = &self.permissions
                    && checker.check(principal, id).await? == PermissionVerdict::Denied
                {
                    return Err(Error::AccessDenied);
                }
                return Err(Error::NotFound);
            }
            Err(e) => return Err(e.into()),
        };
        self.decide(principal, record, request).await
    }

    /// The record holding `key` in `principal`'s account, if `principal` may read it (the same
    /// rule as by id).
    ///
    /// # Errors
    /// `AccessDenied`, `NotFound`, `DatabaseUnavailable`, `PermissionServiceUnavailable`.
    pub async fn authorize_by_key(
        &self,
        principal: &Principal,
        key: &FileKey,
        request: &RequestFacts,
    ) -> Result<FileRecord, Error> {
        let record = self.repo.get_by_key(principal.account_id(), key).await?;
        self.decide(principal, record, request).await
    }

    /// The read rule applied to a loaded `record`.
    async fn decide(
        &self,
        principal: &Principal,
        record: FileRecord,
        request: &RequestFacts,
    ) -> Result<FileRecord, Error> {
        let id = record.id();
        let fallback = match self.permissions {
            Some(_) => ReadFallback::PermissionService,
            None => ReadFallback::Policy(self.policy),
        };
        match decide_read(principal, &record, fallback) {
            ReadDecision::Allow => Ok(record),
            ReadDecision::Deny => Err(Error::AccessDenied),
            ReadDecision::AskPermissionService => {
                let Some(checker) = &self.permissions else {
                    return Err(Error::AccessDenied);
                };
                match checker.check(principal, id).await? {
                    PermissionVerdict::Allowed => Ok(record),
                    PermissionVerdict::Denied => {
                        self.report_denial(principal, &record, request).await;
                        Err(Error::AccessDenied)
                    }
                }
            }
        }
    }

    /// The record of `id` without an access decision, for callers that proved access otherwise (a signed URL).
    ///
    /// # Errors
    /// `NotFound`, `DatabaseUnavailable`.
    pub async fn load(&self, id: FileId) -> Result<FileRecord, Error> {
        Ok(self.repo.get(id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::file_repository::MockFileRepository;
    use crate::ports::permission_checker::{MockPermissionChecker, PermissionError};
    use crate::use_cases::fixtures::{public, record, repo_returning, user};

    /// Access to `rec` under `policy`, asking `checker` if there is one.
    fn access_to(
        rec: &FileRecord,
        checker: Option<MockPermissionChecker>,
        policy: AccessPolicy,
    ) -> ReadAccess {
        ReadAccess::new(
            Arc::new(repo_returning(rec.clone())),
            checker.map(|c| Arc::new(c) as Arc<dyn PermissionChecker>),
            policy,
        )
    }

    #[tokio::test]
    async fn owner_reads_without_asking_the_permission_service() {
        let rec = record(Some(1), 10);
        let mut checker = MockPermissionChecker::new();
        checker.expect_check().times(0);
        let access = access_to(&rec, Some(checker), AccessPolicy::Owner);
        assert_eq!(
            access
                .authorize(&user(1, 10), rec.id(), &RequestFacts::default())
                .await
                .unwrap(),
            rec
        );
    }

    #[tokio::test]
    async fn other_user_is_asked_about_and_denied() {
        let rec = record(Some(1), 10);
        let mut checker = MockPermissionChecker::new();
        checker
            .expect_check()
            .times(1)
            .returning(|_, _| Ok(PermissionVerdict::Denied));
        let access = access_to(&rec, Some(checker), AccessPolicy::Account);
        assert!(matches!(
            access
                .authorize(&user(2, 10), rec.id(), &RequestFacts::default())
                .await,
            Err(Error::AccessDenied)
        ));
    }

    #[tokio::test]
    async fn permission_service_failure_fails_closed() {
        let rec = record(Some(1), 10);
        let mut checker = MockPermissionChecker::new();
        checker
            .expect_check()
            .returning(|_, _| Err(PermissionError::Unavailable("timed out".into())));
        let access = access_to(&rec, Some(checker), AccessPolicy::Account);
        assert!(matches!(
            access
                .authorize(&user(2, 10), rec.id(), &RequestFacts::default())
                .await,
            Err(Error::PermissionServiceUnavailable(_))
        ));
    }

    #[tokio::test]
    async fn account_policy_allows_same_account_and_refuses_others() {
        let rec = record(Some(1), 10);
        let access = access_to(&rec, None, AccessPolicy::Account);
        assert!(
            access
                .authorize(&user(2, 10), rec.id(), &RequestFacts::default())
                .await
                .is_ok()
        );
        assert!(matches!(
            access
                .authorize(&user(3, 11), rec.id(), &RequestFacts::default())
                .await,
            Err(Error::AccessDenied)
        ));
    }

    #[tokio::test]
    async fn owner_policy_refuses_other_users_of_the_account() {
        let rec = record(Some(1), 10);
        let access = access_to(&rec, None, AccessPolicy::Owner);
        assert!(matches!(
            access
                .authorize(&user(2, 10), rec.id(), &RequestFacts::default())
                .await,
            Err(Error::AccessDenied)
        ));
    }

    #[tokio::test]
    async fn public_principal_reads_account_level_files_of_its_account() {
        let rec = record(None, 10);
        let access = access_to(&rec, None, AccessPolicy::Owner);
        assert!(
            access
                .authorize(&public(10), rec.id(), &RequestFacts::default())
                .await
                .is_ok()
        );
        assert!(matches!(
            access
                .authorize(&public(11), rec.id(), &RequestFacts::default())
                .await,
            Err(Error::AccessDenied)
        ));
    }

    #[tokio::test]
    async fn missing_record_is_not_found_without_permission_service() {
        let mut repo = MockFileRepository::new();
        repo.expect_get().returning(|_| Err(RepoError::NotFound));
        let access = ReadAccess::new(Arc::new(repo), None, AccessPolicy::Owner);
        assert!(matches!(
            access
                .authorize(
                    &user(1, 1),
                    stowage_domain::FileId::new_random(),
                    &RequestFacts::default()
                )
                .await,
            Err(Error::NotFound)
        ));
    }

    #[tokio::test]
    async fn missing_record_denied_by_permission_service_is_403() {
        let mut repo = MockFileRepository::new();
        repo.expect_get().returning(|_| Err(RepoError::NotFound));
        let mut checker = MockPermissionChecker::new();
        checker
            .expect_check()
            .returning(|_, _| Ok(PermissionVerdict::Denied));
        let access = ReadAccess::new(Arc::new(repo), Some(Arc::new(checker)), AccessPolicy::Owner);
        assert!(matches!(
            access
                .authorize(
                    &user(1, 1),
                    stowage_domain::FileId::new_random(),
                    &RequestFacts::default()
                )
                .await,
            Err(Error::AccessDenied)
        ));
    }
}
