//! The audit events section (`EVENTS_*`): the stream the Django backend reads, and the name the
//! envelope gives the service (webhooks use it too).

use std::time::Duration;

use stowage_infrastructure::{RedisStreamSettings, SecretUrl};

use super::ConfigError;
use super::values::{Vars, invalid};

/// How long events are dropped without a try once the stream has failed.
const COOLDOWN: Duration = Duration::from_secs(1);

/// Audit events.
#[derive(Clone, Debug)]
pub struct EventsConfig {
    /// `EVENTS_SERVICE_NAME`: the envelope's `service`, on the stream and on webhooks.
    pub service_name: String,
    /// The stream, when `EVENTS_REDIS_URL` is set and `EVENTS_ENABLED` is not off.
    pub stream: Option<RedisStreamSettings>,
}

/// The events section. Every value is checked, even with the stream off, so a typo is found
/// before the stream is turned on.
pub(super) fn events(vars: Vars<'_>) -> Result<EventsConfig, ConfigError> {
    let enabled = vars.flag("EVENTS_ENABLED", true)?;
    let url = vars.get("EVENTS_REDIS_URL").map(redis_url).transpose()?;
    let stream = vars.get("EVENTS_STREAM").unwrap_or("pneumatic:events");
    let maxlen: u64 = vars.parse_or("EVENTS_STREAM_MAXLEN", "250000")?;
    if maxlen == 0 {
        return Err(invalid(
            "EVENTS_STREAM_MAXLEN",
            "must be at least 1".to_owned(),
        ));
    }
    let service_name = vars
        .get("EVENTS_SERVICE_NAME")
        .unwrap_or("stowage")
        .to_owned();
    let timeout = vars.millis("EVENTS_TIMEOUT_MS", "3000")?;
    if timeout.is_zero() {
        return Err(invalid(
            "EVENTS_TIMEOUT_MS",
            "must be greater than 0".to_owned(),
        ));
    }
    let stream = url.filter(|_| enabled).map(|url| RedisStreamSettings {
        url,
        stream: stream.to_owned(),
        maxlen,
        service: service_name.clone(),
        timeout,
        cooldown: COOLDOWN,
    });
    Ok(EventsConfig {
        service_name,
        stream,
    })
}

