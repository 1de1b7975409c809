//! URLs that may carry a password.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// A URL that may hold a password (`scheme://user:password@host/…`, e.g. `DATABASE_URL` or
/// `REDIS_URL`). `Debug` and `Display` show it with the password replaced; only
/// [`ExposeSecret::expose_secret`] gives it whole, for the driver that dials it.
#[derive(Clone)]
pub struct SecretUrl(SecretString);

impl SecretUrl {
    /// Wraps `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self(SecretString::from(url.into()))
    }

    /// The scheme: what comes before the first `:` (`postgres`, `sqlite`, `redis`, …).
    pub fn scheme(&self) -> &str {
        let url = self.0.expose_secret();
        url.split_once(':').map_or(url, |(scheme, _)| scheme)
    }

    /// The URL with any password replaced, for logs and messages.
    pub fn redacted(&self) -> String {
        redact_url(self.0.expose_secret())
    }
}

impl ExposeSecret<str> for SecretUrl {
    fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl From<String> for SecretUrl {
    fn from(url: String) -> Self {
        Self::new(url)
    }
}

impl From<&str> for SecretUrl {
    fn from(url: &str) -> Self {
        Self::new(url)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SecretUrl").field(&self.redacted()).finish()
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `url` with any password replaced, for logs and `Debug`: the one of its user info, and a
/// `password` query parameter (which the Postgres driver accepts too).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let after = redact_query(&format!("{host}{tail}"));
            format!("{scheme}://{user}:[REDACTED]@{after}")
        }
        None => format!("{scheme}://{}", redact_query(rest)),
    }
}

/// `rest` (host, path and query) with the value of a `password` query parameter replaced.
fn redact_query(rest: &str) -> String {
    let Some((path, query)) = rest.split_once('?') else {
        return rest.to_owned();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=[REDACTED]"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::{SecretUrl, redact_url};
    use secrecy::ExposeSecret;

    #[test]
    fn redact_url_hides_passwords_only() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db:5432/stowage"),
            "postgres://app:[REDACTED]@db:5432/stowage"
        );
        assert_eq!(
            redact_url("sqlite://./data/stowage.db"),
            "sqlite://./data/stowage.db"
        );
        assert_eq!(redact_url("postgres://db/x"), "postgres://db/x");
        assert_eq!(
            redact_url("postgres://app@db/x?sslmode=require&password=hunter2"),
            "postgres://app:[REDACTED]@db/x?sslmode=require&password=[REDACTED]"
        );
        assert_eq!(
            redact_url("postgres://db/x?sslmode=require"),
            "postgres://db/x?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://db?Password=hunter2"),
            "postgres://db?Password=[REDACTED]"
        );
        assert_eq!(
            redact_url("postgres://app:hun?ter2@db/x"),
            "postgres://app:[REDACTED]@db/x"
        );
    }

    #[test]
    fn debug_and_display_never_show_the_password() {
        let url = SecretUrl::from("redis://:hunter2@cache:6379/2");
        for shown in [format!("{url:?}"), format!("{url:#?}"), url.to_string()] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("cache:6379/2"), "{shown}");
        }
        assert_eq!(url.expose_secret(), "redis://:hunter2@cache:6379/2");
        assert_eq!(url.scheme(), "redis");
        assert_eq!(SecretUrl::from("sqlite:stowage.db").scheme(), "sqlite");
    }
}
