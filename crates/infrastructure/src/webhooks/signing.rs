//! The `Stowage-Signature` header and the retry schedule.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// `t={t},v1={hex HMAC-SHA256 of "{t}.{body}" keyed with secret}`.
pub fn signature(secret: &[u8], t: i64, body: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        // HMAC takes a key of any length.
        Err(_) => return format!("t={t},v1="),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// The wait after the `attempts`-th failed attempt: `base × 2^(attempts-1)`, capped at
/// [`MAX_BACKOFF`], plus up to a tenth more drawn from `jitter` (0..=u16::MAX), so that
/// replicas retrying the same receiver spread out.
pub fn backoff(base: Duration, attempts: u32, jitter: u16) -> Duration {
    let exponent = attempts.saturating_sub(1).min(30);
    let wait = base.saturating_mul(1_u32 << exponent).min(MAX_BACKOFF);
    let extra = wait.mul_f64(f64::from(jitter) / f64::from(u16::MAX) / 10.0);
    wait.saturating_add(extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_time_dot_body() {
        // echo -n '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
        let header = signature(b"secret", 1_700_000_000, r#"{"a":1}"#);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap();
        mac.update(br#"1700000000.{"a":1}"#);
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(header, format!("t=1700000000,v1={expected}"));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_at_most_a_tenth_of_jitter() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 1, 0), base);
        assert_eq!(backoff(base, 2, 0), Duration::from_millis(200));
        assert_eq!(backoff(base, 4, 0), Duration::from_millis(800));
        assert_eq!(backoff(base, 200, 0), MAX_BACKOFF);
        let most = backoff(base, 3, u16::MAX);
        assert!(most > Duration::from_millis(400) && most <= Duration::from_millis(441));
    }
}
