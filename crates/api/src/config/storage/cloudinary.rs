//! `STORAGE_BACKEND=cloudinary`: the Cloudinary adapter's settings from `CLOUDINARY_*`.

use percent_encoding::percent_decode_str;
use secrecy::SecretString;
use stowage_infrastructure::blob::cloudinary::MIN_CHUNK_SIZE;

/// The largest chunk: 100 MB, as Cloudinary's own SDKs allow.
const MAX_CHUNK_SIZE: usize = 100_000_000;
use stowage_infrastructure::{CloudinarySettings, SignatureAlgorithm};

use super::super::ConfigError;
use super::super::values::{Vars, invalid, url_without_slash};
use super::{UPLOAD_BUFFER_WAIT, upload_buffer_bytes};

/// The shape `CLOUDINARY_URL` must have; said instead of the value, which holds the secret.
const URL_SHAPE: &str = "must look like cloudinary://<api_key>:<api_secret>@<cloud_name>";

/// The Cloudinary section.
pub(super) fn cloudinary(vars: Vars<'_>) -> Result<CloudinarySettings, ConfigError> {
    let url = vars.get("CLOUDINARY_URL").ok_or(if vars.production() {
        ConfigError::MissingInProduction {
            name: "CLOUDINARY_URL",
        }
    } else {
        invalid(
            "CLOUDINARY_URL",
            "must be set when STORAGE_BACKEND=cloudinary".to_owned(),
        )
    })?;
    let credentials =
        credentials(url).ok_or_else(|| invalid("CLOUDINARY_URL", URL_SHAPE.into()))?;
    let chunk_size: usize = vars.parse_or("CLOUDINARY_CHUNK_SIZE", "6000000")?;
    // Each upload holds one chunk in memory (within UPLOAD_BUFFER_BYTES for all of them).
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        return Err(invalid(
            "CLOUDINARY_CHUNK_SIZE",
            format!(
                "must be from {MIN_CHUNK_SIZE} (Cloudinary's smallest chunk) to {MAX_CHUNK_SIZE} \
                 (one chunk per upload is held in memory)"
            ),
        ));
    }
    let buffer_bytes = upload_buffer_bytes(vars, chunk_size, "CLOUDINARY_CHUNK_SIZE", "chunk")?;
    let signature_algorithm = match vars.choice("CLOUDINARY_SIGNATURE_ALGORITHM").as_deref() {
        None | Some("sha1") => SignatureAlgorithm::Sha1,
        Some("sha256") => SignatureAlgorithm::Sha256,
        Some(other) => {
            return Err(invalid(
                "CLOUDINARY_SIGNATURE_ALGORITHM",
                format!("'{other}' is not sha1 or sha256"),
            ));
        }
    };
    Ok(CloudinarySettings {
        cloud_name: credentials.cloud_name,
        api_key: credentials.api_key,
        api_secret: credentials.api_secret,
        folder: folder(vars.get("CLOUDINARY_FOLDER").unwrap_or("stowage"))?,
        api_url: url_without_slash(
            vars.get("CLOUDINARY_API_URL")
                .unwrap_or("https://api.cloudinary.com"),
            "CLOUDINARY_API_URL",
        )?,
        delivery_url: url_without_slash(
            vars.get("CLOUDINARY_DELIVERY_URL")
                .unwrap_or("https://res.cloudinary.com"),
            "CLOUDINARY_DELIVERY_URL",
        )?,
        chunk_size,
        buffer_bytes,
        buffer_wait: UPLOAD_BUFFER_WAIT,
        signature_algorithm,
        connect_timeout: vars.millis("CLOUDINARY_CONNECT_TIMEOUT_MS", "5000")?,
        timeout: vars.millis("CLOUDINARY_TIMEOUT_MS", "60000")?,
    })
}

/// What `CLOUDINARY_URL` holds.
struct Credentials {
    cloud_name: String,
    api_key: String,
    api_secret: SecretString,
}

/// `cloudinary://<api_key>:<api_secret>@<cloud_name>`, key and secret percent-decoded; `None`
/// for anything else, so no error can carry a piece of the value.
fn credentials(url: &str) -> Option<Credentials> {
    let rest = url.strip_prefix("cloudinary://")?;
    let (user_info, cloud_name) = rest.rsplit_once('@')?;
    let (api_key, api_secret) = user_info.split_once(':')?;
    let api_key = percent_decode_str(api_key).decode_utf8().ok()?;
    let api_secret = percent_decode_str(api_secret).decode_utf8().ok()?;
    let cloud_name_ok = !cloud_name.is_empty()
        && cloud_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if api_key.is_empty() || api_secret.is_empty() || !cloud_name_ok {
        return None;
    }
    Some(Credentials {
        cloud_name: cloud_name.to_owned(),
        api_key: api_key.into_owned(),
        api_secret: SecretString::from(api_secret.into_owned()),
    })
}

/// 1 to 100 characters: segments of `A-Z a-z 0-9 _ -` separated by single slashes.
fn folder(value: &str) -> Result<String, ConfigError> {
    let ok = (1..=100).contains(&value.len())
        && value.split('/').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
    if !ok {
        return Err(invalid(
            "CLOUDINARY_FOLDER",
            "must be 1 to 100 letters, digits, '_' or '-' in segments separated by single '/', \
             with no leading or trailing '/'"
                .to_owned(),
        ));
    }
    Ok(value.to_owned())
}
