//! Replicas: more `stowage-api` processes on one server's database and store, and two of them
//! behind nginx as operators deploy them.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::nginx::Nginx;
use crate::process::{binary, listening_address};
use crate::server::{TestServer, free_port, postgres_server, until_live};

/// The Postgres server replicas share, or `None` when the suites run without one (each test
/// server on its own SQLite file, which no second process shares): the test is then skipped,
/// saying so. With `STOWAGE_TEST_DATABASE_URL` set (`make test-integration`), every other service
/// a replica test needs is required.
pub fn postgres() -> Option<String> {
    let server = postgres_server();
    if server.is_none() {
        eprintln!("skipped: replicas share a Postgres (set STOWAGE_TEST_DATABASE_URL)");
    }
    server
}

/// A `stowage-api` process of its own on a port of its own, most often with another server's
/// configuration (so its database and store).
pub struct Replica {
    child: Option<Child>,
    pub port: u16,
    pub base_url: String,
    /// Its working directory, which holds its log.
    dir: tempfile::TempDir,
}

impl Replica {
    /// A replica of `server` (its database, store and secret), live.
    pub async fn of(server: &TestServer) -> Replica {
        let mut replica = Replica::spawn(server.env());
        replica.wait_until_live().await;
        replica
    }

    /// Starts a process with exactly `env` (on a port it picks itself) and returns at once, so
    /// that several can start together; [`Replica::wait_until_live`] waits for it.
    pub fn spawn(env: &HashMap<String, String>) -> Replica {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(binary())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env)
            // Port 0: the process picks a free port and logs it, so parallel tests never race.
            .env("BIND_ADDR", "127.0.0.1:0")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Replica {
            child: Some(child),
            port: 0,
            base_url: String::new(),
            dir,
        }
    }

    /// Waits (up to 30 s) for the process's `listening` line, then for `/health/live`; panics
    /// with its log if it exits first.
    pub async fn wait_until_live(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let address = loop {
            if let Some(address) = listening_address(&self.log()) {
                break address;
            }
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "the replica did not start; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.port = address.rsplit(':').next().unwrap().parse().unwrap();
        self.base_url = format!("http://{address}");
        let url = self.url("/health/live");
        until_live(&url, || {
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "the replica did not come up; log:\n{}",
                self.log()
            );
        })
        .await;
    }

    fn assert_running(&mut self) {
        if let Some(child) = self.child.as_mut()
            && let Some(status) = child.try_wait().unwrap()
        {
            panic!("the replica exited with {status}; log:\n{}", self.log());
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// `url` (a URL on `server`) as this replica serves it.
    pub fn url_of(&self, server: &TestServer, url: &str) -> String {
        url.replacen(&server.base_url, &self.base_url, 1)
    }

    /// Kills it as a crash would (SIGKILL): nothing it was doing gets to finish or clean up.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("the replica is running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if std::env::var("TEST_LOG").is_ok() {
            eprintln!("{}", self.log());
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The deployment of `deploy/`: two replicas on one database and one store (a [`TestServer`]
/// process and a [`Replica`] of it) behind an nginx that balances them round robin. Their
/// `PUBLIC_URL` is nginx's, so the URLs they hand out (`public_url`, `Location`, upload URLs)
/// lead back through it.
pub struct ReplicaPair {
    pub first: TestServer,
    pub second: Replica,
    pub nginx: Nginx,
}

impl ReplicaPair {
    /// Starts both replicas with `extra` settings (on top of the harness's defaults and
    /// `TRUST_PROXY_HEADERS=true`, as behind any proxy that sets `X-Real-IP`), then nginx.
    pub async fn start(extra: &[(&str, &str)]) -> ReplicaPair {
        let nginx_port = free_port();
        let public_url = format!("http://127.0.0.1:{nginx_port}");
        let mut env = vec![
            ("PUBLIC_URL", public_url.as_str()),
            ("TRUST_PROXY_HEADERS", "true"),
        ];
        env.extend_from_slice(extra);
        let first = TestServer::process_with(&env).await;
        let second = Replica::of(&first).await;
        let nginx = Nginx::balancing(nginx_port, &[first.port, second.port]);
        ReplicaPair {
            first,
            second,
            nginx,
        }
    }

    /// `path` through nginx.
    pub fn url(&self, path: &str) -> String {
        self.nginx.url(path)
    }

    /// The base URL of each replica, to ask one directly.
    pub fn backends(&self) -> [&str; 2] {
        [self.first.base_url.as_str(), self.second.base_url.as_str()]
    }

    /// How many requests nginx passed to each replica (by base URL) so far, the requests it
    /// retried on the other replica counted for both.
    pub fn served(&self) -> BTreeMap<String, usize> {
        let mut served: BTreeMap<String, usize> = self
            .backends()
            .iter()
            .map(|b| ((*b).to_owned(), 0))
            .collect();
        for upstream in self.nginx.upstreams() {
            *served.entry(format!("http://{upstream}")).or_default() += 1;
        }
        served
    }
}
