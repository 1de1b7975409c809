//! A moto S3 server, a second S3 implementation beside s3s-fs: one per test process, started on
//! first use and gone when the process ends, each test on a bucket of its own.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::server::free_port;

/// Starts moto in the background and stays with it: kills it once the test process (its parent)
/// is gone, however that process ended, and exits when moto does (a port lost to another process).
const WATCHDOG: &str = r#"
"$1" -H 127.0.0.1 -p "$2" </dev/null >/dev/null 2>&1 &
moto=$!
while kill -0 "$PPID" 2>/dev/null && kill -0 "$moto" 2>/dev/null; do sleep 0.2; done
kill "$moto" 2>/dev/null
wait "$moto"
"#;

/// Longest moto may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The moto server of this test process.
pub struct MotoServer {
    pub port: u16,
}

impl MotoServer {
    /// The process's server, started on the first call; panics (naming the install command)
    /// when `moto_server` is not on `PATH`.
    pub fn shared() -> &'static MotoServer {
        static SERVER: OnceLock<MotoServer> = OnceLock::new();
        SERVER.get_or_init(MotoServer::start)
    }

    /// `http://127.0.0.1:{port}`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A bucket name no other test uses (the bucket itself is not created).
    pub fn unique_bucket(prefix: &str) -> String {
        format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
    }

    fn start() -> MotoServer {
        let binary = moto_binary();
        for _ in 0..5 {
            let port = free_port();
            let mut watchdog = Command::new("sh")
                .args(["-c", WATCHDOG, "moto-watchdog"])
                .arg(&binary)
                .arg(port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            if wait_until_answers(port, &mut watchdog) {
                return MotoServer { port };
            }
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        panic!("moto_server could not start");
    }
}

/// `moto_server` on `PATH`.
fn moto_binary() -> PathBuf {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|dir| Path::new(dir).join("moto_server"))
        .find(|p| p.is_file())
        .expect("moto_server is not on PATH: pip install 'moto[server]' (.ci/run does)")
}

/// Waits until moto answers S3 on `port`; false when its watchdog exits first (moto died, e.g.
/// the port was taken) or it never answers.
fn wait_until_answers(port: u16, watchdog: &mut Child) -> bool {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if lists_buckets(port) {
            return true;
        }
        if watchdog.try_wait().ok().flatten().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// True when `port` answers an anonymous `ListBuckets`, as moto does.
fn lists_buckets(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET / HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.contains("ListAllMyBucketsResult")
}
