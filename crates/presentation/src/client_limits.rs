//! Per-client bounds on what one client may hold at once: uploads in progress and downloads
//! streaming, each of which keeps buffers, a blob handle or a store connection alive.
//!
//! Rate limits count requests over a window; these count requests *in progress*, so a client that
//! opens many slow transfers (an HTTP/2 peer that never reads, an upload that stalls) is refused
//! past its share instead of taking the service's memory and file descriptors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use stowage_application::events::RequestFacts;

use crate::error::ApiError;
use crate::state::AppState;

/// What a client may hold at once, and how long a transfer may stand still.
#[derive(Clone, Copy, Debug)]
pub struct RequestLimits {
    /// Uploads in progress per client (`MAX_UPLOADS_PER_CLIENT`); 0 means no bound.
    pub uploads_per_client: usize,
    /// Downloads streaming per client (`MAX_DOWNLOADS_PER_CLIENT`); 0 means no bound.
    pub downloads_per_client: usize,
    /// A request body that sends nothing for this long is abandoned (`BODY_IDLE_TIMEOUT_SECONDS`).
    pub body_idle_timeout: Duration,
    /// A download the client does not read for this long is ended (`RESPONSE_STALL_TIMEOUT_SECONDS`).
    pub response_stall_timeout: Duration,
    /// Longest multipart preamble or part header block (`MULTIPART_HEADER_MAX_BYTES`).
    pub part_header_max: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            uploads_per_client: 16,
            downloads_per_client: 64,
            body_idle_timeout: Duration::from_secs(30),
            response_stall_timeout: Duration::from_secs(60),
            part_header_max: crate::upload::DEFAULT_PART_HEADER_MAX,
        }
    }
}

/// How long a refused client is told to wait: one transfer of its own may have ended by then.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Counts, per client, the transfers of one kind in progress.
#[derive(Clone, Debug)]
pub struct ClientSlots {
    inner: Arc<Slots>,
}

#[derive(Debug)]
struct Slots {
    max: usize,
    held: Mutex<HashMap<String, usize>>,
}

impl ClientSlots {
    /// At most `max` transfers per client at once; 0 means no bound.
    pub fn new(max: usize) -> Self {
        Self {
            inner: Arc::new(Slots {
                max,
                held: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// One more transfer for `client`, held until the returned [`Slot`] is dropped.
    ///
    /// # Errors
    /// `429 RATE_LIMITED` when `client` already holds its share.
    pub fn acquire(&self, client: &str) -> Result<Slot, ApiError> {
        if self.inner.max == 0 {
            return Ok(Slot { held: None });
        }
        let mut held = self
            .inner
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = held.entry(client.to_owned()).or_insert(0);
        if *count >= self.inner.max {
            return Err(ApiError::App(stowage_application::Error::RateLimited {
                retry_after: RETRY_AFTER,
            }));
        }
        *count += 1;
        Ok(Slot {
            held: Some((Arc::clone(&self.inner), client.to_owned())),
        })
    }

    /// Transfers `client` holds now.
    pub fn held_by(&self, client: &str) -> usize {
        self.inner
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(client)
            .copied()
            .unwrap_or(0)
    }
}

/// One transfer in progress; dropping it gives the client's slot back.
#[derive(Debug)]
pub struct Slot {
    held: Option<(Arc<Slots>, String)>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some((slots, client)) = self.held.take() else {
            return;
        };
        let mut held = slots.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(&client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&client);
            }
        }
    }
}

/// The client a request comes from, as the per-client bounds and rate limits see it.
#[derive(Clone, Debug)]
pub struct ClientAddress(pub String);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(crate::middleware::client_address_of(
            &parts.headers,
            &parts.extensions,
            state.settings().trust_proxy_headers,
        )))
    }
}

/// What a request tells about its client, for the events that report it: the address as the
/// rate limits see it, the `User-Agent`, the request id.
#[derive(Clone, Debug)]
pub struct Requester(pub RequestFacts);

impl FromRequestParts<AppState> for Requester {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let ClientAddress(ip) = ClientAddress::from_request_parts(parts, state).await?;
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(Requester(RequestFacts::new(
            Some(ip),
            header("user-agent").as_deref(),
            header("x-request-id"),
        )))
    }
}

/// The requester as the per-client bounds and rate limits see it: its address ([`Requester`]
/// always sets it).
pub fn requester_address(facts: &RequestFacts) -> &str {
    facts.ip.as_deref().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_share_and_its_slots_back() {
        let slots = ClientSlots::new(2);
        let first = slots.acquire("a").unwrap();
        let _second = slots.acquire("a").unwrap();
        assert!(slots.acquire("a").is_err());
        let _other = slots.acquire("b").unwrap();
        drop(first);
        assert_eq!(slots.held_by("a"), 1);
        let _third = slots.acquire("a").unwrap();
    }

    #[test]
    fn released_clients_leave_no_entry_behind() {
        let slots = ClientSlots::new(1);
        drop(slots.acquire("gone").unwrap());
        assert!(slots.inner.held.lock().unwrap().is_empty());
    }

    #[test]
    fn zero_means_no_bound() {
        let slots = ClientSlots::new(0);
        let held: Vec<Slot> = (0..100).map(|_| slots.acquire("a").unwrap()).collect();
        assert_eq!(held.len(), 100);
    }
}
