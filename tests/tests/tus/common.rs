//! What the tus suite shares: the server it starts, raw tus requests, the files it uploads and how
//! it checks what became of them, and the real clients (tuspy, tus-js-client) run as processes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;
use stowage_tests::{TestServer, assert_serves, client, header};

/// The version every request speaks.
pub const TUS: &str = "1.0.0";
/// The content type tus bytes are sent as.
pub const OCTETS: &str = "application/offset+octet-stream";
pub const MIB: usize = 1024 * 1024;
/// The upload limit of the suite's servers: room for the 200 MiB uploads.
pub const MAX_UPLOAD_BYTES: &str = "314572800";

/// A server (fs or S3 by `STOWAGE_TEST_STORAGE`, SQLite or Postgres by
/// `STOWAGE_TEST_DATABASE_URL`) whose upload limit takes the large uploads, plus `extra`.
pub async fn server(extra: &[(&str, &str)]) -> TestServer {
    let mut env = vec![("MAX_UPLOAD_BYTES", MAX_UPLOAD_BYTES)];
    env.extend_from_slice(extra);
    TestServer::spawn_with(&env).await
}

/// A tus request (`Tus-Resumable: 1.0.0`) to `url` as `auth`.
pub fn tus(method: Method, url: &str, auth: &str) -> RequestBuilder {
    client()
        .request(method, url)
        .header("Tus-Resumable", TUS)
        .header("Authorization", auth)
}

