//! Two `stowage-api` processes on one database and one store (one bucket, or one data
//! directory) serve one upload: its `PATCH`es alternate between them, and two `PATCH`es at once
//! are serialised (`409 UPLOAD_LOCKED` for the loser). A replica killed mid-`PATCH` holds the
//! upload until its lease lapses; the other then resumes it from the last committed offset.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use stowage_tests::replicas::postgres;
use stowage_tests::{Replica, TestServer, client, header, s3_mode};

use crate::common::{
    MAX_UPLOAD_BYTES, MIB, OCTETS, assert_file, code_of, content, create, head, leftovers,
    metadata, patch, tus,
};

#[tokio::test]
async fn two_replicas_alternate_patches_of_one_upload_and_serialise_concurrent_ones() {
    if postgres().is_none() {
        return;
    }
    let a = TestServer::process_with(&[("MAX_UPLOAD_BYTES", MAX_UPLOAD_BYTES)]).await;
    let b = Replica::of(&a).await;
    let auth = a.bearer(Some(1), 1);
    // Pieces off S3's part sizes, so that a tail kept by one replica leads the other's next part.
    let sizes = [5 * MIB + 7, 3 * MIB, 6 * MIB + 1, 4 * MIB, 1234];
    let data = content(sizes.iter().sum(), 31);
    let mut pieces = Vec::new();
    let mut rest = data.as_slice();
    for size in sizes {
        let (piece, tail) = rest.split_at(size);
        pieces.push(piece);
        rest = tail;
    }
    let on_a = create(
        &a,
        &auth,
        data.len(),
        &metadata(&[("filename", "both.bin")]),
    )
    .await;
    let on_b = b.url_of(&a, &on_a);

    let mut offset = 0;
    for (i, piece) in pieces[..3].iter().enumerate() {
        let url = if i % 2 == 0 { &on_b } else { &on_a };
        let response = patch(url, &auth, offset, piece, &[]).await;
        assert_eq!(response.status(), 204, "piece {i}");
        offset += piece.len();
        let other = if i % 2 == 0 { &on_a } else { &on_b };
        assert_eq!(head(other, &auth).await, (200, Some(offset as u64)));
    }

    // A's PATCH trickles in for about two seconds; B's, sent meanwhile, finds the upload held.
    let slow_piece = pieces[3].to_vec();
    let slow = tokio::spawn({
        let (url, auth) = (on_a.clone(), auth.clone());
        let length = slow_piece.len();
        let pieces: Vec<Vec<u8>> = slow_piece.chunks(256 * 1024).map(<[u8]>::to_vec).collect();
        let body = futures_util::stream::unfold(pieces.into_iter(), |mut rest| async move {
            let next = rest.next()?;
            tokio::time::sleep(Duration::from_millis(120)).await;
            Some((Ok::<_, std::io::Error>(next), rest))
        });
        async move {
            tus(reqwest::Method::PATCH, &url, &auth)
                .header("Content-Type", OCTETS)
                .header("Upload-Offset", offset.to_string())
                .header("Content-Length", length.to_string())
                .body(reqwest::Body::wrap_stream(body))
                .send()
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    let loser = patch(&on_b, &auth, offset, pieces[3], &[]).await;
    assert_eq!(code_of(loser).await, (409, "UPLOAD_LOCKED".to_owned()));
    let winner = slow.await.unwrap();
    assert_eq!(winner.status(), 204);
    offset += pieces[3].len();
    assert_eq!(header(&winner, "upload-offset"), Some(offset.to_string()));

    let last = patch(&on_b, &auth, offset, pieces[4], &[]).await;
    assert_eq!(last.status(), 204);
    let id = header(&last, "stowage-file-id").expect("Stowage-File-Id");
    assert_file(&a, &auth, &id, &data).await;
    let from_b = client()
        .get(format!("{}/files/{id}", b.base_url))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(from_b.status(), 200);
    assert!(from_b.bytes().await.unwrap().as_ref() == data.as_slice());
    assert_eq!(a.row_count().await, 1);
}

/// How long a writing request holds its upload (`RESUMABLE_LEASE` of the application): a dead
/// holder's lease lapses at most this long after its last renewal, which comes every third of it.
const LEASE: Duration = Duration::from_secs(20);

/// Bytes the store holds for unfinished uploads and files alike.
fn stored_bytes(server: &TestServer) -> u64 {
    leftovers(server)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

#[tokio::test]
async fn a_replica_killed_mid_patch_holds_the_upload_until_its_lease_lapses_then_another_resumes_it()
 {
    if postgres().is_none() {
        return;
    }
    let survivor = TestServer::process_with(&[("MAX_UPLOAD_BYTES", MAX_UPLOAD_BYTES)]).await;
    let mut doomed = Replica::of(&survivor).await;
    let auth = survivor.bearer(Some(1), 1);
    let first = 3 * MIB + 5;
    let slow_len = 12 * MIB;
    let data = content(first + slow_len + 777, 33);
    let on_survivor = create(
        &survivor,
        &auth,
        data.len(),
        &metadata(&[("filename", "crash.bin")]),
    )
    .await;
    let on_doomed = doomed.url_of(&survivor, &on_survivor);
    // A committed start (on S3 a tail shorter than a part), so that the crash lands after one.
    assert_eq!(
        patch(&on_survivor, &auth, 0, &data[..first], &[])
            .await
            .status(),
        204
    );

    // No Content-Length: the body is chunked, so that S3 stores each 5 MiB part as it fills
    // instead of waiting for parts of 20 MiB.
    let sent = Arc::new(AtomicUsize::new(0));
    let slow = tokio::spawn({
        let (url, auth, sent) = (on_doomed.clone(), auth.clone(), sent.clone());
        let chunks: Vec<Vec<u8>> = data[first..first + slow_len]
            .chunks(256 * 1024)
            .map(<[u8]>::to_vec)
            .collect();
        let body = futures_util::stream::unfold(chunks.into_iter(), move |mut rest| {
            let sent = sent.clone();
            async move {
                let next = rest.next()?;
                tokio::time::sleep(Duration::from_millis(80)).await;
                sent.fetch_add(next.len(), Ordering::SeqCst);
                Some((Ok::<_, std::io::Error>(next), rest))
            }
        });
        async move {
            tus(reqwest::Method::PATCH, &url, &auth)
                .header("Content-Type", OCTETS)
                .header("Upload-Offset", first.to_string())
                .body(reqwest::Body::wrap_stream(body))
                .send()
                .await
        }
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    while sent.load(Ordering::SeqCst) < 7 * MIB {
        assert!(
            Instant::now() < deadline,
            "the slow PATCH did not get going"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !s3_mode() {
        // On disk the bytes are durable as they arrive: the crash finds them written.
        while stored_bytes(&survivor) < (first + 6 * MIB) as u64 {
            assert!(
                Instant::now() < deadline,
                "the bytes did not reach the disk"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    } else {
        // Time for the first streamed part to be stored.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    doomed.kill();
    let killed = Instant::now();
    let sent = sent.load(Ordering::SeqCst);
    assert!(sent < slow_len, "the PATCH was cut short: {sent} bytes");
    let cut = slow.await.unwrap();
    assert!(
        cut.as_ref().map_or(true, |r| !r.status().is_success()),
        "a killed replica answered {:?}",
        cut.map(|r| r.status())
    );

    // What the dead request wrote was never committed, or committed up to what arrived: the
    // upload resumes from an offset no further than the bytes sent.
    let (status, offset) = head(&on_survivor, &auth).await;
    assert_eq!(status, 200);
    let offset = usize::try_from(offset.expect("Upload-Offset")).unwrap();
    assert!(
        (first..=first + sent).contains(&offset),
        "offset {offset} after {first} committed and {sent} sent"
    );
    assert!(offset > 0);

    // The dead replica's lease still holds the upload; the survivor takes it once it lapses.
    let probe = &data[offset..offset + 64 * 1024];
    let held = patch(&on_survivor, &auth, offset, probe, &[]).await;
    assert_eq!(code_of(held).await, (409, "UPLOAD_LOCKED".to_owned()));
    loop {
        let response = patch(&on_survivor, &auth, offset, probe, &[]).await;
        if response.status() == 204 {
            break;
        }
        assert_eq!(code_of(response).await, (409, "UPLOAD_LOCKED".to_owned()));
        assert!(
            killed.elapsed() < LEASE + Duration::from_secs(10),
            "the lease of the dead replica did not lapse"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        killed.elapsed() >= LEASE - LEASE / 3 - Duration::from_secs(1),
        "the upload was taken {:?} after the crash, before the lease could lapse",
        killed.elapsed()
    );

    let resumed = offset + probe.len();
    let last = patch(&on_survivor, &auth, resumed, &data[resumed..], &[]).await;
    assert_eq!(last.status(), 204);
    let id = header(&last, "stowage-file-id").expect("Stowage-File-Id");
    assert_file(&survivor, &auth, &id, &data).await;
    assert_eq!(survivor.row_count().await, 1);
}
