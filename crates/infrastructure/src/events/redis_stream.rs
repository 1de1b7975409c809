//! The audit stream: each event `XADD`ed to a Redis stream the Django backend reads, as the
//! Pneumatic file service wrote it.
//!
//! Best-effort by contract: a publish never fails and never holds a request longer than the
//! timeout. After a failure the stream is taken as down for a cool-down, during which events are
//! dropped without a try (and counted in `events_dropped_total`); the first event after it is the
//! probe that finds whether the stream is back.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use stowage_application::events::{EventKind, FileEvent};
use stowage_application::ports::EventPublisher;
use tokio::time::Instant;

use super::envelope::envelope;
use crate::redis::{RedisConnection, RedisSettings, RedisUrlError};
use crate::secret_url::SecretUrl;

/// Where and how the audit stream is written.
#[derive(Clone, Debug)]
pub struct RedisStreamSettings {
    /// `EVENTS_REDIS_URL` (may hold a password; redacted in `Debug`).
    pub url: SecretUrl,
    /// The stream's key (`EVENTS_STREAM`).
    pub stream: String,
    /// The length the stream is trimmed to, approximately (`MAXLEN ~`).
    pub maxlen: u64,
    /// The envelope's `service`.
    pub service: String,
    /// Longest time a publish may take, connecting included.
    pub timeout: Duration,
    /// How long events are dropped without a try after a failure.
    pub cooldown: Duration,
}

/// Whether the stream is taken as up.
#[derive(Clone, Copy, Debug)]
enum Circuit {
    /// Every event is written.
    Closed,
    /// Events are dropped until `retry_at`; the first one after it is written as a probe.
    Open { retry_at: Instant },
}

/// Publishes events to a Redis stream; see the module documentation.
pub struct RedisStreamPublisher {
    connection: RedisConnection,
    stream: String,
    maxlen: u64,
    service: String,
    timeout: Duration,
    cooldown: Duration,
    circuit: Mutex<Circuit>,
    dropped: AtomicU64,
}

impl std::fmt::Debug for RedisStreamPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStreamPublisher")
            .field("stream", &self.stream)
            .field("maxlen", &self.maxlen)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStreamPublisher {
    /// A publisher to `settings.url`; nothing is dialled until the first event.
    ///
    /// # Errors
    /// [`RedisUrlError`] when the URL does not parse.
    pub fn new(settings: &RedisStreamSettings) -> Result<Self, RedisUrlError> {
        let connection = RedisConnection::new(&RedisSettings {
            url: settings.url.clone(),
            key_prefix: String::new(),
            timeout: settings.timeout,
        })?;
        Ok(Self {
            connection,
            stream: settings.stream.clone(),
            maxlen: settings.maxlen,
            service: settings.service.clone(),
            timeout: settings.timeout,
            cooldown: settings.cooldown,
            circuit: Mutex::new(Circuit::Closed),
            dropped: AtomicU64::new(0),
        })
    }

    /// Events dropped since start (also counted in `events_dropped_total`).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn circuit(&self) -> std::sync::MutexGuard<'_, Circuit> {
        // The state is a plain value: one left by a panicking holder is still valid.
        self.circuit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether to try writing now. When the cool-down is over, this caller is the probe: the
    /// next one is pushed back so only one event tries while the stream may still be down (and
    /// a probe abandoned mid-way only delays the next).
    fn admit(&self) -> bool {
        let mut circuit = self.circuit();
        match *circuit {
            Circuit::Closed => true,
            Circuit::Open { retry_at } if Instant::now() >= retry_at => {
                *circuit = Circuit::Open {
                    retry_at: Instant::now() + self.cooldown + self.timeout,
                };
                true
            }
            Circuit::Open { .. } => false,
        }
    }

    fn succeeded(&self) {
        let mut circuit = self.circuit();
        if matches!(*circuit, Circuit::Open { .. }) {
            *circuit = Circuit::Closed;
            tracing::info!(
                stream = %self.stream,
                dropped_total = self.dropped(),
                "the events stream answers again; events are written"
            );
        }
    }

    fn failed(&self, error: &dyn std::fmt::Display) {
        let mut circuit = self.circuit();
        if matches!(*circuit, Circuit::Closed) {
            tracing::warn!(
                stream = %self.stream,
                error = %error,
                "the events stream is down; events are dropped until it answers"
            );
        }
        *circuit = Circuit::Open {
            retry_at: Instant::now() + self.cooldown,
        };
        drop(circuit);
        self.count_dropped();
    }

    fn count_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("events_dropped_total").increment(1);
    }

    fn command(&self, event: &FileEvent) -> redis::Cmd {
        let mut command = redis::cmd("XADD");
        command
            .arg(&self.stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.maxlen)
            .arg("*")
            .arg("type")
            .arg(event.kind.as_str())
            .arg("data")
            .arg(envelope(event, &self.service).to_string());
        command
    }
}

#[async_trait]
impl EventPublisher for RedisStreamPublisher {
    async fn publish(&self, event: &FileEvent) {
        // Deletions reach the backend through webhooks only.
        if event.kind == EventKind::Delete {
            return;
        }
        if !self.admit() {
            self.count_dropped();
            return;
        }
        let command = self.command(event);
        // One bound over connecting and the command, each of which has its own.
        match tokio::time::timeout(self.timeout, self.connection.query::<String>(&command)).await {
            Ok(Ok(_id)) => self.succeeded(),
            Ok(Err(e)) => self.failed(&e),
            Err(_) => self.failed(&format_args!(
                "no answer within {} ms",
                self.timeout.as_millis()
            )),
        }
    }
}
