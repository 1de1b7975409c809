//! Client text in the text log format (`LOG_FORMAT=pretty`): escaped, so that it can neither
//! start a forged log line nor send escape sequences to the terminal of whoever reads the log.

use std::time::{Duration, Instant};

use stowage_tests::TestServer;

use crate::common::{expect_error, upload_to};

/// Upload policies that an error message echoes into the request's log line.
const POLICIES: [&str; 3] = [
    // A newline, then what looks like a log line of its own.
    "x%0A2026-01-01T00:00:00Z%20INFO%20FAKE%20forged",
    // An escape sequence that turns a terminal red.
    "%1B%5B31m",
    // A carriage return, and the Unicode line separator.
    "y%0D2026-01-01T00:00:00Z%20INFO%20FAKE%E2%80%A8z",
];

#[tokio::test]
async fn log_injection_client_text_cannot_forge_a_text_log_line_or_reach_a_terminal() {
    let server = TestServer::process_with(&[("LOG_FORMAT", "pretty")]).await;
    let auth = server.bearer(Some(1), 1);

    for policy in POLICIES {
        let response = upload_to(
            &server,
            &format!("/files?policy={policy}"),
            &[("Authorization", &auth)],
            "a.txt",
            "text/plain",
            b"hello",
        )
        .await;
        expect_error(response, 400, "VALIDATION_ERROR").await;
    }

    // A request's line is written once its response is done: wait for all three.
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = server.log();
        if log.matches("request refused").count() >= POLICIES.len() || Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        log.matches("request refused").count(),
        POLICIES.len(),
        "{log}"
    );
    let forged: Vec<&str> = log
        .split(['\n', '\r', '\u{2028}'])
        .filter(|line| line.starts_with("2026-01-01T00:00:00Z"))
        .collect();
    assert!(forged.is_empty(), "forged log lines {forged:?} in:\n{log}");
    assert!(
        !log.contains('\x1b'),
        "a raw ESC byte is in the log:\n{}",
        log.escape_debug()
    );
    // The text itself is there, escaped, for whoever investigates.
    for escaped in [
        "x\\n2026-01-01T00:00:00Z INFO FAKE forged",
        "\\u{1b}[31m",
        "y\\r2026-01-01T00:00:00Z INFO FAKE\\u{2028}z",
    ] {
        assert!(log.contains(escaped), "{escaped} is not in:\n{log}");
    }
}
