//! Runs the `stowage-api` binary's maintenance subcommands (`gc`, `digest`, …) the way an operator
//! would next to a running server: with that server's configuration and nothing else.

use std::process::{Child, Command, Output, Stdio};

use crate::server::{TestServer, binary};

/// `stowage-api <subcommand> <args>` with `server`'s environment (and `PATH`) only.
fn subcommand(server: &TestServer, subcommand: &str, args: &[&str]) -> Command {
    let mut command = Command::new(binary());
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(server.env())
        .arg(subcommand)
        .args(args);
    command
}

/// Runs `stowage-api <subcommand> <args>` with `server`'s environment (and `PATH`) only.
pub fn run_subcommand(server: &TestServer, subcommand: &str, args: &[&str]) -> Output {
    self::subcommand(server, subcommand, args).output().unwrap()
}

/// Starts `stowage-api <subcommand> <args>` as [`run_subcommand`] runs it, its output discarded,
/// for a test that signals it while it works.
pub fn spawn_subcommand(server: &TestServer, subcommand: &str, args: &[&str]) -> Child {
    self::subcommand(server, subcommand, args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}
