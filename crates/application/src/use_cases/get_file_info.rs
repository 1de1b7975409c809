//! File metadata for a reader.

use stowage_domain::{FileId, FileKey, FileRecord, Principal};

use crate::error::Error;
use crate::events::RequestFacts;
use crate::use_cases::ReadAccess;

/// Returns a file's record to a reader.
#[derive(Clone)]
pub struct GetFileInfo {
    access: ReadAccess,
}

impl GetFileInfo {
    /// A use case over `access`.
    pub fn new(access: ReadAccess) -> Self {
        Self { access }
    }

    /// The record of `id`, if `principal` may read it.
    ///
    /// # Errors
    /// See [`ReadAccess::authorize`].
    #[tracing::instrument(name = "get_file_info", skip_all, fields(file_id = %id))]
    pub async fn execute(
        &self,
        principal: &Principal,
        id: FileId,
        request: &RequestFacts,
    ) -> Result<FileRecord, Error> {
        self.access.authorize(principal, id, request).await
    }

    /// The record holding `key` in `principal`'s account, if `principal` may read it.
    ///
    /// # Errors
    /// See [`ReadAccess::authorize_by_key`].
    #[tracing::instrument(name = "get_file_info_by_key", skip_all)]
    pub async fn execute_by_key(
        &self,
        principal: &Principal,
        key: &FileKey,
        request: &RequestFacts,
    ) -> Result<FileRecord, Error> {
        self.access.authorize_by_key(principal, key, request).await
    }
}
