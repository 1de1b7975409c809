use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use stowage_domain::image::variant::{FormatChoice, VariantSpec};
use stowage_domain::{BlobKey, ContentType, FileRecord, FileRecordParts, Filename, Sha256Digest};

use super::*;
use crate::ports::blob_store::MockBlobStore;
use crate::ports::image_renderer::MockImageRenderer;
use crate::ports::{BlobBody, RenderSlot, Rendered};
use crate::stream::StoredBlob;
use crate::use_cases::fixtures::record as text_record;

/// The first bytes of a PNG of `width` × `height`: enough for its header to be read.
fn png_header(width: u32, height: u32) -> Bytes {
    let mut bytes = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
    bytes.extend_from_slice(&width.to_be_bytes());
    bytes.extend_from_slice(&height.to_be_bytes());
    bytes.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
    bytes.extend_from_slice(b"\x00\x00\x00\x00IDAT\x00\x00\x00\x00");
    Bytes::from(bytes)
}

fn image_record(content_type: &str, size: u64) -> FileRecord {
    let text = text_record(Some(1), 1);
    FileRecord::new(FileRecordParts {
        id: text.id(),
        filename: Filename::sanitize("photo.png"),
        content_type: ContentType::from_stored(content_type.into()),
        size,
        sha256: Some(Sha256Digest::from_bytes([3; 32])),
        created_at: text.created_at(),
        account_id: text.account_id(),
        user_id: text.user_id(),
    })
}

fn spec(w: u32, h: u32) -> VariantSpec {
    VariantSpec {
        width: Some(w),
        height: Some(h),
        fit: Fit::Cover,
        format: FormatChoice::Source,
        quality: 80,
    }
}

fn body_of(bytes: Bytes) -> BlobBody {
    BlobBody {
        len: bytes.len() as u64,
        stream: futures_util::stream::once(async move { Ok(bytes) }).boxed(),
    }
}

fn renderer_writing_all_but_avif() -> MockImageRenderer {
    let mut renderer = MockImageRenderer::new();
    renderer
        .expect_can_write()
        .returning(|format| format != OutputFormat::Avif);
    renderer
        .expect_can_read()
        .returning(|format| format != ImageFormat::Avif);
    renderer
        .expect_reserve()
        .returning(|| Ok(RenderSlot::new(())));
    renderer
}

fn variants(blobs: MockBlobStore, renderer: MockImageRenderer) -> Variants {
    Variants::new(
        Arc::new(blobs),
        Arc::new(renderer),
        ImageLimits::default(),
        Presets::default(),
    )
}

use stowage_domain::image::variant::Fit;

#[test]
fn only_images_within_the_byte_limit_have_variants() {
    let v = variants(MockBlobStore::new(), renderer_writing_all_but_avif());
    let err = v
        .choose(&text_record(Some(1), 1), spec(10, 10), None)
        .unwrap_err();
    assert!(matches!(err, Error::UnsupportedImage(_)), "{err:?}");

    let huge = image_record("image/png", ImageLimits::default().max_source_bytes + 1);
    let err = v.choose(&huge, spec(10, 10), None).unwrap_err();
    assert!(matches!(err, Error::ImageTooLarge(_)), "{err:?}");

    let avif = VariantSpec {
        format: FormatChoice::Exact(OutputFormat::Avif),
        ..spec(10, 10)
    };
    let err = v
        .choose(&image_record("image/png", 10), avif, None)
        .unwrap_err();
    assert!(matches!(err, Error::NotSupported(_)), "{err:?}");

    let err = v
        .choose(&image_record("image/avif", 10), spec(10, 10), None)
        .unwrap_err();
    assert!(matches!(err, Error::UnsupportedImage(_)), "{err:?}");

    let chosen = v
        .choose(&image_record("image/gif", 10), spec(10, 20), None)
        .unwrap();
    assert_eq!(chosen.format, OutputFormat::Png);
    assert_eq!(chosen.name.as_str(), "w10-h20-cover.png");
}

#[tokio::test]
async fn a_stored_variant_is_served_without_decoding_anything() {
    let record = image_record("image/png", 100);
    let mut blobs = MockBlobStore::new();
    let expected = record
        .blob_key()
        .with_variant(VariantName::parse("w10-h10-cover.png").unwrap());
    blobs
        .expect_get()
        .withf(move |key, range| *key == expected && range.is_none())
        .returning(|_, _| Ok(body_of(Bytes::from_static(b"stored"))));
    let mut renderer = renderer_writing_all_but_avif();
    renderer.expect_render().times(0);
    let v = variants(blobs, renderer);

    let chosen = v.choose(&record, spec(10, 10), None).unwrap();
    let body = v.open(&record, &chosen).await.unwrap();

    assert_eq!(body.len, 6);
}

