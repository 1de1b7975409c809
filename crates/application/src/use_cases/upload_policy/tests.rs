use super::*;

use futures_util::stream;

/// A PNG signature and an IHDR of `width` × `height` (the CRC is not read by the header rules),
/// then an IDAT and an IEND, in one chunk per `split` bytes.
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend((data.len() as u32).to_be_bytes());
        out.extend(kind);
        out.extend(data);
        out.extend([0, 0, 0, 0]);
    };
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 6, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"tEXt", b"Comment\0secret location");
    chunk(b"IDAT", &[0x78, 0x9c, 0x63, 0, 0]);
    chunk(b"IEND", &[]);
    out
}

/// A baseline JPEG of 8 × 8 pixels whose Exif (orientation 6) carries a GPS marker.
fn jpeg_with_exif() -> Vec<u8> {
    let mut tiff = b"II*\0\x08\0\0\0".to_vec();
    tiff.extend(1u16.to_le_bytes());
    tiff.extend([0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0]);
    tiff.extend([0, 0, 0, 0]);
    tiff.extend(b"GPS 48.8584N 2.2945E");
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(tiff);
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend(((app1.len() + 2) as u16).to_be_bytes());
    out.extend(app1);
    // SOF0: 8-bit, 8 × 8, one component.
    out.extend([0xFF, 0xC0, 0, 11, 8, 0, 8, 0, 8, 1, 1, 0x11, 0]);
    // SOS of one component, then entropy-coded bytes and EOI.
    out.extend([0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0]);
    out.extend([0x12, 0x34, 0x56]);
    out.extend([0xFF, 0xD9]);
    out
}

