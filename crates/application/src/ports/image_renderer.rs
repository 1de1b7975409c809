//! Makes image variants: decode, orient, resize, encode. CPU-bound work that the adapter keeps
//! off the async runtime and bounds in concurrency.

use async_trait::async_trait;
use bytes::Bytes;
use stowage_domain::image::header::{ImageFormat, ImageHeader};
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

/// One of the renderer's slots, taken before the source is read so that the memory sources hold
/// is bounded by the slots, and given back when dropped.
pub struct RenderSlot {
    _guard: Box<dyn std::any::Any + Send + Sync>,
}

impl RenderSlot {
    /// Wraps the adapter's own guard (a semaphore permit, say).
    pub fn new(guard: impl std::any::Any + Send + Sync) -> Self {
        Self {
            _guard: Box::new(guard),
        }
    }
}

impl std::fmt::Debug for RenderSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RenderSlot")
    }
}

/// Makes a variant of an image whose header the caller has read and checked against its limits.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ImageRenderer: Send + Sync {
    /// Whether `format` can be written at all (AVIF may not be).
    fn can_write(&self, format: OutputFormat) -> bool;

    /// Whether images of `format` can be decoded at all (AVIF may not be).
    fn can_read(&self, format: ImageFormat) -> bool;

    /// Takes a slot for one render: at once when one is free, else after a bounded wait in a
    /// bounded queue.
    ///
    /// # Errors
    /// [`RenderError::Busy`] when no slot frees up in time or the queue is full.
    async fn reserve(&self) -> Result<RenderSlot, RenderError>;

    /// Decodes `source` (whose header is `header`), applies its EXIF orientation, takes the
    /// crop and size [`stowage_domain::image::variant::plan`] gives for `spec` (never upscaling),
    /// and encodes it as `format` with `spec.quality`, with no metadata, holding `slot` until it
    /// is done (so at most as many renders run as there are slots). Decoding runs at a reduced
    /// scale where the format allows, so memory follows the output's size more than the
    /// source's.
    ///
    /// # Errors
    /// See [`RenderError`].
    async fn render(
        &self,
        slot: RenderSlot,
        source: Bytes,
        header: ImageHeader,
        spec: VariantSpec,
        format: OutputFormat,
    ) -> Result<Rendered, RenderError>;
}
