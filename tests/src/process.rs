//! The test server as a `stowage-api` child process ([`TestServer::process_with`]), and what only
//! a process has: its log, its id, its `/proc` figures and its signals.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::server::TestServer;

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

/// The address of the first `listening` line of a `stowage-api` log: the JSON line, or with
/// `LOG_FORMAT=pretty` the text one (`listening address=…`).
pub(crate) fn listening_address(log: &str) -> Option<String> {
    log.lines().find_map(|line| {
        let Ok(json) = serde_json::from_str::<serde_json::Value>(line) else {
            let (_, rest) = line.split_once(" listening address=")?;
            return rest.split_whitespace().next().map(str::to_owned);
        };
        (json["fields"]["message"] == "listening")
            .then(|| json["fields"]["address"].as_str().map(str::to_owned))
            .flatten()
    })
}

impl TestServer {
    /// Starts the process with the server's environment; returns the address it logged.
    pub(crate) async fn start_process(&mut self) -> String {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.process_log_path())
            .unwrap();
        let logged_before = self.read_log().len();
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
        self.wait_for_listening(logged_before).await
    }

    /// The address from this process's own `listening` log line.
    async fn wait_for_listening(&mut self, skip: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.read_log();
            if let Some(address) = listening_address(log.get(skip..).unwrap_or_default()) {
                return address;
            }
            self.assert_process_running();
            assert!(
                Instant::now() < deadline,
                "stowage-api did not start; log:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Panics with the log when the process has exited (no-op in process).
    pub(crate) fn assert_process_running(&mut self) {
        if let Some(child) = self.child.as_mut()
            && let Some(status) = child.try_wait().unwrap()
        {
            panic!(
                "stowage-api exited with {status}; log:\n{}",
                self.read_log()
            );
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.require_process("sends the process a signal");
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        child.wait().unwrap()
    }

    /// Kills the process as a crash would (SIGKILL: nothing in flight finishes or cleans up) and
    /// reaps it. [`TestServer::start`] brings it back on the same port.
    pub fn kill(&mut self) {
        self.require_process("kills the process");
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// The process, while it runs.
    pub fn child_mut(&mut self) -> &mut Child {
        self.require_process("looks at the process");
        self.child.as_mut().expect("running")
    }

    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.require_process("reads the process's id");
        self.child.as_ref().expect("the server is running").id()
    }

    /// The server process's resident memory, in KiB (`VmRSS` of `/proc/PID/status`).
    pub fn rss_kib(&self) -> u64 {
        self.require_process("measures the process's memory");
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// CPU time the server process has used so far, in clock ticks (`utime` + `stime` of
    /// `/proc/PID/stat`): what tells a test the process is busy with work it cannot see.
    pub fn cpu_ticks(&self) -> u64 {
        self.require_process("reads the process's CPU time");
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .expect("/proc/PID/stat has a command name")
            .1
            .split_whitespace()
            .collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    /// File descriptors the server process holds open (entries of `/proc/PID/fd`).
    pub fn open_fds(&self) -> usize {
        self.require_process("counts the process's file descriptors");
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// Where the process's stdout and stderr go.
    pub fn log_path(&self) -> PathBuf {
        self.require_process("reads the process's log");
        self.process_log_path()
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.require_process("reads the process's log");
        self.read_log()
    }

    /// The first JSON log line `matches` accepts, waiting up to 10 s for it: a request's line is
    /// written when its response body is done, which may be after the client saw the response.
    pub async fn log_line(
        &self,
        matches: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        self.require_process("reads the process's log");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.read_log();
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

    pub(crate) fn process_log_path(&self) -> PathBuf {
        self.data_dir.path().join("server.log")
    }

    pub(crate) fn read_log(&self) -> String {
        std::fs::read_to_string(self.process_log_path()).unwrap_or_default()
    }

    /// Panics, saying what the test does, unless this server is a process: an in-process server
    /// has no log (no tracing subscriber is installed), pid or `/proc` figures of its own.
    fn require_process(&self, what: &str) {
        assert!(
            !self.in_process,
            "use TestServer::process_with: this test {what}, and this server runs in process"
        );
    }
}