fn body(data: &[u8], split: usize) -> ByteStream {
    let chunks: Vec<Result<Bytes, BodyError>> = data
        .chunks(split.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(chunks).boxed()
}

async fn drain(stream: ByteStream) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    let mut stream = stream;
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

fn policy(max_pixels: Option<u64>, strip_metadata: bool) -> UploadPolicy {
    UploadPolicy {
        max_pixels,
        strip_metadata,
        allowed_types: vec!["image/*".into(), "application/pdf".into()],
        ..UploadPolicy::avatar()
    }
}

#[tokio::test]
async fn a_decompression_bomb_is_refused_from_its_header() {
    let bomb = png(100_000, 100_000);
    for split in [1, 7, bomb.len()] {
        let got = drain(policy(Some(25_000_000), false).apply(body(&bomb, split), &bomb)).await;
        assert!(
            matches!(&got, Err(BodyError::ImageTooLarge(reason)) if reason.contains("100000×100000")),
            "{got:?}"
        );
    }
}

#[tokio::test]
async fn an_image_within_the_limit_passes_untouched_without_stripping() {
    let small = png(64, 64);
    let got = drain(policy(Some(64 * 64), false).apply(body(&small, 5), &small)).await;
    assert_eq!(got.expect("passes"), small);
    assert!(!policy(Some(1), false).rewrites(&small));
}

#[tokio::test]
async fn a_truncated_image_under_a_pixel_limit_is_unsupported() {
    let cut = &png(64, 64)[..20];
    let got = drain(policy(Some(100), false).apply(body(cut, 3), cut)).await;
    assert!(
        matches!(got, Err(BodyError::UnsupportedImage(_))),
        "{got:?}"
    );
}

#[tokio::test]
async fn a_file_that_is_not_an_image_is_left_alone() {
    let pdf = b"%PDF-1.4\n%%EOF\n".repeat(10);
    let got = drain(policy(Some(1), true).apply(body(&pdf, 4), &pdf)).await;
    assert_eq!(got.expect("passes"), pdf);
    assert!(!policy(Some(1), true).rewrites(&pdf));
}

#[tokio::test]
async fn stripping_removes_metadata_and_keeps_the_orientation() {
    let jpeg = jpeg_with_exif();
    let strip = policy(None, true);
    assert!(strip.rewrites(&jpeg));
    for split in [1, 3, jpeg.len()] {
        let got = drain(strip.apply(body(&jpeg, split), &jpeg))
            .await
            .expect("strips");
        assert!(!got.windows(3).any(|w| w == b"GPS"), "GPS kept: {got:?}");
        assert_eq!(
            stowage_domain::image::header::probe(&got),
            stowage_domain::image::header::probe(&jpeg),
            "same size and orientation"
        );
        assert!(got.ends_with(&[0x12, 0x34, 0x56, 0xFF, 0xD9]));
    }
    let png = png(8, 8);
    let got = drain(strip.apply(body(&png, 2), &png))
        .await
        .expect("strips");
    assert!(!got.windows(6).any(|w| w == b"secret"));
    assert!(got.len() < png.len());
}

#[tokio::test]
async fn a_malformed_image_under_stripping_is_unsupported_and_errors_end_the_stream() {
    let mut broken = jpeg_with_exif();
    broken.truncate(broken.len() - 2);
    let got = drain(policy(None, true).apply(body(&broken, 4), &broken)).await;
    assert!(
        matches!(got, Err(BodyError::UnsupportedImage(_))),
        "{got:?}"
    );

    let failing: ByteStream = stream::iter(vec![
        Ok(Bytes::from(png(8, 8))),
        Err(BodyError::TimedOut),
        Ok(Bytes::from_static(b"never")),
    ])
    .boxed();
    let mut stripped = policy(Some(100), true).apply(failing, &png(8, 8));
    let mut seen = Vec::new();
    while let Some(item) = stripped.next().await {
        seen.push(item.is_ok());
    }
    assert_eq!(
        seen.last(),
        Some(&false),
        "the error is passed on and ends it"
    );
    assert_eq!(seen.iter().filter(|ok| !**ok).count(), 1);
}

mod stored {
    use super::*;
    use crate::ports::BlobBody;
    use crate::ports::blob_store::MockBlobStore;
    use stowage_domain::{AccountId, FileId, Sha256Digest};

    fn key() -> BlobKey {
        BlobKey::new(AccountId::new(1), FileId::new_random())
    }

    fn serving(blobs: &mut MockBlobStore, data: Vec<u8>, ranged: bool) {
        blobs
            .expect_get()
            .withf(move |_, range| range.is_some() == ranged)
            .times(1)
            .returning(move |_, range| {
                let data = match range {
                    // A store stops at the end of the blob, as a range past it asks.
                    Some(r) => {
                        let end = usize::try_from(r.end()).expect("small");
                        data.get(..=end).unwrap_or(&data).to_vec()
                    }
                    None => data.clone(),
                };
                Ok(BlobBody {
                    len: data.len() as u64,
                    stream: body(&data, 3),
                })
            });
    }

    #[tokio::test]
    async fn a_stored_bomb_is_refused_from_its_first_bytes_and_left_for_the_caller() {
        let bomb = png(100_000, 100_000);
        let mut blobs = MockBlobStore::new();
        serving(&mut blobs, bomb.clone(), true);
        blobs.expect_put().never();

        let got =
            apply_to_stored(&policy(Some(100), false), &blobs, &key(), &bomb, 20_000_000).await;

        assert!(matches!(got, Err(Error::ImageTooLarge(_))), "{got:?}");
    }

    #[tokio::test]
    async fn a_stored_image_with_metadata_is_written_again_without_it() {
        let jpeg = jpeg_with_exif();
        let mut blobs = MockBlobStore::new();
        serving(&mut blobs, jpeg.clone(), false);
        let written = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = written.clone();
        blobs
            .expect_put()
            .times(1)
            .returning(move |_, mut body, length| {
                assert_eq!(length, None, "the stripped length is not known in advance");
                // The scripted body is in memory: every poll of it is ready at once.
                let mut bytes = Vec::new();
                while let Some(Some(chunk)) = futures_util::FutureExt::now_or_never(body.next()) {
                    bytes.extend_from_slice(&chunk.expect("the stripped bytes"));
                }
                let stored = crate::stream::StoredBlob {
                    size: bytes.len() as u64,
                    sha256: Sha256Digest::from_bytes([9; 32]),
                };
                *sink.lock().expect("lock") = bytes;
                Ok(stored)
            });

        let got = apply_to_stored(
            &policy(None, true),
            &blobs,
            &key(),
            &jpeg,
            jpeg.len() as u64,
        )
        .await
        .expect("rewritten")
        .expect("a new blob");

        let written = written.lock().expect("lock").clone();
        assert_eq!(got.size, written.len() as u64);
        assert!(!written.windows(3).any(|w| w == b"GPS"));
    }

    #[tokio::test]
    async fn a_policy_without_image_rules_or_an_empty_file_reads_nothing() {
        let blobs = MockBlobStore::new();
        let png = png(8, 8);
        for (policy, size) in [
            (UploadPolicy::types_only(), 100),
            (policy(Some(1), true), 0),
        ] {
            let got = apply_to_stored(&policy, &blobs, &key(), &png, size).await;
            assert!(matches!(got, Ok(None)), "{got:?}");
        }
    }
}

#[test]
fn visibility_is_the_uploads_then_the_policys_then_private() {
    let avatar = UploadPolicy::avatar();
    assert_eq!(visibility_of(None, None), Visibility::Private);
    assert_eq!(visibility_of(None, Some(&avatar)), Visibility::Public);
    assert_eq!(
        visibility_of(Some(Visibility::Private), Some(&avatar)),
        Visibility::Private
    );
}
