//! The OpenAPI document: paths come from the handlers the router serves, so they cannot drift.

use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{OpenApi as Document, PathItem, RefOr, Required};
use utoipa::{Modify, OpenApi};

/// The credentials every file route takes, in the contract's order (the schemes below).
const CREDENTIALS: [&str; 6] = [
    "bearer",
    "guest",
    "public",
    "cookie_user",
    "cookie_guest",
    "cookie_public",
];

/// The operations a signed URL also opens.
const SIGNED_URL_OPERATIONS: [&str; 1] = ["download_file"];

/// Operations whose JSON body may be left out (an empty body means every default).
const OPTIONAL_BODY_OPERATIONS: [&str; 4] = [
    "create_signed_url",
    "create_upload_url",
    "complete_direct_upload",
    "update_file",
];

/// File routes that take no credential: the URL itself authorises an upload URL's, and tus's
/// `OPTIONS` tells anyone what the server speaks.
const UNCREDENTIALED_OPERATIONS: [&str; 4] = [
    "upload_with_url",
    "upload_with_url_raw",
    "tus_options",
    "tus_upload_options",
];

/// The upload operations, whose `metadata` query parameter is a JSON object.
const UPLOAD_OPERATIONS: [&str; 2] = ["upload_file", "upload_file_alias"];

/// The names a part of an upload form may have: any text without control characters (a
/// multipart header cannot carry them; such a body is malformed, `400`).
const FORM_FIELD_NAME: &str = "^[^\\u0000-\\u0008\\u000A-\\u001F\\u007F]*$";

/// What the route annotations leave to one place, applied once every route is in `doc`:
/// every file route (`/files` and below) takes the credentials, and a download also a signed
/// URL; health, metrics and documentation take none. Optional bodies are marked so.
pub fn complete(doc: &mut Document) {
    wildcards_as_parameters(doc);
    if let Some(RefOr::T(Schema::Object(form))) = doc
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut("UploadForm"))
    {
        form.property_names = Some(Box::new(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(FORM_FIELD_NAME))
                .into(),
        ));
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        let file_route = path == "/files" || path.starts_with("/files/");
        for operation in operations(item) {
            let id = operation.operation_id.clone().unwrap_or_default();
            if file_route && !UNCREDENTIALED_OPERATIONS.contains(&id.as_str()) {
                let mut security: Vec<SecurityRequirement> = CREDENTIALS
                    .iter()
                    .map(|name| SecurityRequirement::new::<_, [&str; 0], &str>(*name, []))
                    .collect();
                if SIGNED_URL_OPERATIONS.contains(&id.as_str()) {
                    security.push(SecurityRequirement::new::<_, [&str; 0], &str>(
                        "signed_url",
                        [],
                    ));
                }
                operation.security = Some(security);
            }
            if UPLOAD_OPERATIONS.contains(&id.as_str()) {
                metadata_as_json(operation);
            }
            if OPTIONAL_BODY_OPERATIONS.contains(&id.as_str())
                && let Some(body) = operation.request_body.as_mut()
            {
                body.required = Some(Required::False);
            }
        }
    }
}

/// `/files/by-key/{*key}` (the router's wildcard) as OpenAPI writes a parameter: `{key}`.
fn wildcards_as_parameters(doc: &mut Document) {
    let paths = std::mem::take(&mut doc.paths.paths);
    doc.paths.paths = paths
        .into_iter()
        .map(|(path, item)| (path.replace("{*", "{"), item))
        .collect();
}

/// The `metadata` query parameter is JSON text: described by `content` (a JSON object) rather
/// than a schema, so that clients serialise it as JSON.
fn metadata_as_json(operation: &mut Operation) {
    let Some(parameters) = operation.parameters.as_mut() else {
        return;
    };
    for parameter in parameters.iter_mut().filter(|p| p.name == "metadata") {
        parameter.schema = None;
        parameter.style = None;
        parameter.explode = None;
        parameter
            .extensions
            .get_or_insert_with(Default::default)
            .insert(
                "content".to_owned(),
                serde_json::json!({"application/json": {"schema": {"type": "object"}}}),
            );
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// Document-level information, tags, shared schemas and the contract's security schemes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Stowage",
        description = "File service: upload, download (whole or by range) under access control, list, delete, signed URLs.",
    ),
    tags(
        (name = "files", description = "Upload, download, info, list, delete, signed URLs"),
        (name = "tus", description = "Resumable uploads, tus 1.0.0"),
        (name = "health", description = "Liveness and readiness"),
        (name = "operations", description = "Metrics and this documentation"),
    ),
    components(schemas(
        crate::error::ErrorBody,
        crate::error::Details,
        crate::dto::TusVersion,
        crate::dto::RawFileBody
    )),
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

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn doc() -> Value {
        serde_json::from_str(&crate::openapi().to_json().unwrap()).unwrap()
    }

    #[test]
    fn key_routes_are_documented_with_their_parameter() {
        let doc = doc();
        let paths = doc["paths"].as_object().unwrap();
        assert!(
            paths.keys().all(|p| !p.contains("{*")),
            "{:?}",
            paths.keys()
        );
        let by_key = &paths["/files/by-key/{key}"];
        for method in ["get", "head", "delete"] {
            let operation = &by_key[method];
            assert_eq!(operation["parameters"][0]["name"], "key", "{method}");
            assert!(
                operation["security"].as_array().unwrap().len() == 6,
                "{method}"
            );
        }
        assert!(paths["/files/info/by-key/{key}"]["get"].is_object());
        assert!(paths["/files/signed-urls"]["post"]["requestBody"]["required"] == true);
    }

    #[test]
    fn upload_metadata_is_a_json_object_parameter() {
        let doc = doc();
        for path in ["/files", "/files/upload"] {
            let parameters = doc["paths"][path]["post"]["parameters"].as_array().unwrap();
            let metadata = parameters.iter().find(|p| p["name"] == "metadata").unwrap();
            assert!(metadata.get("schema").is_none(), "{metadata}");
            assert_eq!(
                metadata["content"]["application/json"]["schema"]["type"],
                "object"
            );
            let key = parameters.iter().find(|p| p["name"] == "key").unwrap();
            assert_eq!(key["schema"]["maxLength"], 512);
        }
        let info = &doc["components"]["schemas"]["FileInfo"];
        assert_eq!(info["properties"]["metadata"]["type"], "object");
        assert!(
            info["required"]
                .as_array()
                .unwrap()
                .contains(&"metadata".into())
        );
    }
}
