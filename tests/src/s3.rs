//! S3 mode: an s3s-fs server per test server, and what its data directory holds.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::server::free_port;

/// The bucket black-box tests use in S3 mode.
pub const TEST_BUCKET: &str = "stowage-test";

/// True when the suites run on S3 (`STOWAGE_TEST_STORAGE=s3`), each server with its own s3s-fs.
pub fn s3_mode() -> bool {
    std::env::var("STOWAGE_TEST_STORAGE").is_ok_and(|v| v == "s3")
}

/// The s3s-fs binary: `S3S_FS_BIN`, else `s3s-fs` on `PATH` or in `~/.cargo/bin`.
pub fn s3s_fs_binary() -> PathBuf {
    if let Ok(bin) = std::env::var("S3S_FS_BIN") {
        return PathBuf::from(bin);
    }
    let mut candidates: Vec<PathBuf> = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|dir| Path::new(dir).join("s3s-fs"))
        .collect();
    if let Ok(home) = std::env::var("HOME") {
        candidates.push(Path::new(&home).join(".cargo/bin/s3s-fs"));
    }
    candidates.into_iter().find(|p| p.exists()).expect(
        "s3s-fs is not installed: cargo install s3s-fs@0.14.1 --features binary --locked (make test-integration does)",
    )
}

/// An s3s-fs server with its own data directory and keys, that a test can stop and start again.
pub struct S3Server {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub access_key: String,
    pub secret_key: String,
}

impl S3Server {
    /// Starts one on a free port (another if a parallel test took that port first).
    pub fn spawn() -> S3Server {
        let mut server = S3Server {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            access_key: format!("AK{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
            secret_key: format!("SK{}", uuid::Uuid::new_v4().simple()),
        };
        for _ in 0..5 {
            server.start();
            // A process that lost its port to another test exits at once; the port it waited for
            // then answered for someone else.
            std::thread::sleep(Duration::from_millis(100));
            let exited = server
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some());
            if !exited {
                return server;
            }
            server.child = None;
            server.port = free_port();
        }
        panic!("s3s-fs could not start");
    }

    /// Starts it (again) on its port, over its data directory.
    pub fn start(&mut self) {
        let child = Command::new(s3s_fs_binary())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--access-key",
                &self.access_key,
                "--secret-key",
                &self.secret_key,
            ])
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Objects of `bucket`, plus every trace of an unfinished upload (parts, upload records,
    /// temporary files): s3s-fs cannot list multipart uploads, so its data directory is the proof.
    pub fn files(&self, bucket: &str) -> Vec<PathBuf> {
        s3s_fs_files(self.dir.path(), bucket)
    }
}

/// What an s3s-fs server over `root` holds for `bucket`: its objects, plus every trace of an
/// unfinished upload (parts, upload records and temporary files, kept as dot-files at the root).
pub fn s3s_fs_files(root: &Path, bucket: &str) -> Vec<PathBuf> {
    let mut out = walk_files(&root.join(bucket));
    if let Ok(entries) = std::fs::read_dir(root) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".upload") || name.starts_with(".tmp.") || name.contains(".upload-")
            {
                out.push(entry.path());
            }
        }
    }
    out
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn walk_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}
