//! Upload policies (`POST /files?policy=avatar`): what an upload under a named policy may be, and
//! what is done to its bytes on their way to the store.

use std::collections::HashMap;

use bytes::Bytes;
use futures_util::StreamExt;
use stowage_domain::image::header::{HeaderReader, MAX_HEADER_BYTES, Probe};
use stowage_domain::image::strip::{MetadataStripper, StripFormat};
use stowage_domain::{BlobKey, ByteRange, ContentType, Visibility};

use crate::error::Error;
use crate::ports::BlobStore;
use crate::stream::{BodyError, ByteStream, StoredBlob};

/// A named restriction on what an upload may be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadPolicy {
    /// Types allowed, judged by the file's magic bytes (never by the declared type).
    pub allowed_types: Vec<String>,
    /// Largest size in bytes, below the global limit.
    pub max_bytes: u64,
    /// Most pixels an image may have, read from its header as it streams; `None` for no limit.
    pub max_pixels: Option<u64>,
    /// The visibility of a file uploaded under the policy when the upload names none.
    pub visibility: Visibility,
    /// Remove EXIF, XMP, GPS and text metadata from a JPEG, PNG or WebP without re-encoding it,
    /// keeping only an EXIF orientation other than 1.
    pub strip_metadata: bool,
    /// Presets (`IMAGE_PRESETS` names) made of the stored image before the upload is answered.
    pub variants: Vec<String>,
}

impl UploadPolicy {
    /// The built-in `avatar` policy: JPEG, PNG or WebP by magic bytes, at most 5 MiB and 25
    /// megapixels, public, metadata stripped.
    pub fn avatar() -> Self {
        Self {
            allowed_types: vec!["image/jpeg".into(), "image/png".into(), "image/webp".into()],
            max_bytes: 5 * 1024 * 1024,
            max_pixels: Some(25_000_000),
            visibility: Visibility::Public,
            strip_metadata: true,
            variants: vec!["small".into(), "medium".into(), "large".into()],
        }
    }

    /// The `avatar` policy's types and size without its image rules, for tests of the rules
    /// around it.
    #[cfg(test)]
    pub(crate) fn types_only() -> Self {
        Self {
            max_pixels: None,
            strip_metadata: false,
            variants: Vec::new(),
            ..Self::avatar()
        }
    }

    /// Checks a file's first bytes against the allowed types.
    ///
    /// # Errors
    /// `UnsupportedMediaType` when its magic bytes are not of an allowed type.
    pub(crate) fn check(&self, prefix: &[u8]) -> Result<(), Error> {
        let sniffed = ContentType::sniff(prefix);
        let allowed: Vec<&str> = self.allowed_types.iter().map(String::as_str).collect();
        if sniffed.is_some_and(|t| t.matches_any(&allowed)) {
            Ok(())
        } else {
            Err(Error::UnsupportedMediaType(format!(
                "this upload accepts only {}",
                self.allowed_types.join(", ")
            )))
        }
    }

    /// Whether [`UploadPolicy::apply`] may change the bytes of a file starting with `prefix`
    /// (so that a length announced for the upload no longer holds).
    pub(crate) fn rewrites(&self, prefix: &[u8]) -> bool {
        self.strip_metadata && strip_format(prefix).is_some()
    }

    /// `body` (the whole file, starting with `prefix`) with the policy's image rules applied as
    /// it streams: an image over `max_pixels` ends it with `ImageTooLarge` as soon as its header
    /// is read, and its metadata is stripped when the policy says so. A file the policy's types
    /// let through that is not an image passes untouched.
    pub(crate) fn apply(&self, body: ByteStream, prefix: &[u8]) -> ByteStream {
        let body = match (self.max_pixels, image_kind(prefix)) {
            (Some(max), ImageKind::Readable) => limit_pixels(body, max),
            // An image whose size cannot be read cannot be held to a pixel limit.
            (Some(_), ImageKind::Unreadable) => futures_util::stream::once(async {
                Err(BodyError::UnsupportedImage(
                    "this upload limits pixels, and the size of this type of image cannot be read"
                        .to_owned(),
                ))
            })
            .boxed(),
            _ => body,
        };
        match strip_format(prefix) {
            Some(format) if self.strip_metadata => strip_metadata(body, format),
            _ => body,
        }
    }
}

/// A policy's image rules applied to a file whose bytes are in the store already (a direct or
/// resumable upload; `prefix` is its start): the header is read from the blob, and a blob whose
/// metadata is to be stripped is written again under its key. Returns the size and digest of the
/// rewritten blob, `None` when it was left as it is.
///
/// # Errors
/// `ImageTooLarge`, `UnsupportedImage`, `StorageUnavailable`; the blob is then unchanged.
pub(crate) async fn apply_to_stored(
    policy: &UploadPolicy,
    blobs: &dyn BlobStore,
    key: &BlobKey,
    prefix: &[u8],
    size: u64,
) -> Result<Option<StoredBlob>, Error> {
    let pixels = policy.max_pixels.is_some() && image_kind(prefix) != ImageKind::Other;
    if size == 0 || !(pixels || policy.rewrites(prefix)) {
        return Ok(None);
    }
    if policy.rewrites(prefix) {
        let body = blobs.get(key, None).await?.stream;
        let stored = blobs.put(key, policy.apply(body, prefix), None).await?;
        return Ok(Some(stored));
    }
    // Only the header is needed, and it lies within its first bytes.
    let end = size.min(MAX_HEADER_BYTES as u64) - 1;
    let range = ByteRange::new(0, end).map_err(|e| Error::Internal(Box::new(e)))?;
    let mut checked = policy.apply(blobs.get(key, Some(range)).await?.stream, prefix);
    while let Some(chunk) = checked.next().await {
        chunk?;
    }
    Ok(None)
}

