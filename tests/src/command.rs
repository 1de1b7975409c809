//! Runs the `stowage-api` binary's maintenance subcommands (`gc`, `digest`, …) the way an operator
//! would next to a running server: with that server's configuration and nothing else.

use std::process::{Command, Output};

use crate::server::{TestServer, binary};

/// Runs `stowage-api <subcommand> <args>` with `server`'s environment (and `PATH`) only.
pub fn run_subcommand(server: &TestServer, subcommand: &str, args: &[&str]) -> Output {
    Command::new(binary())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(server.env())
        .arg(subcommand)
        .args(args)
        .output()
        .unwrap()
}
