//! Image variants beside their source: `{folder}/{account_id}/{file_id}/{stem}_{extension}`, and
//! their removal through the Admin API's delete by prefix.
//!
//! The `.` of a variant name is written `_` (which no variant name holds): Cloudinary takes a
//! delivery URL's trailing `.{extension}` for a format to convert to, not for part of the id.

use stowage_application::ports::BlobError;
use stowage_domain::BlobKey;
use stowage_domain::image::variant::VariantName;

use super::error::CloudinaryError;
use super::{CloudinaryBlobStore, ResourceType};

/// Delete requests per resource type at most: each removes up to 1000 resources, far more than
/// one file has variants, so more means an answer that never stops saying `partial`.
const MAX_DELETE_ROUNDS: usize = 10;

/// `name` as the last segment of a public id.
pub(super) fn encode(name: VariantName) -> String {
    name.as_str().replace('.', "_")
}

/// The variant name a last segment of a public id encodes, if it encodes one.
pub(super) fn decode(segment: &str) -> Option<VariantName> {
    if segment.contains('.') {
        return None;
    }
    VariantName::parse(&segment.replace('_', ".")).ok()
}

#[derive(serde::Deserialize)]
struct Deleted {
    #[serde(default)]
    partial: bool,
    next_cursor: Option<String>,
}

impl CloudinaryBlobStore {
    /// Deletes every resource, of either type, whose public id starts with `{source}/`.
    pub(super) async fn remove_variants(&self, key: &BlobKey) -> Result<(), BlobError> {
        let source = key.source();
        let prefix = format!("{}/", self.public_id(&source));
        for kind in [ResourceType::Image, ResourceType::Raw] {
            self.delete_by_prefix(kind, &prefix).await?;
        }
        self.remembered()
            .retain(|k, _| k.variant().is_none() || k.source() != source);
        Ok(())
    }

    async fn delete_by_prefix(
        &self,
        kind: ResourceType,
        prefix: &str,
    ) -> Result<(), CloudinaryError> {
        let url = format!(
            "{}/v1_1/{}/resources/{}/authenticated",
            self.api_url,
            self.cloud_name,
            kind.as_str()
        );
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_DELETE_ROUNDS {
            let mut query = vec![("prefix", prefix), ("invalidate", "true")];
            if let Some(cursor) = cursor.as_deref() {
                query.push(("next_cursor", cursor));
            }
            let request = self
                .client
                .delete(&url)
                .query(&query)
                .basic_auth(&self.signer.api_key, Some(self.signer.secret()));
            let answer = self.call("delete_resources", request).await?;
            let deleted: Deleted =
                serde_json::from_value(answer).map_err(|e| CloudinaryError::Unexpected {
                    operation: "delete_resources",
                    detail: e.to_string(),
                })?;
            match deleted.next_cursor {
                Some(next) if deleted.partial => cursor = Some(next),
                _ => return Ok(()),
            }
        }
        Err(CloudinaryError::Unexpected {
            operation: "delete_resources",
            detail: format!("still partial after {MAX_DELETE_ROUNDS} requests"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_survives_its_public_id_form_and_nothing_else_decodes() {
        let name = VariantName::parse("w300-h200-cover-q80.webp").unwrap();

        assert_eq!(encode(name), "w300-h200-cover-q80_webp");
        assert_eq!(decode(&encode(name)), Some(name));
        for other in ["w300.webp", "w300_webp_x", "W300_webp", "w300", ""] {
            assert_eq!(decode(other), None, "{other}");
        }
    }
}
