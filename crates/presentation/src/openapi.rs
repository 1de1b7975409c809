//! The OpenAPI document: paths come from the handlers the router serves, so they cannot drift.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Document-level information, tags, shared schemas and the contract's security schemes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Stowage",
        description = "File service: upload, download (whole or by range) under access control, list, delete, signed URLs.",
    ),
    tags(
        (name = "files", description = "Upload, download, info, list, delete, signed URLs"),
        (name = "health", description = "Liveness and readiness"),
        (name = "operations", description = "Metrics and this documentation"),
    ),
    components(schemas(crate::error::ErrorBody, crate::error::Details)),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "A user's HS256 JWT (claims user_id, account_id, exp; a guest JWT is refused here) or an opaque Django user token looked up in Redis",
            ))
            .build();
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        let header = |name: &str, description: &str| {
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                name,
                description,
            )))
        };
        let cookie = |name: &str, description: &str| {
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                name,
                description,
            )))
        };
        components.add_security_scheme(
            "guest",
            header(
                "X-Guest-Authorization",
                "HS256 JWT of a workflow guest (token_type \"Guest\" or a task_id claim)",
            ),
        );
        components.add_security_scheme(
            "public",
            header(
                "X-Public-Authorization",
                "`Token <t>`: a public form (8 characters) or embed (32) token",
            ),
        );
        components.add_security_scheme(
            "cookie_user",
            cookie(
                "file_service_auth",
                "User token, as Authorization: Bearer (the `token` cookie also works)",
            ),
        );
        components.add_security_scheme("cookie_guest", cookie("guest-token", "Guest JWT"));
        components.add_security_scheme(
            "cookie_public",
            cookie("public-token", "Public token, bare or `Token <t>`"),
        );
        components.add_security_scheme(
            "signed_url",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "signature",
                "With `expires`: a URL made by POST /files/{file_id}/signed-url, for GET and HEAD of that file",
            ))),
        );
    }
}
