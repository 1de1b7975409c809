//! The caller's own files, newest first, a page at a time.

use std::sync::Arc;

use stowage_domain::Principal;

use crate::error::Error;
use crate::ports::{FileRepository, ListCursor, ListPage, Owner};

/// Lists a principal's own files.
#[derive(Clone)]
pub struct ListFiles {
    repo: Arc<dyn FileRepository>,
}

impl ListFiles {
    /// A use case over `repo`.
    pub fn new(repo: Arc<dyn FileRepository>) -> Self {
        Self { repo }
    }

    /// At most `limit` of `principal`'s files after `cursor`: by user, or the account's null-user
    /// files; with a `prefix`, only those whose key starts with it.
    ///
    /// # Errors
    /// `DatabaseUnavailable`.
    #[tracing::instrument(name = "list_files", skip_all, fields(limit))]
    pub async fn execute(
        &self,
        principal: &Principal,
        limit: u32,
        cursor: Option<ListCursor>,
        prefix: Option<&str>,
    ) -> Result<ListPage, Error> {
        let owner = match principal.user_id() {
            Some(user) => Owner::User(user, principal.account_id()),
            None => Owner::Account(principal.account_id()),
        };
        Ok(self
            .repo
            .list(owner, limit, cursor, prefix.map(str::to_owned))
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::file_repository::MockFileRepository;
    use crate::use_cases::fixtures::{public, user};
    use mockall::predicate::eq;
    use stowage_domain::{AccountId, UserId};

    #[tokio::test]
    async fn lists_by_user_or_by_account_for_null_users() {
        let mut repo = MockFileRepository::new();
        repo.expect_list()
            .with(
                eq(Owner::User(UserId::new(1), AccountId::new(5))),
                eq(10),
                eq(None),
                eq(None),
            )
            .times(1)
            .returning(|_, _, _, _| {
                Ok(ListPage {
                    items: vec![],
                    next: None,
                })
            });
        repo.expect_list()
            .with(
                eq(Owner::Account(AccountId::new(5))),
                eq(10),
                eq(None),
                eq(None),
            )
            .times(1)
            .returning(|_, _, _, _| {
                Ok(ListPage {
                    items: vec![],
                    next: None,
                })
            });
        let list = ListFiles::new(Arc::new(repo));
        list.execute(&user(1, 5), 10, None, None).await.unwrap();
        list.execute(&public(5), 10, None, None).await.unwrap();
    }
}
