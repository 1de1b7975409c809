//! `PATCH /files/{id}`: the uploading user makes a file public or private.

use std::sync::Arc;

use stowage_domain::{FileId, FileRecord, Principal, Visibility, may_delete};

use crate::error::Error;
use crate::ports::FileRepository;

/// Changes who may read a file.
#[derive(Clone)]
pub struct SetVisibility {
    repo: Arc<dyn FileRepository>,
}

impl SetVisibility {
    /// A use case over `repo`.
    pub fn new(repo: Arc<dyn FileRepository>) -> Self {
        Self { repo }
    }

    /// Makes `id` `visibility` if `principal` uploaded it (the rule that decides deletion: a
    /// file's owner decides who reads it), and returns the changed record.
    ///
    /// # Errors
    /// `NotFound`, `AccessDenied`, `DatabaseUnavailable`.
    #[tracing::instrument(name = "set_visibility", skip_all, fields(file_id = %id))]
    pub async fn execute(
        &self,
        principal: &Principal,
        id: FileId,
        visibility: Visibility,
    ) -> Result<FileRecord, Error> {
        let record = self.current(principal, id).await?;
        if record.visibility() != visibility {
            self.repo.set_visibility(id, visibility).await?;
        }
        Ok(record.with_visibility(visibility))
    }

    /// The record of `id` as it is, if `principal` uploaded it (a change of nothing).
    ///
    /// # Errors
    /// `NotFound`, `AccessDenied`, `DatabaseUnavailable`.
    pub async fn current(&self, principal: &Principal, id: FileId) -> Result<FileRecord, Error> {
        let record = self.repo.get(id).await?;
        if !may_delete(principal, &record) {
            return Err(Error::AccessDenied);
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::file_repository::{MockFileRepository, RepoError};
    use crate::use_cases::fixtures::{record, user};

    #[tokio::test]
    async fn the_owner_makes_a_file_public_and_private_again() {
        let stored = record(Some(1), 1);
        let id = stored.id();
        let mut repo = MockFileRepository::new();
        let kept = stored.clone();
        repo.expect_get().returning(move |_| Ok(kept.clone()));
        repo.expect_set_visibility()
            .withf(move |at, v| *at == id && *v == Visibility::Public)
            .times(1)
            .returning(|_, _| Ok(()));
        let set = SetVisibility::new(Arc::new(repo));

        let changed = set.execute(&user(1, 1), id, Visibility::Public).await;

        assert!(changed.expect("changed").is_public());
    }

    #[tokio::test]
    async fn asking_for_the_visibility_a_file_has_writes_nothing() {
        let stored = record(Some(1), 1);
        let mut repo = MockFileRepository::new();
        let kept = stored.clone();
        repo.expect_get().returning(move |_| Ok(kept.clone()));
        repo.expect_set_visibility().never();
        let set = SetVisibility::new(Arc::new(repo));

        let same = set
            .execute(&user(1, 1), stored.id(), Visibility::Private)
            .await;

        assert_eq!(same.expect("unchanged"), stored);
    }

    #[tokio::test]
    async fn anyone_but_the_uploading_user_is_refused_and_nothing_changes() {
        for (stored, caller) in [
            (record(Some(1), 1), user(2, 1)),
            (record(Some(1), 1), user(1, 2)),
            (record(None, 1), user(1, 1)),
        ] {
            let mut repo = MockFileRepository::new();
            let kept = stored.clone();
            repo.expect_get().returning(move |_| Ok(kept.clone()));
            repo.expect_set_visibility().never();
            let set = SetVisibility::new(Arc::new(repo));

            let err = set
                .execute(&caller, stored.id(), Visibility::Public)
                .await
                .unwrap_err();

            assert!(matches!(err, Error::AccessDenied), "{err:?}");
        }
    }

    #[tokio::test]
    async fn an_unknown_file_is_not_found() {
        let mut repo = MockFileRepository::new();
        repo.expect_get().returning(|_| Err(RepoError::NotFound));
        let set = SetVisibility::new(Arc::new(repo));

        let err = set
            .execute(&user(1, 1), FileId::new_random(), Visibility::Public)
            .await
            .unwrap_err();

        assert!(matches!(err, Error::NotFound), "{err:?}");
    }
}
