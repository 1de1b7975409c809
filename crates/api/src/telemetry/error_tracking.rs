//! Error tracking with Sentry: server errors (the `error` level) and panics, and performance
//! traces when sampled, scrubbed of credentials before they leave the process. Off, with no client at all, unless `SENTRY_DSN` is
//! set.

use std::borrow::Cow;
use std::sync::Arc;

use ::sentry::integrations::tracing::{self as sentry_tracing, EventFilter, SentryLayer};
use ::sentry::protocol::{Context, Event, Map, Request, Value};
use ::sentry::{ClientInitGuard, ClientOptions};
use secrecy::ExposeSecret;
use tracing::{Level, Metadata};
use tracing_subscriber::registry::LookupSpan;

use super::scrub::{FILTERED, is_secret_name, scrub};
use crate::config::SentryConfig;

mod transactions;

use transactions::ScrubbingTransportFactory;

/// The Sentry client while error tracking is on. Keep it for as long as the process runs:
/// dropping it sends what is still queued (waiting up to two seconds).
#[must_use = "dropping it ends error tracking"]
pub struct ErrorTracking(Option<ClientInitGuard>);

impl ErrorTracking {
    /// No error tracking (no DSN, or a command that reports nothing).
    pub fn off() -> Self {
        Self(None)
    }

    /// Whether events are sent anywhere.
    pub fn is_on(&self) -> bool {
        self.0.as_ref().is_some_and(|guard| guard.is_enabled())
    }
}

/// The layer that turns `error` events into Sentry events, while a client is running.
pub(super) fn layer<S>() -> Option<SentryLayer<S>>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let client = ::sentry::Hub::main().client().filter(|c| c.is_enabled())?;
    let traces = client.options().traces_sample_rate > 0.0;
    Some(
        sentry_tracing::layer()
            .event_filter(event_filter)
            .span_filter(move |metadata| traces && is_own_span(metadata)),
    )
}

/// Starts the Sentry client of `config` and its panic handler; [`ErrorTracking::off`] without one.
pub fn start(config: Option<&SentryConfig>) -> ErrorTracking {
    let Some(config) = config else {
        return ErrorTracking::off();
    };
    let Ok(dsn) = config.dsn.expose_secret().parse() else {
        // The configuration parsed it already; never repeat it, it holds the key.
        eprintln!("stowage-api: SENTRY_DSN is invalid; error tracking is off");
        return ErrorTracking::off();
    };
    let options = ClientOptions {
        dsn: Some(dsn),
        environment: Some(Cow::Owned(config.environment.clone())),
        release: Some(Cow::Borrowed(concat!(
            env!("CARGO_PKG_NAME"),
            "@",
            env!("CARGO_PKG_VERSION")
        ))),
        traces_sample_rate: config.traces_sample_rate,
        send_default_pii: false,
        max_breadcrumbs: 0,
        in_app_include: vec!["stowage"],
        before_send: Some(Arc::new(|event| Some(scrub_event(event)))),
        before_breadcrumb: Some(Arc::new(|_| None)),
        transport: Some(Arc::new(ScrubbingTransportFactory)),
        ..ClientOptions::default()
    };
    ErrorTracking(Some(::sentry::init(options)))
}

/// `error` events become Sentry events; nothing else is sent, not even as breadcrumbs (they
/// would attach one request's log lines to another's report).
fn event_filter(metadata: &Metadata<'_>) -> EventFilter {
    if *metadata.level() == Level::ERROR {
        EventFilter::Event
    } else {
        EventFilter::Ignore
    }
}

/// The service's own spans (the request span: route template, ids, principal kind), at `info`
/// or above, become performance traces; those of its dependencies do not.
fn is_own_span(metadata: &Metadata<'_>) -> bool {
    *metadata.level() <= Level::INFO && metadata.target().starts_with("stowage")
}

