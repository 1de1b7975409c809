//! One replica killed with SIGKILL while uploads and downloads stream through nginx: the other
//! serves everything afterwards, every upload acknowledged with `201` is there byte for byte, no
//! download ever delivered other bytes than the file's, every listed file matches its SHA-256,
//! and after `stowage-api gc` the store holds exactly the rows' blobs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream;
use reqwest::Body;
use stowage_tests::{
    Replica, assert_serves, client, file_id, metric, pattern, run_subcommand, scrape_metrics,
    sha256_hex,
};

use crate::common::{MIB, get, listing, pair, post_file, upload};

/// Clients uploading and downloading at once (below the per-client upload slots of a replica).
const WORKERS: usize = 8;
/// Uploads each client begins after the kill before it stops.
const AFTER_KILL: usize = 2;

/// What the clients saw.
#[derive(Default)]
struct Seen {
    /// Uploads answered `201`: id and bytes.
    acked: Vec<(String, Vec<u8>)>,
    /// Uploads and downloads that failed, begun before the kill.
    cut: Vec<String>,
    /// Anything that failed, begun after the kill.
    failed_after_kill: Vec<String>,
    /// Downloads that delivered other bytes than the file's.
    wrong: Vec<String>,
}

impl Seen {
    fn failed(&mut self, after_kill: bool, what: String) {
        if after_kill {
            self.failed_after_kill.push(what);
        } else {
            self.cut.push(what);
        }
    }
}

/// `http_requests_in_flight` of `replica` (the scrape itself included).
async fn in_flight(replica: &Replica) -> f64 {
    let metrics = scrape_metrics(&replica.base_url).await;
    metric(&metrics, "http_requests_in_flight").unwrap_or(0.0)
}