/// `EVENTS_REDIS_URL`, checked as a Redis URL (the reason never repeats it: it may hold a
/// password).
fn redis_url(value: &str) -> Result<SecretUrl, ConfigError> {
    let name = "EVENTS_REDIS_URL";
    let parsed = url::Url::parse(value).map_err(|e| invalid(name, format!("not a URL ({e})")))?;
    match parsed.scheme() {
        "redis" | "rediss" if parsed.host_str().is_some_and(|h| !h.is_empty()) => {}
        "unix" => {}
        "redis" | "rediss" => return Err(invalid(name, "has no host".to_owned())),
        _ => {
            return Err(invalid(
                name,
                "must start with redis://, rediss:// or unix://".to_owned(),
            ));
        }
    }
    Ok(SecretUrl::new(value))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;
    use std::time::Duration;

    use crate::config::Config;
    use crate::config::tests::map;

    #[test]
    fn events_are_off_without_a_url_and_the_defaults_apply() {
        let c = Config::from_map(&map(&[])).unwrap();
        assert!(c.events.stream.is_none());
        assert_eq!(c.events.service_name, "stowage");

        let c = Config::from_map(&map(&[("EVENTS_REDIS_URL", "redis://cache:6379/3")])).unwrap();
        let s = c.events.stream.unwrap();
        assert_eq!(s.url.expose_secret(), "redis://cache:6379/3");
        assert_eq!(s.stream, "pneumatic:events");
        assert_eq!(s.maxlen, 250_000);
        assert_eq!(s.service, "stowage");
        assert_eq!(s.timeout, Duration::from_millis(3000));
        assert!(c.pneumatic_names.is_empty());
    }

    #[test]
    fn events_read_their_stowage_names() {
        let c = Config::from_map(&map(&[
            ("EVENTS_REDIS_URL", "redis://:eventsecret@cache:6379/3"),
            ("EVENTS_STREAM", "audit"),
            ("EVENTS_STREAM_MAXLEN", "1000"),
            ("EVENTS_SERVICE_NAME", "files"),
            ("EVENTS_TIMEOUT_MS", "250"),
        ]))
        .unwrap();
        assert_eq!(c.events.service_name, "files");
        let s = c.events.stream.as_ref().unwrap();
        assert_eq!(
            (s.stream.as_str(), s.maxlen, s.service.as_str(), s.timeout),
            ("audit", 1000, "files", Duration::from_millis(250))
        );
        assert!(!format!("{c:?}").contains("eventsecret"));
    }

    #[test]
    fn pneumatic_logs_names_are_read_when_the_stowage_ones_are_unset() {
        let c = Config::from_map(&map(&[
            ("LOGS_REDIS_URL", "redis://logs:6379/0"),
            ("LOGS_STREAM_KEY", "pneumatic:logs"),
            ("LOGS_STREAM_MAXLEN", "5000"),
            ("LOGS_SERVICE_NAME", "file-service"),
        ]))
        .unwrap();
        let s = c.events.stream.as_ref().unwrap();
        assert_eq!(s.url.expose_secret(), "redis://logs:6379/0");
        assert_eq!(s.stream, "pneumatic:logs");
        assert_eq!(s.maxlen, 5000);
        assert_eq!(c.events.service_name, "file-service");
        for name in [
            "LOGS_REDIS_URL",
            "LOGS_STREAM_KEY",
            "LOGS_STREAM_MAXLEN",
            "LOGS_SERVICE_NAME",
        ] {
            assert!(c.pneumatic_names.contains(&name), "{name}");
        }
    }

    #[test]
    fn a_stowage_events_name_wins_over_its_pneumatic_one() {
        let c = Config::from_map(&map(&[
            ("EVENTS_REDIS_URL", "redis://events:6379/0"),
            ("LOGS_REDIS_URL", "redis://logs:6379/0"),
            ("EVENTS_STREAM", "audit"),
            ("LOGS_STREAM_KEY", "pneumatic:logs"),
            ("EVENTS_STREAM_MAXLEN", "7"),
            ("LOGS_STREAM_MAXLEN", "lots"),
        ]))
        .unwrap();
        let s = c.events.stream.as_ref().unwrap();
        assert_eq!(s.url.expose_secret(), "redis://events:6379/0");
        assert_eq!((s.stream.as_str(), s.maxlen), ("audit", 7));
        assert!(!c.pneumatic_names.contains(&"LOGS_REDIS_URL"));
        assert!(!c.pneumatic_names.contains(&"LOGS_STREAM_MAXLEN"));
    }

    #[test]
    fn logs_backend_none_turns_events_off_unless_events_enabled_says_otherwise() {
        for url in ["EVENTS_REDIS_URL", "LOGS_REDIS_URL"] {
            let c = Config::from_map(&map(&[
                (url, "redis://logs:6379/0"),
                ("LOGS_BACKEND", "None"),
                ("LOGS_SERVICE_NAME", "file-service"),
            ]))
            .unwrap();
            assert!(c.events.stream.is_none(), "{url}");
            assert_eq!(c.events.service_name, "file-service");
            assert!(c.pneumatic_names.contains(&"LOGS_BACKEND"));
        }
        let c = Config::from_map(&map(&[
            ("LOGS_REDIS_URL", "redis://logs:6379/0"),
            ("LOGS_BACKEND", "redis"),
        ]))
        .unwrap();
        assert!(c.events.stream.is_some());
        let c = Config::from_map(&map(&[
            ("EVENTS_REDIS_URL", "redis://events:6379/0"),
            ("EVENTS_ENABLED", "true"),
            ("LOGS_BACKEND", "none"),
        ]))
        .unwrap();
        assert!(
            c.events.stream.is_some(),
            "EVENTS_ENABLED is a Stowage name"
        );
        let c = Config::from_map(&map(&[
            ("EVENTS_REDIS_URL", "redis://events:6379/0"),
            ("EVENTS_ENABLED", "false"),
        ]))
        .unwrap();
        assert!(c.events.stream.is_none());
    }

    #[test]
    fn invalid_events_values_name_their_variable() {
        for (name, value) in [
            ("EVENTS_REDIS_URL", "http://cache:6379"),
            ("EVENTS_REDIS_URL", "redis://cache:port/0"),
            ("EVENTS_REDIS_URL", "cache:6379"),
            ("EVENTS_STREAM_MAXLEN", "0"),
            ("EVENTS_STREAM_MAXLEN", "-5"),
            ("EVENTS_TIMEOUT_MS", "0"),
            ("EVENTS_TIMEOUT_MS", "3s"),
            ("EVENTS_ENABLED", "sometimes"),
            ("LOGS_REDIS_URL", "http://logs"),
            ("LOGS_STREAM_MAXLEN", "0"),
            ("LOGS_STREAM_MAXLEN", "many"),
        ] {
            let err = Config::from_map(&map(&[(name, value)])).unwrap_err();
            assert!(
                err.to_string().starts_with(&format!("{name} is invalid")),
                "{name}={value}: {err}"
            );
        }
        let err =
            Config::from_map(&map(&[("EVENTS_REDIS_URL", "redis://:hunter2@:6379")])).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