/// What a file is to the pixel limit.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ImageKind {
    /// An image whose size its header tells.
    Readable,
    /// An image of another format (BMP, TIFF, HEIC…).
    Unreadable,
    /// Not an image.
    Other,
}

/// What the file starting with `prefix` is to the pixel limit.
fn image_kind(prefix: &[u8]) -> ImageKind {
    const READABLE: [&str; 5] = [
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "image/avif",
    ];
    match ContentType::sniff(prefix) {
        Some(t) if t.matches_any(&READABLE) => ImageKind::Readable,
        Some(t) if t.as_str().starts_with("image/") => ImageKind::Unreadable,
        _ => ImageKind::Other,
    }
}

/// The format whose metadata can be stripped that `prefix` starts, if any.
fn strip_format(prefix: &[u8]) -> Option<StripFormat> {
    let sniffed = ContentType::sniff(prefix)?;
    match sniffed.as_str() {
        "image/jpeg" => Some(StripFormat::Jpeg),
        "image/png" => Some(StripFormat::Png),
        "image/webp" => Some(StripFormat::WebP),
        _ => None,
    }
}

/// `body`, ended with `ImageTooLarge` once its header shows more than `max` pixels, or with
/// `UnsupportedImage` when it has no readable header.
fn limit_pixels(body: ByteStream, max: u64) -> ByteStream {
    let judge = move |probe: Probe| match probe {
        Probe::Found(header) if header.pixels() > max => Err(BodyError::ImageTooLarge(format!(
            "the image is {}×{} pixels; this upload accepts at most {max} pixels",
            header.width, header.height
        ))),
        Probe::Found(_) | Probe::NeedMore => Ok(()),
        Probe::NotImage => Err(BodyError::UnsupportedImage(
            "the file's header is not that of a well-formed image".to_owned(),
        )),
    };
    transform(
        body,
        Some(HeaderReader::new()),
        move |reader: &mut Option<HeaderReader>, chunk: Bytes| {
            if let Some(r) = reader
                && let Some(probe) = r.push(&chunk)
            {
                judge(probe)?;
                *reader = None;
            }
            Ok(chunk)
        },
        move |reader| match reader {
            Some(r) => judge(r.finish()).map(|()| Bytes::new()),
            None => Ok(Bytes::new()),
        },
    )
}

/// `body` without its metadata (see [`MetadataStripper`]); a file that is not a well-formed image
/// of its format ends with `UnsupportedImage`.
fn strip_metadata(body: ByteStream, format: StripFormat) -> ByteStream {
    let malformed = |e: stowage_domain::image::strip::StripError| {
        BodyError::UnsupportedImage(format!("the image cannot be read: {e}"))
    };
    transform(
        body,
        MetadataStripper::new(format),
        move |stripper, chunk| {
            let mut out = Vec::with_capacity(chunk.len());
            stripper.push(&chunk, &mut out).map_err(malformed)?;
            Ok(Bytes::from(out))
        },
        move |stripper| {
            let mut out = Vec::new();
            stripper.finish(&mut out).map_err(malformed)?;
            Ok(Bytes::from(out))
        },
    )
}

/// `body` passed chunk by chunk through `step` (which may hold bytes back), then `end` once it
/// ends; the first error ends the stream. Empty chunks are not passed on.
fn transform<S, F, E>(body: ByteStream, state: S, step: F, end: E) -> ByteStream
where
    S: Send + 'static,
    F: FnMut(&mut S, Bytes) -> Result<Bytes, BodyError> + Send + 'static,
    E: FnOnce(S) -> Result<Bytes, BodyError> + Send + 'static,
{
    struct Run<S, F, E> {
        body: ByteStream,
        state: Option<S>,
        step: F,
        end: Option<E>,
    }
    let run = Run {
        body,
        state: Some(state),
        step,
        end: Some(end),
    };
    futures_util::stream::unfold(run, |mut run| async move {
        loop {
            let state = run.state.as_mut()?;
            let next = match run.body.next().await {
                Some(Ok(chunk)) => (run.step)(state, chunk),
                Some(Err(e)) => Err(e),
                None => {
                    let state = run.state.take()?;
                    let end = run.end.take()?;
                    match end(state) {
                        Ok(rest) if rest.is_empty() => return None,
                        other => other,
                    }
                }
            };
            match next {
                Ok(chunk) if chunk.is_empty() => {}
                Ok(chunk) => return Some((Ok(chunk), run)),
                Err(e) => {
                    run.state = None;
                    return Some((Err(e), run));
                }
            }
        }
    })
    .boxed()
}

/// The policy named `name` among `policies`; `None` for no name.
///
/// # Errors
/// `Validation` for a name no policy has.
pub(crate) fn policy_of<'a>(
    policies: &'a HashMap<String, UploadPolicy>,
    name: Option<&str>,
) -> Result<Option<&'a UploadPolicy>, Error> {
    match name {
        None => Ok(None),
        Some(name) => policies
            .get(name)
            .map(Some)
            .ok_or_else(|| Error::Validation(format!("unknown upload policy '{name}'"))),
    }
}

/// The visibility of a new file: the upload's own, else its policy's, else private.
pub(crate) fn visibility_of(
    asked: Option<Visibility>,
    policy: Option<&UploadPolicy>,
) -> Visibility {
    asked.or(policy.map(|p| p.visibility)).unwrap_or_default()
}

#[cfg(test)]
mod tests;
