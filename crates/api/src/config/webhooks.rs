//! The webhooks section (`WEBHOOK_*`): where events are `POST`ed, signed with what, which ones,
//! and how often a failed delivery is tried again.

use std::collections::HashSet;
use std::time::Duration;

use secrecy::SecretString;
use stowage_application::events::EventKind;
use stowage_infrastructure::SecretUrl;
use stowage_infrastructure::webhooks::WebhookSettings;

use super::ConfigError;
use super::values::{Vars, invalid};

/// How often an idle worker looks for due events.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Most events a worker sends at once.
const BATCH: u32 = 16;

/// Webhooks, when `WEBHOOK_URL` is set.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// The delivery worker's settings (the secret redacted in `Debug`).
    pub delivery: WebhookSettings,
    /// The event types delivered (`WEBHOOK_EVENTS`, all by default).
    pub kinds: HashSet<EventKind>,
}

/// The webhooks section; `None` when `WEBHOOK_URL` is unset.
pub(super) fn webhooks(vars: Vars<'_>) -> Result<Option<WebhookConfig>, ConfigError> {
    let Some(url) = vars.get("WEBHOOK_URL") else {
        return Ok(None);
    };
    let parsed = url::Url::parse(url).map_err(|e| invalid("WEBHOOK_URL", e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(
            "WEBHOOK_URL",
            "must be an http or https URL".to_owned(),
        ));
    }
    let secret = vars.get("WEBHOOK_SECRET").ok_or_else(|| {
        invalid(
            "WEBHOOK_SECRET",
            "must be set when WEBHOOK_URL is set".to_owned(),
        )
    })?;
    let max_attempts: u32 = vars.parse_or("WEBHOOK_MAX_ATTEMPTS", "10")?;
    if max_attempts == 0 {
        return Err(invalid(
            "WEBHOOK_MAX_ATTEMPTS",
            "must be at least 1".to_owned(),
        ));
    }
    let timeout = vars.millis("WEBHOOK_TIMEOUT_MS", "10000")?;
    let retry_base = vars.millis("WEBHOOK_RETRY_BASE_MS", "1000")?;
    for (name, value) in [
        ("WEBHOOK_TIMEOUT_MS", timeout),
        ("WEBHOOK_RETRY_BASE_MS", retry_base),
    ] {
        if value.is_zero() {
            return Err(invalid(name, "must be greater than 0".to_owned()));
        }
    }
    Ok(Some(WebhookConfig {
        delivery: WebhookSettings {
            url: SecretUrl::new(url),
            secret: SecretString::from(secret),
            max_attempts,
            timeout,
            retry_base,
            poll_interval: POLL_INTERVAL,
            batch: BATCH,
        },
        kinds: kinds(vars)?,
    }))
}

/// `WEBHOOK_EVENTS`: a comma-separated list of event types, every type when unset.
fn kinds(vars: Vars<'_>) -> Result<HashSet<EventKind>, ConfigError> {
    let Some(list) = vars.get("WEBHOOK_EVENTS") else {
        return Ok(EventKind::ALL.into_iter().collect());
    };
    let mut kinds = HashSet::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let kind = EventKind::parse(name).ok_or_else(|| {
            let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
            invalid(
                "WEBHOOK_EVENTS",
                format!("unknown event type '{name}' (known: {})", known.join(", ")),
            )
        })?;
        kinds.insert(kind);
    }
    if kinds.is_empty() {
        return Err(invalid("WEBHOOK_EVENTS", "names no event type".to_owned()));
    }
    Ok(kinds)
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::super::tests::map;
    use super::*;
    use secrecy::ExposeSecret;

    const URL: (&str, &str) = ("WEBHOOK_URL", "https://hooks:pw@example.com/stowage");
    const SECRET: (&str, &str) = ("WEBHOOK_SECRET", "whsecretvalue");

    #[test]
    fn webhooks_are_off_without_a_url() {
        let c = Config::from_map(&map(&[SECRET])).unwrap();
        assert!(c.webhooks.is_none());
    }

    #[test]
    fn a_url_gives_the_defaults_and_hides_the_secret() {
        let c = Config::from_map(&map(&[URL, SECRET])).unwrap();
        let w = c.webhooks.clone().unwrap();
        assert_eq!(w.delivery.max_attempts, 10);
        assert_eq!(w.delivery.timeout, Duration::from_secs(10));
        assert_eq!(w.delivery.retry_base, Duration::from_secs(1));
        assert_eq!(w.kinds.len(), EventKind::ALL.len());
        assert_eq!(w.delivery.secret.expose_secret(), "whsecretvalue");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("whsecretvalue") && !shown.contains(":pw@"),
            "{shown}"
        );
    }

    #[test]
    fn events_are_chosen_by_type() {
        let c = Config::from_map(&map(&[
            URL,
            SECRET,
            ("WEBHOOK_EVENTS", "file.upload, file.delete"),
        ]))
        .unwrap();
        let kinds = c.webhooks.unwrap().kinds;
        assert_eq!(kinds, HashSet::from([EventKind::Upload, EventKind::Delete]));
    }

    #[test]
    fn invalid_values_name_their_variable() {
        let err = Config::from_map(&map(&[URL])).unwrap_err();
        assert!(err.to_string().starts_with("WEBHOOK_SECRET"), "{err}");
        let err =
            Config::from_map(&map(&[URL, SECRET, ("WEBHOOK_EVENTS", "file.rename")])).unwrap_err();
        assert!(err.to_string().contains("file.rename"), "{err}");
        for (name, value) in [
            ("WEBHOOK_URL", "ftp://example.com"),
            ("WEBHOOK_MAX_ATTEMPTS", "0"),
            ("WEBHOOK_TIMEOUT_MS", "soon"),
            ("WEBHOOK_RETRY_BASE_MS", "0"),
        ] {
            let err = Config::from_map(&map(&[URL, SECRET, (name, value)])).unwrap_err();
            assert!(err.to_string().starts_with(name), "{name}: {err}");
        }
    }
}
