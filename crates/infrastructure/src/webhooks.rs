//! Webhook delivery: a worker in every replica claims due events from the outbox, `POST`s them
//! signed, deletes what a receiver took and schedules the rest again with exponential backoff,
//! until they run out of attempts and are left dead for an operator to retry.
//!
//! Neither the secret, the signature nor the URL's user info is ever logged or kept as an error.

mod signing;

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::header::{CONTENT_TYPE, HeaderValue, USER_AGENT};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::db::{ClaimedEvent, Failure, OutboxError, OutboxStore, now_millis};
use crate::secret_url::SecretUrl;

pub use signing::{MAX_BACKOFF, backoff, signature};

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Stowage-Signature";

/// Where and how events are delivered.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// The receiver (`WEBHOOK_URL`; user info, if any, is sent as basic auth and never logged).
    pub url: SecretUrl,
    /// The signing key (`WEBHOOK_SECRET`).
    pub secret: SecretString,
    /// Attempts before an event is dead (`WEBHOOK_MAX_ATTEMPTS`, at least 1).
    pub max_attempts: u32,
    /// Longest one `POST` may take (`WEBHOOK_TIMEOUT_MS`).
    pub timeout: Duration,
    /// The first wait between attempts, doubled after each (`WEBHOOK_RETRY_BASE_MS`).
    pub retry_base: Duration,
    /// How often an idle worker looks for due events.
    pub poll_interval: Duration,
    /// Most events one worker sends at once (each of another file).
    pub batch: u32,
}

