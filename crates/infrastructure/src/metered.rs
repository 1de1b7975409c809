//! Port decorators that record Prometheus metrics around any adapter.
//!
//! Labels take only bounded values (operation names, outcomes, backends), never ids or tokens.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use metrics::{counter, histogram};
use stowage_application::events::FileEvent;
use stowage_application::ports::{
    BlobBody, BlobError, BlobListing, BlobStore, FileRepository, InvalidToken, ListCursor,
    ListPage, Owner, PermissionChecker, PermissionError, PermissionVerdict, RateClass,
    RateDecision, RateLimit, RateLimiter, RepoError, TokenClaims, TokenStore, TokenStoreError,
    TokenVerifier,
};
use stowage_application::stream::{ByteStream, StoredBlob};
use stowage_domain::{
    AccountId, BlobKey, ByteRange, FileId, FileKey, FileRecord, Principal, Sha256Digest, Visibility,
};
use time::OffsetDateTime;

fn blob_status<T>(result: &Result<T, BlobError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(BlobError::NotFound) => "not_found",
        Err(BlobError::Body(_)) => "body_error",
        Err(BlobError::Unavailable(_)) => "error",
        Err(BlobError::Full(_)) => "full",
        Err(BlobError::Busy { .. }) => "busy",
    }
}

/// [`BlobStore`] recording `storage_operations_total` and `storage_operation_duration_seconds`.
pub struct MeteredBlobStore {
    inner: Arc<dyn BlobStore>,
    backend: &'static str,
}

impl MeteredBlobStore {
    /// Meters `inner`, labelled with `backend` (`fs`, `s3`).
    pub fn new(inner: Arc<dyn BlobStore>, backend: &'static str) -> Self {
        Self { inner, backend }
    }

    fn record<T>(&self, operation: &'static str, started: Instant, result: &Result<T, BlobError>) {
        let backend = self.backend;
        counter!("storage_operations_total", "backend" => backend, "operation" => operation, "status" => blob_status(result))
            .increment(1);
        histogram!("storage_operation_duration_seconds", "backend" => backend, "operation" => operation)
            .record(started.elapsed().as_secs_f64());
    }
}

#[async_trait]
impl BlobStore for MeteredBlobStore {
    async fn put(
        &self,
        key: &BlobKey,
        body: ByteStream,
        length: Option<u64>,
    ) -> Result<StoredBlob, BlobError> {
        let started = Instant::now();
        let result = self.inner.put(key, body, length).await;
        self.record("put", started, &result);
        result
    }

    async fn get(&self, key: &BlobKey, range: Option<ByteRange>) -> Result<BlobBody, BlobError> {
        let started = Instant::now();
        let result = self.inner.get(key, range).await;
        self.record("get", started, &result);
        result
    }

    async fn head(&self, key: &BlobKey) -> Result<u64, BlobError> {
        let started = Instant::now();
        let result = self.inner.head(key).await;
        self.record("head", started, &result);
        result
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        let started = Instant::now();
        let result = self.inner.delete(key).await;
        self.record("delete", started, &result);
        result
    }

    async fn delete_variants(&self, key: &BlobKey) -> Result<(), BlobError> {
        let started = Instant::now();
        let result = self.inner.delete_variants(key).await;
        self.record("delete_variants", started, &result);
        result
    }

    async fn health(&self) -> Result<(), BlobError> {
        let started = Instant::now();
        let result = self.inner.health().await;
        self.record("health", started, &result);
        result
    }

    async fn list(&self) -> Result<BlobListing, BlobError> {
        let started = Instant::now();
        let result = self.inner.list().await;
        self.record("list", started, &result);
        result
    }

    async fn remove_stray(&self, id: &str) -> Result<(), BlobError> {
        let started = Instant::now();
        let result = self.inner.remove_stray(id).await;
        self.record("remove_stray", started, &result);
        result
    }
}

/// [`FileRepository`] recording `db_operation_duration_seconds`.
pub struct MeteredFileRepository {
    inner: Arc<dyn FileRepository>,
}

impl MeteredFileRepository {
    /// Meters `inner`.
    pub fn new(inner: Arc<dyn FileRepository>) -> Self {
        Self { inner }
    }
}

fn timed(operation: &'static str, started: Instant) {
    histogram!("db_operation_duration_seconds", "operation" => operation)
        .record(started.elapsed().as_secs_f64());
}

#[async_trait]
impl FileRepository for MeteredFileRepository {
    async fn insert(&self, record: &FileRecord, events: &[FileEvent]) -> Result<(), RepoError> {
        let started = Instant::now();
        let result = self.inner.insert(record, events).await;
        timed("insert", started);
        result
    }

    async fn insert_replacing(
        &self,
        record: &FileRecord,
        old: FileId,
        events: &[FileEvent],
    ) -> Result<(), RepoError> {
        let started = Instant::now();
        let result = self.inner.insert_replacing(record, old, events).await;
        timed("insert_replacing", started);
        result
    }

    async fn get_by_key(&self, account: AccountId, key: &FileKey) -> Result<FileRecord, RepoError> {
        let started = Instant::now();
        let result = self.inner.get_by_key(account, key).await;
        timed("get_by_key", started);
        result
    }

