//! How the adapters that write raw statements store times, leases, tokens and principal kinds,
//! and how they keep a lease alive: one encoding for every table, so that rows written by one
//! adapter read the same in another.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use stowage_application::ports::ClaimToken;
use stowage_domain::PrincipalKind;
use time::OffsetDateTime;

/// `t` in Unix milliseconds, as the tables keep times.
pub(crate) fn unix_millis(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The time of `ms` Unix milliseconds; `None` outside the range [`OffsetDateTime`] covers.
pub(crate) fn from_unix_millis(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// Milliseconds of `d`, capped far below the point where adding them to now would overflow.
pub(crate) fn lease_millis(d: Duration) -> i64 {
    const MAX: i64 = i64::MAX / 4;
    i64::try_from(d.as_millis()).map_or(MAX, |ms| ms.min(MAX))
}

/// The text a token is kept as.
pub(crate) fn token_text(token: ClaimToken) -> String {
    token.as_uuid().hyphenated().to_string()
}

/// The name a principal kind is kept as.
pub(crate) fn kind_name(kind: PrincipalKind) -> &'static str {
    match kind {
        PrincipalKind::User => "user",
        PrincipalKind::Guest => "guest",
        PrincipalKind::Public => "public",
    }
}

/// The principal kind kept as `name`; `None` for a name [`kind_name`] never writes.
pub(crate) fn parse_kind(name: &str) -> Option<PrincipalKind> {
    match name {
        "user" => Some(PrincipalKind::User),
        "guest" => Some(PrincipalKind::Guest),
        "public" => Some(PrincipalKind::Public),
        _ => None,
    }
}

/// Runs `renew` (an `UPDATE` extending a lease held under a token) every third of `lease`,
/// so that it never lapses while its holder lives; ends once `renew` changes no row, that is
/// once the lease is lost, or once renewals have failed for so long that the lease may have
/// lapsed (another holder may have taken it).
pub(crate) async fn renew_while_held(
    db: DatabaseConnection,
    renew: Statement,
    lease: Duration,
    what: &'static str,
) {
    let every = lease / 3;
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(every).await;
        match db.execute(renew.clone()).await {
            Ok(r) if r.rows_affected() == 0 => return,
            Ok(_) => renewed = tokio::time::Instant::now(),
            // The lease stands until it lapses: the next renewal may still make it.
            Err(e) => {
                tracing::warn!(error = %e, lease = what, "a lease could not be renewed");
                if renewed.elapsed() + every >= lease {
                    return;
                }
            }
        }
    }
}
