//! Mixed traffic that keeps running while a dependency fails: workers that upload, download and
//! list in turn, and a tally of what each request got, by phase of the fault.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stowage_tests::{client, multipart_body, pattern, sha256_hex};

use crate::common::{Ledger, MIB};

/// Where the fault stands when a request starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The dependency answers.
    Before = 0,
    /// The dependency is down.
    Down = 1,
    /// The dependency is back; the service may still be finding it again.
    Recovering = 2,
    /// The service answered in full again.
    After = 3,
}

const PHASES: [Phase; 4] = [Phase::Before, Phase::Down, Phase::Recovering, Phase::After];

/// What a worker does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Upload = 0,
    Download = 1,
    List = 2,
}

const OPS: [Op; 3] = [Op::Upload, Op::Download, Op::List];

/// Upload sizes, in turn: small, larger than a socket buffer, and large enough to stream
/// straight into one `PutObject` on S3 (1 MiB or more).
const SIZES: [usize; 3] = [2 * 1024, 200 * 1024, MIB + MIB / 4];

/// What each request got.
#[derive(Debug, Default)]
pub struct Tally {
    /// Successful answers, by phase and operation.
    pub ok: [[u32; 3]; 4],
    /// `503` with the dependency's code, by phase.
    pub unavailable: [u32; 4],
    /// Downloads whose `200` came but whose body broke off short of its `Content-Length` (the
    /// dependency went away while it streamed: the client can tell), by phase.
    pub cut_short: [u32; 4],
    /// Answers the contract does not allow (`500`, another status or code, wrong bytes, a
    /// broken connection, a hang past the limit), described.
    pub violations: Vec<String>,
    /// SHA-256 (hex) of the uploads not acknowledged: each may be recorded all the same, when
    /// the answer to its insert was lost while the service wrote it.
    pub unconfirmed: BTreeSet<String>,
}

impl Tally {
    pub fn ok(&self, phase: Phase, op: Op) -> u32 {
        self.ok[phase as usize][op as usize]
    }

    /// Fewest successes of any operation in `phase`.
    pub fn fewest_ok(&self, phase: Phase) -> u32 {
        OPS.iter().map(|&op| self.ok(phase, op)).min().unwrap()
    }

    pub fn unavailable(&self, phase: Phase) -> u32 {
        self.unavailable[phase as usize]
    }
}

/// One worker's way in: its credential headers, and whether the fault may refuse it.
#[derive(Clone, Debug)]
pub struct Caller {
    pub headers: Vec<(String, String)>,
    /// False for a caller the fault must never reach (a JWT while Redis is down).
    pub affected: bool,
}

/// The workers and what they share.
pub struct Traffic {
    stop: Arc<AtomicBool>,
    phase: Arc<AtomicUsize>,
    tally: Arc<Mutex<Tally>>,
    ledger: Arc<Mutex<Ledger>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

/// What every worker needs to know.
struct Shared {
    base_url: String,
    /// The code of a `503` the fault may cause.
    code: &'static str,
    /// Longest any request may take: past it, it hangs.
    limit: Duration,
    phase: Arc<AtomicUsize>,
    tally: Arc<Mutex<Tally>>,
    ledger: Arc<Mutex<Ledger>>,
}

impl Traffic {
    /// Starts one worker per caller against `base_url`, downloading among `ledger`'s files and
    /// the ones they upload. A `503` must carry `code`; no request may take longer than `limit`.
    pub fn start(
        base_url: &str,
        callers: &[Caller],
        ledger: Ledger,
        code: &'static str,
        limit: Duration,
    ) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let phase = Arc::new(AtomicUsize::new(Phase::Before as usize));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let ledger = Arc::new(Mutex::new(ledger));
        let shared = Arc::new(Shared {
            base_url: base_url.to_owned(),
            code,
            limit,
            phase: phase.clone(),
            tally: tally.clone(),
            ledger: ledger.clone(),
        });
        let workers = callers
            .iter()
            .enumerate()
            .map(|(n, caller)| {
                let (shared, stop, caller) = (shared.clone(), stop.clone(), caller.clone());
                tokio::spawn(async move {
                    // Each worker its own client, and its connections go with it.
                    let client = client();
                    let mut i = 0_u64;
                    while !stop.load(Ordering::SeqCst) {
                        let op = OPS[(i % 3) as usize];
                        let seed = n as u64 * 1_000_000 + i;
                        shared.request(&client, &caller, op, seed).await;
                        i += 1;
                    }
                })
            })
            .collect();
        Traffic {
            stop,
            phase,
            tally,
            ledger,
            workers,
        }
    }

