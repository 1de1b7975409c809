//! One shared Redis connection for the token store and the rate limiter.
//!
//! It connects lazily, so the service starts while Redis is down (readiness reports it), and
//! every command is bounded by a timeout so a hung Redis fails fast instead of holding requests.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::ExposeSecret;
use stowage_application::BoxError;
use tokio::sync::OnceCell;

use crate::secret_url::SecretUrl;

/// How to reach Redis, and which of its keys are the service's.
#[derive(Clone, Debug)]
pub struct RedisSettings {
    /// `redis://[:password@]host:port[/db]` (may hold a password; redacted in `Debug`).
    pub url: SecretUrl,
    /// Prefix of every key read or written: Django's cache prefix (`REDIS_KEY_PREFIX`), shared by
    /// the token store and the rate limiter.
    pub key_prefix: String,
    /// Longest wait for a connection or an answer.
    pub timeout: Duration,
}

/// The Redis URL did not parse; the URL itself is never repeated (it may hold a password).
#[derive(Debug, thiserror::Error)]
#[error("not a usable Redis URL")]
pub struct RedisUrlError(#[source] BoxError);

/// Why a Redis call failed; the URL is never part of it.
#[derive(Debug, thiserror::Error)]
pub enum RedisCallError {
    /// No answer within the timeout.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Connection or command error.
    #[error("redis error: {0}")]
    Redis(#[source] BoxError),
}

fn call_error(e: redis::RedisError) -> RedisCallError {
    RedisCallError::Redis(Box::new(e))
}

/// A lazily connected, self-reconnecting Redis connection.
#[derive(Clone)]
pub struct RedisConnection {
    client: redis::Client,
    manager: Arc<OnceCell<ConnectionManager>>,
    timeout: Duration,
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConnection")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisConnection {
    /// Prepares a connection to `settings.url`; nothing is dialled yet (the key prefix is for the
    /// token store and the rate limiter).
    ///
    /// # Errors
    /// [`RedisUrlError`] when the URL does not parse.
    pub fn new(settings: &RedisSettings) -> Result<Self, RedisUrlError> {
        Ok(Self {
            client: redis::Client::open(settings.url.expose_secret())
                .map_err(|e| RedisUrlError(Box::new(e)))?,
            manager: Arc::new(OnceCell::new()),
            timeout: settings.timeout,
        })
    }

    async fn manager(&self) -> Result<ConnectionManager, RedisCallError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let client = self.client.clone();
        let manager = tokio::time::timeout(
            self.timeout,
            self.manager.get_or_try_init(|| async move {
                ConnectionManager::new_with_config(client, config).await
            }),
        )
        .await
        .map_err(|_| RedisCallError::Timeout(self.timeout))?
        .map_err(call_error)?;
        Ok(manager.clone())
    }

    /// Runs `command` with the timeout.
    ///
    /// # Errors
    /// [`RedisCallError`].
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &self,
        command: &redis::Cmd,
    ) -> Result<T, RedisCallError> {
        let mut manager = self.manager().await?;
        tokio::time::timeout(self.timeout, command.query_async(&mut manager))
            .await
            .map_err(|_| RedisCallError::Timeout(self.timeout))?
            .map_err(call_error)
    }

    /// Runs `script` with `keys` and `args` with the timeout.
    ///
    /// # Errors
    /// [`RedisCallError`].
    pub(crate) async fn eval<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        keys: &[&str],
        args: &[u64],
    ) -> Result<T, RedisCallError> {
        let mut manager = self.manager().await?;
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        for arg in args {
            invocation.arg(*arg);
        }
        tokio::time::timeout(self.timeout, invocation.invoke_async(&mut manager))
            .await
            .map_err(|_| RedisCallError::Timeout(self.timeout))?
            .map_err(call_error)
    }

    /// `PING`.
    ///
    /// # Errors
    /// [`RedisCallError`].
    pub async fn ping(&self) -> Result<(), RedisCallError> {
        let _: String = self.query(&redis::cmd("PING")).await?;
        Ok(())
    }
}
