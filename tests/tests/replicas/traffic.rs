//! Mixed traffic through nginx, spread over both replicas: uploads (multipart, and raw on upload
//! URLs one replica signs and the other may take), downloads whole and by range, deletes, key
//! upserts (one key raced), and a tus upload whose `PATCH`es take turns. Afterwards each replica
//! serves every acknowledged file byte for byte, neither serves a deleted or replaced one, and
//! the store holds exactly the live files.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::future::{BoxFuture, FutureExt};
use futures_util::stream::{self, StreamExt};
use serde_json::json;
use stowage_tests::{
    ReplicaPair, assert_serves, client, file_id, header, json_with_status, pattern,
};

use crate::common::{MIB, assert_gone, get, listing, pair, upload};

/// What one operation left behind, to be checked on each replica afterwards.
enum Done {
    /// A file that must be served as `data`.
    Live(String, Vec<u8>),
    /// A file that must be `404`.
    Gone(String),
    /// One of several concurrent uploads under `key`: the one that holds it at the end is live,
    /// the others were replaced.
    Upserted {
        key: String,
        id: String,
        data: Vec<u8>,
    },
    /// A download, checked as it was made.
    Read,
}

/// Sizes around the store's thresholds: tiny, under and over the 1 MiB streaming threshold and
/// the 5 MiB S3 part.
const SIZES: [usize; 8] = [
    1,
    700,
    64 * 1024,
    300_000,
    MIB + 17,
    3 * MIB,
    5 * MIB + 3,
    6 * MIB + 1,
];

/// At most this many operations at once: below the per-client upload slots of one replica.
const CONCURRENCY: usize = 8;

#[tokio::test]
async fn mixed_traffic_through_nginx_is_served_by_each_replica_and_the_store_holds_exactly_the_live_files()
 {
    let Some(pair) = pair(&[]).await else {
        return;
    };
    let auth = pair.first.bearer(Some(1), 1);
    let nginx = pair.url("");

    // Files to read and files to delete while the rest happens.
    let mut kept = Vec::new();
    for (i, size) in [5000, 200_000, 2 * MIB + 5, 4 * MIB, 700, MIB]
        .iter()
        .enumerate()
    {
        let data = pattern(*size, 100 + i as u64);
        let info = upload(&nginx, &auth, "", &format!("seed-{i}.bin"), &data).await;
        kept.push((file_id(&info), data));
    }
    let mut doomed = Vec::new();
    for i in 0..3 {
        let info = upload(&nginx, &auth, "", "doomed.bin", &pattern(50_000, 200 + i)).await;
        doomed.push(file_id(&info));
    }

    let mut operations: Vec<BoxFuture<'_, Vec<Done>>> = Vec::new();
    for i in 0..10 {
        let data = pattern(SIZES[i % SIZES.len()], 300 + i as u64);
        operations.push(multipart(&nginx, &auth, data).boxed());
    }
    for i in 0..4 {
        let data = pattern(SIZES[(i * 3 + 2) % SIZES.len()], 400 + i as u64);
        operations.push(raw(&nginx, &auth, data).boxed());
    }
    for (id, data) in &kept {
        operations.push(downloads(&nginx, &auth, id, data).boxed());
    }
    for id in &doomed {
        operations.push(delete(&nginx, &auth, id).boxed());
    }
    for i in 0..3 {
        operations.push(upsert_twice(&nginx, &auth, format!("replicas/k{i}"), i).boxed());
    }
    for i in 0..5 {
        let data = pattern(SIZES[i % 5] + 1, 500 + i as u64);
        operations.push(upsert(&nginx, &auth, "replicas/hot", data).boxed());
    }
    operations.push(tus(&pair, &auth, pattern(9 * MIB + 123, 600)).boxed());
    // Mixed by a fixed permutation, so that uploads, reads, deletes and upserts overlap.
    let count = operations.len();
    for i in 0..count {
        operations.swap(i, (i * 7 + 3) % count);
    }
    let done: Vec<Done> = stream::iter(operations)
        .buffer_unordered(CONCURRENCY)
        .flat_map(stream::iter)
        .collect()
        .await;

    let mut live: BTreeMap<String, Vec<u8>> = kept.into_iter().collect();
    let mut gone = BTreeSet::new();
    let mut upserted: BTreeMap<String, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    for outcome in done {
        match outcome {
            Done::Live(id, data) => assert!(live.insert(id, data).is_none()),
            Done::Gone(id) => assert!(gone.insert(id)),
            Done::Upserted { key, id, data } => upserted.entry(key).or_default().push((id, data)),
            Done::Read => {}
        }
    }
    for (key, candidates) in upserted {
        let holder = json_with_status(
            get(&nginx, &auth, &format!("/files/info/by-key/{key}"), &[]).await,
            200,
        )
        .await;
        let holder = file_id(&holder);
        assert!(
            candidates.iter().any(|(id, _)| *id == holder),
            "{key} is held by {holder}, which no upsert under it made"
        );
        for (id, data) in candidates {
            if id == holder {
                live.insert(id, data);
            } else {
                gone.insert(id);
            }
        }
    }

    let served = pair.served();
    assert!(
        served.values().all(|n| *n >= 10),
        "nginx did not spread the traffic over both replicas: {served:?}"
    );
    for base in pair.backends() {
        for (id, data) in &live {
            assert_serves(base, &auth, id, data).await;
        }
        for id in &gone {
            assert_gone(base, &auth, id).await;
        }
    }
    let listed: BTreeSet<String> = listing(&nginx, &auth).await.into_keys().collect();
    let live_ids: BTreeSet<String> = live.keys().cloned().collect();
    assert_eq!(listed, live_ids, "the listing is not the live files");
    let live_keys: BTreeSet<String> = live.keys().map(|id| format!("1/{id}")).collect();
    assert_eq!(pair.first.row_keys().await, live_keys, "rows");
    assert_eq!(
        pair.first.stored_keys(),
        live_keys,
        "the store holds other than the live files"
    );
}

