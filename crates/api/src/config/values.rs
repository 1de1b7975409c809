//! Reading one variable: the lookup every section parses from, and the value parsers they share.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use super::ConfigError;

/// The variables, as every section reads them. Not `Debug`: the values include secrets.
#[derive(Clone, Copy)]
pub(super) struct Vars<'a> {
    map: &'a HashMap<String, String>,
    production: bool,
}

impl<'a> Vars<'a> {
    /// A lookup over `map`; `production` makes the variables production needs required.
    pub(super) fn new(map: &'a HashMap<String, String>, production: bool) -> Self {
        Self { map, production }
    }

    /// Whether `APP_ENV=production`.
    pub(super) fn production(self) -> bool {
        self.production
    }

    /// The value of `name`, trimmed; `None` when unset or blank.
    pub(super) fn get(self, name: &str) -> Option<&'a str> {
        self.map
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The value of `name` exactly as given (blank included).
    pub(super) fn raw(self, name: &str) -> Option<&'a str> {
        self.map.get(name).map(String::as_str)
    }

    /// The value of `name` in lower case, for the variables that name a choice.
    pub(super) fn choice(self, name: &str) -> Option<String> {
        self.get(name).map(str::to_ascii_lowercase)
    }

    /// Fails with [`ConfigError::MissingInProduction`] when production runs without `name`.
    pub(super) fn require_in_production(self, name: &'static str) -> Result<(), ConfigError> {
        if self.production && self.get(name).is_none() {
            return Err(ConfigError::MissingInProduction { name });
        }
        Ok(())
    }

    /// `name` parsed, or `default` parsed when unset.
    pub(super) fn parse_or<T>(self, name: &'static str, default: &str) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        parse(self.get(name).unwrap_or(default), name)
    }

    /// `name` as a number of milliseconds (`default` when unset).
    pub(super) fn millis(self, name: &'static str, default: &str) -> Result<Duration, ConfigError> {
        self.parse_or(name, default).map(Duration::from_millis)
    }

    /// `name` as a true/false switch (`default` when unset).
    pub(super) fn flag(self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.choice(name).as_deref() {
            None => Ok(default),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some(other) => Err(invalid(name, format!("'{other}' is not true or false"))),
        }
    }
}

pub(super) fn invalid(name: &'static str, reason: String) -> ConfigError {
    ConfigError::Invalid { name, reason }
}

pub(super) fn parse<T: FromStr>(value: &str, name: &'static str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e: T::Err| invalid(name, e.to_string()))
}

/// `value` as an http(s) URL, without its trailing slash.
pub(super) fn url_without_slash(value: &str, name: &'static str) -> Result<String, ConfigError> {
    let parsed = url::Url::parse(value).map_err(|e| invalid(name, e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(name, "must be an http or https URL".to_owned()));
    }
    Ok(value.trim_end_matches('/').to_owned())
}

/// Parses `30s`, `15m`, `1h`, `7d` or a bare number of seconds.
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let (digits, unit) = value.split_at(
        value
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(value.len()),
    );
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{value}' is not a duration like 30s, 15m, 1h or 7d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(format!("'{value}' has an unknown unit (use s, m, h or d)")),
    };
    Ok(Duration::from_secs(secs))
}
