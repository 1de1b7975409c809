//! What Stowage finds ready: a bucket for direct transfers, a fresh database and an opaque
//! Django token in Redis.

use anyhow::{Context, Result};
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use sha2::Sha256;

use crate::client::DIRECT_BUCKET;
use crate::processes::{S3_ACCESS_KEY, S3_SECRET_KEY};

/// A client of the S3 server at `endpoint`, with the bucket for direct transfers created.
pub async fn direct_s3(endpoint: &str) -> Result<aws_sdk_s3::Client> {
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .force_path_style(true)
            .credentials_provider(Credentials::new(
                S3_ACCESS_KEY,
                S3_SECRET_KEY,
                None,
                None,
                "bench",
            ))
            .build(),
    );
    s3.create_bucket().bucket(DIRECT_BUCKET).send().await?;
    Ok(s3)
}

/// A database of its own for the run, on the server at `postgres`.
pub struct Scratch {
    admin: DatabaseConnection,
    /// The database's name.
    pub name: String,
}

impl Scratch {
    /// Creates the database.
    pub async fn create(postgres: &str) -> Result<Self> {
        let name = format!("stowage_bench_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(format!("{postgres}/postgres"))
            .await
            .context("Postgres")?;
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await?;
        Ok(Self { admin, name })
    }

    /// Connections to the database now, from `pg_stat_activity` (this one is to another).
    pub async fn connections(&self) -> Result<i64> {
        let row = self
            .admin
            .query_one(Statement::from_string(
                DbBackend::Postgres,
                format!(
                    "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = '{}'",
                    self.name
                ),
            ))
            .await?
            .context("pg_stat_activity answered no row")?;
        Ok(row.try_get("", "n")?)
    }

    /// Drops the database; a failure leaves it behind and is not an error.
    pub async fn drop_database(&self) {
        let _ = self
            .admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await;
    }
}

/// The Django-side secrets of a run: the signing key, the cache key prefix and a token.
pub struct Auth {
    pub secret: String,
    pub prefix: String,
    pub token: String,
    /// How long the tokens live in Redis, in seconds.
    pub ttl_s: u64,
}

impl Auth {
    /// Stores a fresh opaque token for user 1 in Redis at `redis_url`, as Django's cache would,
    /// for `ttl_s` seconds.
    pub async fn store(redis_url: &str, ttl_s: u64) -> Result<Self> {
        let mut auth = Self {
            secret: format!("bench-{}", uuid::Uuid::new_v4().simple()),
            prefix: format!(":1:bench{}:", uuid::Uuid::new_v4().simple()),
            token: String::new(),
            ttl_s,
        };
        auth.token = auth.grant(redis_url, 1, 1).await?;
        Ok(auth)
    }

    /// Stores a fresh opaque token for `user` of `account` under the run's secret and prefix.
    pub async fn grant(&self, redis_url: &str, user: i64, account: i64) -> Result<String> {
        let token = format!("opaque{}", uuid::Uuid::new_v4().simple());
        let mut key = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(token.as_bytes(), self.secret.as_bytes(), 1, &mut key);
        let redis = redis::Client::open(redis_url)?;
        let mut con = redis
            .get_multiplexed_async_connection()
            .await
            .context("Redis")?;
        let _: () = redis::cmd("SET")
            .arg(format!("{}{}", self.prefix, hex::encode(key)))
            .arg(format!(r#"{{"user_id": {user}, "account_id": {account}}}"#))
            .arg("EX")
            .arg(self.ttl_s)
            .query_async(&mut con)
            .await?;
        Ok(token)
    }
}
