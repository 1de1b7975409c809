//! The `Upload-Metadata` of a resumable upload: the form fields of an ordinary upload, as tus
//! clients send them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use stowage_domain::{FileKey, Visibility};

use crate::error::Error;

/// What an upload's `Upload-Metadata` asks of its file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UploadMetadata {
    /// `filename` (or `name`, as Uppy sends it): the file's name, unsanitised.
    pub filename: Option<String>,
    /// `filetype` or `contentType` (or `type`): the declared content type.
    pub declared_type: Option<String>,
    /// `policy`: the upload policy to apply.
    pub policy: Option<String>,
    /// `key`: the key to store the file under.
    pub key: Option<FileKey>,
    /// `visibility`: `private` or `public`.
    pub visibility: Option<Visibility>,
}

impl UploadMetadata {
    /// Parses `Upload-Metadata`: comma-separated pairs of a key and its base64 value (a key may
    /// come without one); keys other than the contract's are ignored.
    ///
    /// # Errors
    /// `Validation` for a value that is not base64 of UTF-8, a key given twice, a key that breaks
    /// the key rule, or a visibility other than `private` and `public`.
    pub fn parse(header: Option<&str>) -> Result<Self, Error> {
        let mut metadata = Self::default();
        let Some(header) = header.filter(|h| !h.trim().is_empty()) else {
            return Ok(metadata);
        };
        let mut seen = std::collections::HashSet::new();
        for pair in header.split(',') {
            let pair = pair.trim();
            let (name, value) = match pair.split_once(' ') {
                Some((name, value)) => (name, decode(name, value.trim())?),
                None => (pair, String::new()),
            };
            if name.is_empty() || !seen.insert(name.to_owned()) {
                return Err(invalid("every Upload-Metadata key must be named once"));
            }
            let value = Some(value).filter(|v| !v.is_empty());
            match name {
                "filename" => metadata.filename = value,
                "name" => metadata.filename = metadata.filename.or(value),
                "filetype" | "contentType" => metadata.declared_type = value,
                "type" => metadata.declared_type = metadata.declared_type.or(value),
                "policy" => metadata.policy = value,
                "key" => {
                    metadata.key = value
                        .as_deref()
                        .map(FileKey::parse)
                        .transpose()
                        .map_err(|e| Error::Validation(e.to_string()))?;
                }
                "visibility" => {
                    metadata.visibility = value
                        .as_deref()
                        .map(|v| {
                            Visibility::parse(v)
                                .ok_or_else(|| invalid("visibility must be private or public"))
                        })
                        .transpose()?;
                }
                _ => {}
            }
        }
        Ok(metadata)
    }
}

fn decode(name: &str, value: &str) -> Result<String, Error> {
    let bytes = STANDARD
        .decode(value)
        .map_err(|_| invalid(&format!("Upload-Metadata value of '{name}' is not base64")))?;
    String::from_utf8(bytes)
        .map_err(|_| invalid(&format!("Upload-Metadata value of '{name}' is not UTF-8")))
}

fn invalid(reason: &str) -> Error {
    Error::Validation(reason.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        STANDARD.encode(s)
    }

    #[test]
    fn the_contract_keys_are_read_and_others_ignored() {
        let header = format!(
            "filename {},filetype {},policy {},key {},relativePath {},is_confidential",
            b64("отчёт.pdf"),
            b64("application/pdf"),
            b64("avatar"),
            b64("docs/a.pdf"),
            b64("x/y")
        );
        let metadata = UploadMetadata::parse(Some(&header)).expect("parses");
        assert_eq!(metadata.filename.as_deref(), Some("отчёт.pdf"));
        assert_eq!(metadata.declared_type.as_deref(), Some("application/pdf"));
        assert_eq!(metadata.policy.as_deref(), Some("avatar"));
        assert_eq!(
            metadata.key.as_ref().map(FileKey::as_str),
            Some("docs/a.pdf")
        );
    }

    #[test]
    fn visibility_is_private_or_public() {
        for v in [Visibility::Private, Visibility::Public] {
            let header = format!("visibility {}", b64(v.as_str()));
            let metadata = UploadMetadata::parse(Some(&header)).expect("parses");
            assert_eq!(metadata.visibility, Some(v));
        }
    }

    #[test]
    fn uppy_names_are_fallbacks() {
        let header = format!("name {},type {}", b64("a.png"), b64("image/png"));
        let metadata = UploadMetadata::parse(Some(&header)).expect("parses");
        assert_eq!(metadata.filename.as_deref(), Some("a.png"));
        assert_eq!(metadata.declared_type.as_deref(), Some("image/png"));
        let header = format!("contentType {},type {}", b64("text/csv"), b64("image/png"));
        let metadata = UploadMetadata::parse(Some(&header)).expect("parses");
        assert_eq!(metadata.declared_type.as_deref(), Some("text/csv"));
    }

    #[test]
    fn bad_metadata_is_refused() {
        for header in [
            "filename !!!".to_owned(),
            format!("filename {},filename {}", b64("a"), b64("b")),
            format!("visibility {}", b64("Public")),
            format!("key {}", b64("/abs")),
        ] {
            assert!(
                matches!(
                    UploadMetadata::parse(Some(&header)),
                    Err(Error::Validation(_))
                ),
                "{header}"
            );
        }
        assert_eq!(
            UploadMetadata::parse(None).expect("none"),
            UploadMetadata::default()
        );
    }
}
