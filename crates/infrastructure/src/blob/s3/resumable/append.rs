//! Appending a request's body to an upload: into parts, and what is too short for a part into
//! the tail.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures_util::StreamExt;
use stowage_application::BodyError;
use stowage_application::ports::{Appended, BlobError};
use stowage_application::stream::{BlobDigester, ByteStream};
use stowage_domain::BlobKey;

use super::progress::{self, Progress};
use super::streamed::{PartSent, Source};
use super::{ResumableFailure, S3ResumableStore, Upload};
use crate::blob::s3::MIN_PART_SIZE;
use crate::blob::s3::multipart::{PartFill, fill_part};

/// Parts of a body of announced length are this many configured part sizes: streamed, they
/// cost no memory, and fewer parts mean fewer requests.
const STREAMED_PARTS_PER_PART: u64 = 4;

/// The error a body ended with, kept aside so that the part being read survives it.
type Stashed = Arc<Mutex<Option<BodyError>>>;

/// `body` ending at its first error, which goes into `stash`.
fn stop_at_error(body: ByteStream, stash: Stashed) -> ByteStream {
    body.scan((), move |(), item| {
        let next = match item {
            Ok(chunk) => Some(Ok(chunk)),
            Err(e) => {
                *stash.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
                None
            }
        };
        std::future::ready(next)
    })
    .boxed()
}

fn appended(
    next: &Progress,
    offset: u64,
    interrupted: Option<BlobError>,
) -> Result<Appended, BlobError> {
    Ok(Appended {
        progress: next.encode()?,
        written: next.size().saturating_sub(offset),
        interrupted,
    })
}

impl S3ResumableStore {
    pub(super) async fn append_bytes(
        &self,
        key: &BlobKey,
        progress: Progress,
        offset: u64,
        length: Option<u64>,
        total: Option<u64>,
        body: ByteStream,
    ) -> Result<Appended, BlobError> {
        let held = progress.size();
        if held != offset {
            return Err(BlobError::Unavailable(Box::new(ResumableFailure::Length {
                held,
                expected: offset,
            })));
        }
        let upload = self.upload(key, &progress);
        match length {
            Some(0) => appended(&progress, offset, None),
            Some(len) if self.streams(&progress, len) => {
                self.append_streamed(&upload, progress, offset, len, body)
                    .await
            }
            _ => {
                self.append_buffered(&upload, progress, offset, total, body)
                    .await
            }
        }
    }

    /// Whether `len` bytes after `progress` are streamed into parts of known length. Fewer bytes
    /// than a part end up in one buffer (the tail or the last part) anyway.
    fn streams(&self, progress: &Progress, len: u64) -> bool {
        let streaming = self
            .store
            .stream_uploads
            .load(std::sync::atomic::Ordering::Relaxed);
        streaming && progress.tail_size() + len >= MIN_PART_SIZE as u64
    }

    /// The parts a streamed append of `len` bytes after `progress` sends.
    fn streamed_parts(&self, progress: &Progress, len: u64) -> Vec<u64> {
        let target = STREAMED_PARTS_PER_PART * self.store.part_size as u64;
        progress::plan_parts(progress.tail_size() + len, target)
    }

    /// Where a streamed append may stop short: the end of each part, in bytes of the body (the
    /// first part begins with the tail's bytes). A buffered one keeps whatever arrived.
    pub(super) fn body_checkpoints(&self, progress: &Progress, length: Option<u64>) -> Vec<u64> {
        let Some(len) = length.filter(|&len| len > 0 && self.streams(progress, len)) else {
            return Vec::new();
        };
        let tail = progress.tail_size();
        self.streamed_parts(progress, len)
            .iter()
            .scan(0u64, |end, size| {
                *end += size;
                Some(end.saturating_sub(tail))
            })
            .collect()
    }

