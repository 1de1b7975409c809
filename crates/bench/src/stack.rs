//! The servers a run drives and what they find ready: s3s-fs, a scratch database, an opaque
//! Django token in Redis and a release `stowage-api` on all three, with a client of each.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;

use crate::client::{Bench, block};
use crate::fixtures::{Auth, Scratch, direct_s3};
use crate::processes::{Guard, Stowage, free_port, start_s3s_fs, start_stowage};
use crate::settings::Settings;

/// Everything a run started; [`Stack::stop`] ends the processes and removes what they left.
pub struct Stack {
    pub children: Guard,
    /// The run's folder: the S3 server's objects and Stowage's data directory.
    pub work: PathBuf,
    /// The S3 server's URL.
    pub endpoint: String,
    pub database: Scratch,
    pub database_url: String,
    pub auth: Auth,
    /// The Stowage server's pid.
    pub pid: u32,
    /// The S3 server's pid.
    pub s3_pid: u32,
    /// Clients of Stowage (as the token's user) and of the S3 server.
    pub bench: Arc<Bench>,
}

impl Stack {
    /// Starts s3s-fs, creates the database and the token (kept in Redis for `token_ttl_s`
    /// seconds) and starts Stowage on S3.
    pub async fn start(settings: &Settings, token_ttl_s: u64) -> Result<Self> {
        let work =
            std::env::temp_dir().join(format!("stowage-bench-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(work.join("s3"))?;
        let children = Guard::new();
        let s3_port = free_port()?;
        let s3_pid = start_s3s_fs(&children, &settings.s3s_bin, s3_port, work.join("s3"))?;
        let endpoint = format!("http://127.0.0.1:{s3_port}");
        let s3 = direct_s3(&endpoint).await?;
        let database = Scratch::create(&settings.postgres).await?;
        let auth = Auth::store(&settings.redis, token_ttl_s).await?;
        let database_url = format!("{}/{}", settings.postgres, database.name);
        let port = free_port()?;
        let mut stack = Self {
            children,
            bench: Arc::new(Bench {
                http: reqwest::Client::builder()
                    .pool_max_idle_per_host(64)
                    .tcp_nodelay(true)
                    .build()?,
                base: format!("http://127.0.0.1:{port}"),
                token: auth.token.clone(),
                s3,
                block: block(),
            }),
            work,
            endpoint,
            database,
            database_url,
            auth,
            pid: 0,
            s3_pid,
        };
        stack.pid = stack.launch(settings, port, "data", "s3")?;
        Ok(stack)
    }

    /// Starts one more Stowage of [`Stack::stowage`] and waits until it listens; its pid.
    pub fn launch(
        &self,
        settings: &Settings,
        port: u16,
        data_dir: &str,
        backend: &str,
    ) -> Result<u32> {
        start_stowage(
            &self.children,
            self.stowage(settings, port, data_dir, backend),
        )
    }

    /// How a Stowage on this run's database, Redis and token secret is started: on `port`, its
    /// data under the run's folder `data_dir`, its blobs in `backend` (`s3` or `fs`).
    pub fn stowage<'a>(
        &'a self,
        settings: &'a Settings,
        port: u16,
        data_dir: &str,
        backend: &'a str,
    ) -> Stowage<'a> {
        Stowage {
            bin: &settings.stowage_bin,
            port,
            data_dir: self.work.join(data_dir),
            auth_secret: &self.auth.secret,
            database_url: self.database_url.clone(),
            redis_url: &settings.redis,
            redis_prefix: &self.auth.prefix,
            s3_endpoint: &self.endpoint,
            backend,
        }
    }

    /// Ends the processes, drops the database and removes the run's folder; a failure to clean
    /// up leaves things behind and is not an error.
    pub async fn stop(self) {
        drop(self.children);
        self.database.drop_database().await;
        let _ = std::fs::remove_dir_all(&self.work);
    }
}
