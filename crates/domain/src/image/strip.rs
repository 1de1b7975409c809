//! Removing EXIF, XMP, GPS and text metadata from a JPEG, PNG or WebP without re-encoding it,
//! while the upload streams: only the container structure is walked, pixels pass through as they
//! are, and an EXIF Orientation other than 1 survives in a minimal EXIF block.
//!
//! Memory stays bounded whatever the input: a stripper holds a few header bytes plus at most one
//! metadata block (a JPEG APP1 segment, or the first 64 KiB of a PNG `eXIf` or WebP `EXIF`
//! chunk) while it reads the orientation. The output is never longer than the input.

mod crc;
mod jpeg;
mod png;
#[cfg(test)]
mod tests;
mod tiff;
mod webp;

/// The container formats whose metadata can be stripped.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StripFormat {
    /// JPEG (JFIF or Exif): marker segments before the first scan are filtered.
    Jpeg,
    /// PNG: metadata chunks are dropped.
    Png,
    /// WebP (RIFF): metadata chunks are blanked in place, since the RIFF size comes first.
    WebP,
}

/// The error for bytes that are not a well-formed file of the announced format.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StripError {
    /// The structure is broken: bad signature, impossible length, or the file ends mid-structure.
    #[error("malformed image: {0}")]
    Malformed(&'static str),
}

/// A streaming metadata remover: bytes in, bytes out, holding at most a bounded amount.
#[derive(Debug)]
pub struct MetadataStripper {
    inner: Inner,
    failed: Option<&'static str>,
}

#[derive(Debug)]
enum Inner {
    Jpeg(jpeg::JpegStripper),
    Png(png::PngStripper),
    WebP(webp::WebpStripper),
}

impl MetadataStripper {
    /// Starts stripping a file of `format`.
    pub fn new(format: StripFormat) -> Self {
        let inner = match format {
            StripFormat::Jpeg => Inner::Jpeg(jpeg::JpegStripper::new()),
            StripFormat::Png => Inner::Png(png::PngStripper::new()),
            StripFormat::WebP => Inner::WebP(webp::WebpStripper::new()),
        };
        Self {
            inner,
            failed: None,
        }
    }

    /// Feeds the next chunk of the file and appends to `out` what can be written out so far.
    ///
    /// # Errors
    ///
    /// [`StripError::Malformed`] as soon as the structure is seen to be broken; every later call
    /// returns the same error, and whatever was written to `out` must be discarded.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), StripError> {
        if let Some(reason) = self.failed {
            return Err(StripError::Malformed(reason));
        }
        let result = match &mut self.inner {
            Inner::Jpeg(s) => s.push(chunk, out),
            Inner::Png(s) => s.push(chunk, out),
            Inner::WebP(s) => s.push(chunk, out),
        };
        if let Err(StripError::Malformed(reason)) = result {
            self.failed = Some(reason);
        }
        result
    }

    /// Ends the input. Nothing is held back once a well-formed file is complete, so this checks
    /// that it is; `out` is taken so a later format may flush here.
    ///
    /// # Errors
    ///
    /// [`StripError::Malformed`] when an earlier [`push`](Self::push) failed or the file ended
    /// mid-structure (a truncated upload).
    pub fn finish(self, out: &mut Vec<u8>) -> Result<(), StripError> {
        if let Some(reason) = self.failed {
            return Err(StripError::Malformed(reason));
        }
        match self.inner {
            Inner::Jpeg(s) => s.finish(out),
            Inner::Png(s) => s.finish(out),
            Inner::WebP(s) => s.finish(out),
        }
    }
}

/// Strips a whole in-memory file; for tests and inputs already known to be small.
///
/// # Errors
///
/// [`StripError::Malformed`] as for [`MetadataStripper`].
pub fn strip(format: StripFormat, bytes: &[u8]) -> Result<Vec<u8>, StripError> {
    let mut stripper = MetadataStripper::new(format);
    let mut out = Vec::with_capacity(bytes.len());
    stripper.push(bytes, &mut out)?;
    stripper.finish(&mut out)?;
    Ok(out)
}

/// Moves bytes from `input` into `buf[*have..]`; returns `true` once `buf` is full.
fn fill(buf: &mut [u8], have: &mut usize, input: &mut &[u8]) -> bool {
    let Some(free) = buf.get_mut(*have..) else {
        return true;
    };
    let n = free.len().min(input.len());
    let (head, rest) = input.split_at(n);
    if let Some(dst) = free.get_mut(..n) {
        dst.copy_from_slice(head);
    }
    *input = rest;
    *have += n;
    *have >= buf.len()
}

/// Splits off the next `min(*remaining, input.len())` bytes of `input`, counting them off `remaining`.
fn take<'a>(input: &mut &'a [u8], remaining: &mut u64) -> &'a [u8] {
    let n = usize::try_from(*remaining).map_or(input.len(), |r| r.min(input.len()));
    let (head, rest) = input.split_at(n);
    *input = rest;
    *remaining = remaining.saturating_sub(n as u64);
    head
}

/// Appends `n` zero bytes.
fn zeros(out: &mut Vec<u8>, n: usize) {
    out.resize(out.len().saturating_add(n), 0);
}