#[tokio::test]
async fn a_missing_variant_is_made_from_the_source_and_stored_beside_it() {
    let record = image_record("image/png", 100);
    let source_key = record.blob_key();
    let put_keys: Arc<Mutex<Vec<BlobKey>>> = Arc::default();
    let mut blobs = MockBlobStore::new();
    blobs.expect_get().returning(move |key, _| {
        if key.variant().is_some() {
            Err(BlobError::NotFound)
        } else {
            assert_eq!(*key, source_key);
            Ok(body_of(png_header(40, 30)))
        }
    });
    let keys = Arc::clone(&put_keys);
    blobs.expect_put().returning(move |key, _, length| {
        keys.lock().unwrap().push(*key);
        assert_eq!(length, Some(4));
        Ok(StoredBlob {
            size: 4,
            sha256: Sha256Digest::from_bytes([0; 32]),
        })
    });
    let mut renderer = renderer_writing_all_but_avif();
    renderer
        .expect_render()
        .times(1)
        .returning(|_, _, header, spec, format| {
            assert_eq!((header.width, header.height), (40, 30));
            assert_eq!((spec.width, format), (Some(10), OutputFormat::WebP));
            Ok(Rendered {
                bytes: Bytes::from_static(b"webp"),
                width: 10,
                height: 10,
            })
        });
    let v = variants(blobs, renderer);
    let wanted = VariantSpec {
        format: FormatChoice::Auto,
        ..spec(10, 10)
    };

    let chosen = v.choose(&record, wanted, Some("image/webp,*/*")).unwrap();
    let body = v.open(&record, &chosen).await.unwrap();
    let bytes: Vec<Bytes> = body.stream.map(Result::unwrap).collect().await;

    assert_eq!(bytes.concat(), b"webp");
    assert!(chosen.varies_by_accept());
    let stored = put_keys.lock().unwrap().clone();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].source(), record.blob_key());
    assert_eq!(
        stored[0].variant().unwrap().as_str(),
        "w10-h10-cover-q80.webp"
    );
}

/// Making a variant of a source whose bytes are `source`, which must fail before any rendering.
async fn refused(source: Bytes) -> Error {
    let record = image_record("image/png", source.len() as u64);
    let mut blobs = MockBlobStore::new();
    blobs
        .expect_get()
        .returning(move |_, _| Ok(body_of(source.clone())));
    blobs.expect_put().times(0);
    let mut renderer = renderer_writing_all_but_avif();
    renderer.expect_render().times(0);
    let v = variants(blobs, renderer);
    let chosen = v.choose(&record, spec(10, 10), None).unwrap();
    v.make(&record, &chosen).await.unwrap_err()
}

#[tokio::test]
async fn limits_are_checked_from_the_header_before_decoding() {
    let bomb = refused(png_header(100_000, 100_000)).await;
    assert!(matches!(bomb, Error::ImageTooLarge(_)), "{bomb:?}");
    let text = refused(Bytes::from_static(b"plain text named .png")).await;
    assert!(matches!(text, Error::UnsupportedImage(_)), "{text:?}");
}

