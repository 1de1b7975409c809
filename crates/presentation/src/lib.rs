//! Stowage's HTTP layer: the axum router, extractors, middleware and the one error → HTTP mapping.

pub mod client_limits;
pub mod dto;
pub mod error;
pub mod extract;
pub mod headers;
mod keep_alive;
mod middleware;
mod openapi;
mod routes;
pub mod state;
mod transfer;
mod upload;
pub mod validated;

/// Parsers of client input that are private to the HTTP layer, public only to the fuzz targets
/// (cargo fuzz builds with `--cfg fuzzing`); no build of the service has this module.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::middleware::client_address_of;
    pub use crate::routes::tus::headers::{
        concat_of, creation_length, optional_number, required_number, text, upload_checksum,
    };
    pub use crate::upload::framing::{Bounded, FramingTooLong, PartStarts, bounded};
}

use axum::Router;
use axum::http::HeaderName;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use client_limits::RequestLimits;
pub use error::ApiError;
pub use state::{AppState, HttpSettings, Services};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Every route with its documentation: the router and `/openapi.json` are built from this list.
fn api_routes() -> OpenApiRouter<AppState> {
    use routes::{direct, docs, download, files, health, keys, metrics, tus, upload_urls};
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(files::upload_file, files::list_files))
        .routes(routes!(files::upload_file_alias))
        .routes(routes!(
            download::download_file,
            files::delete_file,
            files::update_file
        ))
        .routes(routes!(files::file_info))
        .routes(routes!(download::create_signed_url))
        .routes(routes!(keys::download_by_key, keys::delete_by_key))
        .routes(routes!(keys::file_info_by_key))
        .routes(routes!(keys::create_signed_urls))
        .routes(routes!(upload_urls::create_upload_url))
        .routes(routes!(direct::start_direct_upload))
        .routes(routes!(direct::complete_direct_upload))
        .routes(routes!(tus::tus_options, tus::tus_create))
        .routes(routes!(
            tus::tus_status,
            tus::tus_append,
            tus::tus_terminate,
            tus::tus_upload_options
        ))
        .routes(routes!(
            upload_urls::upload_with_url,
            upload_urls::upload_with_url_raw
        ))
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(metrics::metrics))
        .routes(routes!(docs::openapi_json))
        .routes(routes!(docs::docs_page))
}

/// The OpenAPI document of [`router`], as served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    split().1
}

/// The router and its document, completed where the route annotations leave off.
fn split() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut api) = api_routes().split_for_parts();
    openapi::complete(&mut api);
    (router, api)
}

/// The whole HTTP API over `state`. Every file route is also served at the root (`POST /upload`,
/// `GET /{file_id}`, …): Pneumatic's nginx strips `/files/` before it proxies, and its backend
/// calls `{FILE_SERVICE_URL}/upload`.
pub fn router(state: AppState) -> Router {
    let routes = routes_under_files(state);
    Router::new().fallback_service(tower::ServiceExt::map_request(routes, under_files))
}

/// The request as the routes see it: a file route asked at the root gets its `/files` prefix.
fn under_files(mut request: axum::extract::Request) -> axum::extract::Request {
    let path = request.uri().path();
    let served_as_is = path == "/files"
        || path.starts_with("/files/")
        || path == "/health"
        || path.starts_with("/health/")
        || matches!(path, "/metrics" | "/openapi.json" | "/docs");
    if served_as_is {
        return request;
    }
    let prefixed = match request.uri().query() {
        Some(query) => format!("/files{}?{query}", path.trim_end_matches('/')),
        None => format!("/files{}", path.trim_end_matches('/')),
    };
    let mut parts = request.uri().clone().into_parts();
    if let Ok(path_and_query) = prefixed.parse() {
        parts.path_and_query = Some(path_and_query);
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// The routes under their `/files` paths, with every middleware.
fn routes_under_files(state: AppState) -> Router {
    let settings = state.settings().clone();
    let rate_limit = state.services().rate_limit.clone();
    let (api_router, api) = split();
    let doc = routes::docs::OpenApiJson(std::sync::Arc::new(api.to_json().unwrap_or_default()));
    let mut app = api_router
        .layer(axum::Extension(doc))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .with_state(state);
    if settings.debug {
        app = app.layer(axum::middleware::from_fn(middleware::debug_details));
    }
    if let Some(frontend) = settings.frontend_url.clone() {
        let redirect = middleware::BrowserRedirect {
            frontend_url: frontend,
            files_url: settings.files_url.clone(),
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
        settings.limits.body_idle_timeout,
        transfer::body_idle_timeout,
    ))
    .layer(axum::middleware::from_fn_with_state(
        settings.hsts,
        middleware::security_headers,
    ))
    .layer(axum::middleware::from_fn(middleware::http_metrics))
    .layer(axum::middleware::from_fn(middleware::request_log))
    .layer(axum::middleware::from_fn(
        keep_alive::close_after_unread_body,
    ))
    .layer(PropagateRequestIdLayer::new(REQUEST_ID))
    .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
    .layer(axum::middleware::from_fn_with_state(
        settings.trust_proxy_headers,
        middleware::untrusted_request_id,
    ))
}