/// Why the worker could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the webhook client")]
pub struct WebhookClientError(#[source] reqwest::Error);

/// How often the `webhook_outbox_dead` gauge is refreshed while nothing dies.
const GAUGE_EVERY: Duration = Duration::from_secs(10);

/// How long to wait after the database failed.
const DATABASE_BACKOFF: Duration = Duration::from_secs(1);

/// Delivers the outbox's events; run one per process.
#[derive(Clone, Debug)]
pub struct WebhookWorker {
    store: OutboxStore,
    client: reqwest::Client,
    settings: WebhookSettings,
}

/// How one attempt ended.
enum Outcome {
    Delivered,
    Failed(String),
}

impl WebhookWorker {
    /// A worker delivering `store`'s events as `settings` say.
    ///
    /// # Errors
    /// [`WebhookClientError`] when the HTTP client cannot be built.
    pub fn new(store: OutboxStore, settings: WebhookSettings) -> Result<Self, WebhookClientError> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(WebhookClientError)?;
        Ok(Self {
            store,
            client,
            settings,
        })
    }

    /// How long a claim holds an event: longer than a `POST` may take, so that no two workers
    /// send one event at once, and short enough that a crashed worker's events come back soon.
    fn lease(&self) -> Duration {
        self.settings
            .timeout
            .saturating_mul(2)
            .saturating_add(Duration::from_secs(5))
    }

    /// Runs the worker on its own task until [`WorkerHandle::stop`].
    pub fn spawn(self) -> WorkerHandle {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(self.run(stopped));
        WorkerHandle { stop, task }
    }

    /// Delivers until `stop` turns true (or its sender is gone); an attempt in flight finishes.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut gauge_at: Option<Instant> = None;
        loop {
            if *stop.borrow() {
                break;
            }
            let pause = match self.deliver_due().await {
                Ok(0) => self.settings.poll_interval,
                Ok(_) => Duration::ZERO,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook delivery cannot read the outbox");
                    DATABASE_BACKOFF
                }
            };
            if gauge_at.is_none_or(|at| at.elapsed() >= GAUGE_EVERY) {
                self.refresh_dead_gauge().await;
                gauge_at = Some(Instant::now());
            }
            if pause.is_zero() {
                continue;
            }
            tokio::select! {
                changed = stop.changed() => if changed.is_err() { break },
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Claims the due events and delivers them (each of another file, so at once); how many
    /// were claimed.
    ///
    /// # Errors
    /// [`OutboxError`] when the outbox cannot be read.
    pub async fn deliver_due(&self) -> Result<usize, OutboxError> {
        let claimed = self
            .store
            .claim(self.settings.batch.max(1), self.lease())
            .await?;
        let count = claimed.len();
        join_all(claimed.iter().map(|event| self.deliver(event))).await;
        Ok(count)
    }

    async fn deliver(&self, event: &ClaimedEvent) {
        let outcome = self.post(event).await;
        let result = match outcome {
            Outcome::Delivered => {
                metrics::counter!("webhook_deliveries_total", "result" => "ok").increment(1);
                tracing::debug!(event_id = %event.event_id, event_type = %event.event_type, "webhook delivered");
                self.store.delivered(event).await.map(|removed| {
                    if !removed {
                        lease_lost(event);
                    }
                })
            }
            Outcome::Failed(error) => self.failed(event, error).await,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, event_id = %event.event_id, "the outcome of a webhook attempt was not recorded; it will be attempted again");
        }
    }

    async fn failed(&self, event: &ClaimedEvent, error: String) -> Result<(), OutboxError> {
        let attempts = event.attempts.saturating_add(1);
        let dead = attempts >= self.settings.max_attempts;
        let jitter = u16::try_from(uuid::Uuid::new_v4().as_u128() & 0xffff).unwrap_or(0);
        let wait = backoff(self.settings.retry_base, attempts, jitter);
        let failure = Failure {
            attempts,
            dead,
            retry_in: wait,
            error,
        };
        if !self.store.failed(event, &failure).await? {
            lease_lost(event);
            return Ok(());
        }
        if dead {
            metrics::counter!("webhook_deliveries_total", "result" => "dead").increment(1);
            tracing::warn!(
                event_id = %event.event_id,
                event_type = %event.event_type,
                file_id = %event.file_id,
                attempts,
                error = %failure.error,
                "a webhook ran out of attempts and is dead; `stowage-api events retry-dead` sends it again"
            );
            self.refresh_dead_gauge().await;
        } else {
            metrics::counter!("webhook_deliveries_total", "result" => "retry").increment(1);
            tracing::info!(
                event_id = %event.event_id,
                attempts,
                retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                error = %failure.error,
                "a webhook attempt failed; it will be retried"
            );
        }
        Ok(())
    }

    async fn post(&self, event: &ClaimedEvent) -> Outcome {
        let t = now_millis() / 1_000;
        let signed = signature(
            self.settings.secret.expose_secret().as_bytes(),
            t,
            &event.body,
        );
        let Ok(signed) = HeaderValue::from_str(&signed) else {
            return Outcome::Failed("the signature is not a header value".to_owned());
        };
        let sent = self
            .client
            .post(self.settings.url.expose_secret())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, "stowage-webhooks")
            .header(SIGNATURE_HEADER, signed)
            .body(event.body.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => Outcome::Delivered,
            Ok(response) => Outcome::Failed(format!("HTTP {}", response.status().as_u16())),
            Err(e) => Outcome::Failed(describe(&e)),
        }
    }

    async fn refresh_dead_gauge(&self) {
        match self.store.dead_count().await {
            #[expect(clippy::cast_precision_loss, reason = "a gauge of a row count")]
            Ok(dead) => metrics::gauge!("webhook_outbox_dead").set(dead as f64),
            Err(e) => tracing::debug!(error = %e, "the dead webhook count could not be read"),
        }
    }
}

/// The outcome of an attempt whose lease ran out and passed to another claim: that claim's
/// outcome counts, so this one is neither recorded nor counted.
fn lease_lost(event: &ClaimedEvent) {
    tracing::debug!(
        event_id = %event.event_id,
        "a webhook attempt outlived its lease; the event's new claimer records the outcome"
    );
}

/// What went wrong with a request, in words that never include the URL.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else if e.is_builder() {
        "invalid request".to_owned()
    } else {
        "request failed".to_owned()
    }
}

/// A running worker.
#[derive(Debug)]
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl WorkerHandle {
    /// Stops the worker, letting attempts in flight finish for up to `wait` (an unfinished one
    /// is sent again once its lease ends).
    pub async fn stop(self, wait: Duration) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(wait, &mut task).await.is_err() {
            task.abort();
        }
    }
}
