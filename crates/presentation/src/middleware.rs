//! Middleware: request span and log line, security headers, browser redirects, debug details.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use http_body::{Frame, SizeHint};
use tracing::{Instrument, field};

use crate::error::{ErrorInfo, error_response};
use crate::headers::encode_uri_component;

/// The route template a request matched (never its raw path, which may carry ids and signatures).
fn route_of(request: &Request) -> String {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned()
}

/// The request's method as a log field or metric label: a standard method by name, anything else
/// as `OTHER`, so a client cannot mint label values (or long log fields) with made-up methods.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// One span per request (`http_request`) and one log line when its response has been sent, or
/// the client went away: status, bytes received and sent, and the time from the request's
/// arrival to that moment.
///
/// The span records the route template, never the full URI: signed URLs carry signatures.
pub async fn request_log(request: Request, next: Next) -> Response {
    let route = route_of(&request);
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let span = tracing::info_span!(
        "http_request",
        method = method_label(request.method()),
        matched_path = %route,
        request_id = %request_id,
        account_id = field::Empty,
        principal = field::Empty,
        file_id = field::Empty,
    );
    let received = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    // Written as "abandoned" if the client goes away before the response is ready.
    let mut line = LogOnDrop(Some(RequestLogLine {
        span: span.clone(),
        started: Instant::now(),
        answer: None,
        received: Arc::clone(&received),
        sent: Arc::clone(&sent),
    }));
    let request = request.map(|body| {
        Body::new(CountedBody {
            inner: body,
            count: received,
            _log: LogOnDrop(None),
        })
    });
    let response = next.run(request).instrument(span).await;
    if let Some(line) = line.0.as_mut() {
        line.answer = Some((
            response.status().as_u16(),
            response.extensions().get::<ErrorInfo>().cloned(),
        ));
    }
    response.map(|body| {
        Body::new(CountedBody {
            inner: body,
            count: sent,
            _log: line,
        })
    })
}

/// What the log line of one request says, once its response body is done.
struct RequestLogLine {
    span: tracing::Span,
    started: Instant,
    /// The status and error of the response, once there is one.
    answer: Option<(u16, Option<ErrorInfo>)>,
    received: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
}

impl RequestLogLine {
    fn write(self) {
        let Self {
            span,
            started,
            answer,
            received,
            sent,
        } = self;
        let bytes_in = received.load(Ordering::Relaxed);
        let bytes = sent.load(Ordering::Relaxed);
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let _entered = span.enter();
        let Some((status, error)) = answer else {
            tracing::info!(
                bytes_in,
                latency_ms,
                "request abandoned before its response"
            );
            return;
        };
        match error {
            Some(e) if status >= 500 => {
                tracing::error!(status, bytes_in, bytes, latency_ms, code = e.code, error = %e.chain, "request failed");
            }
            Some(e) => {
                tracing::info!(status, bytes_in, bytes, latency_ms, code = e.code, reason = %e.chain, "request refused");
            }
            None => tracing::info!(status, bytes_in, bytes, latency_ms, "request served"),
        }
    }
}

/// Writes the log line it holds when dropped.
struct LogOnDrop(Option<RequestLogLine>);

impl Drop for LogOnDrop {
    fn drop(&mut self) {
        if let Some(line) = self.0.take() {
            line.write();
        }
    }
}

/// A body that adds the size of every data frame it yields to `count`. A response body carries its
/// request's log line, written when the body is dropped: after its last byte, or when the client
/// went away before it.
struct CountedBody {
    inner: Body,
    count: Arc<AtomicU64>,
    _log: LogOnDrop,
}

impl HttpBody for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.count.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

const SECURITY_HEADERS: [(header::HeaderName, &str); 5] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "strict-origin-when-cross-origin"),
    (
        header::HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=()",
    ),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    ),
];

/// The contract's security headers on every response (a route may set a laxer CSP for itself).
pub async fn security_headers(State(hsts): State<bool>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    if hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    response
}

/// Where browsers are sent instead of an error page.
#[derive(Clone, Debug)]
pub struct BrowserRedirect {
    /// `FRONTEND_URL`, no trailing slash.
    pub frontend_url: String,
    /// `FILES_URL`, no trailing slash: the sign-in page sends the browser back under it.
    pub files_url: String,
}

