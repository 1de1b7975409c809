//! [`ImageRenderer`] in-process: pure-Rust decoders and resizer, libwebp for lossy WebP.
//!
//! A variant is made in the source's stored orientation and turned at the end: the crop and the
//! output size are mapped back through the EXIF orientation, the source is decoded (a JPEG at
//! the smallest DCT scale that still holds the output's pixels), cropped and resized, and only
//! the small result is turned. CPU work runs on the blocking pool behind a semaphore, so at most
//! `concurrency` variants are made at once whatever the request rate.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use stowage_application::ports::{ImageRenderer, RenderError, RenderSlot, Rendered};
use stowage_domain::image::header::{ImageFormat, ImageHeader};
use stowage_domain::image::variant::{Crop, Geometry, OutputFormat, VariantSpec, plan};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

mod decode;
mod encode;
mod orient;
mod pixels;
mod resize;

#[cfg(test)]
mod tests;

use orient::Orientation;
use resize::Region;

/// How many variants are made at once and how long callers queue for a turn.
#[derive(Clone, Copy, Debug)]
pub struct ImageRendererSettings {
    /// Renders running at once (at least 1).
    pub concurrency: usize,
    /// Callers allowed to wait for a slot; one more is refused at once.
    pub queue: usize,
    /// How long a queued caller waits before it is refused.
    pub wait: Duration,
}

impl Default for ImageRendererSettings {
    fn default() -> Self {
        let concurrency = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            concurrency,
            queue: 4 * concurrency,
            wait: Duration::from_secs(10),
        }
    }
}

/// Seconds a refused caller is told to wait: renders of web-sized variants take well under one.
const RETRY_AFTER_SECS: u64 = 1;

/// Makes image variants on the blocking thread pool, a bounded number at a time.
pub struct PixelRenderer {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    settings: ImageRendererSettings,
}

impl PixelRenderer {
    /// A renderer bounded by `settings`.
    pub fn new(settings: ImageRendererSettings) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            waiting: AtomicUsize::new(0),
            settings,
        }
    }

    /// A render slot: at once if one is free, else after queueing, if the queue has room and a
    /// slot frees up in time.
    async fn slot(&self) -> Result<OwnedSemaphorePermit, RenderError> {
        let busy = RenderError::Busy {
            retry_after_secs: RETRY_AFTER_SECS,
        };
        match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(permit) => return Ok(permit),
            Err(TryAcquireError::Closed) => {
                return Err(RenderError::Failed("render slots closed".into()));
            }
            Err(TryAcquireError::NoPermits) => {}
        }
        let queue = self.settings.queue;
        if self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < queue).then_some(n + 1)
            })
            .is_err()
        {
            return Err(busy);
        }
        let _queued = Queued(&self.waiting);
        match tokio::time::timeout(self.settings.wait, Arc::clone(&self.slots).acquire_owned())
            .await
        {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(closed)) => Err(RenderError::Failed(Box::new(closed))),
            Err(_elapsed) => Err(busy),
        }
    }
}

/// A place in the queue, given back however the wait ends (including the caller going away).
struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[async_trait]
impl ImageRenderer for PixelRenderer {
    fn can_write(&self, format: OutputFormat) -> bool {
        // rav1e costs minutes of build time, so AVIF output is a build feature.
        cfg!(feature = "avif") || format != OutputFormat::Avif
    }

    fn can_read(&self, format: ImageFormat) -> bool {
        // Decoding AVIF needs dav1d, a system library.
        format != ImageFormat::Avif
    }

    async fn reserve(&self) -> Result<RenderSlot, RenderError> {
        self.slot().await.map(RenderSlot::new)
    }

    async fn render(
        &self,
        slot: RenderSlot,
        source: Bytes,
        header: ImageHeader,
        spec: VariantSpec,
        format: OutputFormat,
    ) -> Result<Rendered, RenderError> {
        if !self.can_write(format) {
            return Err(RenderError::FormatUnavailable(format));
        }
        if header.format == ImageFormat::Avif {
            return Err(RenderError::Unsupported(
                "AVIF sources are not decoded".to_owned(),
            ));
        }
        // The slot moves with the work: a caller that goes away does not free it while its
        // render still runs.
        let job = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            render_now(&source, &header, &spec, format)
        });
        match job.await {
            Ok(rendered) => rendered,
            // Decoders have panicking paths on hostile input (an unwrap in image-webp's animation
            // reader, jpeg-decoder's panics): that is the client's file, not a fault of the service.
            Err(e) if e.is_panic() => {
                tracing::warn!("an image decoder panicked on a client's file");
                Err(RenderError::Unsupported(
                    "the image could not be decoded".to_owned(),
                ))
            }
            Err(e) => Err(RenderError::Failed(Box::new(e))),
        }
    }
}

/// How a variant is made from a source: in stored coordinates, at full scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Plan {
    orientation: Orientation,
    /// The variant's size, displayed.
    output: (u32, u32),
    /// The part of the stored image taken.
    crop: Crop,
    /// The smallest decoded size (stored) that still gives the crop the output's pixels.
    need: (u32, u32),
}

fn make_plan(header: &ImageHeader, spec: &VariantSpec) -> Plan {
    let orientation = Orientation::from_exif(header.orientation);
    let (width, height) = orientation.swap((header.width, header.height));
    let Geometry {
        crop,
        width: out_w,
        height: out_h,
    } = plan(width, height, spec);
    let crop = crop.unwrap_or(Crop {
        x: 0,
        y: 0,
        width,
        height,
    });
    // The decode may shrink the whole image as long as the crop keeps `out` pixels on each axis.
    let need = |out: u32, side: u32, part: u32| -> u32 {
        let v = (u64::from(out) * u64::from(side)).div_ceil(u64::from(part.max(1)));
        u32::try_from(v).unwrap_or(u32::MAX).clamp(1, side.max(1))
    };
    Plan {
        orientation,
        output: (out_w, out_h),
        crop: orientation.stored_rect(crop, header.width, header.height),
        need: orientation.swap((
            need(out_w, width, crop.width),
            need(out_h, height, crop.height),
        )),
    }
}

/// Decodes, crops, resizes, turns and encodes, on the calling thread.
fn render_now(
    source: &[u8],
    header: &ImageHeader,
    spec: &VariantSpec,
    format: OutputFormat,
) -> Result<Rendered, RenderError> {
    if header.width == 0 || header.height == 0 {
        return Err(RenderError::Unsupported(
            "the image has no pixels".to_owned(),
        ));
    }
    let plan = make_plan(header, spec);
    let decoded = decode::decode(source, header, plan.need)?;
    // The decode may be scaled: the crop, in full-scale stored pixels, scales with it.
    let sx = f64::from(decoded.width) / f64::from(header.width);
    let sy = f64::from(decoded.height) / f64::from(header.height);
    let region = Region {
        x: f64::from(plan.crop.x) * sx,
        y: f64::from(plan.crop.y) * sy,
        width: f64::from(plan.crop.width) * sx,
        height: f64::from(plan.crop.height) * sy,
    };
    let (width, height) = plan.orientation.swap(plan.output);
    let resized = resize::resize(decoded, region, width, height)?;
    let turned = plan.orientation.apply(resized);
    let (width, height) = (turned.width, turned.height);
    let bytes = encode::encode(turned, format, spec.quality)?;
    Ok(Rendered {
        bytes,
        width,
        height,
    })
}