    /// Streams the tail and `len` bytes of `body` into parts, each sent as it arrives.
    async fn append_streamed(
        &self,
        upload: &Upload,
        progress: Progress,
        offset: u64,
        len: u64,
        body: ByteStream,
    ) -> Result<Appended, BlobError> {
        let sizes = self.streamed_parts(&progress, len);
        let first = progress.next_number();
        let count = i32::try_from(sizes.len()).unwrap_or(i32::MAX);
        if first.saturating_add(count) - 1 > progress::MAX_PART_NUMBER {
            return Err(BlobError::Unavailable(Box::new(
                ResumableFailure::TooManyParts,
            )));
        }
        let tail = match &progress.tail {
            Some(tail) => Some(self.read_tail(upload, tail).await?),
            None => None,
        };
        let mut source = Source::new(tail, body);
        let mut next = progress;
        let mut interrupted = None;
        for (number, (i, &size)) in (first..).zip(sizes.iter().enumerate()) {
            let at_end = i + 1 == sizes.len();
            match self
                .stream_part(upload, number, size, &mut source, at_end)
                .await?
            {
                PartSent::Stored(part) => {
                    // The first part begins with the tail's bytes.
                    next.tail = None;
                    next.parts.push(part);
                }
                PartSent::BodyFailed(e) => {
                    interrupted = Some(BlobError::Body(e));
                    break;
                }
            }
        }
        appended(&next, offset, interrupted)
    }

    /// Reads `body` one part at a time (the first led by the tail) and sends each; what remains
    /// at the end becomes the last part when it ends the upload or is large enough, else the
    /// new tail. A body that fails leaves its part so far stored the same way.
    async fn append_buffered(
        &self,
        upload: &Upload,
        progress: Progress,
        offset: u64,
        total: Option<u64>,
        body: ByteStream,
    ) -> Result<Appended, BlobError> {
        let mut body = body;
        // An empty request needs not read the tail back.
        let first = loop {
            match body.next().await {
                Some(Ok(chunk)) if chunk.is_empty() => {}
                Some(Ok(chunk)) => break chunk,
                Some(Err(e)) => return appended(&progress, offset, Some(BlobError::Body(e))),
                None => return appended(&progress, offset, None),
            }
        };
        // The tail leads the first part, read back into its buffer.
        let mut lead = PartFill::new(self.store.part_size)?;
        if let Some(tail) = &progress.tail {
            match self.load_tail(upload, tail, &mut lead).await {
                Ok(()) => {}
                Err(busy @ BlobError::Busy { .. }) => {
                    return appended(&progress, offset, Some(busy));
                }
                Err(e) => return Err(e),
            }
        }
        let mut lead = Some(lead);
        let mut carry: Option<Bytes> = None;
        let stash = Stashed::default();
        let mut body = stop_at_error(
            futures_util::stream::once(async move { Ok(first) })
                .chain(body)
                .boxed(),
            Arc::clone(&stash),
        );
        // Only the counting matters; the caller hashes what it needs.
        let mut digest = BlobDigester::new();
        let mut leading = progress.tail_size();
        let mut number = progress.next_number();
        let mut next = progress;
        loop {
            let fill = match lead.take() {
                Some(fill) => fill,
                None => PartFill::new(self.store.part_size)?,
            };
            let budget = &self.store.budget;
            let part = match fill_part(fill, &mut body, &mut digest, &mut carry, budget).await {
                Ok(part) => part,
                // Refused for want of buffers: the parts already sent stay appended.
                Err(busy @ BlobError::Busy { .. }) => return appended(&next, offset, Some(busy)),
                Err(e) => return Err(e),
            };
            let failed = stash.lock().unwrap_or_else(PoisonError::into_inner).take();
            let fresh = (part.bytes.len() as u64).saturating_sub(leading);
            if !part.ended {
                next.parts
                    .push(self.put_part(upload, number, part.bytes).await?);
                next.tail = None;
                number += 1;
                leading = 0;
                continue;
            }
            let interrupted = failed.map(BlobError::Body);
            if fresh == 0 {
                return appended(&next, offset, interrupted);
            }
            let end = next.parts_size() + part.bytes.len() as u64;
            let ends = interrupted.is_none() && total == Some(end);
            let kept = if ends || part.bytes.len() >= MIN_PART_SIZE {
                self.put_part(upload, number, part.bytes).await.map(|part| {
                    next.parts.push(part);
                    next.tail = None;
                })
            } else {
                self.put_tail(upload, end, part.bytes)
                    .await
                    .map(|tail| next.tail = Some(tail))
            };
            return match (kept, interrupted) {
                (Ok(()), interrupted) => appended(&next, offset, interrupted),
                (Err(e), None) => Err(e),
                // The body's failure is the one to report; the bytes of this part are lost.
                (Err(e), Some(interrupted)) => {
                    tracing::warn!(error = %e, "the part read before a body failure could not be kept");
                    appended(&next, offset, Some(interrupted))
                }
            };
        }
    }
}
