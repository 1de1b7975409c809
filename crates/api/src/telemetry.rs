//! The tracing subscriber, built once at start-up, and error tracking fed by it.

use std::fmt::{self, Write as _};
use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{Compact, Format, Writer};
use tracing_subscriber::fmt::{FormatFields, MakeWriter, SubscriberBuilder};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{LogFormat, TelemetryConfig};

mod error_tracking;
mod scrub;

pub use error_tracking::{ErrorTracking, scrub_event, start as start_error_tracking};
pub use scrub::scrub;

/// Installs the global subscriber writing to `sink`; `RUST_LOG` overrides `LOG_LEVEL`. When
/// error tracking was started before, `error` events (server errors) also go to Sentry.
pub fn init<W>(config: &TelemetryConfig, sink: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let terminal = std::io::stdout().is_terminal();
    let format = config.log_format.unwrap_or(if terminal {
        LogFormat::Pretty
    } else {
        LogFormat::Json
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(sink);
    match format {
        LogFormat::Json => install(
            builder
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
        LogFormat::Pretty => install(text(builder, terminal).finish()),
    }
}

/// Installs `subscriber`, with the error-tracking layer on top when tracking is on. The
/// subscriber's filter (`LOG_LEVEL`) applies to that layer too.
fn install<S>(subscriber: S)
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static,
{
    let _ = subscriber.with(error_tracking::layer()).try_init();
}

/// The human-readable format: one line per event, every field value escaped by [`EscapedFields`],
/// and colours only on a terminal (in a file or a pipe they are escape bytes a reader has to
/// strip, and they would hide a forged one among them).
fn text<N, L, T, F, W>(
    builder: SubscriberBuilder<N, Format<L, T>, F, W>,
    colours: bool,
) -> SubscriberBuilder<EscapedFields, Format<Compact, T>, F, W>
where
    N: for<'writer> FormatFields<'writer> + 'static,
{
    let builder = builder.compact().fmt_fields(EscapedFields);
    if colours {
        builder
    } else {
        builder.with_ansi(false)
    }
}

/// Writes span and event fields as `name=value`, with control characters in values (and in the
/// message) escaped.
///
/// Error messages, names and other values carry text from clients (a query parameter, a file
/// name). The stock text formatter writes `%`-formatted values raw, so a newline would start a
/// forged log line and an escape sequence would reach the terminal of whoever reads the log. The
/// JSON format escapes on its own.
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct EscapingVisitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl EscapingVisitor<'_> {
    /// Writes the field's name (none for the message) and `value`, escaped.
    fn write(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        // Metadata of events from the `log` crate, which the formatter already shows.
        if name.starts_with("log.") {
            return;
        }
        let separator = if self.first { "" } else { " " };
        self.first = false;
        let written = match name {
            "message" => self.writer.write_str(separator),
            name => write!(
                self.writer,
                "{separator}{}=",
                name.strip_prefix("r#").unwrap_or(name)
            ),
        };
        self.result = written.and_then(|()| Escaper(&mut self.writer).write_fmt(value));
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.write(field, format_args!("{value}"));
        } else {
            self.write(field, format_args!("{value:?}"));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            let _ = write!(text, ": {cause}");
            source = cause.source();
        }
        self.write(field, format_args!("{text}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, format_args!("{value:?}"));
    }
}

/// Passes text through to the log line with control characters written as escapes (`\n`, `\r`,
/// `\t`, `\u{1b}`), so that one event stays one line and no byte of it acts on a terminal.
struct Escaper<'a, 'writer>(&'a mut Writer<'writer>);

impl fmt::Write for Escaper<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut clean = 0;
        for (at, c) in s.char_indices() {
            if !needs_escape(c) {
                continue;
            }
            self.0.write_str(&s[clean..at])?;
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c => write!(self.0, "\\u{{{:x}}}", u32::from(c))?,
            }
            clean = at + c.len_utf8();
        }
        self.0.write_str(&s[clean..])
    }
}

/// C0 and C1 controls and DEL; the Unicode line and paragraph separators, which some viewers
/// break lines at; and the bidirectional overrides and isolates, which reorder how a line reads.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    const FORGED: &str =
        "x\n2026-01-01T00:00:00Z  INFO FAKE forged\r\x1b[31mred\x1b[0m\u{2028}\u{85}\t";

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[derive(Debug)]
    struct Failure;

    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "unknown upload policy '{FORGED}'")
        }
    }

    impl std::error::Error for Failure {}

    /// What the text format writes for one event carrying `FORGED` in every kind of field.
    fn logged(colours: bool) -> String {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = text(
            tracing_subscriber::fmt().with_writer(move || sink.clone()),
            colours,
        )
        .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("http_request", request_id = %FORGED, late = tracing::field::Empty);
            span.record("late", tracing::field::display(FORGED));
            let _entered = span.enter();
            let error = Failure;
            tracing::info!(
                status = 400,
                reason = %FORGED,
                debug = ?FORGED,
                text = FORGED,
                error = &error as &(dyn std::error::Error + 'static),
                "request refused {FORGED}"
            );
        });
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn client_text_in_any_field_stays_on_one_line_with_its_controls_escaped() {
        let line = logged(false);

        assert_eq!(line.matches('\n').count(), 1, "{line}");
        assert!(line.ends_with('\n'), "{line}");
        for c in ['\r', '\x1b', '\u{2028}', '\u{85}', '\t'] {
            assert!(!line.contains(c), "{c:?} is written raw: {line}");
        }
        assert!(line.contains("request refused x\\n2026-01-01T00:00:00Z  INFO FAKE forged\\r\\u{1b}[31mred\\u{1b}[0m\\u{2028}\\u{85}\\t"), "{line}");
        assert!(line.contains(" reason=x\\n2026-"), "{line}");
        assert!(
            line.contains(" error=unknown upload policy 'x\\n2026-"),
            "{line}"
        );
        assert!(line.contains(" request_id=x\\n2026-"), "{line}");
        assert!(line.contains(" late=x\\n2026-"), "{line}");
        // Debug formatting escapes on its own; the escaper adds nothing to it.
        assert!(
            line.contains(" text=\"x\\n2026-01-01T00:00:00Z  INFO FAKE forged\\r\\u{1b}[31mred"),
            "{line}"
        );
        assert!(line.contains(" status=400"), "{line}");
    }

    #[test]
    fn on_a_terminal_only_the_formatter_colours_reach_it() {
        let line = logged(true);

        assert_eq!(line.matches('\n').count(), 1, "{line}");
        // INFO is green: red can only come from the forged text.
        assert!(!line.contains("\x1b[31m"), "{line}");
        assert!(line.contains("\\u{1b}[31mred"), "{line}");
    }

    #[test]
    fn plain_text_is_written_as_it_is() {
        let mut out = String::new();
        let mut writer = Writer::new(&mut out);
        write!(
            Escaper(&mut writer),
            "plain ünïcödé – text, \"quoted\" \\ and 'so on'"
        )
        .unwrap();
        assert_eq!(out, "plain ünïcödé – text, \"quoted\" \\ and 'so on'");
    }
}
