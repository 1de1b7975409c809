//! The blob store section: the local disk, process memory, or the S3 or Cloudinary adapter's
//! own settings.

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use stowage_infrastructure::{CloudinarySettings, S3Layout, S3Settings};

use super::ConfigError;
use super::values::{Vars, invalid, url_without_slash};

/// How long an upload waits for a part buffer when `UPLOAD_BUFFER_BYTES` is all in use, before
/// it is refused with `503 SERVICE_BUSY`.
const UPLOAD_BUFFER_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

mod cloudinary;
#[cfg(test)]
mod tests;

/// Which blob store holds the bytes.
#[derive(Clone, Debug)]
pub enum StorageConfig {
    /// `STORAGE_BACKEND=fs`: `{DATA_DIR}/blobs`.
    Fs {
        /// Root directory of the blobs.
        root: PathBuf,
    },
    /// `STORAGE_BACKEND=s3`, with the `S3_*` variables.
    S3(S3Settings),
    /// `STORAGE_BACKEND=memory`: blobs in process memory, lost on exit (tests and demos).
    Memory {
        /// `MEMORY_STORE_BYTES`: the most bytes held; an upload that would pass it fails.
        capacity_bytes: u64,
    },
    /// `STORAGE_BACKEND=cloudinary`, with the `CLOUDINARY_*` variables.
    Cloudinary(CloudinarySettings),
}

/// The storage section (`STORAGE_BACKEND`, `S3_*`, `MEMORY_STORE_BYTES`, `CLOUDINARY_*`).
pub(super) fn storage(vars: Vars<'_>, data_dir: &Path) -> Result<StorageConfig, ConfigError> {
    match vars.choice("STORAGE_BACKEND").as_deref() {
        None | Some("fs") => Ok(StorageConfig::Fs {
            root: data_dir.join("blobs"),
        }),
        Some("s3") => s3(vars).map(StorageConfig::S3),
        Some("memory") => memory(vars),
        Some("cloudinary") => cloudinary::cloudinary(vars).map(StorageConfig::Cloudinary),
        Some(other) => Err(invalid(
            "STORAGE_BACKEND",
            format!("'{other}' is not a supported backend (fs, s3, memory or cloudinary)"),
        )),
    }
}

fn memory(vars: Vars<'_>) -> Result<StorageConfig, ConfigError> {
    let capacity_bytes: u64 = vars.parse_or("MEMORY_STORE_BYTES", "268435456")?;
    if capacity_bytes == 0 {
        return Err(invalid(
            "MEMORY_STORE_BYTES",
            "must be at least 1 byte".to_owned(),
        ));
    }
    Ok(StorageConfig::Memory { capacity_bytes })
}

fn s3(vars: Vars<'_>) -> Result<S3Settings, ConfigError> {
    let required = |name: &'static str| -> Result<&str, ConfigError> {
        vars.get(name).ok_or(if vars.production() {
            ConfigError::MissingInProduction { name }
        } else {
            invalid(name, "must be set when STORAGE_BACKEND=s3".to_owned())
        })
    };
    let layout = match vars.choice("S3_BUCKET_LAYOUT").as_deref() {
        None | Some("single") => S3Layout::Single {
            bucket: bucket_name(required("S3_BUCKET")?, "S3_BUCKET")?,
        },
        Some("per-account") => {
            let prefix = required("S3_BUCKET_PREFIX")?;
            bucket_name(&format!("{prefix}-1"), "S3_BUCKET_PREFIX")?;
            S3Layout::PerAccount {
                prefix: prefix.to_owned(),
            }
        }
        Some(other) => {
            return Err(invalid(
                "S3_BUCKET_LAYOUT",
                format!("'{other}' is not single or per-account"),
            ));
        }
    };
    let endpoint = vars
        .get("S3_ENDPOINT")
        .map(|u| url_without_slash(u, "S3_ENDPOINT"))
        .transpose()?;
    let part_size: usize = vars.parse_or("S3_PART_SIZE", "5242880")?;
    if part_size < 5 * 1024 * 1024 {
        return Err(invalid(
            "S3_PART_SIZE",
            "must be at least 5242880 (5 MiB), S3's smallest part".to_owned(),
        ));
    }
    let buffer_bytes = upload_buffer_bytes(vars, part_size, "S3_PART_SIZE", "part")?;
    Ok(S3Settings {
        force_path_style: vars.flag("S3_FORCE_PATH_STYLE", endpoint.is_some())?,
        endpoint,
        region: vars.get("S3_REGION").unwrap_or("us-east-1").to_owned(),
        access_key: required("S3_ACCESS_KEY")?.to_owned(),
        secret_key: SecretString::from(required("S3_SECRET_KEY")?),
        layout,
        part_size,
        pipelined_uploads: vars.parse_or("S3_PIPELINED_UPLOADS", "1")?,
        buffer_bytes,
        buffer_wait: UPLOAD_BUFFER_WAIT,
        connect_timeout: vars.millis("S3_CONNECT_TIMEOUT_MS", "5000")?,
        operation_timeout: vars.millis("S3_TIMEOUT_MS", "60000")?,
        max_attempts: vars.parse_or("S3_MAX_ATTEMPTS", "3")?,
        stream_uploads: vars.flag("S3_STREAM_UPLOADS", true)?,
    })
}

/// `UPLOAD_BUFFER_BYTES` when unset (or one buffer, when that is larger).
const DEFAULT_UPLOAD_BUFFER_BYTES: u64 = 64 * 1024 * 1024;

/// `UPLOAD_BUFFER_BYTES`: at least one buffer of `size` bytes, the `unit` (an S3 part, a
/// Cloudinary chunk) the setting `sized_by` gives, so that any upload can go on.
fn upload_buffer_bytes(
    vars: Vars<'_>,
    size: usize,
    sized_by: &str,
    unit: &str,
) -> Result<u64, ConfigError> {
    let Some(value) = vars.get("UPLOAD_BUFFER_BYTES") else {
        // Unset, it grows to one buffer, so that a part or chunk size valid alone stays valid.
        return Ok(DEFAULT_UPLOAD_BUFFER_BYTES.max(size as u64));
    };
    let bytes: u64 = super::values::parse(value, "UPLOAD_BUFFER_BYTES")?;
    if bytes < size as u64 {
        return Err(invalid(
            "UPLOAD_BUFFER_BYTES",
            format!("must be at least {sized_by} ({size}): one {unit} is buffered at a time"),
        ));
    }
    Ok(bytes)
}

/// S3's DNS-style bucket name rule: 3 to 63 of `a-z 0-9 . -`, starting and ending alphanumeric.
fn bucket_name(name: &str, variable: &'static str) -> Result<String, ConfigError> {
    let ok = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if !ok {
        return Err(invalid(
            variable,
            "bucket names are 3 to 63 lower-case letters, digits, dots or hyphens".to_owned(),
        ));
    }
    Ok(name.to_owned())
}
