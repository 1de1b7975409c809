//! Upload policies: the built-in `avatar` and those `UPLOAD_POLICIES` names.

use std::collections::HashMap;

use serde::Deserialize;
use stowage_application::use_cases::UploadPolicy;
use stowage_domain::Visibility;

use super::ConfigError;
use super::values::{Vars, invalid};

/// One policy as `UPLOAD_POLICIES` writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyEntry {
    types: Vec<String>,
    max_bytes: Option<u64>,
    max_pixels: Option<u64>,
    #[serde(default)]
    visibility: Option<String>,
    #[serde(default)]
    strip_metadata: bool,
    /// Presets made before the upload is answered; checked against `IMAGE_PRESETS` later.
    #[serde(default)]
    variants: Vec<String>,
}

/// The policies: the built-in `avatar`, replaced or joined by those of `UPLOAD_POLICIES` (a JSON
/// object, or the path of a JSON file).
pub(super) fn policies(
    vars: Vars<'_>,
    max_upload_bytes: u64,
) -> Result<HashMap<String, UploadPolicy>, ConfigError> {
    let mut policies = HashMap::from([("avatar".to_owned(), UploadPolicy::avatar())]);
    if let Some(raw) = vars.get("UPLOAD_POLICIES") {
        policies.extend(upload_policies(raw, max_upload_bytes)?);
    }
    Ok(policies)
}

/// The policies of `UPLOAD_POLICIES`: JSON when it starts with `{`, else the path of a JSON file.
fn upload_policies(
    raw: &str,
    max_upload_bytes: u64,
) -> Result<HashMap<String, UploadPolicy>, ConfigError> {
    let bad = |reason: String| invalid("UPLOAD_POLICIES", reason);
    let text = if raw.trim_start().starts_with('{') {
        raw.to_owned()
    } else {
        std::fs::read_to_string(raw.trim()).map_err(|e| bad(format!("cannot read '{raw}': {e}")))?
    };
    let entries: HashMap<String, PolicyEntry> = serde_json::from_str(&text)
        .map_err(|e| bad(format!("not a JSON object of policies: {e}")))?;
    let mut policies = HashMap::with_capacity(entries.len());
    for (name, entry) in entries {
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !valid_name {
            return Err(bad(format!(
                "policy name '{name}' must be lower-case letters, digits, '_' or '-'"
            )));
        }
        if entry.types.is_empty() || entry.types.iter().any(|t| !t.contains('/')) {
            return Err(bad(format!(
                "policy '{name}' needs types such as \"image/png\""
            )));
        }
        let visibility = match entry.visibility.as_deref() {
            None => Visibility::Private,
            Some(v) => Visibility::parse(v).ok_or_else(|| {
                bad(format!(
                    "policy '{name}': visibility must be private or public"
                ))
            })?,
        };
        if entry.max_bytes == Some(0) || entry.max_pixels == Some(0) {
            return Err(bad(format!(
                "policy '{name}': limits must be greater than 0"
            )));
        }
        policies.insert(
            name,
            UploadPolicy {
                allowed_types: entry.types,
                max_bytes: entry
                    .max_bytes
                    .unwrap_or(max_upload_bytes)
                    .min(max_upload_bytes),
                max_pixels: entry.max_pixels,
                visibility,
                strip_metadata: entry.strip_metadata,
                variants: entry.variants,
            },
        );
    }
    Ok(policies)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: Option<&str>) -> Result<HashMap<String, UploadPolicy>, ConfigError> {
        let map: HashMap<String, String> = raw
            .map(|r| ("UPLOAD_POLICIES".to_owned(), r.to_owned()))
            .into_iter()
            .collect();
        policies(Vars::new(&map, false), 100)
    }

    #[test]
    fn the_built_in_avatar_policy_is_there_unless_replaced() {
        let policies = parse(None).expect("defaults");
        assert_eq!(policies.get("avatar"), Some(&UploadPolicy::avatar()));
        let policies = parse(Some(
            r#"{"avatar": {"types": ["image/png"], "max_bytes": 1000},
                "docs": {"types": ["application/pdf"], "visibility": "public"}}"#,
        ))
        .expect("valid");
        let avatar = &policies["avatar"];
        assert_eq!(avatar.allowed_types, ["image/png"]);
        assert_eq!(avatar.max_bytes, 100, "never above MAX_UPLOAD_BYTES");
        assert!(!avatar.strip_metadata && avatar.max_pixels.is_none());
        assert_eq!(policies["docs"].visibility, Visibility::Public);
        assert_eq!(policies["docs"].max_bytes, 100);
    }

    #[test]
    fn policies_are_read_from_a_file_too() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("policies.json");
        let json = r#"{"banner": {"types": ["image/*"], "max_pixels": 9, "strip_metadata": true}}"#;
        std::fs::write(&path, json).expect("written");
        let policies = parse(Some(&path.to_string_lossy())).expect("valid");
        assert_eq!(policies["banner"].max_pixels, Some(9));
        assert!(policies["banner"].strip_metadata);
    }

    #[test]
    fn bad_policies_stop_start_up_with_the_variable_named() {
        for value in [
            "{not json",
            "/no/such/file.json",
            r#"{"a": {"types": []}}"#,
            r#"{"a": {"types": ["png"]}}"#,
            r#"{"A": {"types": ["image/png"]}}"#,
            r#"{"a": {"types": ["image/png"], "extra": 1}}"#,
            r#"{"a": {"types": ["image/png"], "visibility": "all"}}"#,
            r#"{"a": {"types": ["image/png"], "variants": "small"}}"#,
            r#"{"a": {"types": ["image/png"], "max_pixels": 0}}"#,
        ] {
            let message = parse(Some(value)).expect_err(value).to_string();
            assert!(message.contains("UPLOAD_POLICIES"), "{message}");
        }
    }
}
