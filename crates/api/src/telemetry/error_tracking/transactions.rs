//! Performance traces (`SENTRY_TRACES_SAMPLE_RATE` above 0) leave the process scrubbed as events
//! do. Sentry 0.46 offers no `before_send_transaction` option, so [`before_send_transaction`] runs
//! in a transport wrapped around the default one, on every transaction about to be sent.

use std::sync::Arc;
use std::time::Duration;

use ::sentry::protocol::{Context, EnvelopeItem, Transaction};
use ::sentry::transports::DefaultTransportFactory;
use ::sentry::{ClientOptions, Envelope, Transport, TransportFactory};

use super::{FILTERED, is_secret_name, scrub, scrub_map};

/// `transaction` as it may leave the process: no request or user, and every span's description
/// and data, the name, tags, extra and contexts passed through the same scrubbing as events.
pub(super) fn before_send_transaction(
    mut transaction: Transaction<'static>,
) -> Option<Transaction<'static>> {
    transaction.request = None;
    transaction.user = None;
    if let Some(name) = transaction.name.as_mut() {
        *name = scrub(name);
    }
    for span in &mut transaction.spans {
        if let Some(description) = span.description.as_mut() {
            *description = scrub(description);
        }
        scrub_map(&mut span.data);
        scrub_tags(&mut span.tags);
    }
    scrub_tags(&mut transaction.tags);
    scrub_map(&mut transaction.extra);
    for context in transaction.contexts.values_mut() {
        match context {
            Context::Other(map) => scrub_map(map),
            Context::Trace(trace) => {
                if let Some(description) = trace.description.as_mut() {
                    *description = scrub(description);
                }
                scrub_map(&mut trace.data);
            }
            _ => {}
        }
    }
    Some(transaction)
}

fn scrub_tags(tags: &mut ::sentry::protocol::Map<String, String>) {
    for (name, value) in tags.iter_mut() {
        *value = if is_secret_name(name) {
            FILTERED.to_owned()
        } else {
            scrub(value)
        };
    }
}

/// Builds the default transport, wrapped in [`Scrubbing`].
pub(super) struct ScrubbingTransportFactory;

impl TransportFactory for ScrubbingTransportFactory {
    fn create_transport(&self, options: &ClientOptions) -> Arc<dyn Transport> {
        Arc::new(Scrubbing(DefaultTransportFactory.create_transport(options)))
    }
}

/// A transport that passes each transaction through [`before_send_transaction`] first.
struct Scrubbing(Arc<dyn Transport>);

impl Transport for Scrubbing {
    fn send_envelope(&self, envelope: Envelope) {
        let has_transaction = envelope
            .items()
            .any(|item| matches!(item, EnvelopeItem::Transaction(_)));
        if !has_transaction {
            self.0.send_envelope(envelope);
            return;
        }
        let mut scrubbed = Envelope::new().with_headers(envelope.headers().clone());
        for item in envelope.items() {
            match item {
                EnvelopeItem::Transaction(transaction) => {
                    if let Some(transaction) = before_send_transaction(transaction.clone()) {
                        scrubbed.add_item(transaction);
                    }
                }
                other => scrubbed.add_item(other.clone()),
            }
        }
        if scrubbed.items().next().is_some() {
            self.0.send_envelope(scrubbed);
        }
    }

    fn flush(&self, timeout: Duration) -> bool {
        self.0.flush(timeout)
    }

    fn shutdown(&self, timeout: Duration) -> bool {
        self.0.shutdown(timeout)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use ::sentry::protocol::{Request, Value};
    use ::sentry::{Client, Hub, Scope, TransactionContext};

    use super::*;

    const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoxfQ.c2lnbmF0dXJl";

    /// Keeps what it is given.
    #[derive(Default)]
    struct Recording(Mutex<Vec<Envelope>>);

    impl Transport for Recording {
        fn send_envelope(&self, envelope: Envelope) {
            if let Ok(mut sent) = self.0.lock() {
                sent.push(envelope);
            }
        }
    }

    #[test]
    fn a_sent_transaction_keeps_no_request_and_its_spans_are_scrubbed() {
        let recording = Arc::new(Recording::default());
        let inner: Arc<dyn Transport> = recording.clone();
        let client = Client::from(ClientOptions {
            dsn: "https://public@sentry.example.com/1".parse().ok(),
            traces_sample_rate: 1.0,
            transport: Some(Arc::new(move |_: &ClientOptions| {
                Arc::new(Scrubbing(Arc::clone(&inner))) as Arc<dyn Transport>
            })),
            ..ClientOptions::default()
        });
        let hub = Arc::new(Hub::new(Some(Arc::new(client)), Arc::new(Scope::default())));
        Hub::run(hub, || {
            let transaction =
                ::sentry::start_transaction(TransactionContext::new("GET /files/{id}", "http"));
            transaction.set_request(Request {
                url: "https://files.example.com/files/1?signature=feedface"
                    .parse()
                    .ok(),
                cookies: Some("file_service_auth=cookievalue".into()),
                headers: [("Authorization".to_owned(), format!("Bearer {TOKEN}"))].into(),
                ..Request::default()
            });
            let span = transaction.start_child("db", &format!("SELECT 1 -- token={TOKEN}"));
            span.set_data("authorization", Value::from(format!("Bearer {TOKEN}")));
            span.set_data("url", Value::from("/files/1?expires=1&signature=feedface"));
            span.finish();
            transaction.finish();
        });

        let sent = recording
            .0
            .lock()
            .map(|sent| sent.clone())
            .unwrap_or_default();
        assert_eq!(sent.len(), 1, "one transaction expected");
        let Some(EnvelopeItem::Transaction(transaction)) = sent[0].items().next() else {
            panic!("a transaction expected: {:?}", sent[0]);
        };
        assert!(transaction.request.is_none());
        let span = &transaction.spans[0];
        assert_eq!(
            span.description.as_deref(),
            Some("SELECT 1 -- token=[Filtered]")
        );
        assert_eq!(span.data["authorization"], FILTERED);
        let text = serde_json::to_string(transaction).unwrap_or_default();
        for secret in [TOKEN, "feedface", "cookievalue"] {
            assert!(!text.contains(secret), "{secret} left in {text}");
        }
        assert!(text.contains("GET /files/{id}"), "{text}");
    }

    #[test]
    fn envelopes_without_a_transaction_pass_unchanged() {
        let recording = Arc::new(Recording::default());
        let scrubbing = Scrubbing(recording.clone());
        let mut envelope = Envelope::new();
        envelope.add_item(::sentry::protocol::Event {
            message: Some("kept as it is".into()),
            ..Default::default()
        });
        scrubbing.send_envelope(envelope.clone());
        let sent = recording
            .0
            .lock()
            .map(|sent| sent.clone())
            .unwrap_or_default();
        assert_eq!(sent, vec![envelope]);
    }
}
