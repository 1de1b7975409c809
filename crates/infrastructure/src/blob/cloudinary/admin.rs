//! Deletion through the Upload API's `destroy`, health through the Admin API's `ping`, and the
//! listing `gc` needs through the Admin API's `resources`.

use futures_util::StreamExt;
use stowage_application::ports::{BlobError, BlobListing, ListedBlob};
use stowage_domain::{AccountId, BlobKey, FileId};

use super::error::{CloudinaryError, status_error, timed_out, transport};
use super::{CloudinaryBlobStore, ResourceType};

/// How long a successful `ping` stands for the store's health.
const HEALTH_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Resources asked for per listing page (the Admin API's largest page).
const PAGE: &str = "500";

/// Where a listing is: the types left, the next page of the current one.
struct Listing {
    store: CloudinaryBlobStore,
    kinds: std::vec::IntoIter<ResourceType>,
    next: Option<(ResourceType, Option<String>)>,
    failed: bool,
}

#[derive(serde::Deserialize)]
struct Page {
    #[serde(default)]
    resources: Vec<Resource>,
    next_cursor: Option<String>,
}

#[derive(serde::Deserialize)]
struct Resource {
    public_id: String,
    #[serde(default)]
    bytes: u64,
    created_at: Option<String>,
}

impl CloudinaryBlobStore {
    pub(super) async fn call(
        &self,
        operation: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<serde_json::Value, CloudinaryError> {
        let response = match tokio::time::timeout(self.timeout, request.send()).await {
            Err(_) => return Err(timed_out(operation)),
            Ok(Err(e)) => return Err(transport(operation, e)),
            Ok(Ok(response)) => response,
        };
        if !response.status().is_success() {
            return Err(status_error(operation, response).await);
        }
        response.json().await.map_err(|e| transport(operation, e))
    }

    /// Destroys `public_id` of type `kind`; whether it existed.
    pub(super) async fn destroy(
        &self,
        kind: ResourceType,
        public_id: &str,
    ) -> Result<bool, CloudinaryError> {
        let params = self.signer.signed_params(
            vec![
                ("invalidate", "true".to_owned()),
                ("public_id", public_id.to_owned()),
                ("type", "authenticated".to_owned()),
            ],
            super::upload::unix_now(),
        );
        let url = format!(
            "{}/v1_1/{}/{}/destroy",
            self.api_url,
            self.cloud_name,
            kind.as_str()
        );
        let answer = self
            .call("destroy", self.client.post(url).form(&params))
            .await?;
        match answer.get("result").and_then(serde_json::Value::as_str) {
            Some("ok") => Ok(true),
            Some("not found") => Ok(false),
            other => Err(CloudinaryError::Unexpected {
                operation: "destroy",
                detail: format!("result {other:?}"),
            }),
        }
    }

    /// Destroys a resource a failed write left; a failure is logged, gc reclaims it.
    pub(super) async fn destroy_quietly(&self, kind: ResourceType, public_id: &str) {
        if let Err(e) = self.destroy(kind, public_id).await {
            tracing::warn!(error = %e, "resource of a failed upload left behind; gc will remove it");
        }
    }

    /// Removes `key` under every resource type it may have.
    pub(super) async fn remove(&self, key: &BlobKey) -> Result<(), BlobError> {
        let public_id = self.public_id(key);
        for kind in self.types_of(key) {
            if self.destroy(kind, &public_id).await? {
                break;
            }
        }
        self.forget(key);
        Ok(())
    }

    /// Asks the Admin API's `ping`, at most once per [`HEALTH_TTL`] while it succeeds: readiness
    /// probes every few seconds would otherwise spend the Admin API's hourly quota.
    pub(super) async fn ping(&self) -> Result<(), BlobError> {
        let now = std::time::Instant::now();
        if self
            .healthy_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|until| now < until)
        {
            return Ok(());
        }
        let url = format!("{}/v1_1/{}/ping", self.api_url, self.cloud_name);
        let request = self
            .client
            .get(url)
            .basic_auth(&self.signer.api_key, Some(self.signer.secret()));
        self.call("ping", request).await?;
        *self
            .healthy_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(now + HEALTH_TTL);
        Ok(())
    }

    async fn page(
        &self,
        kind: ResourceType,
        cursor: Option<String>,
    ) -> Result<Page, CloudinaryError> {
        let url = format!(
            "{}/v1_1/{}/resources/{}/authenticated",
            self.api_url,
            self.cloud_name,
            kind.as_str()
        );
        let prefix = format!("{}/", self.folder);
        let mut query = vec![("prefix", prefix.as_str()), ("max_results", PAGE)];
        if let Some(cursor) = cursor.as_deref() {
            query.push(("next_cursor", cursor));
        }
        let request = self
            .client
            .get(url)
            .query(&query)
            .basic_auth(&self.signer.api_key, Some(self.signer.secret()));
        let answer = self.call("list", request).await?;
        serde_json::from_value(answer).map_err(|e| CloudinaryError::Unexpected {
            operation: "list",
            detail: e.to_string(),
        })
    }

    /// Every resource under the folder, of both types, page by page; a failed page ends it.
    pub(super) fn listing(&self) -> BlobListing {
        let kinds = vec![ResourceType::Image, ResourceType::Raw].into_iter();
        let start = Listing {
            store: self.clone(),
            kinds,
            next: None,
            failed: false,
        };
        futures_util::stream::unfold(start, |mut listing| async move {
            if listing.failed {
                return None;
            }
            let (kind, cursor) = match listing.next.take() {
                Some(next) => next,
                None => (listing.kinds.next()?, None),
            };
            let items: Vec<Result<ListedBlob, BlobError>> =
                match listing.store.page(kind, cursor).await {
                    Ok(page) => {
                        listing.next = page.next_cursor.map(|c| (kind, Some(c)));
                        page.resources
                            .into_iter()
                            .map(|r| Ok(listing.store.listed(kind, r)))
                            .collect()
                    }
                    Err(e) => {
                        listing.failed = true;
                        vec![Err(e.into())]
                    }
                };
            Some((futures_util::stream::iter(items), listing))
        })
        .flatten()
        .boxed()
    }

    fn listed(&self, kind: ResourceType, resource: Resource) -> ListedBlob {
        let modified = resource
            .created_at
            .as_deref()
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let key = resource
            .public_id
            .strip_prefix(&format!("{}/", self.folder))
            .and_then(|rest| rest.split_once('/'))
            .and_then(|(account, rest)| {
                let account = AccountId::new(account.parse::<i64>().ok()?);
                if let Ok(file) = FileId::parse(rest) {
                    return Some(BlobKey::new(account, file));
                }
                let (file, variant) = rest.split_once('/')?;
                let source = BlobKey::new(account, FileId::parse(file).ok()?);
                Some(source.with_variant(super::variants::decode(variant)?))
            });
        match key {
            Some(key) => ListedBlob::Blob {
                key,
                size: resource.bytes,
                modified,
            },
            None => ListedBlob::Stray {
                id: format!("{}/{}", kind.as_str(), resource.public_id),
                modified,
            },
        }
    }

    /// Removes a stray reported by the listing as `{resource_type}/{public_id}`.
    pub(super) async fn remove_listed_stray(&self, id: &str) -> Result<(), BlobError> {
        let (kind, public_id) = match id.split_once('/') {
            Some(("image", public_id)) => (ResourceType::Image, public_id),
            Some(("raw", public_id)) => (ResourceType::Raw, public_id),
            _ => return Ok(()),
        };
        self.destroy(kind, public_id).await?;
        Ok(())
    }
}
