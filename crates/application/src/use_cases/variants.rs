//! Image variants: made once from their source, kept beside it in the blob store, and served
//! with its access rules. Every limit is checked before a pixel is decoded.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, Weak};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use stowage_domain::image::header::{ImageFormat, Probe, probe, trailing_orientation};
use stowage_domain::image::variant::{
    DEFAULT_MAX_OUTPUT_PX, FormatChoice, InvalidVariant, OutputFormat, Presets, VariantName,
    VariantParams, VariantRequest, VariantSpec, parse_request,
};
use stowage_domain::{BlobKey, FileRecord};

use crate::error::Error;
use crate::ports::{BlobBody, BlobError, BlobStore, ImageRenderer, RenderError};
use crate::use_cases::UploadPolicy;

/// The limits a variant's source must keep (`IMAGE_MAX_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageLimits {
    /// Most pixels a source may have, from its header (`IMAGE_MAX_SOURCE_PIXELS`).
    pub max_source_pixels: u64,
    /// Largest source file, in bytes (`IMAGE_MAX_SOURCE_BYTES`).
    pub max_source_bytes: u64,
    /// Largest `w` or `h` a request may ask for (`IMAGE_MAX_OUTPUT_PX`).
    pub max_output_px: u32,
}

impl Default for ImageLimits {
    fn default() -> Self {
        Self {
            max_source_pixels: 50_000_000,
            max_source_bytes: 26_214_400,
            max_output_px: DEFAULT_MAX_OUTPUT_PX,
        }
    }
}

/// A variant chosen for one request: what to make, in which format, under which name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChosenVariant {
    /// What to make.
    pub spec: VariantSpec,
    /// The format it is written in.
    pub format: OutputFormat,
    /// Its name beside the source.
    pub name: VariantName,
}

impl ChosenVariant {
    /// The entity tag of this variant of `record`: the source's, qualified by the variant's
    /// name, so it changes with either and is known without reading the variant.
    pub fn etag(&self, record: &FileRecord) -> String {
        format!("{}-{}", record.etag(), self.name)
    }

    /// Whether the format followed the request's `Accept` header (`Vary: Accept`).
    pub fn varies_by_accept(&self) -> bool {
        self.spec.format.varies_by_accept()
    }
}

/// Makes and serves image variants.
#[derive(Clone)]
pub struct Variants {
    blobs: Arc<dyn BlobStore>,
    renderer: Arc<dyn ImageRenderer>,
    limits: ImageLimits,
    presets: Arc<Presets>,
    making: Making,
}

impl Variants {
    /// Variants of the files in `blobs`, made by `renderer` within `limits`, with `presets`.
    pub fn new(
        blobs: Arc<dyn BlobStore>,
        renderer: Arc<dyn ImageRenderer>,
        limits: ImageLimits,
        presets: Presets,
    ) -> Self {
        Self {
            blobs,
            renderer,
            limits,
            presets: Arc::new(presets),
            making: Making::default(),
        }
    }

    /// The configured presets.
    pub fn presets(&self) -> &Presets {
        &self.presets
    }

    /// Reads a request's variant parameters; `None` asks for the file itself.
    ///
    /// # Errors
    /// `Validation` naming the parameter at fault.
    /// A format this renderer cannot write (AVIF, in a build without its encoder) is refused
    /// here, with the other parameters.
    pub fn parse(&self, params: &VariantParams<'_>) -> Result<Option<VariantRequest>, Error> {
        let request = parse_request(params, &self.presets, self.limits.max_output_px)
            .map_err(|InvalidVariant(message)| Error::Validation(message))?;
        if let Some(VariantRequest {
            spec:
                VariantSpec {
                    format: FormatChoice::Exact(format),
                    ..
                },
            ..
        }) = &request
            && !self.renderer.can_write(*format)
        {
            return Err(Error::Validation(format!(
                "format {} is not available: this build has no {} encoder",
                format.as_str(),
                format.as_str().to_uppercase()
            )));
        }
        Ok(request)
    }

