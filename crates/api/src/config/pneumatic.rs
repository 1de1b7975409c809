//! The Pneumatic file service's environment names, read as fallbacks of Stowage's own, so that
//! Stowage runs on a Pneumatic deployment's environment unchanged.
//!
//! This is a pass over the variables before they are parsed: each Stowage variable that is unset
//! gets the value its Pneumatic names give it. A Stowage name always wins.

use std::collections::HashMap;

/// The variables with the Pneumatic fallbacks filled in, and what was read.
#[derive(Debug)]
pub(super) struct WithFallbacks {
    /// Every variable: the given ones, plus the Stowage names derived from Pneumatic names.
    pub vars: HashMap<String, String>,
    /// The Pneumatic names that gave a value, in the order of the table.
    pub read: Vec<&'static str>,
    /// For each derived Stowage name, the Pneumatic names it came from (for error messages).
    pub sources: HashMap<&'static str, &'static str>,
}

/// Pneumatic's defaults for its database settings, used when some but not all are set.
const POSTGRES: [(&str, &str); 5] = [
    ("POSTGRES_USER", "pneumatic"),
    ("POSTGRES_PASSWORD", "pneumatic"),
    ("POSTGRES_HOST", "localhost"),
    ("POSTGRES_PORT", "5432"),
    ("POSTGRES_DB", "pneumatic"),
];

/// Fills the Stowage variables that `vars` leaves unset from their Pneumatic names.
pub(super) fn with_fallbacks(vars: &HashMap<String, String>) -> WithFallbacks {
    let mut pass = Pass {
        given: vars,
        out: vars.clone(),
        read: Vec::new(),
        sources: HashMap::new(),
    };
    pass.rename("AUTH_SECRET_KEY", "DJANGO_SECRET_KEY");
    pass.rename("REDIS_URL", "AUTH_REDIS_URL");
    pass.rename("REDIS_KEY_PREFIX", "KEY_PREFIX_REDIS");
    pass.database_url();
    pass.storage();
    pass.rename("S3_BUCKET_PREFIX", "BUCKET_PREFIX");
    pass.public_url();
    if let Some(backend) = pass.pneumatic("BACKEND_PRIVATE_URL") {
        let url = format!(
            "{}/attachments/check-permission",
            backend.trim_end_matches('/')
        );
        pass.derive("PERMISSION_CHECK_URL", url, "BACKEND_PRIVATE_URL");
    }
    pass.rename("MAX_UPLOAD_BYTES", "MAX_FILE_SIZE");
    pass.rate("UPLOAD");
    pass.rate("DOWNLOAD");
    if let Some(port) = pass.pneumatic("PORT") {
        pass.derive("BIND_ADDR", format!("0.0.0.0:{port}"), "PORT");
    }
    pass.production();
    pass.origins();
    pass.events();
    WithFallbacks {
        vars: pass.out,
        read: pass.read,
        sources: pass.sources,
    }
}

struct Pass<'a> {
    given: &'a HashMap<String, String>,
    out: HashMap<String, String>,
    read: Vec<&'static str>,
    sources: HashMap<&'static str, &'static str>,
}

