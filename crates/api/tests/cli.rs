//! The `stowage-api` binary as an operator runs it: `token`, `migrate`, start-up checks and SIGTERM.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, Statement};
use stowage_application::ports::{TokenClaims, TokenKind, TokenVerifier};
use stowage_infrastructure::{Hs256Jwt, SystemClock};
use stowage_tests::{free_port, multipart_body};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_stowage-api");

fn command(data_dir: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATA_DIR", data_dir)
        .env("LOG_FORMAT", "json")
        .current_dir(data_dir)
        .stdin(Stdio::null());
    c
}

/// What a run of `c` that must succeed printed, trimmed; a failure shows what it said on stderr.
fn stdout_of_success(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// What `stowage-api <args>` printed with `cli-secret` as its secret: a token signed with it.
fn signed_token(data_dir: &std::path::Path, args: &[&str]) -> String {
    stdout_of_success(
        command(data_dir)
            .env("AUTH_SECRET_KEY", "cli-secret")
            .args(args),
    )
}

/// The claims of `token`, which must verify against `secret`.
fn claims(secret: &[u8], token: &str) -> TokenClaims {
    Hs256Jwt::new(secret, Arc::new(SystemClock))
        .verify(token)
        .unwrap()
}

/// The port a server started on `127.0.0.1:0` took, from its `listening` log line on stdout
/// (at most 30 s); the rest of its output is drained so it never blocks on a full pipe.
fn listening_port(child: &mut std::process::Child) -> u16 {
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if json["fields"]["message"] == "listening" {
                let port = json["fields"]["address"]
                    .as_str()
                    .and_then(|address| address.rsplit_once(':'))
                    .and_then(|(_, port)| port.parse::<u16>().ok());
                let _ = tx.send(port);
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Some(port)) => port,
        Ok(None) => panic!("a listening line without a port"),
        Err(_) => {
            let _ = child.kill();
            panic!("the server did not report listening within 30 s")
        }
    }
}

#[test]
fn token_prints_a_jwt_signed_with_the_configured_secret() {
    let dir = tempfile::tempdir().unwrap();
    let token = signed_token(
        dir.path(),
        &[
            "token",
            "--user-id",
            "7",
            "--account-id",
            "3",
            "--ttl",
            "10m",
        ],
    );
    let verified = claims(b"cli-secret", &token);
    assert_eq!(verified.user_id.map(|u| u.get()), Some(7));
    assert_eq!(verified.account_id.get(), 3);
    assert!(
        Hs256Jwt::new(b"other", Arc::new(SystemClock))
            .verify(&token)
            .is_err()
    );
}

#[test]
fn token_without_secret_uses_the_generated_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let token = stdout_of_success(command(dir.path()).args(["token", "--account-id", "1"]));
    let key_file = dir.path().join("secret.key");
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let secret = std::fs::read_to_string(key_file).unwrap();
    assert_eq!(claims(secret.trim().as_bytes(), &token).user_id, None);
}

#[test]
fn token_refuses_a_bad_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .args(["token", "--account-id", "1", "--ttl", "soon"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn token_guest_prints_a_guest_jwt_for_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let token = signed_token(
        dir.path(),
        &[
            "token",
            "--guest",
            "--task-id",
            "42",
            "--user-id",
            "7",
            "--account-id",
            "3",
        ],
    );
    let guest = claims(b"cli-secret", &token);
    assert_eq!(guest.kind, TokenKind::Guest);
    assert_eq!(guest.user_id.map(|u| u.get()), Some(7));
    assert_eq!(guest.account_id.get(), 3);

    let user = signed_token(
        dir.path(),
        &["token", "--user-id", "7", "--account-id", "3"],
    );
    assert_eq!(claims(b"cli-secret", &user).kind, TokenKind::User);
}

#[test]
fn token_guest_needs_a_task_and_a_task_needs_guest() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["token", "--guest", "--account-id", "1"][..],
        &["token", "--task-id", "4", "--account-id", "1"][..],
    ] {
        let out = command(dir.path())
            .env("AUTH_SECRET_KEY", "cli-secret")
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[tokio::test]
async fn migrate_creates_the_files_table_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("m.db").display());
    stdout_of_success(
        command(dir.path())
            .env("DATABASE_URL", &db_url)
            .arg("migrate"),
    );
    let db = Database::connect(&db_url).await.unwrap();
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM files",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get::<i64>("", "n").unwrap(), 0);
    let again = command(dir.path())
        .env("DATABASE_URL", &db_url)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(again.status.success(), "migrate is repeatable");
}