/// `event` as it may leave the process: no request headers, cookies, body, query string or
/// user, no breadcrumbs, and every text that could quote a credential passed through [`scrub`].
/// A server error's contract code and status become tags, so that Sentry groups by them.
pub fn scrub_event(mut event: Event<'static>) -> Event<'static> {
    event.user = None;
    event.breadcrumbs = Default::default();
    event.request = event.request.take().map(|request| Request {
        url: request.url.map(|mut url| {
            url.set_query(None);
            url.set_fragment(None);
            let _ = url.set_password(None);
            url
        }),
        method: request.method,
        ..Request::default()
    });
    for text in [
        &mut event.message,
        &mut event.culprit,
        &mut event.transaction,
    ]
    .into_iter()
    .flatten()
    {
        *text = scrub(text);
    }
    if let Some(entry) = event.logentry.as_mut() {
        entry.message = scrub(&entry.message);
        entry.params.iter_mut().for_each(scrub_value);
    }
    for exception in &mut event.exception.values {
        if let Some(value) = exception.value.as_mut() {
            *value = scrub(value);
        }
    }
    for (name, value) in &mut event.tags {
        *value = if is_secret_name(name) {
            FILTERED.to_owned()
        } else {
            scrub(value)
        };
    }
    scrub_map(&mut event.extra);
    event
        .contexts
        .retain(|_, context| !matches!(context, Context::Response(_)));
    for context in event.contexts.values_mut() {
        match context {
            Context::Other(map) => scrub_map(map),
            Context::Trace(trace) => scrub_map(&mut trace.data),
            _ => {}
        }
    }
    tag_server_error(&mut event);
    event
}

/// Tags `code` and `status` from the fields of the request log line, when it is one.
fn tag_server_error(event: &mut Event<'static>) {
    let fields = event.contexts.values().find_map(|context| match context {
        Context::Other(map) if map.contains_key("code") => Some(map.clone()),
        _ => None,
    });
    let Some(fields) = fields else { return };
    for name in ["code", "status"] {
        match fields.get(name) {
            Some(Value::String(value)) => {
                event.tags.insert(name.to_owned(), value.clone());
            }
            Some(Value::Number(value)) => {
                event.tags.insert(name.to_owned(), value.to_string());
            }
            _ => {}
        }
    }
}

fn scrub_map(map: &mut Map<String, Value>) {
    for (name, value) in map.iter_mut() {
        if is_secret_name(name) {
            *value = Value::String(FILTERED.to_owned());
        } else {
            scrub_value(value);
        }
    }
}

fn scrub_value(value: &mut Value) {
    match value {
        Value::String(text) => *text = scrub(text),
        Value::Array(items) => items.iter_mut().for_each(scrub_value),
        Value::Object(map) => {
            for (name, value) in map.iter_mut() {
                if is_secret_name(name) {
                    *value = Value::String(FILTERED.to_owned());
                } else {
                    scrub_value(value);
                }
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use ::sentry::protocol::{Breadcrumb, Exception, LogEntry, User};

    use super::*;

    const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoxfQ.c2lnbmF0dXJl";

    fn leaky_event() -> Event<'static> {
        let mut fields = Map::new();
        fields.insert("status".into(), Value::from(503));
        fields.insert("code".into(), Value::from("STORAGE_UNAVAILABLE"));
        fields.insert(
            "error".into(),
            Value::from("blob store: GET /files/1?expires=1&signature=feedface: timed out"),
        );
        fields.insert(
            "authorization".into(),
            Value::from(format!("Bearer {TOKEN}")),
        );
        fields.insert(
            "nested".into(),
            serde_json::json!({"list": [format!("Token {TOKEN}")], "cookie": "sessionid=s"}),
        );
        let mut event = Event {
            message: Some(format!("request failed for Bearer {TOKEN}")),
            logentry: Some(LogEntry {
                message: "sent Authorization: Bearer %s".into(),
                params: vec![Value::from(format!("signature={TOKEN}"))],
            }),
            user: Some(User {
                ip_address: Some(Default::default()),
                ..User::default()
            }),
            request: Some(Request {
                url: "https://files.example.com/files/1?expires=1&signature=feedface#f"
                    .parse()
                    .ok(),
                method: Some("GET".into()),
                query_string: Some("expires=1&signature=feedface".into()),
                cookies: Some("file_service_auth=cookievalue".into()),
                headers: [("Authorization".to_owned(), format!("Bearer {TOKEN}"))].into(),
                data: Some("password=hunter2".into()),
                ..Request::default()
            }),
            ..Event::default()
        };
        event.exception.values.push(Exception {
            ty: "panic".into(),
            value: Some(format!("called with token={TOKEN}")),
            ..Exception::default()
        });
        event.breadcrumbs.values.push(Breadcrumb {
            message: Some(format!("Bearer {TOKEN}")),
            ..Breadcrumb::default()
        });
        event.tags.insert("session".into(), "s".into());
        event
            .extra
            .insert("query".into(), Value::from("?a=1&token=x"));
        event
            .contexts
            .insert("Rust Tracing Fields".into(), Context::Other(fields));
        event
    }

    #[test]
    fn nothing_that_looks_like_a_credential_is_left() {
        let event = scrub_event(leaky_event());
        let text = serde_json::to_string(&event).unwrap();
        for secret in [
            TOKEN,
            "feedface",
            "cookievalue",
            "hunter2",
            "sessionid=s",
            "token=x",
        ] {
            assert!(!text.contains(secret), "{secret} left in {text}");
        }
        let request = event.request.unwrap();
        assert_eq!(
            request.url.unwrap().as_str(),
            "https://files.example.com/files/1"
        );
        assert_eq!(request.method.as_deref(), Some("GET"));
        assert!(request.headers.is_empty() && request.query_string.is_none());
        assert!(event.user.is_none() && event.breadcrumbs.values.is_empty());
        assert_eq!(event.tags["session"], FILTERED);
    }

    #[test]
    fn the_cause_stays_readable_and_the_contract_code_becomes_a_tag() {
        let event = scrub_event(leaky_event());
        assert_eq!(event.tags["code"], "STORAGE_UNAVAILABLE");
        assert_eq!(event.tags["status"], "503");
        let Some(Context::Other(fields)) = event.contexts.get("Rust Tracing Fields") else {
            panic!("fields expected")
        };
        assert_eq!(
            fields["error"],
            "blob store: GET /files/1?[Filtered] timed out"
        );
        assert_eq!(
            event.message.as_deref(),
            Some("request failed for Bearer [Filtered]")
        );
    }

    #[test]
    fn only_errors_become_events() {
        use tracing::callsite::Identifier;
        use tracing::field::FieldSet;
        use tracing::metadata::Kind;
        struct Callsite;
        impl tracing::Callsite for Callsite {
            fn set_interest(&self, _: tracing::subscriber::Interest) {}
            fn metadata(&self) -> &Metadata<'_> {
                unreachable!()
            }
        }
        static CALLSITE: Callsite = Callsite;
        let metadata = |level| {
            Metadata::new(
                "event",
                "stowage_presentation::middleware",
                level,
                None,
                None,
                None,
                FieldSet::new(&[], Identifier(&CALLSITE)),
                Kind::EVENT,
            )
        };
        assert!(event_filter(&metadata(Level::ERROR)).contains(EventFilter::Event));
        for level in [Level::WARN, Level::INFO, Level::DEBUG] {
            let filter = event_filter(&metadata(level));
            assert!(!filter.contains(EventFilter::Event), "{level}");
            assert!(!filter.contains(EventFilter::Breadcrumb), "{level}");
        }
        assert!(is_own_span(&metadata(Level::INFO)));
        assert!(!is_own_span(&metadata(Level::DEBUG)));
    }

    #[test]
    fn without_a_dsn_there_is_no_client() {
        let tracking = start(None);
        assert!(!tracking.is_on());
        assert!(layer::<tracing_subscriber::Registry>().is_none());
    }
}
