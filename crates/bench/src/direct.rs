//! The direct upload phase: a 256 MiB file sent to the bucket on a presigned URL (start, `PUT`
//! with reqwest, complete) beside a plain `PutObject` of the same bytes to the same S3 server.

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::client::{Bench, MIB};
use crate::phases::Run;
use crate::stats::{median, mib_per_s, ratio, timed};

/// Size of the file of this phase.
pub const DIRECT_MIB: usize = 256;

impl Bench {
    /// Start, presigned `PUT` and completion of a `mib` MiB direct upload; the file's id.
    pub async fn upload_direct(&self, mib: usize) -> Result<String> {
        let block = self.block.clone();
        // Streamed, with the exact length the presigned request signs.
        let chunks = (0..mib * 16).map(move |i| {
            Ok::<_, std::io::Error>(block.slice((i % 16) * 64 * 1024..(i % 16 + 1) * 64 * 1024))
        });
        let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
        let started = self
            .http
            .post(format!("{}/files/direct", self.base))
            .bearer_auth(&self.token)
            .json(&json!({"filename": "direct.bin", "content_type": "application/octet-stream", "size": mib * MIB}))
            .send()
            .await?;
        if started.status() != 200 {
            let status = started.status();
            bail!(
                "POST /files/direct answered {status}: {}",
                started.text().await?
            );
        }
        let ticket: Value = started.json().await?;
        let mut put = self.http.put(ticket["url"].as_str().unwrap_or_default());
        for (name, value) in ticket["headers"].as_object().into_iter().flatten() {
            put = put.header(name, value.as_str().unwrap_or_default());
        }
        let stored = put
            .header("content-length", mib * MIB)
            .body(body)
            .send()
            .await?;
        if !stored.status().is_success() {
            bail!("the presigned PUT answered {}", stored.status());
        }
        let id = ticket["upload_id"].as_str().unwrap_or_default();
        let done = self
            .http
            .post(format!("{}/files/direct/{id}/complete", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        if done.status() != 201 {
            bail!("completion answered {}", done.status());
        }
        let info: Value = done.json().await?;
        Ok(info["file_id"].as_str().unwrap_or_default().to_owned())
    }
}

impl Run<'_> {
    /// A direct upload against a `PutObject` of the same size, taking turns at going first.
    pub async fn direct(&self) -> Result<Value> {
        let bench = &self.bench;
        let bytes = DIRECT_MIB * MIB;
        let (mut via_stowage, mut via_s3) = (vec![], vec![]);
        for rep in 0..self.settings.reps() * 2 - 1 {
            for stowage_turn in [rep % 2 == 0, rep % 2 == 1] {
                if stowage_turn {
                    let (id, t) = timed(bench.upload_direct(DIRECT_MIB)).await?;
                    via_stowage.push(mib_per_s(bytes, t));
                    bench.delete(&id).await?;
                } else {
                    let key = format!("direct-{rep}");
                    let ((), t) = timed(bench.put_direct(&key, DIRECT_MIB)).await?;
                    via_s3.push(mib_per_s(bytes, t));
                    bench.delete_direct(&key).await?;
                }
            }
        }
        let (stowage, s3) = (median(via_stowage), median(via_s3));
        Ok(json!({
            "mib": DIRECT_MIB,
            "direct_upload_mib_s": stowage,
            "put_object_mib_s": s3,
            "ratio": ratio(stowage, s3),
        }))
    }
}
