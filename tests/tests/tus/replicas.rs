//! Two `stowage-api` processes on one database and one store (one bucket, or one data
//! directory) serve one upload: its `PATCH`es alternate between them, and two `PATCH`es at once
//! are serialised (`409 UPLOAD_LOCKED` for the loser).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use stowage_tests::{TestServer, binary, client, free_port, header};

use crate::common::{
    MAX_UPLOAD_BYTES, MIB, OCTETS, assert_file, code_of, content, create, head, metadata, patch,
    postgres, tus,
};

/// A second `stowage-api` process with another server's configuration (so its database and
/// store) on a port of its own.
struct Replica {
    child: Child,
    base_url: String,
    log: tempfile::NamedTempFile,
}

impl Replica {
    async fn of(server: &TestServer) -> Replica {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(binary())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(server.env())
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        let mut replica = Replica {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let live = client()
                .get(format!("{}/health/live", replica.base_url))
                .send()
                .await;
            if live.is_ok_and(|r| r.status().is_success()) {
                return replica;
            }
            if let Some(status) = replica.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(replica.log.path()).unwrap_or_default();
                panic!("the replica exited with {status}:\n{log}");
            }
            assert!(Instant::now() < deadline, "the replica did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `url` (an upload's URL on the first server) as this replica serves it.
    fn url_of(&self, server: &TestServer, url: &str) -> String {
        url.replacen(&server.base_url, &self.base_url, 1)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
