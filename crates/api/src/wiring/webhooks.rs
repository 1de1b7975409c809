//! Webhooks in the composition root: the repository keeps the configured events in its outbox,
//! and one worker per process delivers them.

use stowage_infrastructure::SeaOrmFileRepository;
use stowage_infrastructure::db::{DatabasePool, OutboxStore, WebhookOutbox};
use stowage_infrastructure::webhooks::WebhookWorker;

use super::connect_database;
use crate::StartupError;
use crate::config::Config;

/// The repository over `db`, keeping the events webhooks deliver when `WEBHOOK_URL` is set.
pub(crate) fn file_repository(config: &Config, db: DatabasePool) -> SeaOrmFileRepository {
    let repo = SeaOrmFileRepository::new(db);
    match &config.webhooks {
        Some(webhooks) => repo.with_webhooks(WebhookOutbox {
            kinds: webhooks.kinds.clone(),
            service: config.events.service_name.clone(),
        }),
        None => repo,
    }
}

/// The delivery worker of this process, when `WEBHOOK_URL` is set.
pub(crate) fn webhook_worker(
    config: &Config,
    db: &DatabasePool,
) -> Result<Option<WebhookWorker>, StartupError> {
    let Some(webhooks) = &config.webhooks else {
        return Ok(None);
    };
    let mut kinds: Vec<&str> = webhooks.kinds.iter().map(|kind| kind.as_str()).collect();
    kinds.sort_unstable();
    tracing::info!(
        events = kinds.join(","),
        max_attempts = webhooks.delivery.max_attempts,
        "events are delivered as webhooks from the outbox"
    );
    WebhookWorker::new(OutboxStore::new(db), webhooks.delivery.clone())
        .map(Some)
        .map_err(StartupError::Webhooks)
}

/// The outbox of the configured database, for `stowage-api events` (run `migrate` first).
///
/// # Errors
/// [`StartupError::Database`] when the database cannot be reached.
pub async fn webhook_outbox(config: &Config) -> Result<OutboxStore, StartupError> {
    Ok(OutboxStore::new(&connect_database(config).await?))
}
