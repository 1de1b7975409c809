//! The test server: a `stowage-api` process with its own data directory, database, environment
//! and log, and what the harness reads of it (log lines, `/proc` figures, stored blobs).

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, Statement};

use crate::http::{client, multipart_body};
use crate::jwt::{now, sign_jwt};
use crate::s3::{S3Server, TEST_BUCKET, s3_mode, walk_files};

/// The `stowage-api` binary cargo built next to this test executable (or `STOWAGE_BIN`).
pub fn binary() -> PathBuf {
    if let Ok(bin) = std::env::var("STOWAGE_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile dir");
    let bin = profile_dir.join("stowage-api");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p stowage-api` (make test does)",
        bin.display()
    );
    bin
}

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

/// The Postgres server URL tests run against, when set (`postgres://user@host:port`, no database).
pub fn postgres_server() -> Option<String> {
    std::env::var("STOWAGE_TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
}

/// A running `stowage-api` and everything it owns.
pub struct TestServer {
    child: Option<Child>,
    pub base_url: String,
    pub port: u16,
    pub data_dir: tempfile::TempDir,
    pub secret: String,
    pub database_url: String,
    postgres_database: Option<(String, String)>,
    env: HashMap<String, String>,
    /// The S3 server of this test server, in S3 mode.
    pub s3: Option<S3Server>,
}

impl TestServer {
    /// A server on the embedded defaults (or Postgres when `STOWAGE_TEST_DATABASE_URL` is set).
    pub async fn spawn() -> TestServer {
        TestServer::spawn_with(&[]).await
    }

    /// A server with extra environment variables.
    pub async fn spawn_with(extra: &[(&str, &str)]) -> TestServer {
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
            child: None,
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

    /// Starts (or restarts) the process with the server's environment.
    pub async fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let logged_before = self.log().len();
        let mut command = Command::new(binary());
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&self.env)
            .current_dir(self.data_dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.child = Some(command.spawn().unwrap());
        let address = self.wait_for_listening(logged_before).await;
        self.port = address.rsplit(':').next().unwrap().parse().unwrap();
        self.base_url = format!("http://{address}");
        // A restart comes back on the same port.
        self.env.insert("BIND_ADDR".into(), address);
        self.wait_until_live().await;
    }

    /// The address from this process's own `listening` log line.
    async fn wait_for_listening(&mut self, skip: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.log();
            let fresh = log.get(skip..).unwrap_or_default();
            // The JSON line, or with `LOG_FORMAT=pretty` the text one (`listening address=…`).
            let address = fresh.lines().find_map(|line| {
                let Ok(json) = serde_json::from_str::<serde_json::Value>(line) else {
                    let (_, rest) = line.split_once(" listening address=")?;
                    return rest.split_whitespace().next().map(str::to_owned);
                };
                (json["fields"]["message"] == "listening")
                    .then(|| json["fields"]["address"].as_str().map(str::to_owned))
                    .flatten()
            });
            if let Some(address) = address {
                return address;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("stowage-api exited with {status}; log:\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "stowage-api did not start; log:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_until_live(&mut self) {
        let client = client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(self.url("/health/live")).send().await
                && r.status().is_success()
            {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("stowage-api exited with {status}; log:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "stowage-api did not come up; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        child.wait().unwrap()
    }

    /// The process, while it runs.
    pub fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("running")
    }

    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is running").id()
    }

    /// The server process's resident memory, in KiB (`VmRSS` of `/proc/PID/status`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// File descriptors the server process holds open (entries of `/proc/PID/fd`).
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn log_path(&self) -> PathBuf {
        self.data_dir.path().join("server.log")
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The first JSON log line `matches` accepts, waiting up to 10 s for it: a request's line is
    /// written when its response body is done, which may be after the client saw the response.
    pub async fn log_line(
        &self,
        matches: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            let found = log
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|l| matches(l));
            if let Some(line) = found {
                return line;
            }
            assert!(Instant::now() < deadline, "no such log line in:\n{log}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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
        if std::env::var("TEST_LOG").is_ok() {
            eprintln!("{}", self.log());
        }
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
