//! The limits sections: what an upload may weigh, who may read, the blob cache, and rate limits.

use std::time::Duration;

use stowage_application::ports::RateLimit;
use stowage_domain::AccessPolicy;
use stowage_infrastructure::BlobCacheSettings;

use super::ConfigError;
use super::values::{Vars, invalid, parse, parse_duration};

/// Upload and access limits.
#[derive(Clone, Debug)]
pub struct LimitsConfig {
    /// `MAX_UPLOAD_BYTES`.
    pub max_upload_bytes: u64,
    /// `ACCESS_POLICY`.
    pub access_policy: AccessPolicy,
    /// `BLOB_CACHE_BYTES` (memory for small hot blobs; 0 turns the cache off) and
    /// `BLOB_CACHE_MAX_ITEM_BYTES` (largest blob cached).
    pub blob_cache: BlobCacheSettings,
    /// `TUS_EXPIRY`: how long a resumable upload lives untouched.
    pub tus_expiry: Duration,
}

/// Rate limit settings.
#[derive(Clone, Copy, Debug)]
pub struct RateLimitConfig {
    /// `RATE_LIMIT_ENABLED`.
    pub enabled: bool,
    /// `RATE_LIMIT_UPLOAD`.
    pub upload: RateLimit,
    /// `RATE_LIMIT_DOWNLOAD`.
    pub download: RateLimit,
}

/// The limits section.
pub(super) fn limits(vars: Vars<'_>) -> Result<LimitsConfig, ConfigError> {
    let access_policy = match vars.choice("ACCESS_POLICY").as_deref() {
        None | Some("owner") => AccessPolicy::Owner,
        Some("account") => AccessPolicy::Account,
        Some(other) => {
            return Err(invalid(
                "ACCESS_POLICY",
                format!("'{other}' is not owner or account"),
            ));
        }
    };
    let max_upload_bytes: u64 = vars.parse_or("MAX_UPLOAD_BYTES", "104857600")?;
    if max_upload_bytes == 0 {
        return Err(invalid(
            "MAX_UPLOAD_BYTES",
            "must be greater than 0".to_owned(),
        ));
    }
    let tus_expiry = parse_duration(vars.get("TUS_EXPIRY").unwrap_or("24h"))
        .map_err(|e| invalid("TUS_EXPIRY", e))?;
    if tus_expiry.is_zero() {
        return Err(invalid("TUS_EXPIRY", "must be longer than 0s".to_owned()));
    }
    Ok(LimitsConfig {
        max_upload_bytes,
        access_policy,
        tus_expiry,
        blob_cache: BlobCacheSettings {
            capacity_bytes: vars.parse_or("BLOB_CACHE_BYTES", "33554432")?,
            max_item_bytes: vars.parse_or("BLOB_CACHE_MAX_ITEM_BYTES", "262144")?,
        },
    })
}

/// The rate limits section (`RATE_LIMIT_*`).
pub(super) fn rate_limits(vars: Vars<'_>) -> Result<RateLimitConfig, ConfigError> {
    let rate = |name: &'static str, default: &str| rate(vars.get(name).unwrap_or(default), name);
    Ok(RateLimitConfig {
        enabled: vars.flag("RATE_LIMIT_ENABLED", true)?,
        upload: rate("RATE_LIMIT_UPLOAD", "10/60s")?,
        download: rate("RATE_LIMIT_DOWNLOAD", "100/60s")?,
    })
}

/// `<requests>/<window>`, e.g. `10/60s`.
fn rate(value: &str, name: &'static str) -> Result<RateLimit, ConfigError> {
    let (requests, window) = value.split_once('/').ok_or_else(|| {
        invalid(
            name,
            format!("'{value}' is not <requests>/<window>, e.g. 10/60s"),
        )
    })?;
    let requests: u32 = parse(requests.trim(), name)?;
    let window: Duration = parse_duration(window).map_err(|reason| invalid(name, reason))?;
    if requests == 0 || window.is_zero() {
        return Err(invalid(
            name,
            "requests and window must be greater than 0".to_owned(),
        ));
    }
    Ok(RateLimit { requests, window })
}