/// Browser navigation (`GET` accepting `text/html`): 401 → sign-in, 403/404/5xx → the error page.
pub async fn browser_redirect(
    State(target): State<BrowserRedirect>,
    request: Request,
    next: Next,
) -> Response {
    let navigation = request.method() == Method::GET
        && request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"));
    if !navigation {
        return next.run(request).await;
    }
    let original = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_owned(),
        |pq| pq.as_str().to_owned(),
    );
    let response = next.run(request).await;
    let status = response.status();
    let error = response.extensions().get::<ErrorInfo>().cloned();
    let redirect = |to: &str| {
        let mut redirected = found(to);
        if let Some(error) = error.clone() {
            // The log line and metrics still see the error behind the redirect.
            redirected.extensions_mut().insert(error);
        }
        redirected
    };
    if status == StatusCode::UNAUTHORIZED {
        // Routes are matched under `/files`, whatever prefix the client's URL had.
        let rest = original.strip_prefix("/files").unwrap_or(&original);
        let back = format!("{}{rest}", target.files_url);
        let to = format!(
            "{}/auth/signin/?redirectUrl={}",
            target.frontend_url,
            encode_uri_component(&back)
        );
        return redirect(&to);
    }
    if status == StatusCode::FORBIDDEN
        || status == StatusCode::NOT_FOUND
        || status.is_server_error()
    {
        return redirect(&format!("{}/error/", target.frontend_url));
    }
    response
}

fn found(location: &str) -> Response {
    let mut response = Redirect::to(location).into_response();
    *response.status_mut() = StatusCode::FOUND;
    response
}

/// With `DEBUG=true`, 5xx bodies carry the error chain in `details.reason`.
pub async fn debug_details(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if !response.status().is_server_error() {
        return response;
    }
    let Some(info) = response.extensions().get::<ErrorInfo>().cloned() else {
        return response;
    };
    let (mut parts, _) = response.into_parts();
    let rebuilt = error_response(parts.status, info.code, info.message, Some(info.chain));
    let (new_parts, body): (_, Body) = rebuilt.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    if let Some(ct) = new_parts.headers.get(header::CONTENT_TYPE) {
        parts.headers.insert(header::CONTENT_TYPE, ct.clone());
    }
    Response::from_parts(parts, body)
}

/// What the rate-limit middleware needs.
#[derive(Clone)]
pub struct RateLimitState {
    /// The limits.
    pub check: stowage_application::use_cases::CheckRateLimit,
    /// Take the client from `X-Real-IP`.
    pub trust_proxy_headers: bool,
}

/// Limits `/files` routes per client: uploads and everything else apart. Health, metrics and
/// docs are never limited. Runs before authentication, as the contract's order of checks says.
pub async fn rate_limit(
    State(limits): State<RateLimitState>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if path != "/files" && !path.starts_with("/files/") {
        return next.run(request).await;
    }
    let method = request.method();
    // Asking for an upload URL (`POST /files/upload-url`) is classed with signed-URL creation,
    // as a download; only the upload made on it counts as one.
    // A resumable upload counts once, at its creation; its PATCHes are classed as downloads,
    // or a file sent in many chunks would use up the upload budget by itself.
    let upload = (method == Method::POST
        && (path == "/files" || path == "/files/upload" || path == "/files/tus"))
        || ((method == Method::POST || method == Method::PUT)
            && path.starts_with("/files/upload-url/"));
    let class = if upload {
        stowage_application::ports::RateClass::Upload
    } else {
        stowage_application::ports::RateClass::Download
    };
    let client = client_address(&request, limits.trust_proxy_headers);
    if let Err(e) = limits.check.execute(&client, class).await {
        return crate::error::ApiError::App(e).into_response();
    }
    next.run(request).await
}

/// The client: `X-Real-IP` when the proxy is trusted, else the peer address.
pub fn client_address(request: &Request, trust_proxy_headers: bool) -> String {
    client_address_of(request.headers(), request.extensions(), trust_proxy_headers)
}

/// [`client_address`] from a request's parts.
pub fn client_address_of(
    headers: &axum::http::HeaderMap,
    extensions: &axum::http::Extensions,
    trust_proxy_headers: bool,
) -> String {
    let forwarded = headers
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| v.parse::<std::net::IpAddr>().is_ok());
    if let (true, Some(ip)) = (trust_proxy_headers, forwarded) {
        return ip.to_owned();
    }
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
}