/// `Upload-Metadata` of `pairs`, values in base64.
pub fn metadata(pairs: &[(&str, &str)]) -> String {
    use base64::Engine;
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{k} {}",
                base64::engine::general_purpose::STANDARD.encode(v)
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Creates an upload of `length` bytes with `Upload-Metadata: meta`; returns its URL.
pub async fn create(server: &TestServer, auth: &str, length: usize, meta: &str) -> String {
    let mut request = tus(Method::POST, &server.url("/files/tus"), auth)
        .header("Upload-Length", length.to_string());
    if !meta.is_empty() {
        request = request.header("Upload-Metadata", meta);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let location = header(&response, "location").expect("Location");
    assert!(
        location.starts_with("http://"),
        "an absolute URL: {location}"
    );
    location
}

/// A `PATCH` of `data` at `offset`, with extra `headers`.
pub async fn patch(
    url: &str,
    auth: &str,
    offset: usize,
    data: &[u8],
    headers: &[(&str, &str)],
) -> Response {
    let mut request = tus(Method::PATCH, url, auth)
        .header("Content-Type", OCTETS)
        .header("Upload-Offset", offset.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(data.to_vec()).send().await.unwrap()
}

/// The upload's status (`HEAD`) and offset.
pub async fn head(url: &str, auth: &str) -> (u16, Option<u64>) {
    let response = tus(Method::HEAD, url, auth).send().await.unwrap();
    let offset = header(&response, "upload-offset").map(|o| o.parse().unwrap());
    (response.status().as_u16(), offset)
}

/// Status and error code of `response`.
pub async fn code_of(response: Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_default();
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

/// `len` bytes that differ at every offset that matters: each MiB is a rotation of one random
/// MiB stamped with its index, so a lost, repeated or shifted chunk changes the file (and it is
/// cheap to make in a debug build).
pub fn content(len: usize, seed: u64) -> Vec<u8> {
    let base = stowage_tests::pattern(MIB, seed);
    let mut out = Vec::with_capacity(len);
    let mut block = 0usize;
    while out.len() < len {
        let turn = (block * 7919 + 13) % MIB;
        let mut piece = [&base[turn..], &base[..turn]].concat();
        piece[..8].copy_from_slice(&(block as u64).to_le_bytes());
        let take = (len - out.len()).min(MIB);
        out.extend_from_slice(&piece[..take]);
        block += 1;
    }
    out
}

/// Writes `data` to a file in `dir`; returns its path.
pub fn write_file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

/// Asserts that file `id` holds exactly `data` (downloaded as its owner `auth`) and that its
/// info reports their size and SHA-256.
pub async fn assert_file(server: &TestServer, auth: &str, id: &str, data: &[u8]) {
    assert_serves(&server.base_url, auth, id, data).await;
}

/// What the store still holds besides s3s-fs's own metadata: the blobs, `.part` files on disk,
/// and on S3 the objects plus every trace of an unfinished multipart upload.
pub fn leftovers(server: &TestServer) -> Vec<PathBuf> {
    server
        .blob_files()
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains(".s3s"))
        .collect()
}

/// True in CI, where a missing tool fails the test instead of skipping it.
fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Says a test cannot run here: it fails in CI and is skipped (`None`) elsewhere.
fn missing<T>(what: &str, install: &str) -> Option<T> {
    assert!(!in_ci(), "CI needs {what}: {install}");
    eprintln!("skipped: no {what} ({install})");
    None
}

/// The folder of the client scripts and their `node_modules`.
pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tus")
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The Python that has tuspy, if any.
pub fn tuspy() -> Option<&'static str> {
    if runs("python3", &["-c", "import tusclient"]) {
        return Some("python3");
    }
    missing("tuspy", "python3 -m pip install tuspy")
}

/// Node with tus-js-client installed in `tests/tus`, if any.
pub fn tus_js() -> Option<&'static str> {
    if runs("node", &["--version"])
        && scripts_dir()
            .join("node_modules/tus-js-client/package.json")
            .exists()
    {
        return Some("node");
    }
    missing("node and tus-js-client", "npm ci --prefix tests/tus")
}

/// A client process and the JSON lines it prints, read on a thread of their own.
pub struct ClientRun {
    child: Child,
    lines: mpsc::Receiver<Value>,
    pub name: String,
}

impl ClientRun {
    /// Starts `program args` with the credential `auth` in `TUS_AUTHORIZATION`.
    pub fn start(program: &str, args: &[String], auth: &str) -> ClientRun {
        let mut child = Command::new(program)
            .args(args)
            .current_dir(scripts_dir())
            .env("TUS_AUTHORIZATION", auth)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} could not start: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match serde_json::from_str::<Value>(&line) {
                    Ok(event) => {
                        if tx.send(event).is_err() {
                            return;
                        }
                    }
                    Err(_) => eprintln!("client: {line}"),
                }
            }
        });
        ClientRun {
            child,
            lines,
            name: format!("{program} {}", args.first().map_or("", String::as_str)),
        }
    }

    /// The next event `matches` accepts, waiting (without blocking the test's runtime) up to
    /// `within`; panics when the client ends or the time is up first.
    pub async fn wait_for(&mut self, within: Duration, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + within;
        loop {
            match self.lines.try_recv() {
                Ok(event) if matches(&event) => return event,
                Ok(event) => {
                    assert_ne!(event["event"], "error", "{}: {event}", self.name);
                }
                Err(mpsc::TryRecvError::Empty) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "{}: timed out",
                        self.name
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(mpsc::TryRecvError::Disconnected) => {
                    let status = self.child.wait().unwrap();
                    panic!("{} ended ({status}) before the awaited event", self.name);
                }
            }
        }
    }

    /// Waits for the `done` event and the process's success; returns the event.
    pub async fn done(mut self, within: Duration) -> Value {
        let done = self.wait_for(within, |e| e["event"] == "done").await;
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{} exited with {status}", self.name);
        done
    }

    /// Kills the client as a crash would (SIGKILL), mid-upload.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ClientRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the tus-js-client script with `options` (a JSON object), as `auth`.
pub fn tus_js_run(node: &str, options: &Value, auth: &str) -> ClientRun {
    ClientRun::start(
        node,
        &["tus_js_upload.js".to_owned(), options.to_string()],
        auth,
    )
}

/// Runs the tuspy script with `args`, as `auth`.
pub fn tuspy_run(python: &str, args: &[String], auth: &str) -> ClientRun {
    let mut all = vec!["tuspy_upload.py".to_owned()];
    all.extend_from_slice(args);
    ClientRun::start(python, &all, auth)
}
