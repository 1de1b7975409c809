//! `GET /openapi.json` and `GET /docs`, a page that renders it and needs nothing from the network.

use std::sync::Arc;

use axum::Extension;
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The serialised OpenAPI document.
#[derive(Clone)]
pub struct OpenApiJson(pub Arc<String>);

/// The OpenAPI 3 document of every route.
#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json", body = Object))
)]
pub async fn openapi_json(Extension(doc): Extension<OpenApiJson>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.0.as_str().to_owned(),
    )
        .into_response()
}

/// The documentation page.
#[utoipa::path(
    get, path = "/docs", tag = "operations",
    responses((status = 200, description = "HTML page rendering /openapi.json", content_type = "text/html", body = String))
)]
pub async fn docs_page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
            ),
        ],
        include_str!("docs.html"),
    )
        .into_response()
}