impl Pass<'_> {
    fn value(&self, name: &str) -> Option<&str> {
        self.given
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn is_set(&self, stowage: &str) -> bool {
        self.value(stowage).is_some()
    }

    /// A Pneumatic variable's value, noted as read.
    fn pneumatic(&mut self, name: &'static str) -> Option<String> {
        let value = self.value(name)?.to_owned();
        if !self.read.contains(&name) {
            self.read.push(name);
        }
        Some(value)
    }

    /// Sets `stowage` to `value` unless it is set already.
    fn derive(&mut self, stowage: &'static str, value: String, from: &'static str) {
        if self.is_set(stowage) {
            return;
        }
        self.out.insert(stowage.to_owned(), value);
        self.sources.insert(stowage, from);
    }

    fn rename(&mut self, stowage: &'static str, pneumatic: &'static str) {
        if self.is_set(stowage) {
            return;
        }
        if let Some(value) = self.pneumatic(pneumatic) {
            self.derive(stowage, value, pneumatic);
        }
    }

    /// `POSTGRES_*` → `DATABASE_URL`, with Pneumatic's defaults for the parts left out.
    fn database_url(&mut self) {
        if self.is_set("DATABASE_URL") || !POSTGRES.iter().any(|(n, _)| self.is_set(n)) {
            return;
        }
        let mut part = |name: &'static str, default: &str| {
            self.pneumatic(name).unwrap_or_else(|| default.to_owned())
        };
        let [user, password, host, port, db] = POSTGRES.map(|(name, default)| part(name, default));
        let url = format!(
            "postgres://{}:{}@{host}:{port}/{}",
            encode(&user),
            encode(&password),
            encode(&db)
        );
        self.derive("DATABASE_URL", url, "POSTGRES_*");
    }

    /// `STORAGE_TYPE` (`local`: SeaweedFS, `google`: GCS) and its `*_S3_*` settings → an S3 store
    /// with Pneumatic's per-account bucket layout.
    fn storage(&mut self) {
        if self.is_set("STORAGE_BACKEND") {
            return;
        }
        let pneumatic_storage = ["STORAGE_TYPE", "BUCKET_PREFIX"]
            .iter()
            .any(|n| self.is_set(n))
            || self
                .given
                .keys()
                .any(|k| k.starts_with("SEAWEEDFS_S3_") || k.starts_with("GCS_S3_"));
        if !pneumatic_storage {
            return;
        }
        let google = self
            .pneumatic("STORAGE_TYPE")
            .is_some_and(|t| t.eq_ignore_ascii_case("google"));
        self.derive("STORAGE_BACKEND", "s3".to_owned(), "STORAGE_TYPE");
        self.derive("S3_BUCKET_LAYOUT", "per-account".to_owned(), "STORAGE_TYPE");
        let names: [(&'static str, &'static str, &'static str); 4] = if google {
            [
                (
                    "S3_ENDPOINT",
                    "GCS_S3_ENDPOINT",
                    "https://storage.googleapis.com",
                ),
                ("S3_ACCESS_KEY", "GCS_S3_ACCESS_KEY", ""),
                ("S3_SECRET_KEY", "GCS_S3_SECRET_KEY", ""),
                ("S3_REGION", "GCS_S3_REGION", "us-east-1"),
            ]
        } else {
            [
                (
                    "S3_ENDPOINT",
                    "SEAWEEDFS_S3_ENDPOINT",
                    "http://seaweedfs-filer:8333",
                ),
                (
                    "S3_ACCESS_KEY",
                    "SEAWEEDFS_S3_ACCESS_KEY",
                    "any-access-key-will-work",
                ),
                (
                    "S3_SECRET_KEY",
                    "SEAWEEDFS_S3_SECRET_KEY",
                    "any-secret-key-will-work",
                ),
                ("S3_REGION", "SEAWEEDFS_S3_REGION", "us-east-1"),
            ]
        };
        for (stowage, pneumatic, default) in names {
            let value = self
                .pneumatic(pneumatic)
                .unwrap_or_else(|| default.to_owned());
            if !value.is_empty() {
                self.derive(stowage, value, pneumatic);
            }
        }
    }

    /// `FASTAPI_BASE_URL` (where clients reach the file routes) → `FILES_URL`, and `PUBLIC_URL`
    /// its origin.
    fn public_url(&mut self) {
        if self.is_set("PUBLIC_URL") && self.is_set("FILES_URL") {
            return;
        }
        let Some(base) = self.pneumatic("FASTAPI_BASE_URL") else {
            return;
        };
        self.derive(
            "FILES_URL",
            base.trim_end_matches('/').to_owned(),
            "FASTAPI_BASE_URL",
        );
        if let Some(origin) = origin_of(&base) {
            self.derive("PUBLIC_URL", origin, "FASTAPI_BASE_URL");
        }
    }

    /// `RATE_LIMIT_{class}_REQUESTS` and `_WINDOW` (seconds) → `RATE_LIMIT_{class}`.
    fn rate(&mut self, class: &'static str) {
        let (stowage, requests_name, window_name, default_requests) = match class {
            "UPLOAD" => (
                "RATE_LIMIT_UPLOAD",
                "RATE_LIMIT_UPLOAD_REQUESTS",
                "RATE_LIMIT_UPLOAD_WINDOW",
                "10",
            ),
            _ => (
                "RATE_LIMIT_DOWNLOAD",
                "RATE_LIMIT_DOWNLOAD_REQUESTS",
                "RATE_LIMIT_DOWNLOAD_WINDOW",
                "100",
            ),
        };
        if self.is_set(stowage) || !(self.is_set(requests_name) || self.is_set(window_name)) {
            return;
        }
        let requests = self
            .pneumatic(requests_name)
            .unwrap_or_else(|| default_requests.to_owned());
        let window = self
            .pneumatic(window_name)
            .unwrap_or_else(|| "60".to_owned());
        self.derive(stowage, format!("{requests}/{window}s"), requests_name);
    }

    /// `CONFIG=Production` → `APP_ENV=production`, with HSTS and rate limits on unless set.
    fn production(&mut self) {
        let Some(config) = self.pneumatic("CONFIG") else {
            return;
        };
        if !config.eq_ignore_ascii_case("production") {
            return;
        }
        self.derive("APP_ENV", "production".to_owned(), "CONFIG");
        self.derive("HSTS_ENABLED", "true".to_owned(), "CONFIG");
        self.derive("RATE_LIMIT_ENABLED", "true".to_owned(), "CONFIG");
    }

    /// `FRONTEND_URL` and `FORMS_URL` are allowed CORS origins too, as in Pneumatic.
    fn origins(&mut self) {
        let extra: Vec<String> = ["FRONTEND_URL", "FORMS_URL"]
            .iter()
            .filter_map(|name| self.value(name).and_then(origin_of))
            .collect();
        if extra.is_empty() {
            return;
        }
        if self.is_set("FORMS_URL") && !self.read.contains(&"FORMS_URL") {
            self.read.push("FORMS_URL");
        }
        let mut origins: Vec<String> = self
            .value("ALLOWED_ORIGINS")
            .map(|v| {
                v.split(',')
                    .map(|o| o.trim().to_owned())
                    .filter(|o| !o.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        for origin in extra {
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        self.out
            .insert("ALLOWED_ORIGINS".to_owned(), origins.join(","));
    }

    /// `LOGS_*` → `EVENTS_*`; `LOGS_BACKEND=none` turns events off (`EVENTS_ENABLED=false`)
    /// whatever URL is set.
    fn events(&mut self) {
        self.rename("EVENTS_REDIS_URL", "LOGS_REDIS_URL");
        self.rename("EVENTS_STREAM", "LOGS_STREAM_KEY");
        self.rename("EVENTS_STREAM_MAXLEN", "LOGS_STREAM_MAXLEN");
        self.rename("EVENTS_SERVICE_NAME", "LOGS_SERVICE_NAME");
        if self.is_set("EVENTS_ENABLED") {
            return;
        }
        if let Some(backend) = self.pneumatic("LOGS_BACKEND")
            && backend.eq_ignore_ascii_case("none")
        {
            self.derive("EVENTS_ENABLED", "false".to_owned(), "LOGS_BACKEND");
        }
    }
}

/// `scheme://host[:port]` of an absolute URL.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    (!scheme.is_empty() && !host.is_empty()).then(|| format!("{scheme}://{host}"))
}

/// Percent-encodes what may not stand raw in a URL's user, password or path.
fn encode(part: &str) -> String {
    percent_encoding::utf8_percent_encode(part, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::map;

    #[test]
    fn pneumatic_names_fill_the_stowage_ones() {
        let env = map(&[
            ("DJANGO_SECRET_KEY", "django"),
            ("AUTH_REDIS_URL", "redis://:pw@redis:6379/1"),
            ("KEY_PREFIX_REDIS", ":2:"),
            ("POSTGRES_USER", "pneu matic"),
            ("POSTGRES_PASSWORD", "p@ss:word"),
            ("POSTGRES_HOST", "db"),
            ("POSTGRES_DB", "files"),
            ("STORAGE_TYPE", "local"),
            ("SEAWEEDFS_S3_ENDPOINT", "http://seaweedfs-filer:8333"),
            ("SEAWEEDFS_S3_ACCESS_KEY", "ak"),
            ("SEAWEEDFS_S3_SECRET_KEY", "sk"),
            ("BUCKET_PREFIX", "pneumatic-prod"),
            ("FASTAPI_BASE_URL", "https://files.example.com/files/"),
            ("BACKEND_PRIVATE_URL", "http://backend:8001/"),
            ("MAX_FILE_SIZE", "1048576"),
            ("RATE_LIMIT_UPLOAD_REQUESTS", "5"),
            ("RATE_LIMIT_DOWNLOAD_WINDOW", "30"),
            ("PORT", "8002"),
            ("CONFIG", "Production"),
            ("FRONTEND_URL", "https://app.example.com"),
            ("FORMS_URL", "https://forms.example.com/"),
            ("LOGS_REDIS_URL", "redis://:pw@redis:6379/3"),
            ("LOGS_STREAM_KEY", "pneumatic:logs"),
            ("LOGS_STREAM_MAXLEN", "5000"),
            ("LOGS_SERVICE_NAME", "file-service"),
        ]);

        let filled = with_fallbacks(&env);
        let get = |name: &str| filled.vars.get(name).map(String::as_str);

        assert_eq!(get("AUTH_SECRET_KEY"), Some("django"));
        assert_eq!(get("REDIS_URL"), Some("redis://:pw@redis:6379/1"));
        assert_eq!(get("REDIS_KEY_PREFIX"), Some(":2:"));
        assert_eq!(
            get("DATABASE_URL"),
            Some("postgres://pneu%20matic:p%40ss%3Aword@db:5432/files")
        );
        assert_eq!(get("STORAGE_BACKEND"), Some("s3"));
        assert_eq!(get("S3_BUCKET_LAYOUT"), Some("per-account"));
        assert_eq!(get("S3_ENDPOINT"), Some("http://seaweedfs-filer:8333"));
        assert_eq!(get("S3_ACCESS_KEY"), Some("ak"));
        assert_eq!(get("S3_SECRET_KEY"), Some("sk"));
        assert_eq!(get("S3_REGION"), Some("us-east-1"));
        assert_eq!(get("S3_BUCKET_PREFIX"), Some("pneumatic-prod"));
        assert_eq!(get("PUBLIC_URL"), Some("https://files.example.com"));
        assert_eq!(get("FILES_URL"), Some("https://files.example.com/files"));
        assert_eq!(
            get("PERMISSION_CHECK_URL"),
            Some("http://backend:8001/attachments/check-permission")
        );
        assert_eq!(get("MAX_UPLOAD_BYTES"), Some("1048576"));
        assert_eq!(get("RATE_LIMIT_UPLOAD"), Some("5/60s"));
        assert_eq!(get("RATE_LIMIT_DOWNLOAD"), Some("100/30s"));
        assert_eq!(get("BIND_ADDR"), Some("0.0.0.0:8002"));
        assert_eq!(get("APP_ENV"), Some("production"));
        assert_eq!(get("HSTS_ENABLED"), Some("true"));
        assert_eq!(get("RATE_LIMIT_ENABLED"), Some("true"));
        assert_eq!(
            get("ALLOWED_ORIGINS"),
            Some("https://app.example.com,https://forms.example.com")
        );
        assert_eq!(get("EVENTS_REDIS_URL"), Some("redis://:pw@redis:6379/3"));
        assert_eq!(get("EVENTS_STREAM"), Some("pneumatic:logs"));
        assert_eq!(get("EVENTS_STREAM_MAXLEN"), Some("5000"));
        assert_eq!(get("EVENTS_SERVICE_NAME"), Some("file-service"));
        assert_eq!(get("EVENTS_ENABLED"), None);
        assert!(filled.read.contains(&"DJANGO_SECRET_KEY"));
        assert!(filled.read.contains(&"POSTGRES_PASSWORD"));
        assert!(filled.read.contains(&"LOGS_REDIS_URL"));
        assert!(
            !filled.read.contains(&"POSTGRES_PORT"),
            "a default is not read"
        );
    }

    #[test]
    fn a_stowage_name_always_wins() {
        let env = map(&[
            ("AUTH_SECRET_KEY", "stowage"),
            ("DJANGO_SECRET_KEY", "django"),
            ("DATABASE_URL", "sqlite://x.db"),
            ("POSTGRES_HOST", "db"),
            ("STORAGE_BACKEND", "fs"),
            ("STORAGE_TYPE", "local"),
            ("HSTS_ENABLED", "false"),
            ("CONFIG", "Production"),
            ("ALLOWED_ORIGINS", "https://a.example.com"),
            ("FRONTEND_URL", "https://a.example.com"),
            ("EVENTS_REDIS_URL", "redis://events:6379/0"),
            ("LOGS_REDIS_URL", "redis://logs:6379/0"),
            ("EVENTS_STREAM", "audit"),
            ("LOGS_STREAM_KEY", "pneumatic:logs"),
            ("EVENTS_STREAM_MAXLEN", "10"),
            ("LOGS_STREAM_MAXLEN", "5000"),
            ("EVENTS_SERVICE_NAME", "stowage"),
            ("LOGS_SERVICE_NAME", "file-service"),
            ("EVENTS_ENABLED", "true"),
            ("LOGS_BACKEND", "none"),
        ]);

        let filled = with_fallbacks(&env);
        let get = |name: &str| filled.vars.get(name).map(String::as_str);

        assert_eq!(get("AUTH_SECRET_KEY"), Some("stowage"));
        assert_eq!(get("EVENTS_REDIS_URL"), Some("redis://events:6379/0"));
        assert_eq!(get("EVENTS_STREAM"), Some("audit"));
        assert_eq!(get("EVENTS_STREAM_MAXLEN"), Some("10"));
        assert_eq!(get("EVENTS_SERVICE_NAME"), Some("stowage"));
        assert_eq!(get("EVENTS_ENABLED"), Some("true"));
        assert!(!filled.read.contains(&"LOGS_REDIS_URL"));
        assert!(!filled.read.contains(&"LOGS_BACKEND"));
        assert_eq!(get("DATABASE_URL"), Some("sqlite://x.db"));
        assert_eq!(get("STORAGE_BACKEND"), Some("fs"));
        assert_eq!(get("S3_BUCKET_LAYOUT"), None);
        assert_eq!(get("HSTS_ENABLED"), Some("false"));
        assert_eq!(get("APP_ENV"), Some("production"));
        assert_eq!(get("ALLOWED_ORIGINS"), Some("https://a.example.com"));
        assert!(!filled.read.contains(&"DJANGO_SECRET_KEY"));
    }

    #[test]
    fn google_storage_reads_the_gcs_names() {
        let env = map(&[
            ("STORAGE_TYPE", "google"),
            ("GCS_S3_ACCESS_KEY", "hmac-key"),
            ("GCS_S3_SECRET_KEY", "hmac-secret"),
        ]);

        let filled = with_fallbacks(&env);
        let get = |name: &str| filled.vars.get(name).map(String::as_str);

        assert_eq!(get("S3_ENDPOINT"), Some("https://storage.googleapis.com"));
        assert_eq!(get("S3_ACCESS_KEY"), Some("hmac-key"));
        assert_eq!(get("S3_SECRET_KEY"), Some("hmac-secret"));
    }

    #[test]
    fn logs_backend_none_turns_events_off() {
        let env = map(&[
            ("LOGS_BACKEND", "none"),
            ("LOGS_REDIS_URL", "redis://logs:6379/0"),
        ]);
        let filled = with_fallbacks(&env);
        let get = |name: &str| filled.vars.get(name).map(String::as_str);
        assert_eq!(get("EVENTS_ENABLED"), Some("false"));
        assert_eq!(filled.sources.get("EVENTS_ENABLED"), Some(&"LOGS_BACKEND"));
        assert!(filled.read.contains(&"LOGS_BACKEND"));

        let env = map(&[("LOGS_BACKEND", "redis")]);
        assert_eq!(with_fallbacks(&env).vars.get("EVENTS_ENABLED"), None);
    }

    #[test]
    fn nothing_pneumatic_changes_nothing() {
        let env = map(&[("BIND_ADDR", "127.0.0.1:9"), ("FRONTEND_URL", "")]);
        let filled = with_fallbacks(&env);
        assert_eq!(filled.vars, env);
        assert!(filled.read.is_empty());
    }
}
