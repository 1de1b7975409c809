//! The steady rate: a ticker hands out one operation per tick to a few workers; a tick that
//! finds them all busy (and one tick already waiting) is counted as missed rather than sent
//! later in a burst.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use super::SoakSettings;
use super::ops::{Op, Soaker};
use super::pool::Rng;
use crate::stats::percentile;

/// Errors whose message the results keep.
const KEPT_ERRORS: usize = 20;

/// What one kind of operation did.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: usize,
}

/// What the traffic did, operation by operation.
#[derive(Default)]
pub struct Traffic {
    tallies: BTreeMap<Op, Tally>,
    first_errors: Vec<String>,
    ticks: usize,
    missed: usize,
    seconds: f64,
}

impl Traffic {
    fn count(&mut self, op: Op, took: Duration, outcome: Result<()>, at: Duration) {
        let tally = self.tallies.entry(op).or_default();
        tally.latencies.push(took);
        if let Err(e) = outcome {
            tally.errors += 1;
            if self.first_errors.len() < KEPT_ERRORS {
                let at = at.as_secs_f64();
                self.first_errors
                    .push(format!("{at:.1} s, {}: {e:#}", op.name()));
            }
        }
    }

    /// Operations that failed: an unexpected status, bytes or fields, or no answer.
    pub fn errors(&self) -> usize {
        self.tallies.values().map(|t| t.errors).sum()
    }

    /// The figures of the results: counts, rate, errors and latencies by operation.
    pub fn to_json(&self) -> Value {
        let operations: usize = self.tallies.values().map(|t| t.latencies.len()).sum();
        let by_operation: serde_json::Map<String, Value> = self
            .tallies
            .iter()
            .map(|(op, tally)| {
                let mut sorted = tally.latencies.clone();
                sorted.sort();
                let ms = |p| (percentile(&sorted, p) * 100.0).round() / 100.0;
                let figures = json!({
                    "count": sorted.len(), "errors": tally.errors,
                    "p50_ms": ms(0.5), "p99_ms": ms(0.99), "max_ms": ms(1.0),
                });
                (op.name().to_owned(), figures)
            })
            .collect();
        json!({
            "operations": operations,
            "seconds": self.seconds,
            "operations_per_s": (operations as f64 / self.seconds.max(1e-9) * 10.0).round() / 10.0,
            "ticks": self.ticks,
            "missed_ticks": self.missed,
            "errors": self.errors(),
            "first_errors": self.first_errors,
            "by_operation": by_operation,
        })
    }
}

/// Sends the traffic of `soak` until `end`: `rate` operations a second over `workers` workers.
pub async fn drive(soaker: Arc<Soaker>, soak: &SoakSettings, end: Instant) -> Result<Traffic> {
    let started = Instant::now();
    let traffic = Arc::new(Mutex::new(Traffic::default()));
    let (tx, rx) = mpsc::channel::<()>(1);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let workers: Vec<_> = (0..soak.workers)
        .map(|n| {
            let (soaker, traffic, rx) = (soaker.clone(), traffic.clone(), rx.clone());
            tokio::spawn(async move {
                let mut rng = Rng::new(n as u64);
                while rx.lock().await.recv().await.is_some() {
                    let plan = soaker.plan(Op::draw(&mut rng), &mut rng);
                    let op = plan.op();
                    let begun = Instant::now();
                    let outcome = soaker.perform(plan, &mut rng).await;
                    let took = begun.elapsed();
                    traffic
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .count(op, took, outcome, begun - started);
                }
            })
        })
        .collect();
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / soak.rate));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let (mut sent, mut missed) = (0, 0);
    while Instant::now() < end {
        ticks.tick().await;
        match tx.try_send(()) {
            Ok(()) => sent += 1,
            Err(_) => missed += 1,
        }
    }
    drop(tx);
    for worker in workers {
        worker.await?;
    }
    let mut traffic = std::mem::take(&mut *traffic.lock().unwrap_or_else(PoisonError::into_inner));
    traffic.ticks = sent + missed;
    traffic.missed = missed;
    traffic.seconds = started.elapsed().as_secs_f64();
    Ok(traffic)
}