    /// Chooses the variant `spec` of `record` for a client sending `accept`, checking what can
    /// be checked without reading the source.
    ///
    /// # Errors
    /// `UnsupportedImage` when the file is not of an image type variants are made of,
    /// `ImageTooLarge` when it passes the byte limit, `NotSupported` when the format asked for
    /// cannot be written.
    pub fn choose(
        &self,
        record: &FileRecord,
        spec: VariantSpec,
        accept: Option<&str>,
    ) -> Result<ChosenVariant, Error> {
        let source = source_format(record)
            .filter(|&format| self.renderer.can_read(format) && record.size() > 0)
            .ok_or_else(|| {
                Error::UnsupportedImage(format!(
                    "variants are made of JPEG, PNG, GIF and WebP images, not {}",
                    record.content_type().as_str()
                ))
            })?;
        if record.size() > self.limits.max_source_bytes {
            return Err(Error::ImageTooLarge(format!(
                "the image is larger than {} bytes",
                self.limits.max_source_bytes
            )));
        }
        let avif = self.renderer.can_write(OutputFormat::Avif);
        let format = spec.format.resolve(source, accept, avif);
        if !self.renderer.can_write(format) {
            return Err(Error::NotSupported(format!(
                "{} output is not available",
                format.as_str()
            )));
        }
        Ok(ChosenVariant {
            spec,
            format,
            name: spec.name(format),
        })
    }

    /// The preset `name` of `record` in the source's format, as `?variant=NAME` asks for it.
    ///
    /// # Errors
    /// `Validation` for an unknown preset; otherwise as [`Variants::choose`].
    pub fn preset(&self, record: &FileRecord, name: &str) -> Result<ChosenVariant, Error> {
        let spec = self
            .presets
            .get(name)
            .ok_or_else(|| Error::Validation(format!("unknown variant preset {name}")))?;
        self.choose(
            record,
            VariantSpec {
                format: FormatChoice::Source,
                ..*spec
            },
            None,
        )
    }

