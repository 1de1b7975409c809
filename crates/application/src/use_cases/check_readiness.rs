//! Readiness: do the database, the blob store and the token store answer?

use std::sync::Arc;

use crate::ports::{BlobStore, FileRepository, TokenStore};

/// The state of one dependency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComponentStatus {
    /// It answered.
    Ok,
    /// It failed or timed out.
    Unavailable,
}

/// The state of every dependency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// The metadata database.
    pub database: ComponentStatus,
    /// The blob store.
    pub storage: ComponentStatus,
    /// The token store, when one is configured.
    pub redis: Option<ComponentStatus>,
}

impl Readiness {
    /// True when every configured dependency answered.
    pub fn is_ready(&self) -> bool {
        self.database == ComponentStatus::Ok
            && self.storage == ComponentStatus::Ok
            && self.redis.is_none_or(|r| r == ComponentStatus::Ok)
    }
}

/// Asks every dependency at once.
#[derive(Clone)]
pub struct CheckReadiness {
    repo: Arc<dyn FileRepository>,
    blobs: Arc<dyn BlobStore>,
    tokens: Option<Arc<dyn TokenStore>>,
}

impl CheckReadiness {
    /// A check over the given dependencies.
    pub fn new(
        repo: Arc<dyn FileRepository>,
        blobs: Arc<dyn BlobStore>,
        tokens: Option<Arc<dyn TokenStore>>,
    ) -> Self {
        Self {
            repo,
            blobs,
            tokens,
        }
    }

    /// Each dependency's state; failures are logged with their cause.
    pub async fn execute(&self) -> Readiness {
        let database = async {
            self.repo.health().await.map_err(|e| {
                tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "database not ready");
            })
        };
        let storage = async {
            self.blobs.health().await.map_err(|e| {
                tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "blob store not ready");
            })
        };
        let redis = async {
            match &self.tokens {
                None => None,
                Some(t) => Some(t.health().await.map_err(|e| {
                    tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "token store not ready");
                })),
            }
        };
        let (database, storage, redis) = futures_util::join!(database, storage, redis);
        let status = |r: Result<(), ()>| {
            if r.is_ok() {
                ComponentStatus::Ok
            } else {
                ComponentStatus::Unavailable
            }
        };
        Readiness {
            database: status(database),
            storage: status(storage),
            redis: redis.map(status),
        }
    }
}
