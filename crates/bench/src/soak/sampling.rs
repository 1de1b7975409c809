//! What the server holds, sampled every few seconds, and whether it stays flat: the median of
//! the first minute's samples against the median of the last minute's.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::fixtures::Scratch;
use crate::procstats::{open_fds, rss_mib, tcp_local_ports};

/// The most a figure may move between the first and the last minute, in percent of the first.
pub const TOLERANCE_PCT: f64 = 10.0;
/// The length of the windows compared.
const MINUTE: f64 = 60.0;

/// The figures sampled, with their names and units in the results.
pub const FIGURES: [(&str, &str); 4] = [
    ("rss_mib", "RSS, MiB"),
    ("open_fds", "open fds"),
    ("db_connections", "DB connections"),
    ("redis_connections", "Redis connections"),
];

/// One sample: seconds since the measured traffic began, then [`FIGURES`] in order.
#[derive(Clone, Copy)]
pub struct Sample {
    pub t: f64,
    pub values: [f64; 4],
}

/// What is sampled: the server's process, its database and the Redis it talks to.
pub struct Sampler<'a> {
    pid: u32,
    database: &'a Scratch,
    redis: redis::aio::MultiplexedConnection,
    redis_port: u16,
}

impl<'a> Sampler<'a> {
    /// Samples the server `pid`, connected to `database` and to the Redis at `redis_url`.
    pub async fn new(pid: u32, database: &'a Scratch, redis_url: &str) -> Result<Self> {
        let redis = redis::Client::open(redis_url)?
            .get_multiplexed_async_connection()
            .await
            .context("Redis")?;
        Ok(Self {
            pid,
            database,
            redis,
            redis_port: redis_port(redis_url),
        })
    }

    /// The server's connections to Redis: the clients `CLIENT LIST` shows whose address is one
    /// of the server's sockets to the Redis port (this sampler's own is another process's).
    async fn redis_connections(&mut self) -> Result<f64> {
        let ours: HashSet<u16> = tcp_local_ports(self.pid, self.redis_port);
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut self.redis)
            .await?;
        let count = list
            .lines()
            .filter_map(|line| line.split(' ').find_map(|f| f.strip_prefix("addr=")))
            .filter_map(|addr| addr.rsplit_once(':')?.1.parse::<u16>().ok())
            .filter(|port| ours.contains(port))
            .count();
        Ok(count as f64)
    }

    async fn sample(&mut self, t: f64) -> Result<Sample> {
        Ok(Sample {
            t,
            values: [
                (rss_mib(self.pid, "VmRSS:") * 100.0).round() / 100.0,
                open_fds(self.pid) as f64,
                self.database.connections().await? as f64,
                self.redis_connections().await?,
            ],
        })
    }

    /// Samples every `every` from `from` on, the last one `seconds` after it at the latest.
    pub async fn run(
        mut self,
        from: Instant,
        seconds: f64,
        every: Duration,
    ) -> Result<Vec<Sample>> {
        let n = (seconds / every.as_secs_f64()).floor() as u32;
        let mut samples = Vec::new();
        for k in 0..=n {
            let at = from + every * k;
            tokio::time::sleep_until(at.into()).await;
            let sample = self.sample((at - from).as_secs_f64()).await?;
            // A line a minute, so that a long run shows how it goes.
            if (every * k).as_secs().is_multiple_of(60) {
                let [rss, fds, db, redis] = sample.values;
                println!(
                    "{:>5.0} s: RSS {rss:.1} MiB, {fds} fds, {db} DB and {redis} Redis connections",
                    sample.t
                );
            }
            samples.push(sample);
        }
        Ok(samples)
    }
}

/// The port of the Redis at `url` (`redis://[:password@]host[:port][/db]`), 6379 when it
/// names none.
fn redis_port(url: &str) -> u16 {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host = rest.split('/').next().unwrap_or(rest);
    let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
    host.rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or(6379)
}

/// The middle of `values` (the mean of the two middle ones of an even count); 0 for none.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => f64::midpoint(values[n / 2 - 1], values[n / 2]),
    }
}

/// Whether figure `i` of `samples` over a run of `seconds` stays flat; the figures of it.
pub fn flatness(samples: &[Sample], i: usize, seconds: f64) -> (bool, Value) {
    let window = |from: f64, to: f64| -> Vec<f64> {
        samples
            .iter()
            .filter(|s| s.t >= from && s.t <= to)
            .map(|s| s.values[i])
            .collect()
    };
    let (first, last) = (window(0.0, MINUTE), window(seconds - MINUTE, seconds));
    let (first_n, last_n) = (first.len(), last.len());
    let (a, b) = (median(first), median(last));
    let change = if a > 0.0 {
        (b - a) / a * 100.0
    } else if b > 0.0 {
        f64::INFINITY
    } else {
        0.0
    };
    let flat = first_n > 0 && last_n > 0 && change.abs() <= TOLERANCE_PCT;
    let per_minute: Vec<f64> = (0..(seconds / MINUTE).ceil() as usize)
        .map(|m| {
            let from = m as f64 * MINUTE;
            median(
                samples
                    .iter()
                    .filter(|s| s.t >= from && s.t < from + MINUTE)
                    .map(|s| s.values[i])
                    .collect(),
            )
        })
        .collect();
    let all = samples.iter().map(|s| s.values[i]);
    let (min, max) = all.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let round = |x: f64| (x * 100.0).round() / 100.0;
    (
        flat,
        json!({
            "first_minute_median": a, "last_minute_median": b,
            "first_minute_samples": first_n, "last_minute_samples": last_n,
            "change_pct": change.is_finite().then(|| round(change)),
            "min": min, "max": max,
            "per_minute_medians": per_minute,
            "flat": flat,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::{Sample, flatness, median};

    /// Samples every 5 s over `seconds` of one figure (first of four) given by `value`.
    fn samples(seconds: u32, value: impl Fn(f64) -> f64) -> Vec<Sample> {
        (0..=seconds / 5)
            .map(|k| {
                let t = f64::from(k * 5);
                Sample {
                    t,
                    values: [value(t), 0.0, 0.0, 0.0],
                }
            })
            .collect()
    }

    #[test]
    fn medians_take_the_middle_or_the_mean_of_the_two_middle_values() {
        assert_eq!(median(vec![]), 0.0);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn a_figure_is_flat_when_its_last_minute_median_is_within_ten_percent_of_its_first() {
        // Steady with spikes: the medians ignore them.
        let spiky = samples(600, |t| if (t as u32) % 60 == 30 { 90.0 } else { 40.0 });
        let (flat, figure) = flatness(&spiky, 0, 600.0);
        assert!(flat, "{figure}");
        assert_eq!(figure["first_minute_median"], 40.0);
        assert_eq!(
            figure["per_minute_medians"].as_array().map(Vec::len),
            Some(10)
        );

        // 9 % up over the run is flat, 12 % is not, nor is 12 % down.
        let grows = |by: f64| samples(600, move |t| 40.0 * (1.0 + by * t / 600.0));
        assert!(flatness(&grows(0.09), 0, 600.0).0);
        let (flat, figure) = flatness(&grows(0.12), 0, 600.0);
        assert!(!flat, "{figure}");
        assert!(!flatness(&grows(-0.12), 0, 600.0).0);

        // From none to some is growth past any percentage; none throughout is flat.
        let (flat, figure) = flatness(
            &samples(120, |t| if t > 60.0 { 1.0 } else { 0.0 }),
            0,
            120.0,
        );
        assert!(!flat);
        assert!(figure["change_pct"].is_null());
        assert!(flatness(&samples(120, |_| 0.0), 0, 120.0).0);
    }
}
