//! What the tus routes document: their protocol version header and their bytes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The tus version a request speaks (`Tus-Resumable`): only `1.0.0`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, ToSchema)]
pub enum TusVersion {
    /// tus 1.0.0.
    #[serde(rename = "1.0.0")]
    V1,
}