    async fn scan_replaced(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<FileRecord>, RepoError> {
        let started = Instant::now();
        let result = self.inner.scan_replaced(before, limit).await;
        timed("scan_replaced", started);
        result
    }

    async fn get(&self, id: FileId) -> Result<FileRecord, RepoError> {
        let started = Instant::now();
        let result = self.inner.get(id).await;
        timed("get", started);
        result
    }

    async fn delete(&self, id: FileId, events: &[FileEvent]) -> Result<(), RepoError> {
        let started = Instant::now();
        let result = self.inner.delete(id, events).await;
        timed("delete", started);
        result
    }

    async fn record_events(&self, events: &[FileEvent]) -> Result<(), RepoError> {
        let result = self.inner.record_events(events).await;
        if result.is_err() {
            counter!("webhook_events_lost_total").increment(events.len() as u64);
        }
        result
    }

    async fn list(
        &self,
        owner: Owner,
        limit: u32,
        cursor: Option<ListCursor>,
        prefix: Option<String>,
    ) -> Result<ListPage, RepoError> {
        let started = Instant::now();
        let result = self.inner.list(owner, limit, cursor, prefix).await;
        timed("list", started);
        result
    }

    async fn health(&self) -> Result<(), RepoError> {
        let started = Instant::now();
        let result = self.inner.health().await;
        timed("health", started);
        result
    }

    async fn scan(&self, after: Option<FileId>, limit: u32) -> Result<Vec<FileRecord>, RepoError> {
        let started = Instant::now();
        let result = self.inner.scan(after, limit).await;
        timed("scan", started);
        result
    }

    async fn scan_without_digest(
        &self,
        after: Option<FileId>,
        limit: u32,
    ) -> Result<Vec<FileRecord>, RepoError> {
        let started = Instant::now();
        let result = self.inner.scan_without_digest(after, limit).await;
        timed("scan_without_digest", started);
        result
    }

    async fn count_without_digest(&self) -> Result<u64, RepoError> {
        let started = Instant::now();
        let result = self.inner.count_without_digest().await;
        timed("count_without_digest", started);
        result
    }

    async fn set_digest(&self, id: FileId, sha256: &Sha256Digest) -> Result<(), RepoError> {
        let started = Instant::now();
        let result = self.inner.set_digest(id, sha256).await;
        timed("set_digest", started);
        result
    }

    async fn set_visibility(&self, id: FileId, visibility: Visibility) -> Result<(), RepoError> {
        let started = Instant::now();
        let result = self.inner.set_visibility(id, visibility).await;
        timed("set_visibility", started);
        result
    }
}

/// [`TokenVerifier`] recording `auth_attempts_total{method="jwt"}`.
pub struct MeteredTokenVerifier {
    inner: Arc<dyn TokenVerifier>,
}

impl MeteredTokenVerifier {
    /// Meters `inner`.
    pub fn new(inner: Arc<dyn TokenVerifier>) -> Self {
        Self { inner }
    }
}

impl TokenVerifier for MeteredTokenVerifier {
    fn verify(&self, token: &str) -> Result<TokenClaims, InvalidToken> {
        let result = self.inner.verify(token);
        let outcome = if result.is_ok() { "ok" } else { "invalid" };
        counter!("auth_attempts_total", "method" => "jwt", "result" => outcome).increment(1);
        result
    }
}

/// [`TokenStore`] recording `auth_attempts_total{method="user_token"|"public_token"}`.
pub struct MeteredTokenStore {
    inner: Arc<dyn TokenStore>,
}

impl MeteredTokenStore {
    /// Meters `inner`.
    pub fn new(inner: Arc<dyn TokenStore>) -> Self {
        Self { inner }
    }
}

fn lookup_outcome(result: &Result<Option<TokenClaims>, TokenStoreError>) -> &'static str {
    match result {
        Ok(Some(_)) => "ok",
        Ok(None) => "invalid",
        Err(_) => "error",
    }
}

#[async_trait]
impl TokenStore for MeteredTokenStore {
    async fn user_token(&self, token: &str) -> Result<Option<TokenClaims>, TokenStoreError> {
        let result = self.inner.user_token(token).await;
        counter!("auth_attempts_total", "method" => "user_token", "result" => lookup_outcome(&result)).increment(1);
        result
    }

    async fn public_token(&self, token: &str) -> Result<Option<TokenClaims>, TokenStoreError> {
        let result = self.inner.public_token(token).await;
        counter!("auth_attempts_total", "method" => "public_token", "result" => lookup_outcome(&result)).increment(1);
        result
    }

    async fn health(&self) -> Result<(), TokenStoreError> {
        self.inner.health().await
    }
}

/// [`PermissionChecker`] recording `permission_checks_total`.
pub struct MeteredPermissionChecker {
    inner: Arc<dyn PermissionChecker>,
}

impl MeteredPermissionChecker {
    /// Meters `inner`.
    pub fn new(inner: Arc<dyn PermissionChecker>) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl PermissionChecker for MeteredPermissionChecker {
    async fn check(
        &self,
        principal: &Principal,
        file_id: FileId,
    ) -> Result<PermissionVerdict, PermissionError> {
        let result = self.inner.check(principal, file_id).await;
        let outcome = match &result {
            Ok(PermissionVerdict::Allowed) => "allowed",
            Ok(PermissionVerdict::Denied) => "denied",
            Err(_) => "error",
        };
        counter!("permission_checks_total", "result" => outcome).increment(1);
        result
    }
}

/// [`RateLimiter`] recording `rate_limited_total`.
pub struct MeteredRateLimiter {
    inner: Arc<dyn RateLimiter>,
}

impl MeteredRateLimiter {
    /// Meters `inner`.
    pub fn new(inner: Arc<dyn RateLimiter>) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl RateLimiter for MeteredRateLimiter {
    async fn hit(&self, client: &str, class: RateClass, limit: RateLimit) -> RateDecision {
        let decision = self.inner.hit(client, class, limit).await;
        if matches!(decision, RateDecision::Limited { .. }) {
            counter!("rate_limited_total", "class" => class.as_str()).increment(1);
        }
        decision
    }
}