#[tokio::test]
async fn a_busy_renderer_asks_the_client_to_come_back_before_the_source_is_read() {
    let record = image_record("image/png", 100);
    let mut blobs = MockBlobStore::new();
    blobs.expect_get().times(0);
    blobs.expect_put().times(0);
    let mut renderer = MockImageRenderer::new();
    renderer.expect_can_write().return_const(true);
    renderer.expect_can_read().return_const(true);
    renderer.expect_reserve().returning(|| {
        Err(RenderError::Busy {
            retry_after_secs: 2,
        })
    });
    renderer.expect_render().times(0);
    let v = variants(blobs, renderer);
    let chosen = v.choose(&record, spec(10, 10), None).unwrap();

    let err = v.make(&record, &chosen).await.unwrap_err();

    assert!(
        matches!(
            err,
            Error::ServiceBusy {
                retry_after_secs: 2
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_deleted_image_takes_its_variants_along() {
    for (record, variants_deleted) in [
        (image_record("image/jpeg", 5), 1),
        (text_record(Some(1), 1), 0),
    ] {
        let mut blobs = MockBlobStore::new();
        let key = record.blob_key();
        blobs
            .expect_delete()
            .withf(move |k| *k == key)
            .times(1)
            .returning(|_| Ok(()));
        blobs
            .expect_delete_variants()
            .withf(move |k| *k == key)
            .times(variants_deleted)
            .returning(|_| Ok(()));
        remove_bytes(&blobs, &record).await;
    }
}

#[tokio::test]
async fn unknown_presets_are_refused() {
    let v = variants(MockBlobStore::new(), renderer_writing_all_but_avif());
    let err = v
        .make_presets(&image_record("image/png", 5), &["huge".to_owned()])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Validation(_)), "{err:?}");
}

/// An upload under the built-in `avatar` policy (which makes three presets) of `data`, with the
/// store answering reads of the source with `data`; returns the result and the keys deleted.
async fn avatar_upload(
    data: Bytes,
    renderer: MockImageRenderer,
) -> (Result<FileRecord, Error>, Vec<BlobKey>, usize) {
    use crate::events::RequestFacts;
    use crate::ports::clock::MockClock;
    use crate::ports::file_repository::MockFileRepository;
    use crate::use_cases::fixtures::user;
    use crate::use_cases::{UploadFile, UploadPolicy, UploadRequest};
    use std::collections::HashMap;

    let deleted: Arc<Mutex<Vec<BlobKey>>> = Arc::default();
    let variants_deleted: Arc<Mutex<usize>> = Arc::default();
    let mut blobs = MockBlobStore::new();
    let len = data.len() as u64;
    blobs.expect_put().returning(move |_, _, _| {
        Ok(StoredBlob {
            size: len,
            sha256: Sha256Digest::from_bytes([1; 32]),
        })
    });
    let source = data.clone();
    blobs
        .expect_get()
        .returning(move |_, _| Ok(body_of(source.clone())));
    let log = Arc::clone(&deleted);
    blobs.expect_delete().returning(move |key| {
        log.lock().unwrap().push(*key);
        Ok(())
    });
    let count = Arc::clone(&variants_deleted);
    blobs.expect_delete_variants().returning(move |_| {
        *count.lock().unwrap() += 1;
        Ok(())
    });
    let blobs: Arc<dyn BlobStore> = Arc::new(blobs);
    let mut repo = MockFileRepository::new();
    repo.expect_insert().returning(|_, _| Ok(()));
    let mut clock = MockClock::new();
    clock
        .expect_now()
        .returning(|| time::OffsetDateTime::UNIX_EPOCH);
    let upload = UploadFile::new(
        Arc::new(repo),
        Arc::clone(&blobs),
        Arc::new(clock),
        1 << 20,
        HashMap::from([("avatar".to_owned(), UploadPolicy::avatar())]),
    )
    .with_variants(Variants::new(
        blobs,
        Arc::new(renderer),
        ImageLimits::default(),
        Presets::default(),
    ));
    let result = upload
        .execute(UploadRequest {
            principal: user(1, 1),
            filename: Some("me.png".into()),
            declared_type: None,
            policy: Some("avatar".into()),
            body: futures_util::stream::iter([Ok(data)]).boxed(),
            length: None,
            request: RequestFacts::default(),
            key: None,
            metadata: stowage_domain::Metadata::default(),
            visibility: None,
            replaces: None,
        })
        .await;
    let deleted = deleted.lock().unwrap().clone();
    let variants_deleted = *variants_deleted.lock().unwrap();
    (result, deleted, variants_deleted)
}

#[tokio::test]
async fn a_policy_s_variants_are_made_before_the_upload_is_answered() {
    let mut renderer = renderer_writing_all_but_avif();
    renderer
        .expect_render()
        .times(3)
        .returning(|_, _, _, spec, _| {
            Ok(Rendered {
                bytes: Bytes::from_static(b"png"),
                width: spec.width.unwrap_or(1),
                height: spec.height.unwrap_or(1),
            })
        });

    let (result, deleted, variants_deleted) = avatar_upload(png_header(400, 300), renderer).await;

    assert!(result.is_ok(), "{result:?}");
    assert!(deleted.is_empty() && variants_deleted == 0);
}

#[tokio::test]
async fn an_upload_whose_policy_variants_cannot_be_made_is_not_kept() {
    let mut renderer = renderer_writing_all_but_avif();
    renderer
        .expect_render()
        .returning(|_, _, _, _, _| Err(RenderError::Unsupported("truncated".into())));

    let (result, deleted, variants_deleted) = avatar_upload(png_header(400, 300), renderer).await;

    assert!(
        matches!(result, Err(Error::UnsupportedImage(_))),
        "{result:?}"
    );
    assert_eq!(deleted.len(), 1, "the stored blob is removed");
    assert_eq!(
        variants_deleted, 1,
        "and any variant made before the failure"
    );
}

#[test]
fn a_format_the_renderer_cannot_write_is_a_bad_parameter() {
    let v = variants(MockBlobStore::new(), renderer_writing_all_but_avif());
    let avif = VariantParams {
        w: Some("10"),
        format: Some("avif"),
        ..VariantParams::default()
    };
    let err = v.parse(&avif).unwrap_err();
    assert!(
        matches!(&err, Error::Validation(m) if m.contains("avif")),
        "{err:?}"
    );
    let webp = VariantParams {
        format: Some("webp"),
        ..avif
    };
    assert!(v.parse(&webp).unwrap().is_some());
}

/// A renderer that takes a while over each variant and counts them; `busy` ones end refused.
struct SlowRenderer {
    renders: Arc<Mutex<usize>>,
    busy: bool,
}

#[async_trait::async_trait]
impl ImageRenderer for SlowRenderer {
    fn can_write(&self, format: OutputFormat) -> bool {
        format != OutputFormat::Avif
    }

    fn can_read(&self, format: ImageFormat) -> bool {
        format != ImageFormat::Avif
    }

    async fn reserve(&self) -> Result<RenderSlot, RenderError> {
        Ok(RenderSlot::new(()))
    }

    async fn render(
        &self,
        _slot: RenderSlot,
        _source: Bytes,
        _header: stowage_domain::image::header::ImageHeader,
        _spec: VariantSpec,
        _format: OutputFormat,
    ) -> Result<Rendered, RenderError> {
        *self.renders.lock().unwrap() += 1;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if self.busy {
            return Err(RenderError::Busy {
                retry_after_secs: 1,
            });
        }
        Ok(Rendered {
            bytes: Bytes::from_static(b"made"),
            width: 10,
            height: 10,
        })
    }
}

#[tokio::test]
async fn requests_for_a_variant_being_made_wait_for_it_instead_of_making_it_again() {
    let record = image_record("image/png", 100);
    let stored: Arc<Mutex<Option<Bytes>>> = Arc::default();
    let mut blobs = MockBlobStore::new();
    let kept = Arc::clone(&stored);
    blobs.expect_get().returning(move |key, _| {
        if key.variant().is_none() {
            return Ok(body_of(png_header(40, 30)));
        }
        kept.lock()
            .unwrap()
            .clone()
            .map(body_of)
            .ok_or(BlobError::NotFound)
    });
    let kept = Arc::clone(&stored);
    blobs.expect_put().returning(move |_, _, _| {
        *kept.lock().unwrap() = Some(Bytes::from_static(b"made"));
        Ok(StoredBlob {
            size: 4,
            sha256: Sha256Digest::from_bytes([0; 32]),
        })
    });
    let renders: Arc<Mutex<usize>> = Arc::default();
    let v = Variants::new(
        Arc::new(blobs),
        Arc::new(SlowRenderer {
            renders: Arc::clone(&renders),
            busy: false,
        }),
        ImageLimits::default(),
        Presets::default(),
    );
    let chosen = v.choose(&record, spec(10, 10), None).unwrap();
    let other = v.choose(&record, spec(20, 20), None).unwrap();

    let opened = futures_util::future::join_all([chosen, chosen, chosen, chosen, other].map(|c| {
        let (v, record) = (v.clone(), record.clone());
        async move { v.open(&record, &c).await.unwrap().len }
    }))
    .await;

    assert_eq!(opened, [4; 5]);
    // One render for the four requests of one variant, and one for the other variant.
    assert_eq!(*renders.lock().unwrap(), 2);
    assert!(
        v.making
            .lock()
            .values()
            .all(|turn| turn.strong_count() == 0),
        "turns are let go once done"
    );
}

#[tokio::test]
async fn requests_that_waited_for_a_refused_variant_get_its_refusal_without_trying_again() {
    let record = image_record("image/png", 100);
    let mut blobs = MockBlobStore::new();
    blobs.expect_get().returning(move |key, _| {
        if key.variant().is_none() {
            Ok(body_of(png_header(40, 30)))
        } else {
            Err(BlobError::NotFound)
        }
    });
    blobs.expect_put().times(0);
    let renders: Arc<Mutex<usize>> = Arc::default();
    let v = Variants::new(
        Arc::new(blobs),
        Arc::new(SlowRenderer {
            renders: Arc::clone(&renders),
            busy: true,
        }),
        ImageLimits::default(),
        Presets::default(),
    );
    let chosen = v.choose(&record, spec(10, 10), None).unwrap();

    let opened = futures_util::future::join_all((0..4).map(|_| {
        let (v, record) = (v.clone(), record.clone());
        async move { v.open(&record, &chosen).await.map(|body| body.len) }
    }))
    .await;

    for result in opened {
        assert!(
            matches!(
                result,
                Err(Error::ServiceBusy {
                    retry_after_secs: 1
                })
            ),
            "{result:?}"
        );
    }
    assert_eq!(
        *renders.lock().unwrap(),
        1,
        "the waiters did not render again"
    );
    // Once nobody waits, the refusal is forgotten: the next request tries again.
    assert!(v.open(&record, &chosen).await.is_err());
    assert_eq!(*renders.lock().unwrap(), 2);
}
