//! [`TokenStore`] over the Django cache in Redis.
//!
//! User tokens are looked up under `{prefix}{hex(PBKDF2-HMAC-SHA256(token, secret, iterations, 32))}`,
//! public tokens under `{prefix}{token}`. Values are what Django's cache writes: a pickle of plain
//! values (read by [`super::pickle`], which never executes anything) or JSON.

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;
use stowage_application::ports::{TokenClaims, TokenKind, TokenStore, TokenStoreError};
use stowage_domain::{AccountId, UserId};

use super::pickle::{self, PickleValue};
use crate::redis::RedisConnection;

/// Iteration counts above this are hashed off the async runtime.
const INLINE_PBKDF2_ITERATIONS: u32 = 1_000;

/// Settings of the token lookup.
#[derive(Clone, Debug)]
pub struct TokenStoreSettings {
    /// Key prefix of Django's cache (`REDIS_KEY_PREFIX`, default `:1:`).
    pub key_prefix: String,
    /// PBKDF2 salt: `AUTH_SECRET_KEY` (redacted in `Debug`).
    pub secret: Arc<SecretSlice<u8>>,
    /// PBKDF2 iterations (`AUTH_TOKEN_ITERATIONS`).
    pub iterations: u32,
}

/// Looks up Django-issued tokens in Redis.
#[derive(Clone, Debug)]
pub struct RedisTokenStore {
    redis: RedisConnection,
    settings: TokenStoreSettings,
}

fn unavailable(e: crate::redis::RedisCallError) -> TokenStoreError {
    TokenStoreError::Unavailable(Box::new(e))
}

impl RedisTokenStore {
    /// A token store over `redis`.
    pub fn new(redis: RedisConnection, settings: TokenStoreSettings) -> Self {
        Self { redis, settings }
    }

    /// The Redis key of an opaque user token.
    pub fn user_token_key(prefix: &str, secret: &[u8], iterations: u32, token: &str) -> String {
        let mut derived = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(token.as_bytes(), secret, iterations.max(1), &mut derived);
        format!("{prefix}{}", hex::encode(derived))
    }

    async fn user_key(&self, token: &str) -> Result<String, TokenStoreError> {
        let prefix = self.settings.key_prefix.clone();
        let secret = self.settings.secret.clone();
        let iterations = self.settings.iterations;
        if iterations <= INLINE_PBKDF2_ITERATIONS {
            return Ok(Self::user_token_key(
                &prefix,
                secret.expose_secret(),
                iterations,
                token,
            ));
        }
        let token = token.to_owned();
        tokio::task::spawn_blocking(move || {
            Self::user_token_key(&prefix, secret.expose_secret(), iterations, &token)
        })
        .await
        .map_err(|e| TokenStoreError::Unavailable(Box::new(e)))
    }

    async fn lookup(&self, key: &str) -> Result<Option<PickleValue>, TokenStoreError> {
        let raw: Option<Vec<u8>> = self
            .redis
            .query(redis::cmd("GET").arg(key))
            .await
            .map_err(unavailable)?;
        Ok(raw.and_then(|bytes| match decode_value(&bytes) {
            Ok(value) => Some(value),
            Err(reason) => {
                tracing::debug!(%reason, "token value refused");
                None
            }
        }))
    }
}

/// Decodes a cached value: JSON when it looks like JSON, else a plain-value pickle.
pub fn decode_value(bytes: &[u8]) -> Result<PickleValue, String> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if matches!(first, Some(b'{' | b'[')) {
        let json: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        return Ok(from_json(json));
    }
    pickle::decode(bytes).map_err(|e| e.to_string())
}

fn from_json(v: serde_json::Value) -> PickleValue {
    match v {
        serde_json::Value::Null => PickleValue::None,
        serde_json::Value::Bool(b) => PickleValue::Bool(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => PickleValue::Int(i),
            None => PickleValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => PickleValue::Str(s),
        serde_json::Value::Array(items) => {
            PickleValue::List(items.into_iter().map(from_json).collect())
        }
        serde_json::Value::Object(map) => PickleValue::Dict(
            map.into_iter()
                .map(|(k, v)| (PickleValue::Str(k), from_json(v)))
                .collect(),
        ),
    }
}

/// Claims from a decoded value: a dict with an int `account_id` and an int or null (or absent) `user_id`.
pub fn claims_of(value: &PickleValue) -> Option<TokenClaims> {
    let account_id = match value.get("account_id")? {
        PickleValue::Int(a) => AccountId::new(*a),
        _ => return None,
    };
    let user_id = match value.get("user_id") {
        None | Some(PickleValue::None) => None,
        Some(PickleValue::Int(u)) => Some(UserId::new(*u)),
        Some(_) => return None,
    };
    // Django's cache holds user tokens (and account-level public tokens), never guest tokens.
    Some(TokenClaims {
        user_id,
        account_id,
        kind: TokenKind::User,
    })
}

#[async_trait]
impl TokenStore for RedisTokenStore {
    async fn user_token(&self, token: &str) -> Result<Option<TokenClaims>, TokenStoreError> {
        let key = self.user_key(token).await?;
        Ok(self.lookup(&key).await?.as_ref().and_then(claims_of))
    }

    async fn public_token(&self, token: &str) -> Result<Option<TokenClaims>, TokenStoreError> {
        let key = format!("{}{token}", self.settings.key_prefix);
        Ok(self.lookup(&key).await?.as_ref().and_then(claims_of))
    }

    async fn health(&self) -> Result<(), TokenStoreError> {
        self.redis.ping().await.map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_token_key_matches_pythons_hashlib() {
        // hashlib.pbkdf2_hmac("sha256", b"opaque-token", b"django-secret", 1, 32).hex()
        let key = RedisTokenStore::user_token_key(":1:", b"django-secret", 1, "opaque-token");
        assert_eq!(key, format!(":1:{}", PYTHON_PBKDF2_1));
    }

    const PYTHON_PBKDF2_1: &str =
        include_str!("../../tests/fixtures/pbkdf2_opaque-token_django-secret_1.hex");

    #[test]
    fn claims_need_an_int_account() {
        assert_eq!(
            claims_of(&from_json(serde_json::json!({"user_id": 1}))),
            None
        );
        assert_eq!(
            claims_of(&from_json(serde_json::json!({"account_id": "1"}))),
            None
        );
        assert_eq!(
            claims_of(&from_json(
                serde_json::json!({"account_id": 1, "user_id": "x"})
            )),
            None
        );
        assert_eq!(
            claims_of(&from_json(
                serde_json::json!({"account_id": 3, "user_id": null})
            )),
            Some(TokenClaims {
                user_id: None,
                account_id: AccountId::new(3),
                kind: TokenKind::User,
            })
        );
    }
}
