//! Stowage's HTTP layer: the axum router, extractors, middleware and the one error → HTTP mapping.

pub mod dto;
pub mod error;
pub mod extract;
pub mod headers;
mod middleware;
mod routes;
pub mod state;
mod upload;

use axum::Router;
use axum::http::HeaderName;
use axum::routing::{get, post};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

pub use error::ApiError;
pub use state::{AppState, HttpSettings, Services};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole HTTP API over `state`.
pub fn router(state: AppState) -> Router {
    let settings = state.settings().clone();
    let rate_limit = state.services().rate_limit.clone();
    let mut app = Router::new()
        .route(
            "/files",
            post(routes::files::upload_file).get(routes::files::list_files),
        )
        .route("/files/upload", post(routes::files::upload_file))
        .route(
            "/files/{file_id}",
            get(routes::files::download_file).delete(routes::files::delete_file),
        )
        .route("/files/{file_id}/info", get(routes::files::file_info))
        .route(
            "/files/{file_id}/signed-url",
            post(routes::files::create_signed_url),
        )
        .route("/health/live", get(routes::health::live))
        .route("/health/ready", get(routes::health::ready))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .with_state(state);
    if settings.debug {
        app = app.layer(axum::middleware::from_fn(middleware::debug_details));
    }
    if let Some(frontend) = settings.frontend_url.clone() {
        let redirect = middleware::BrowserRedirect {
            frontend_url: frontend,
            public_url: settings.public_url.clone(),
        };
        app = app.layer(axum::middleware::from_fn_with_state(
            redirect,
            middleware::browser_redirect,
        ));
    }
    if let Some(check) = rate_limit {
        let limits = middleware::RateLimitState {
            check,
            trust_proxy_headers: settings.trust_proxy_headers,
        };
        app = app.layer(axum::middleware::from_fn_with_state(
            limits,
            middleware::rate_limit,
        ));
    }
    if let Some(cors) = middleware::cors(&settings.allowed_origins) {
        app = app.layer(cors);
    }
    app.layer(axum::middleware::from_fn_with_state(
        settings.hsts,
        middleware::security_headers,
    ))
    .layer(axum::middleware::from_fn(middleware::request_log))
    .layer(PropagateRequestIdLayer::new(REQUEST_ID))
    .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}
