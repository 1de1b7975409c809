//! `stowage-api`: serve (default), migrate, or print a token.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use stowage_api::config::{Config, parse_duration};
use stowage_api::{Application, digest_legacy_rows, gc, jwt, migrate, telemetry, webhook_outbox};
use stowage_application::use_cases::{DigestReport, LegacyRow};
use stowage_domain::FileRecord;

/// Stowage: a file service that keeps metadata in SQL and bytes in S3 or on disk.
#[derive(Parser)]
#[command(name = "stowage-api", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Find blobs without a record (and leftovers of unfinished uploads) older than the grace
    /// period, and records whose blob is missing; remove the orphan blobs unless --dry-run.
    Gc {
        /// Report only.
        #[arg(long)]
        dry_run: bool,
        /// Leave alone anything younger than this (uploads in flight), e.g. 1h.
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        grace: Duration,
    },
    /// Compute the SHA-256 of every legacy row (a file the Pneumatic service stored) by reading
    /// its blob, writing each as soon as it is known (a run that stops resumes where it did).
    /// Exits non-zero when a blob is missing or has another size than recorded.
    Digest {
        /// Report every legacy row and whether its blob exists; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Exit 0 when this host's service answers /health/live (for container health checks).
    Healthcheck,
    /// The webhook outbox: events waiting for delivery, and the dead ones.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Print an HS256 token signed with the configured secret, for trying the service out.
    Token {
        /// The user the token speaks for; leave out for an account-level token.
        #[arg(long)]
        user_id: Option<i64>,
        /// The account.
        #[arg(long)]
        account_id: i64,
        /// Lifetime, e.g. 30m, 1h, 7d.
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        ttl: Duration,
        /// A workflow guest's token (`token_type` "Guest"), for the task given by --task-id.
        #[arg(long, requires = "task_id")]
        guest: bool,
        /// The workflow task of a guest token.
        #[arg(long, requires = "guest")]
        task_id: Option<i64>,
    },
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Print the events waiting in the outbox, oldest first.
    List {
        /// Only the dead ones (out of attempts).
        #[arg(long)]
        dead: bool,
        /// Print at most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Make every dead event pending again, due now with its attempts reset; prints how many.
    /// The later events of their files, held back while they were dead, follow them in order.
    RetryDead,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("stowage-api: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    // Kept until `main` returns: dropping it sends the reports still queued.
    let _error_tracking = match command {
        Command::Token { .. } | Command::Healthcheck => telemetry::ErrorTracking::off(),
        _ => telemetry::start_error_tracking(config.sentry.as_ref()),
    };
    match run(command, config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "stowage-api stopped");
            eprintln!("stowage-api: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Says which Pneumatic variables stood in for unset Stowage ones (their names, never values).
fn log_pneumatic_names(config: &Config) {
    if !config.pneumatic_names.is_empty() {
        tracing::info!(
            variables = config.pneumatic_names.join(","),
            "read the Pneumatic file service's environment names for unset Stowage settings"
        );
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Token {
            user_id,
            account_id,
            ttl,
            guest,
            task_id,
        } => {
            let jwt = jwt(&config)?;
            let token = match task_id {
                Some(task_id) if guest => jwt.issue_guest(user_id, account_id, task_id, ttl),
                _ => jwt.issue(user_id, account_id, ttl),
            };
            println!("{token}");
            Ok(())
        }
        Command::Gc { dry_run, grace } => {
            telemetry::init(&config.telemetry, std::io::stderr);
            let report = gc(&config, grace, dry_run).await?;
            let verb = if dry_run { "would remove" } else { "removed" };
            for key in &report.orphan_blobs {
                println!("orphan blob {key}");
            }
            for stray in &report.strays {
                println!("unfinished upload {}", stray.replace('\t', " "));
            }
            for id in &report.missing_blobs {
                println!("record without blob {id}");
            }
            for id in &report.replaced_files {
                println!("replaced file {id}");
            }
            if report.expired_upload_grants > 0 {
                println!(
                    "records of expired upload URLs: {verb} {}",
                    report.expired_upload_grants
                );
            }
            for id in &report.expired_uploads {
                println!("expired direct upload {id}");
            }
            for id in &report.expired_resumable_uploads {
                println!("expired resumable upload {id}");
            }
            println!(
                "records {}, blobs {}, orphan blobs {}, unfinished uploads {}, younger than the grace period {}, records without blob {}, replaced files {}; {verb} {}",
                report.records,
                report.blobs,
                report.orphan_blobs.len(),
                report.strays.len(),
                report.young,
                report.missing_blobs.len(),
                report.replaced_files.len(),
                if dry_run {
                    (report.orphan_blobs.len()
                        + report.strays.len()
                        + report.replaced_files.len()
                        + report.expired_uploads.len()
                        + report.expired_resumable_uploads.len()) as u64
                } else {
                    report.removed
                }
            );
            Ok(())
        }
        Command::Digest { dry_run } => {
            telemetry::init(&config.telemetry, std::io::stderr);
            digest(&config, dry_run).await
        }
        Command::Healthcheck => healthcheck(&config).await,
        Command::Events { command } => {
            telemetry::init(&config.telemetry, std::io::stderr);
            events(&config, command).await
        }
        Command::Migrate => {
            telemetry::init(&config.telemetry, std::io::stderr);
            log_pneumatic_names(&config);
            migrate(&config).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Serve => {
            telemetry::init(&config.telemetry, std::io::stdout);
            log_pneumatic_names(&config);
            let app = Application::build(config).await?;
            tracing::info!(address = %app.local_addr(), public_url = app.public_url(), "listening");
            if app.uses_generated_secret() {
                print_try_it(&app);
            }
            app.run_until_stopped().await;
            tracing::info!("stopped");
            Ok(())
        }
    }
}

/// `stowage-api digest`: one line per legacy row in a dry run (per problem otherwise) on stdout,
/// progress on stderr when it is a terminal, a summary at the end.
async fn digest(config: &Config, dry_run: bool) -> anyhow::Result<()> {
    use std::io::{IsTerminal, Write};
    let run = digest_legacy_rows(config).await?;
    let progress = std::io::stderr().is_terminal();
    let mut on_row = |record: &FileRecord, outcome: &LegacyRow, so_far: &DigestReport| {
        let state = match outcome {
            LegacyRow::Digested { .. } | LegacyRow::Deleted => None,
            LegacyRow::BlobPresent { .. } => Some("blob present".to_owned()),
            LegacyRow::BlobMissing => Some("blob missing".to_owned()),
            LegacyRow::SizeMismatch { actual } => Some(format!("blob has {actual} bytes")),
        };
        if let Some(state) = state {
            if progress {
                eprint!("\r\x1b[K");
            }
            println!(
                "legacy row {} account {} size {}: {state}",
                record.id(),
                record.account_id(),
                record.size()
            );
        }
        if progress {
            eprint!(
                "\r\x1b[K{}/{} rows, {} bytes",
                so_far.done, so_far.total, so_far.bytes
            );
            let _ = std::io::stderr().flush();
        }
    };
    let report = run.execute(dry_run, &mut on_row).await?;
    if progress {
        eprintln!();
    }
    let read = if dry_run { "in blobs found" } else { "read" };
    println!(
        "legacy rows {}, looked at {}, digests written {}, bytes {read} {}, blobs missing {}, blobs of another size {}",
        report.total,
        report.done,
        report.digested,
        report.bytes,
        report.missing.len(),
        report.mismatched.len()
    );
    anyhow::ensure!(
        report.is_clean(),
        "{} legacy rows have no blob and {} a blob of another size; their digests stay unknown",
        report.missing.len(),
        report.mismatched.len()
    );
    Ok(())
}

/// `stowage-api events`: one line per outbox row, or the count of dead rows made pending.
async fn events(config: &Config, command: EventsCommand) -> anyhow::Result<()> {
    let outbox = webhook_outbox(config).await?;
    match command {
        EventsCommand::List { dead, limit } => {
            let entries = outbox.list(dead, limit).await?;
            for e in &entries {
                let next = time::OffsetDateTime::from_unix_timestamp_nanos(
                    i128::from(e.next_attempt_at) * 1_000_000,
                )
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_default();
                println!(
                    "{} {} file {} attempts {} {} next {} error {}",
                    e.event_id,
                    e.event_type,
                    e.file_id,
                    e.attempts,
                    e.state,
                    next,
                    e.last_error.as_deref().unwrap_or("-")
                );
            }
            println!("{} events", entries.len());
        }
        EventsCommand::RetryDead => {
            let retried = outbox.retry_dead().await?;
            println!("{retried} dead events are pending again");
        }
    }
    Ok(())
}

/// One `GET /health/live` over plain TCP to the configured port on loopback.
async fn healthcheck(config: &Config) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port = config.http.bind_addr.port();
    let check = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(b"GET /health/live HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        anyhow::ensure!(
            head.ends_with(b" 200"),
            "unhealthy: {}",
            String::from_utf8_lossy(&head)
        );
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(3), check)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within 3 s"))?
}

fn print_try_it(app: &Application) {
    let token = app.issue_token(Some(1), 1, Duration::from_secs(24 * 3600));
    let url = app.public_url();
    println!(
        "\nStowage is running on its embedded defaults (SQLite + local disk, generated secret in DATA_DIR/secret.key).\n\
         A token for user 1 of account 1, valid 24 hours:\n\n  {token}\n\n\
         Try it:\n\n  curl -F file=@README.md -H 'Authorization: Bearer {token}' {url}/files\n\n\
         then download with the file_id it returns:\n\n  curl -H 'Authorization: Bearer {token}' {url}/files/<file_id> -o copy\n"
    );
}