    /// Requests starting from now are counted in `phase` (see [`counted_in`]).
    pub fn enter(&self, phase: Phase) {
        self.phase.store(phase as usize, Ordering::SeqCst);
    }

    /// Waits until `done` holds of the tally; panics, naming `what`, after `within`, or as soon as
    /// a request broke the contract.
    pub async fn wait_until(&self, what: &str, within: Duration, done: impl Fn(&Tally) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            // Judged with the lock released: a failed assertion must not poison it for the
            // workers still running.
            let (violations, done, seen) = {
                let tally = self.tally.lock().unwrap();
                (tally.violations.clone(), done(&tally), format!("{tally:?}"))
            };
            assert!(
                violations.is_empty(),
                "while waiting for {what}: {violations:#?}"
            );
            if done {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not happen within {within:?}: {seen}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the workers once their requests in flight are answered; returns the tally and the
    /// files acknowledged.
    pub async fn stop(self) -> (Tally, Ledger) {
        self.stop.store(true, Ordering::SeqCst);
        for worker in self.workers {
            worker.await.unwrap();
        }
        let tally = std::mem::take(&mut *self.tally.lock().unwrap());
        let ledger = std::mem::take(&mut *self.ledger.lock().unwrap());
        (tally, ledger)
    }
}

/// The phase a request that started in `first` and ended in `last` counts in: one the fault
/// went through while it ran counts where the fault was at its worst (in flight when the
/// dependency went down, or while the service found it again).
fn counted_in(first: Phase, last: Phase) -> Phase {
    match (first, last) {
        (first, last) if first == last => first,
        (Phase::Before, _) => Phase::Down,
        _ => Phase::Recovering,
    }
}

/// What a request came to, before it is judged.
enum Answer {
    /// A success, checked.
    Ok,
    /// `503` with this code.
    Unavailable(String),
    /// A `200` whose body ended before its length, described.
    CutShort(String),
    /// Anything else, described.
    Wrong(String),
}

impl Shared {
    async fn request(&self, client: &reqwest::Client, caller: &Caller, op: Op, seed: u64) {
        let first = PHASES[self.phase.load(Ordering::SeqCst)];
        let started = Instant::now();
        let answer = match op {
            Op::Upload => self.upload(client, caller, seed).await,
            Op::Download => self.download(client, caller, seed).await,
            Op::List => self.list(client, caller).await,
        };
        let phase = counted_in(first, PHASES[self.phase.load(Ordering::SeqCst)]);
        let mut tally = self.tally.lock().unwrap();
        match answer {
            Answer::Ok => tally.ok[phase as usize][op as usize] += 1,
            Answer::Unavailable(code) if code == self.code && caller.affected => {
                tally.unavailable[phase as usize] += 1;
            }
            Answer::Unavailable(code) => tally.violations.push(format!(
                "{op:?} in {phase:?}: 503 {code} (a 503 here must be {})",
                if caller.affected { self.code } else { "none" }
            )),
            Answer::CutShort(_) if phase == Phase::Down => tally.cut_short[phase as usize] += 1,
            Answer::CutShort(what) | Answer::Wrong(what) => tally.violations.push(format!(
                "{op:?} in {phase:?}, after {:?}: {what}",
                started.elapsed()
            )),
        }
    }

    /// `request` with the caller's credential, bounded by the limit.
    fn send(&self, caller: &Caller, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        caller
            .headers
            .iter()
            .fold(request.timeout(self.limit), |r, (name, value)| {
                r.header(name, value)
            })
    }

    async fn upload(&self, client: &reqwest::Client, caller: &Caller, seed: u64) -> Answer {
        let data = pattern(SIZES[(seed / 3 % 3) as usize], seed);
        let boundary = format!("faults-{seed}");
        let body = multipart_body(&boundary, "load.bin", "application/octet-stream", &data);
        let request = client
            .post(format!("{}/files", self.base_url))
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body);
        let sha = sha256_hex(&data);
        let answer = self.exchange(self.send(caller, request)).await;
        if !matches!(answer, Ok((201, _))) {
            self.tally.lock().unwrap().unconfirmed.insert(sha.clone());
        }
        let (status, body) = match answer {
            Ok(answer) => answer,
            Err(wrong) => return wrong,
        };
        if status != 201 {
            return judge_error(status, &body);
        }
        let Ok(info) = serde_json::from_slice::<serde_json::Value>(&body) else {
            return Answer::Wrong(format!("201 whose body is not JSON: {body:?}"));
        };
        if info["sha256"] != sha.as_str() || info["size"] != data.len() {
            return Answer::Wrong(format!("201 for other bytes: {info}"));
        }
        let id = info["file_id"].as_str().unwrap_or_default().to_owned();
        self.ledger.lock().unwrap().insert(id, sha);
        Answer::Ok
    }

    async fn download(&self, client: &reqwest::Client, caller: &Caller, seed: u64) -> Answer {
        let picked = {
            let ledger = self.ledger.lock().unwrap();
            let n = seed as usize % ledger.len().max(1);
            ledger
                .iter()
                .nth(n)
                .map(|(id, sha)| (id.clone(), sha.clone()))
        };
        let Some((id, sha)) = picked else {
            return Answer::Ok;
        };
        let request = client.get(format!("{}/files/{id}", self.base_url));
        let (status, body) = match self.exchange(self.send(caller, request)).await {
            Ok(answer) => answer,
            Err(wrong) => return wrong,
        };
        if status != 200 {
            return judge_error(status, &body);
        }
        if sha256_hex(&body) != sha {
            return Answer::Wrong(format!(
                "200 for {id} with other bytes ({} bytes)",
                body.len()
            ));
        }
        Answer::Ok
    }

    async fn list(&self, client: &reqwest::Client, caller: &Caller) -> Answer {
        let request = client.get(format!("{}/files?limit=20", self.base_url));
        let (status, body) = match self.exchange(self.send(caller, request)).await {
            Ok(answer) => answer,
            Err(wrong) => return wrong,
        };
        if status != 200 {
            return judge_error(status, &body);
        }
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(page) if page["items"].is_array() => Answer::Ok,
            _ => Answer::Wrong(format!("200 listing that is no page: {body:?}")),
        }
    }

    /// Sends the request and reads the whole answer; a broken connection or a hang past the
    /// limit is wrong.
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, bytes::Bytes), Answer> {
        let response = request
            .send()
            .await
            .map_err(|e| Answer::Wrong(format!("no answer: {e:?}")))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| Answer::CutShort(format!("{status} whose body broke off short: {e:?}")))?;
        Ok((status, body))
    }
}

/// A `503` with its code, or what else the error answer was.
fn judge_error(status: u16, body: &[u8]) -> Answer {
    let code = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|b| b["code"].as_str().map(str::to_owned));
    match (status, code) {
        (503, Some(code)) => Answer::Unavailable(code),
        _ => Answer::Wrong(format!("{status}: {}", String::from_utf8_lossy(body))),
    }
}
