//! The error-tracking section (`SENTRY_*`), under the names the Pneumatic file service reads.

use secrecy::SecretString;

use super::ConfigError;
use super::values::{Vars, invalid};

/// Error tracking: server errors and panics reported to Sentry.
#[derive(Clone, Debug)]
pub struct SentryConfig {
    /// `SENTRY_DSN`: where reports go. It holds the project's key, so it stays secret.
    pub dsn: SecretString,
    /// `SENTRY_ENVIRONMENT`; `APP_ENV` (or `development`) when unset.
    pub environment: String,
    /// `SENTRY_TRACES_SAMPLE_RATE`: the share of requests sent as performance traces.
    pub traces_sample_rate: f32,
}

/// The error-tracking section; `None` when `SENTRY_DSN` is unset (no client at all).
pub(super) fn sentry(vars: Vars<'_>) -> Result<Option<SentryConfig>, ConfigError> {
    let traces_sample_rate = traces_sample_rate(vars)?;
    let Some(dsn) = vars.get("SENTRY_DSN") else {
        return Ok(None);
    };
    // The parser's messages never repeat the value, which holds the key.
    if let Err(e) = dsn.parse::<::sentry::types::Dsn>() {
        return Err(invalid(
            "SENTRY_DSN",
            format!("{e} (expected https://<public key>@<host>/<project id>)"),
        ));
    }
    let environment = vars
        .get("SENTRY_ENVIRONMENT")
        .or_else(|| vars.get("APP_ENV"))
        .unwrap_or("development")
        .to_owned();
    Ok(Some(SentryConfig {
        dsn: SecretString::from(dsn),
        environment,
        traces_sample_rate,
    }))
}

/// `SENTRY_TRACES_SAMPLE_RATE`, from 0.0 (the default: no traces) to 1.0.
fn traces_sample_rate(vars: Vars<'_>) -> Result<f32, ConfigError> {
    const NAME: &str = "SENTRY_TRACES_SAMPLE_RATE";
    let Some(value) = vars.get(NAME) else {
        return Ok(0.0);
    };
    match value.parse::<f32>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(invalid(
            NAME,
            format!("'{value}' is not a number from 0.0 to 1.0"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::super::Config;
    use super::super::tests::map;

    const DSN: &str = "https://0123456789abcdef@o1.ingest.sentry.io/42";

    #[test]
    fn no_dsn_means_no_error_tracking() {
        let c = Config::from_map(&map(&[("SENTRY_ENVIRONMENT", "staging")])).unwrap();
        assert!(c.sentry.is_none());
        let c = Config::from_map(&map(&[("SENTRY_DSN", "  ")])).unwrap();
        assert!(c.sentry.is_none());
    }

    #[test]
    fn a_dsn_turns_it_on_with_the_app_env_as_environment() {
        let c = Config::from_map(&map(&[("SENTRY_DSN", DSN), ("APP_ENV", "test")])).unwrap();
        let sentry = c.sentry.unwrap();
        assert_eq!(sentry.dsn.expose_secret(), DSN);
        assert_eq!(sentry.environment, "test");
        assert!(sentry.traces_sample_rate.abs() < f32::EPSILON);

        let c = Config::from_map(&map(&[("SENTRY_DSN", DSN)])).unwrap();
        assert_eq!(c.sentry.unwrap().environment, "development");

        let c = Config::from_map(&map(&[
            ("SENTRY_DSN", DSN),
            ("SENTRY_ENVIRONMENT", "staging"),
            ("SENTRY_TRACES_SAMPLE_RATE", "0.25"),
        ]))
        .unwrap();
        let sentry = c.sentry.unwrap();
        assert_eq!(sentry.environment, "staging");
        assert!((sentry.traces_sample_rate - 0.25).abs() < f32::EPSILON);
    }

    #[test]
    fn the_pneumatic_production_switch_names_the_environment() {
        let c = Config::from_map(&map(&[
            ("SENTRY_DSN", DSN),
            ("CONFIG", "Production"),
            ("DJANGO_SECRET_KEY", "k"),
            ("POSTGRES_HOST", "db"),
            ("FASTAPI_BASE_URL", "https://example.com/files"),
        ]))
        .unwrap();
        assert_eq!(c.sentry.unwrap().environment, "production");
    }

    #[test]
    fn the_dsn_never_shows_in_debug_output_or_errors() {
        let c = Config::from_map(&map(&[("SENTRY_DSN", DSN)])).unwrap();
        for text in [format!("{c:?}"), format!("{c:#?}")] {
            assert!(!text.contains("0123456789abcdef"), "{text}");
        }
        for bad in [
            "not a dsn secretkeyvalue",
            "ftp://secretkeyvalue@host/42",
            "https://host/42",
            "https://secretkeyvalue@host/",
            "https://secretkeyvalue@/42",
        ] {
            let err = Config::from_map(&map(&[("SENTRY_DSN", bad)])).unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with("SENTRY_DSN is invalid"), "{bad}: {text}");
            assert!(!text.contains("secretkeyvalue"), "{text}");
            assert!(!format!("{err:?}").contains("secretkeyvalue"));
        }
    }

    #[test]
    fn the_sample_rate_is_a_share() {
        for bad in ["-0.1", "1.5", "half", "NaN", "inf"] {
            let err = Config::from_map(&map(&[
                ("SENTRY_DSN", DSN),
                ("SENTRY_TRACES_SAMPLE_RATE", bad),
            ]))
            .unwrap_err();
            assert!(
                err.to_string().starts_with("SENTRY_TRACES_SAMPLE_RATE"),
                "{bad}: {err}"
            );
        }
        for good in ["0", "1", "1.0", "0.001"] {
            Config::from_map(&map(&[
                ("SENTRY_DSN", DSN),
                ("SENTRY_TRACES_SAMPLE_RATE", good),
            ]))
            .unwrap();
        }
    }
}
