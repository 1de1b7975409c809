//! The test server: the `stowage-api` application with its own data directory, database and
//! environment, and what the harness reads of it (stored blobs, rows). It runs in the test's own
//! process ([`TestServer::spawn_with`], see `app.rs`) or as a child process
//! ([`TestServer::process_with`], see `process.rs`) for tests that read its log, its `/proc`
//! figures or signal it, and for tests that depend on process-global state (the metrics recorder).

use std::collections::{BTreeSet, HashMap};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, Statement};

use crate::app::InProcess;
// Where the maintenance subcommands find the binary too.
use crate::http::{client, multipart_body};
use crate::jwt::{now, sign_jwt};
pub(crate) use crate::process::binary;
use crate::s3::{S3Server, TEST_BUCKET, s3_mode, walk_files};

/// A free loopback port (bound, then released for the server).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Creates an empty database named `{prefix}_{random}` on Postgres `server`; returns its name.
pub async fn create_database(server: &str, prefix: &str) -> String {
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(format!("{server}/postgres"))
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    admin.close().await.unwrap();
    name
}

/// Rows of `seaql_migrations` in the Postgres database at `url`, and how many distinct versions
/// they name (equal when no migration was applied twice).
pub async fn applied_migrations(url: &str) -> (i64, i64) {
    let db = Database::connect(url).await.unwrap();
    let row = db
        .query_one(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT COUNT(*) AS n, COUNT(DISTINCT version) AS versions FROM seaql_migrations",
        ))
        .await
        .unwrap()
        .unwrap();
    let counts = (
        row.try_get::<i64>("", "n").unwrap(),
        row.try_get::<i64>("", "versions").unwrap(),
    );
    db.close().await.unwrap();
    counts
}