#[test]
fn production_without_secret_stops_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .env("APP_ENV", "production")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("AUTH_SECRET_KEY"));
}

#[test]
fn invalid_setting_stops_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .env("MAX_UPLOAD_BYTES", "lots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MAX_UPLOAD_BYTES"));
}

#[test]
fn serve_on_defaults_prints_a_working_token_and_curl_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = command(dir.path())
        .env("BIND_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut token = None;
    let mut curl = None;
    while (token.is_none() || curl.is_none()) && Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        let trimmed = line.trim();
        if trimmed.starts_with("eyJ") {
            token = Some(trimmed.to_owned());
        }
        if trimmed.starts_with("curl -F file=@") {
            curl = Some(trimmed.to_owned());
        }
    }
    let port = curl.as_deref().and_then(|curl| {
        let url = curl
            .split_whitespace()
            .find(|word| word.starts_with("http://127.0.0.1:") && word.ends_with("/files"))?;
        url["http://127.0.0.1:".len()..url.len() - "/files".len()]
            .parse::<u16>()
            .ok()
    });
    let reachable =
        port.is_some_and(|port| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    let _ = child.kill();
    let _ = child.wait();
    let token = token.expect("a token line");
    let curl = curl.expect("a curl line");
    assert!(
        reachable,
        "the printed URL is where the service listens: {curl}"
    );
    assert!(curl.contains(&token));
    let secret = std::fs::read_to_string(dir.path().join("secret.key")).unwrap();
    assert_eq!(
        std::fs::metadata(dir.path().join("secret.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert!(
        Hs256Jwt::new(secret.trim().as_bytes(), Arc::new(SystemClock))
            .verify(&token)
            .is_ok()
    );
    assert!(dir.path().join("stowage.db").exists());
}

#[tokio::test]
async fn sigterm_lets_an_upload_in_flight_finish_then_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = command(dir.path())
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("AUTH_SECRET_KEY", "drain-secret")
        .env("SHUTDOWN_GRACE_SECONDS", "20")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let port = listening_port(&mut child);
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{base}/health/live"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let token = Hs256Jwt::new(b"drain-secret", Arc::new(SystemClock)).issue(
        Some(1),
        1,
        Duration::from_secs(60),
    );
    let data = vec![b'x'; 256 * 1024];
    let body = multipart_body(
        "drainboundary",
        "slow.bin",
        "application/octet-stream",
        &data,
    );
    let (first, rest) = body.split_at(1024);

    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let head = format!(
        "POST /files HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary=drainboundary\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "no new connections after SIGTERM"
    );

    socket.write_all(rest).await.unwrap();
    let mut response = Vec::new();
    socket.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");

    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn serve_fails_clearly_when_the_port_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut child = command(dir.path())
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("AUTH_SECRET_KEY", "k")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success());
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
}

#[test]
fn healthcheck_exits_zero_only_when_the_service_answers() {
    let dir = tempfile::tempdir().unwrap();
    // `healthcheck` reads the port from BIND_ADDR, so this test needs a port chosen in advance.
    let port = free_port();
    let check = || {
        command(dir.path())
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .arg("healthcheck")
            .output()
            .unwrap()
            .status
    };
    assert!(!check().success(), "nothing listens yet");
    let mut child = command(dir.path())
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("AUTH_SECRET_KEY", "k")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().success() {
        assert!(Instant::now() < deadline, "healthcheck never passed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}