    /// The size of the variant, made first when it is not stored yet.
    ///
    /// # Errors
    /// As [`Variants::make`].
    pub async fn size(&self, record: &FileRecord, chosen: &ChosenVariant) -> Result<u64, Error> {
        let key = variant_key(record, chosen);
        match self.blobs.head(&key).await {
            Ok(len) => return Ok(len),
            Err(BlobError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        let mut turn = self.making.turn(key).await;
        turn.refused()?;
        match self.blobs.head(&key).await {
            Ok(len) => Ok(len),
            Err(BlobError::NotFound) => {
                let made = turn.remember(self.make(record, chosen).await)?;
                Ok(made.len() as u64)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Opens the variant, made first when it is not stored yet.
    ///
    /// # Errors
    /// As [`Variants::make`].
    pub async fn open(
        &self,
        record: &FileRecord,
        chosen: &ChosenVariant,
    ) -> Result<BlobBody, Error> {
        let key = variant_key(record, chosen);
        match self.blobs.get(&key, None).await {
            Ok(body) => return Ok(body),
            Err(BlobError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        // The first request for a new variant makes it; those that come meanwhile wait for it
        // and read what it stored (or meet its refusal), instead of each decoding the source.
        let mut turn = self.making.turn(key).await;
        turn.refused()?;
        match self.blobs.get(&key, None).await {
            Ok(body) => Ok(body),
            Err(BlobError::NotFound) => {
                let bytes = turn.remember(self.make(record, chosen).await)?;
                Ok(BlobBody {
                    len: bytes.len() as u64,
                    stream: futures_util::stream::once(async move { Ok(bytes) }).boxed(),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Makes the variant from the source and stores it beside it. Two processes making the same
    /// variant at once both write the same bytes; the store keeps one.
    ///
    /// # Errors
    /// `ImageTooLarge` past the byte or pixel limits, `UnsupportedImage` for a source that does
    /// not decode, `StorageUnavailable`, `NotFound` when the source's bytes are gone,
    /// `ServiceBusy` when every renderer slot stays taken.
    #[tracing::instrument(name = "make_variant", skip_all, fields(file_id = %record.id(), variant = %chosen.name))]
    pub async fn make(&self, record: &FileRecord, chosen: &ChosenVariant) -> Result<Bytes, Error> {
        // The slot comes first: sources are read only as fast as variants are made.
        let slot = self.renderer.reserve().await.map_err(render_error)?;
        let source = self.read_source(record).await?;
        let mut header = match probe(&source) {
            Probe::Found(header) => header,
            Probe::NeedMore | Probe::NotImage => {
                return Err(Error::UnsupportedImage(
                    "the file has no readable image header".to_owned(),
                ));
            }
        };
        // A WebP's (or PNG's) Exif block usually follows its image data, past what the header
        // read waits for; the whole file is here now.
        if header.orientation.is_none() {
            header.orientation = trailing_orientation(&source, header.format);
        }
        if header.pixels() > self.limits.max_source_pixels {
            return Err(Error::ImageTooLarge(format!(
                "the image has more than {} pixels",
                self.limits.max_source_pixels
            )));
        }
        let rendered = self
            .renderer
            .render(slot, source, header, chosen.spec, chosen.format)
            .await
            .map_err(render_error)?;
        let bytes = rendered.bytes;
        let body = futures_util::stream::once({
            let bytes = bytes.clone();
            async move { Ok(bytes) }
        })
        .boxed();
        self.blobs
            .put(&variant_key(record, chosen), body, Some(bytes.len() as u64))
            .await?;
        Ok(bytes)
    }

    /// Makes the presets `names` of `record` (an upload policy's `variants`), in its format.
    ///
    /// # Errors
    /// As [`Variants::preset`] and [`Variants::make`].
    pub async fn make_presets(&self, record: &FileRecord, names: &[String]) -> Result<(), Error> {
        for name in names {
            let chosen = self.preset(record, name)?;
            self.make(record, &chosen).await?;
        }
        Ok(())
    }

    async fn read_source(&self, record: &FileRecord) -> Result<Bytes, Error> {
        let limit = self.limits.max_source_bytes;
        let body = self.blobs.get(&record.blob_key(), None).await?;
        if body.len > limit {
            return Err(Error::ImageTooLarge(format!(
                "the image is larger than {limit} bytes"
            )));
        }
        // The length is at most the byte limit, which is far below usize on every target.
        let mut buffer = BytesMut::with_capacity(usize::try_from(body.len).unwrap_or(0));
        let mut stream = body.stream;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Error::StorageUnavailable(Box::new(e)))?;
            if (buffer.len() + chunk.len()) as u64 > limit {
                return Err(Error::ImageTooLarge(format!(
                    "the image is larger than {limit} bytes"
                )));
            }
            buffer.extend_from_slice(&chunk);
        }
        Ok(buffer.freeze())
    }
}

/// Why the last maker of a variant failed, for the requests that waited for it: they get the
/// same answer instead of each trying again in turn.
#[derive(Clone, Debug)]
enum Refusal {
    Busy(u64),
    Unsupported(String),
    TooLarge(String),
}

impl Refusal {
    /// The refusals another request would meet too; a storage failure is not one of them.
    fn of(e: &Error) -> Option<Self> {
        match e {
            Error::ServiceBusy { retry_after_secs } => Some(Self::Busy(*retry_after_secs)),
            Error::UnsupportedImage(why) => Some(Self::Unsupported(why.clone())),
            Error::ImageTooLarge(why) => Some(Self::TooLarge(why.clone())),
            _ => None,
        }
    }

    fn error(&self) -> Error {
        match self {
            Self::Busy(retry_after_secs) => Error::ServiceBusy {
                retry_after_secs: *retry_after_secs,
            },
            Self::Unsupported(why) => Error::UnsupportedImage(why.clone()),
            Self::TooLarge(why) => Error::ImageTooLarge(why.clone()),
        }
    }
}

type TurnLock = futures_util::lock::Mutex<Option<Refusal>>;

/// The variants being made in this process, each with the turn its makers take. An entry lives
/// as long as a request holds or waits for its turn; dead ones are swept on the next turn.
#[derive(Clone, Default)]
struct Making {
    turns: Arc<std::sync::Mutex<HashMap<BlobKey, Weak<TurnLock>>>>,
}

impl Making {
    /// Waits until no other request of this process is making the variant at `key`.
    async fn turn(&self, key: BlobKey) -> Turn {
        let lock = {
            let mut turns = self.lock();
            turns.retain(|_, turn| turn.strong_count() > 0);
            match turns.get(&key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(TurnLock::new(None));
                    turns.insert(key, Arc::downgrade(&lock));
                    lock
                }
            }
        };
        Turn(lock.lock_owned().await)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<BlobKey, Weak<TurnLock>>> {
        // The map holds no invariant a panic could break half-way.
        self.turns.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A request's turn to make a variant.
struct Turn(futures_util::lock::OwnedMutexGuard<Option<Refusal>>);

impl Turn {
    /// The refusal the request before this one met, if it failed.
    fn refused(&self) -> Result<(), Error> {
        self.0
            .as_ref()
            .map_or(Ok(()), |refusal| Err(refusal.error()))
    }

    /// Keeps `result`'s refusal for the requests waiting.
    fn remember<T>(&mut self, result: Result<T, Error>) -> Result<T, Error> {
        if let Err(e) = &result {
            *self.0 = Refusal::of(e);
        }
        result
    }
}

fn render_error(e: RenderError) -> Error {
    match e {
        RenderError::Unsupported(why) => Error::UnsupportedImage(why),
        RenderError::FormatUnavailable(format) => {
            Error::NotSupported(format!("{} output is not available", format.as_str()))
        }
        RenderError::Busy { retry_after_secs } => Error::ServiceBusy { retry_after_secs },
        RenderError::Failed(e) => Error::Internal(e),
    }
}

/// Where the variant `chosen` of `record` is stored.
fn variant_key(record: &FileRecord, chosen: &ChosenVariant) -> stowage_domain::BlobKey {
    record.blob_key().with_variant(chosen.name)
}

/// The image format variants are made from, by the file's stored (sniffed) type.
fn source_format(record: &FileRecord) -> Option<ImageFormat> {
    ImageFormat::from_media_type(record.content_type().as_str())
}

/// Whether `record` may have variants stored beside it.
pub fn may_have_variants(record: &FileRecord) -> bool {
    source_format(record).is_some()
}

/// Makes the variants `policy` names of `record`, whose blob is stored and which is not recorded
/// yet, so that the upload is answered with them there; when one cannot be made, those made are
/// removed again (the caller removes the blob).
///
/// # Errors
/// `Internal` when the policy names variants but none can be made here (a wiring fault);
/// otherwise as [`Variants::make`].
pub(crate) async fn make_policy_variants(
    variants: Option<&Variants>,
    policy: &UploadPolicy,
    record: &FileRecord,
) -> Result<(), Error> {
    if policy.variants.is_empty() {
        return Ok(());
    }
    let variants = variants.ok_or_else(|| {
        Error::Internal("an upload policy names variants but no renderer is wired".into())
    })?;
    let made = variants.make_presets(record, &policy.variants).await;
    if made.is_err()
        && let Err(e) = variants.blobs.delete_variants(&record.blob_key()).await
    {
        tracing::warn!(error = %e, "variants of a refused upload could not be removed; gc will");
    }
    made
}

/// Removes a deleted file's bytes: its blob, then its variants when it may have some. A failure
/// is logged and left to `gc`, which finds both as orphans.
pub(crate) async fn remove_bytes(blobs: &dyn BlobStore, record: &FileRecord) {
    let key = record.blob_key();
    if let Err(e) = blobs.delete(&key).await {
        tracing::warn!(error = %e, "blob of a deleted file could not be removed; gc will");
    }
    if may_have_variants(record)
        && let Err(e) = blobs.delete_variants(&key).await
    {
        tracing::warn!(error = %e, "variants of a deleted file could not be removed; gc will");
    }
}

#[cfg(test)]
mod tests;