/// The Postgres server URL tests run against, when set (`postgres://user@host:port`, no database).
pub fn postgres_server() -> Option<String> {
    std::env::var("STOWAGE_TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
}

/// The Redis server tests run against, when set (`redis://host:port/db`).
pub fn redis_server() -> Option<String> {
    std::env::var("STOWAGE_TEST_REDIS_URL")
        .ok()
        .filter(|v| !v.is_empty())
}

/// Polls `url` (a `/health/live`) until it answers with success, calling `check` after each
/// failed probe: it panics when the process has exited, or when the time is up.
pub(crate) async fn until_live(url: &str, mut check: impl FnMut()) {
    let client = client();
    loop {
        // `Connection: close`: the server ends the probe's connection itself, so it does not
        // linger and count against a test's per-client connection bound.
        if let Ok(r) = client.get(url).header("Connection", "close").send().await
            && r.status().is_success()
        {
            return;
        }
        check();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A running `stowage-api` and everything it owns.
pub struct TestServer {
    /// True for a server built in the test's process, false for a child process.
    pub(crate) in_process: bool,
    /// The process, while it runs (process mode).
    pub(crate) child: Option<Child>,
    /// The in-process server, while it runs.
    app: Option<InProcess>,
    pub base_url: String,
    pub port: u16,
    pub data_dir: tempfile::TempDir,
    pub secret: String,
    pub database_url: String,
    postgres_database: Option<(String, String)>,
    pub(crate) env: HashMap<String, String>,
    /// The S3 server of this test server, in S3 mode.
    pub s3: Option<S3Server>,
}

impl TestServer {
    /// An in-process server on the embedded defaults (or Postgres when
    /// `STOWAGE_TEST_DATABASE_URL` is set).
    pub async fn spawn() -> TestServer {
        TestServer::spawn_with(&[]).await
    }

    /// An in-process server with extra environment variables: the application built from the
    /// environment a process would get, on a runtime and thread of its own. It has no log and no
    /// process: [`TestServer::log`], [`TestServer::pid`] and the like panic.
    ///
    /// With `STOWAGE_TEST_PROCESS=1` it is a process like [`TestServer::process_with`]'s, so that
    /// a failing test's log can be read (`TEST_LOG=1` prints it) and the two modes compared.
    pub async fn spawn_with(extra: &[(&str, &str)]) -> TestServer {
        let forced = std::env::var("STOWAGE_TEST_PROCESS").is_ok_and(|v| v == "1");
        TestServer::new(extra, !forced).await
    }

    /// A `stowage-api` child process on the embedded defaults.
    pub async fn process() -> TestServer {
        TestServer::process_with(&[]).await
    }

    /// A `stowage-api` child process with extra environment variables, for tests that read its
    /// log, its id or `/proc` figures, signal it, or depend on process-global state (metrics).
    pub async fn process_with(extra: &[(&str, &str)]) -> TestServer {
        TestServer::new(extra, false).await
    }

    async fn new(extra: &[(&str, &str)], in_process: bool) -> TestServer {
        let data_dir = tempfile::tempdir().unwrap();
        // A server configured by Pneumatic's names signs with its DJANGO_SECRET_KEY.
        let secret = extra
            .iter()
            .find(|(k, _)| *k == "DJANGO_SECRET_KEY")
            .map_or_else(
                || format!("test-secret-{}", uuid::Uuid::new_v4().simple()),
                |(_, v)| (*v).to_owned(),
            );
        let (database_url, postgres_database) = match postgres_server() {
            Some(server) => {
                let name = create_database(&server, "stowage_test").await;
                (format!("{server}/{name}"), Some((server, name)))
            }
            None => (
                format!("sqlite://{}", data_dir.path().join("stowage.db").display()),
                None,
            ),
        };
        let backend = extra
            .iter()
            .find(|(k, _)| *k == "STORAGE_BACKEND")
            .map(|(_, v)| *v);
        let s3 = match backend {
            Some("s3") => Some(S3Server::spawn()),
            Some(_) => None,
            None => s3_mode().then(S3Server::spawn),
        };
        let mut env: HashMap<String, String> = HashMap::from([
            // Port 0: the server picks a free port and logs it, so parallel tests never race for one.
            ("BIND_ADDR".into(), "127.0.0.1:0".into()),
            ("DATA_DIR".into(), data_dir.path().display().to_string()),
            ("AUTH_SECRET_KEY".into(), secret.clone()),
            ("DATABASE_URL".into(), database_url.clone()),
            ("LOG_FORMAT".into(), "json".into()),
            ("RATE_LIMIT_ENABLED".into(), "false".into()),
            (
                "LOG_LEVEL".into(),
                "debug,sqlx=warn,sea_orm=info,hyper=info,h2=info".into(),
            ),
        ]);
        if let Some(s3) = &s3 {
            env.insert("STORAGE_BACKEND".into(), "s3".into());
            env.insert("S3_ENDPOINT".into(), s3.endpoint());
            env.insert("S3_ACCESS_KEY".into(), s3.access_key.clone());
            env.insert("S3_SECRET_KEY".into(), s3.secret_key.clone());
            env.insert("S3_BUCKET".into(), TEST_BUCKET.into());
        }
        for (k, v) in extra {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        // The harness learns the port from the `listening` line, whatever level a test asks for.
        let level = env.get("LOG_LEVEL").cloned().unwrap_or_default();
        env.insert("LOG_LEVEL".into(), format!("{level},stowage_api=info"));
        let mut server = TestServer {
            in_process,
            child: None,
            app: None,
            base_url: String::new(),
            port: 0,
            data_dir,
            secret,
            database_url,
            postgres_database,
            env,
            s3,
        };
        server.start().await;
        server
    }

    /// Starts (or restarts, on the same port) the server with its environment.
    pub async fn start(&mut self) {
        let address = if self.in_process {
            let (app, address) = InProcess::start(&self.env).await;
            self.app = Some(app);
            address.to_string()
        } else {
            self.start_process().await
        };
        self.port = address.rsplit(':').next().unwrap().parse().unwrap();
        self.base_url = format!("http://{address}");
        // A restart comes back on the same port.
        self.env.insert("BIND_ADDR".into(), address);
        self.wait_until_live().await;
    }

    /// Stops the server as SIGTERM does: no new connections, requests in flight drained (for up
    /// to 10 s in process). [`TestServer::start`] brings it back on the same port.
    pub fn stop(&mut self) {
        match self.app.take() {
            Some(app) => app.stop(Duration::from_secs(10)),
            None if self.child.is_some() => {
                self.terminate();
            }
            None => {}
        }
    }

    async fn wait_until_live(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = self.url("/health/live");
        until_live(&url, || {
            self.assert_process_running();
            assert!(
                Instant::now() < deadline,
                "stowage-api did not come up; log:\n{}",
                self.read_log()
            );
        })
        .await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// A token for `user_id` in `account_id`, valid for an hour.
    pub fn token(&self, user_id: Option<i64>, account_id: i64) -> String {
        sign_jwt(
            &self.secret,
            &serde_json::json!({"user_id": user_id, "account_id": account_id, "exp": now() + 3600}),
        )
    }

    /// A workflow guest's token for `user_id` in `account_id` on task `task_id`, valid for an hour:
    /// the claims of the Django backend's guest tokens (`token_type` "Guest", `task_id`, `jti`).
    pub fn guest_token(&self, user_id: Option<i64>, account_id: i64, task_id: i64) -> String {
        sign_jwt(
            &self.secret,
            &serde_json::json!({
                "token_type": "Guest",
                "user_id": user_id,
                "account_id": account_id,
                "task_id": task_id,
                "exp": now() + 3600,
                "jti": uuid::Uuid::new_v4().simple().to_string(),
            }),
        )
    }

    /// `Authorization` value for user `user_id` of `account_id`.
    pub fn bearer(&self, user_id: Option<i64>, account_id: i64) -> String {
        format!("Bearer {}", self.token(user_id, account_id))
    }

    /// A POST to `path` of a multipart form delimited by `boundary`; the caller adds credentials
    /// and the body.
    pub fn post_form(&self, path: &str, boundary: &str) -> reqwest::RequestBuilder {
        client().post(self.url(path)).header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
    }

    /// Uploads `data` as `filename` with `content_type`, authorised by `auth` (an `Authorization` value).
    pub async fn upload(
        &self,
        auth: &str,
        filename: &str,
        content_type: &str,
        data: Vec<u8>,
    ) -> reqwest::Response {
        let boundary = format!("stowage-test-{}", uuid::Uuid::new_v4().simple());
        let body = multipart_body(&boundary, filename, content_type, &data);
        self.post_form("/files", &boundary)
            .header("Authorization", auth)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Uploads and returns the `FileInfo` JSON, asserting 201.
    pub async fn upload_ok(
        &self,
        auth: &str,
        filename: &str,
        content_type: &str,
        data: Vec<u8>,
    ) -> serde_json::Value {
        let response = self.upload(auth, filename, content_type, data).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 201, "upload failed: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Every stored blob and every leftover of an unfinished write: files under `{DATA_DIR}/blobs`,
    /// or in S3 mode the bucket's objects and the store's unfinished uploads.
    pub fn blob_files(&self) -> Vec<PathBuf> {
        match &self.s3 {
            Some(s3) => s3.files(TEST_BUCKET),
            None => walk_files(&self.data_dir.path().join("blobs")),
        }
    }

    /// What the store holds, as keys relative to the blob root (`{account}/{file_id}`, or
    /// `{account}/.{id}.part` for an unfinished write on disk), s3s-fs's own metadata left out; a
    /// trace of an unfinished S3 upload outside the bucket is its whole path.
    pub fn stored_keys(&self) -> BTreeSet<String> {
        let root = match &self.s3 {
            Some(s3) => s3.dir.path().join(TEST_BUCKET),
            None => self.data_dir.path().join("blobs"),
        };
        self.blob_files()
            .into_iter()
            .filter(|p| !p.to_string_lossy().contains(".s3s"))
            .map(|p| {
                p.strip_prefix(&root)
                    .map_or_else(|_| p.display().to_string(), |k| k.display().to_string())
            })
            .collect()
    }

    /// The blob key (`{account}/{file_id}`) of every row of the `files` table.
    pub async fn row_keys(&self) -> BTreeSet<String> {
        let db = Database::connect(&self.database_url).await.unwrap();
        let rows = db
            .query_all(Statement::from_string(
                db.get_database_backend(),
                "SELECT account_id, file_id FROM files",
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|row| {
                let account: i64 = row.try_get("", "account_id").unwrap();
                let id: uuid::Uuid = row.try_get("", "file_id").unwrap();
                format!("{account}/{id}")
            })
            .collect()
    }

    /// Where the blob of `file_id` in `account_id` lives: `{DATA_DIR}/blobs/{account}/{id}` on disk,
    /// the object `{account}/{id}` of the test bucket in s3s-fs's directory on S3.
    pub fn blob_path(&self, account_id: i64, file_id: &str) -> PathBuf {
        match &self.s3 {
            Some(s3) => s3
                .dir
                .path()
                .join(TEST_BUCKET)
                .join(account_id.to_string())
                .join(file_id),
            None => self
                .data_dir
                .path()
                .join("blobs")
                .join(account_id.to_string())
                .join(file_id),
        }
    }

    /// The server's environment (to start another process on the same stores).
    pub fn env(&self) -> &HashMap<String, String> {
        &self.env
    }

    /// Sets `key` to `value` in the environment the server gets at its next
    /// [`TestServer::start`] (and the subcommands run beside it): a dependency reached through a
    /// proxy, say.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.insert(key.to_owned(), value.to_owned());
    }

    /// Rows in the `files` table.
    pub async fn row_count(&self) -> i64 {
        let db = Database::connect(&self.database_url).await.unwrap();
        let backend = db.get_database_backend();
        let row = db
            .query_one(Statement::from_string(
                backend,
                "SELECT COUNT(*) AS n FROM files",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "n").unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if !self.in_process && std::env::var("TEST_LOG").is_ok() {
            eprintln!("{}", self.read_log());
        }
        // Stopped before its database is dropped, as a killed process is.
        drop(self.app.take());
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some((server, name)) = self.postgres_database.take() {
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(admin) = Database::connect(format!("{server}/postgres")).await {
                        let _ = admin
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .await;
                    }
                });
            })
            .join();
        }
    }
}
