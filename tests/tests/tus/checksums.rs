//! The checksum extension over raw HTTP: a `PATCH` whose `Upload-Checksum` matches is kept, one
//! that does not is refused with `460 CHECKSUM_MISMATCH` and moves no offset.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use md5_checksum::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::common::{MIB, assert_file, code_of, content, create, head, metadata, patch, server};

fn sha1_of(data: &[u8]) -> String {
    format!("sha1 {}", STANDARD.encode(Sha1::digest(data)))
}

fn sha256_of(data: &[u8]) -> String {
    format!("sha256 {}", STANDARD.encode(Sha256::digest(data)))
}

fn md5_of(data: &[u8]) -> String {
    use md5_checksum::Digest as _;
    format!("md5 {}", STANDARD.encode(Md5::digest(data)))
}

#[tokio::test]
async fn a_patch_with_a_matching_checksum_is_kept_and_a_mismatch_is_refused_with_460() {
    let server = server(&[]).await;
    let auth = server.bearer(Some(1), 1);
    // Pieces over S3's 5 MiB part minimum, so that a refused piece is a refused part there.
    let data = content(18 * MIB + 5, 11);
    let (first, rest) = data.split_at(6 * MIB);
    let (second, third) = rest.split_at(6 * MIB);
    let url = create(
        &server,
        &auth,
        data.len(),
        &metadata(&[("filename", "sums.bin")]),
    )
    .await;

    let kept = patch(
        &url,
        &auth,
        0,
        first,
        &[("Upload-Checksum", &sha1_of(first))],
    )
    .await;
    assert_eq!(kept.status(), 204);
    let offset = first.len();
    assert_eq!(head(&url, &auth).await, (200, Some(offset as u64)));

    for (name, bad) in [
        ("sha1", sha1_of(b"something else")),
        ("sha256", sha256_of(third)),
        ("md5", md5_of(&second[1..])),
    ] {
        let refused = patch(&url, &auth, offset, second, &[("Upload-Checksum", &bad)]).await;
        assert_eq!(
            code_of(refused).await,
            (460, "CHECKSUM_MISMATCH".to_owned()),
            "{name}"
        );
        assert_eq!(
            head(&url, &auth).await,
            (200, Some(offset as u64)),
            "a refused {name} PATCH moves no offset"
        );
    }

    let kept = patch(
        &url,
        &auth,
        offset,
        second,
        &[("Upload-Checksum", &sha256_of(second))],
    )
    .await;
    assert_eq!(kept.status(), 204);
    let offset = offset + second.len();
    assert_eq!(
        stowage_tests::header(&kept, "upload-offset"),
        Some(offset.to_string())
    );

    let last = patch(
        &url,
        &auth,
        offset,
        third,
        &[("Upload-Checksum", &md5_of(third))],
    )
    .await;
    assert_eq!(last.status(), 204);
    let id = stowage_tests::header(&last, "stowage-file-id").expect("Stowage-File-Id");
    assert!(stowage_tests::header(&last, "stowage-file-url").is_some_and(|u| u.contains(&id)));
    assert_file(&server, &auth, &id, &data).await;
}

#[tokio::test]
async fn a_bad_checksum_on_the_completing_patch_keeps_the_upload_open() {
    let server = server(&[]).await;
    let auth = server.bearer(Some(1), 1);
    let data = content(MIB + 17, 12);
    let url = create(&server, &auth, data.len(), "").await;

    let refused = patch(&url, &auth, 0, &data, &[("Upload-Checksum", &md5_of(b"x"))]).await;
    assert_eq!(
        code_of(refused).await,
        (460, "CHECKSUM_MISMATCH".to_owned())
    );
    assert_eq!(head(&url, &auth).await, (200, Some(0)));
    assert_eq!(server.row_count().await, 0, "no file from refused bytes");

    let kept = patch(
        &url,
        &auth,
        0,
        &data,
        &[("Upload-Checksum", &sha1_of(&data))],
    )
    .await;
    assert_eq!(kept.status(), 204);
    let id = stowage_tests::header(&kept, "stowage-file-id").expect("Stowage-File-Id");
    assert_file(&server, &auth, &id, &data).await;
}