async fn multipart(nginx: &str, auth: &str, data: Vec<u8>) -> Vec<Done> {
    let info = upload(nginx, auth, "", "multipart.bin", &data).await;
    assert_eq!(info["size"], data.len());
    vec![Done::Live(file_id(&info), data)]
}

/// Asks for an upload URL, then `PUT`s the bytes on it, both through nginx.
async fn raw(nginx: &str, auth: &str, data: Vec<u8>) -> Vec<Done> {
    let asked = client()
        .post(format!("{nginx}/files/upload-url"))
        .header("Authorization", auth)
        .json(&json!({"expires_in": 600}))
        .send()
        .await
        .unwrap();
    let url = json_with_status(asked, 200).await["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        url.starts_with(nginx),
        "the upload URL is not nginx's: {url}"
    );
    let response = client()
        .put(&url)
        .header("Content-Type", "application/octet-stream")
        .header("Content-Disposition", "attachment; filename=\"raw.bin\"")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    let info = json_with_status(response, 201).await;
    assert_eq!(info["size"], data.len());
    vec![Done::Live(file_id(&info), data)]
}

/// Reads file `id` whole, by a middle range and by a suffix range.
async fn downloads(nginx: &str, auth: &str, id: &str, data: &[u8]) -> Vec<Done> {
    let path = format!("/files/{id}");
    let whole = get(nginx, auth, &path, &[]).await;
    assert_eq!(whole.status(), 200);
    assert!(whole.bytes().await.unwrap().as_ref() == data, "file {id}");

    let len = data.len();
    let (start, end) = (len / 3, 2 * len / 3);
    let range = format!("bytes={start}-{end}");
    let middle = get(nginx, auth, &path, &[("Range", &range)]).await;
    assert_eq!(middle.status(), 206, "{range} of {id}");
    assert_eq!(
        header(&middle, "content-range"),
        Some(format!("bytes {start}-{end}/{len}"))
    );
    assert!(middle.bytes().await.unwrap().as_ref() == &data[start..=end]);

    let n = len.min(1000);
    let suffix = get(nginx, auth, &path, &[("Range", &format!("bytes=-{n}"))]).await;
    assert_eq!(suffix.status(), 206, "last {n} bytes of {id}");
    assert!(suffix.bytes().await.unwrap().as_ref() == &data[len - n..]);
    vec![Done::Read]
}

async fn delete(nginx: &str, auth: &str, id: &str) -> Vec<Done> {
    let response = client()
        .delete(format!("{nginx}/files/{id}"))
        .header("Authorization", auth)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "delete {id}");
    vec![Done::Gone(id.to_owned())]
}

/// One upload under `key` (replacing whatever holds it).
async fn upsert(nginx: &str, auth: &str, key: &str, data: Vec<u8>) -> Vec<Done> {
    let info = upload(nginx, auth, &format!("?key={key}"), "keyed.bin", &data).await;
    assert_eq!(info["key"], key);
    vec![Done::Upserted {
        key: key.to_owned(),
        id: file_id(&info),
        data,
    }]
}

/// Two uploads under `key` one after the other: the second replaces the first.
async fn upsert_twice(nginx: &str, auth: &str, key: String, seed: u64) -> Vec<Done> {
    let first = upload(
        nginx,
        auth,
        &format!("?key={key}"),
        "v1.bin",
        &pattern(4000, seed),
    )
    .await;
    let data = pattern(2 * MIB, seed + 50);
    let second = upload(nginx, auth, &format!("?key={key}"), "v2.bin", &data).await;
    let by_key = get(nginx, auth, &format!("/files/by-key/{key}"), &[]).await;
    assert_eq!(by_key.status(), 200);
    assert!(by_key.bytes().await.unwrap().as_ref() == data.as_slice());
    vec![
        Done::Gone(file_id(&first)),
        Done::Live(file_id(&second), data),
    ]
}

/// A tus upload created through nginx, whose `PATCH`es go through nginx to its `Location`.
async fn tus(pair: &ReplicaPair, auth: &str, data: Vec<u8>) -> Vec<Done> {
    let request = |method: reqwest::Method, url: &str| {
        client()
            .request(method, url)
            .header("Tus-Resumable", "1.0.0")
            .header("Authorization", auth)
    };
    let created = request(reqwest::Method::POST, &pair.url("/files/tus"))
        .header("Upload-Length", data.len().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let location = header(&created, "location").expect("Location");
    assert!(
        location.starts_with(&pair.url("/files/tus/")),
        "the upload is not reached through nginx: {location}"
    );
    // Pieces off S3's part size, so that a tail one replica keeps leads the other's next part.
    let cuts = [0, 5 * MIB + 7, 8 * MIB + 7, data.len()];
    let mut last = None;
    for piece in cuts.windows(2) {
        let response = request(reqwest::Method::PATCH, &location)
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", piece[0].to_string())
            .body(data[piece[0]..piece[1]].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204, "PATCH at {}", piece[0]);
        assert_eq!(
            header(&response, "upload-offset"),
            Some(piece[1].to_string())
        );
        last = Some(response);
    }
    let id = header(&last.unwrap(), "stowage-file-id").expect("Stowage-File-Id");
    vec![Done::Live(id, data)]
}