/// CORS for `origins`, with credentials, the credential headers and `Range` allowed.
pub fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_credentials(true)
            .allow_methods([
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::OPTIONS,
                Method::PATCH,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::HeaderName::from_static("x-guest-authorization"),
                header::HeaderName::from_static("x-public-authorization"),
                header::RANGE,
                header::CONTENT_TYPE,
                header::IF_NONE_MATCH,
                header::IF_RANGE,
                // A raw upload on an upload URL names its file with it.
                header::CONTENT_DISPOSITION,
                header::HeaderName::from_static("x-request-id"),
                // tus requests.
                header::HeaderName::from_static("tus-resumable"),
                header::HeaderName::from_static("upload-length"),
                header::HeaderName::from_static("upload-defer-length"),
                header::HeaderName::from_static("upload-offset"),
                header::HeaderName::from_static("upload-metadata"),
                header::HeaderName::from_static("upload-concat"),
                header::HeaderName::from_static("upload-checksum"),
            ])
            .expose_headers([
                header::CONTENT_DISPOSITION,
                header::CONTENT_RANGE,
                header::ETAG,
                header::LOCATION,
                header::CONTENT_LENGTH,
                header::ACCEPT_RANGES,
                header::HeaderName::from_static("x-request-id"),
                // tus answers.
                header::HeaderName::from_static("tus-resumable"),
                header::HeaderName::from_static("tus-version"),
                header::HeaderName::from_static("tus-extension"),
                header::HeaderName::from_static("tus-max-size"),
                header::HeaderName::from_static("tus-checksum-algorithm"),
                header::HeaderName::from_static("upload-offset"),
                header::HeaderName::from_static("upload-length"),
                header::HeaderName::from_static("upload-defer-length"),
                header::HeaderName::from_static("upload-metadata"),
                header::HeaderName::from_static("upload-concat"),
                header::HeaderName::from_static("upload-expires"),
                header::HeaderName::from_static("stowage-file-id"),
                header::HeaderName::from_static("stowage-file-url"),
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// `http_requests_total`, `http_request_duration_seconds` (by route template, never the raw
/// path) and `http_requests_in_flight`.
pub async fn http_metrics(request: Request, next: Next) -> Response {
    let route = route_of(&request);
    let method = method_label(request.method());
    let in_flight = InFlight::enter();
    let started = Instant::now();
    let response = next.run(request).await;
    drop(in_flight);
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

/// One request in `http_requests_in_flight`, also when the client goes away before the answer.
struct InFlight(metrics::Gauge);

impl InFlight {
    fn enter() -> Self {
        let gauge = metrics::gauge!("http_requests_in_flight");
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Keeps a client's `X-Request-Id` only when it comes through a trusted proxy; otherwise a
/// fresh id is made, so clients cannot forge log correlation.
pub async fn untrusted_request_id(
    State(trusted): State<bool>,
    mut request: Request,
    next: Next,
) -> Response {
    if !trusted {
        request.headers_mut().remove("x-request-id");
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use axum::Router;
    use axum::routing::post;
    use tower::ServiceExt;
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// Log output kept in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl MakeWriter<'_> for Captured {
        type Writer = Captured;

        fn make_writer(&self) -> Captured {
            self.clone()
        }
    }

    #[tokio::test]
    async fn a_request_dropped_before_its_response_is_logged_as_abandoned() {
        let captured = Captured::default();
        let _default = tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .json()
                .with_writer(captured.clone())
                .finish(),
        );
        let app = Router::new()
            .route(
                "/slow",
                post(|body: Body| async move {
                    let _ = axum::body::to_bytes(body, usize::MAX).await;
                    std::future::pending::<()>().await;
                }),
            )
            .layer(axum::middleware::from_fn(request_log));
        let request = Request::post("/slow")
            .body(Body::from("twelve bytes"))
            .unwrap();
        let call = app.oneshot(request);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), call)
                .await
                .is_err()
        );

        let output = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = output
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{output}");
        let line = &lines[0];
        assert_eq!(
            line["fields"]["message"],
            "request abandoned before its response"
        );
        assert_eq!(line["fields"]["bytes_in"], 12);
        assert_eq!(line["span"]["matched_path"], "/slow");
    }
}