#[tokio::test]
async fn a_replica_killed_mid_traffic_loses_no_acknowledged_upload_and_serves_nothing_partial() {
    let Some(mut pair) = pair(&[]).await else {
        return;
    };
    let auth = pair.first.bearer(Some(1), 1);
    let nginx = pair.url("");
    // Files read while the kill happens; the large one is read slowly, so reads are in flight.
    let mut seeds = Vec::new();
    for (i, size) in [300_000, 2 * MIB + 1, 12 * MIB].into_iter().enumerate() {
        let data = pattern(size, 700 + i as u64);
        let info = upload(&nginx, &auth, "", "seed.bin", &data).await;
        seeds.push((file_id(&info), data));
    }
    let seeds = Arc::new(seeds);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let killed = Arc::new(AtomicBool::new(false));
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..WORKERS {
        let client = Client {
            number: w,
            nginx: nginx.clone(),
            auth: auth.clone(),
            seeds: seeds.clone(),
            seen: seen.clone(),
            killed: killed.clone(),
        };
        workers.spawn(client.run());
    }

    // The kill comes once both replicas have served traffic and the doomed one is in the middle
    // of requests (uploads stay in flight while their bodies stream in).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let acked = seen.lock().unwrap().acked.len();
        let served = pair.served();
        if acked >= WORKERS
            && served.values().all(|n| *n >= 4)
            && in_flight(&pair.second).await >= 2.0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the traffic did not get going: {acked} uploads acknowledged, {served:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pair.second.kill();
    killed.store(true, Ordering::SeqCst);
    let finished = tokio::time::timeout(Duration::from_secs(300), async {
        while let Some(worker) = workers.join_next().await {
            worker.unwrap();
        }
    })
    .await;
    assert!(finished.is_ok(), "the clients did not finish");

    let mut seen = Arc::try_unwrap(seen)
        .ok()
        .expect("the clients are done")
        .into_inner()
        .unwrap();
    assert!(
        seen.wrong.is_empty(),
        "partial or wrong bytes served: {:?}",
        seen.wrong
    );
    assert!(
        seen.failed_after_kill.is_empty(),
        "requests begun after the kill failed: {:?}",
        seen.failed_after_kill
    );
    assert!(
        !seen.cut.is_empty(),
        "the kill cut no request: it hit no traffic"
    );

    // The survivor takes new uploads and serves every acknowledged one, through nginx and directly.
    for i in 0..4 {
        let data = pattern(MIB + i, 800 + i as u64);
        let info = upload(&nginx, &auth, "", "after.bin", &data).await;
        seen.acked.push((file_id(&info), data));
    }
    seen.acked.extend(seeds.iter().cloned());
    for (id, data) in &seen.acked {
        assert_serves(&nginx, &auth, id, data).await;
        assert_serves(&pair.first.base_url, &auth, id, data).await;
    }
    // Whatever else the dead replica completed is whole: each listed file matches its digest.
    let listed = listing(&pair.first.base_url, &auth).await;
    for (id, _) in &seen.acked {
        assert!(
            listed.contains_key(id),
            "acknowledged file {id} is not listed"
        );
    }
    for (id, info) in &listed {
        let response = get(&pair.first.base_url, &auth, &format!("/files/{id}"), &[]).await;
        assert_eq!(response.status(), 200, "listed file {id}");
        let body = response.bytes().await.unwrap();
        assert_eq!(info["size"], body.len(), "listed file {id}: {info}");
        assert_eq!(
            info["sha256"],
            sha256_hex(&body),
            "listed file {id}: {info}"
        );
    }

    // gc reclaims what the crash left (unfinished writes, a blob stored without its row).
    let gc = run_subcommand(&pair.first, "gc", &["--grace", "0s"]);
    assert!(
        gc.status.success(),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
    let rows = pair.first.row_keys().await;
    assert_eq!(
        pair.first.stored_keys(),
        rows,
        "the store after gc is not the rows' blobs; gc said:\n{}",
        String::from_utf8_lossy(&gc.stdout)
    );
    assert_eq!(rows.len(), listed.len());
}

/// One client of the traffic: uploads a file streamed slowly, then reads a seed (whole, or a
/// range), over and over, until it has begun [`AFTER_KILL`] uploads after the kill.
struct Client {
    number: usize,
    nginx: String,
    auth: String,
    seeds: Arc<Vec<(String, Vec<u8>)>>,
    seen: Arc<Mutex<Seen>>,
    killed: Arc<AtomicBool>,
}

impl Client {
    async fn run(self) {
        let mut after_kill = 0;
        for round in 0.. {
            let late = self.killed.load(Ordering::SeqCst);
            if late {
                if after_kill == AFTER_KILL {
                    return;
                }
                after_kill += 1;
            }
            self.upload(round, late).await;
            self.download(round, self.killed.load(Ordering::SeqCst))
                .await;
        }
    }

    fn failed(&self, late: bool, what: String) {
        self.seen.lock().unwrap().failed(late, what);
    }

    async fn upload(&self, round: usize, late: bool) {
        let size = MIB / 2 + ((self.number * 7 + round * 13) % 16) * 128 * 1024;
        let data = pattern(size, (self.number * 1000 + round) as u64);
        // 64 KiB every 25 ms: the body streams for a while, so uploads are in flight.
        let slowly = |form: Vec<u8>| {
            let chunks: Vec<Vec<u8>> = form.chunks(64 * 1024).map(<[u8]>::to_vec).collect();
            Body::wrap_stream(stream::unfold(chunks.into_iter(), |mut rest| async move {
                let next = rest.next()?;
                tokio::time::sleep(Duration::from_millis(25)).await;
                Some((Ok::<_, std::io::Error>(next), rest))
            }))
        };
        let outcome = post_file(&self.nginx, &self.auth, "", "traffic.bin", &data, slowly).await;
        let what = format!("upload {}/{round}", self.number);
        match outcome {
            Ok(response) if response.status() == 201 => {
                let info: serde_json::Value = response.json().await.unwrap();
                assert_eq!(info["size"], data.len(), "{info}");
                assert_eq!(info["sha256"], sha256_hex(&data), "{info}");
                self.seen.lock().unwrap().acked.push((file_id(&info), data));
            }
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                self.failed(late, format!("{what}: {status} {body}"));
            }
            Err(e) => self.failed(late, format!("{what}: {e}")),
        }
    }

    async fn download(&self, round: usize, late: bool) {
        let (id, data) = &self.seeds[(self.number + round) % self.seeds.len()];
        let (range, expected) = if round.is_multiple_of(2) {
            (None, &data[..])
        } else {
            let start = data.len() / 4 + round;
            (Some(format!("bytes={start}-")), &data[start..])
        };
        let mut request = client()
            .get(format!("{}/files/{id}", self.nginx))
            .header("Authorization", &self.auth);
        if let Some(range) = &range {
            request = request.header("Range", range);
        }
        let what = format!("download {}/{round} of {id} ({range:?})", self.number);
        let mut response = match request.send().await {
            Ok(response) if response.status().is_success() => response,
            Ok(response) => {
                let status = response.status();
                self.failed(late, format!("{what}: {status}"));
                return;
            }
            Err(e) => {
                self.failed(late, format!("{what}: {e}"));
                return;
            }
        };
        // Read slowly, so that large reads are in flight when the kill comes.
        let mut body = Vec::with_capacity(expected.len());
        let mut paced = 0;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk);
                    if body.len() - paced >= 256 * 1024 {
                        paced = body.len();
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.failed(late, format!("{what}: {e}"));
                    return;
                }
            }
        }
        if body != expected {
            self.seen.lock().unwrap().wrong.push(format!(
                "{what}: {} bytes, {} expected",
                body.len(),
                expected.len()
            ));
        }
    }
}
