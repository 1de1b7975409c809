//! Makes image variants: decode, orient, resize, encode. CPU-bound work that the adapter keeps
//! off the async runtime and bounds in concurrency.

use async_trait::async_trait;
use bytes::Bytes;
use stowage_domain::image::header::ImageHeader;
use stowage_domain::image::variant::{OutputFormat, VariantSpec};

use crate::error::BoxError;

/// One variant, encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// The encoded image, without metadata.
    pub bytes: Bytes,
    /// Its width in pixels.
    pub width: u32,
    /// Its height in pixels.
    pub height: u32,
}

/// Why a variant could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The source is not an image this renderer decodes (or it is truncated or corrupt).
    #[error("not a decodable image: {0}")]
    Unsupported(String),
    /// This renderer cannot write `format`.
    #[error("{} output is not available", .0.as_str())]
    FormatUnavailable(OutputFormat),
    /// Every slot is taken and the queue is full; ask again after `retry_after_secs`.
    #[error("too many variants are being made")]
    Busy {
        /// Seconds the caller should wait.
        retry_after_secs: u64,
    },
    /// The renderer itself failed (a worker panicked, an encoder refused).
    #[error("image renderer failed")]
    Failed(#[source] BoxError),
}

/// Makes a variant of an image whose header the caller has read and checked against its limits.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ImageRenderer: Send + Sync {
    /// Whether `format` can be written at all (AVIF may not be).
    fn can_write(&self, format: OutputFormat) -> bool;

    /// Decodes `source` (whose header is `header`), applies its EXIF orientation, takes the
    /// crop and size [`stowage_domain::image::variant::plan`] gives for `spec` (never upscaling),
    /// and encodes it as `format` with `spec.quality`, with no metadata. At most a configured
    /// number of renders run at once; others wait for a bounded time, then get
    /// [`RenderError::Busy`]. Decoding runs at a reduced scale where the format allows, so
    /// memory follows the output's size more than the source's.
    ///
    /// # Errors
    /// See [`RenderError`].
    async fn render(
        &self,
        source: Bytes,
        header: ImageHeader,
        spec: VariantSpec,
        format: OutputFormat,
    ) -> Result<Rendered, RenderError>;
}
