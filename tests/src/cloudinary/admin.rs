//! The Admin API (ping, resource listing, deletion by prefix) and signed destroy.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::{Refusal, Reply, Resource, Route, Shared, check_resource_type, error, hex};

impl Shared {
    fn check_basic(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(credentials) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
        else {
            return Err(error(401, "Must supply api_key"));
        };
        let decoded = STANDARD
            .decode(credentials.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok());
        match decoded.as_deref().and_then(|d| d.split_once(':')) {
            Some((key, secret)) if key == self.api_key && secret == self.api_secret => Ok(()),
            Some((key, _)) if key != self.api_key => {
                Err(error(401, format!("Unknown API key {key}")))
            }
            _ => Err(error(401, "Invalid credentials")),
        }
    }
}

fn parse_form(body: &[u8]) -> BTreeMap<String, String> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

pub(super) async fn destroy(
    State(s): State<Arc<Shared>>,
    Path((cloud, resource_type)): Path<(String, String)>,
    request: Request,
) -> Reply {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let fields = parse_form(&body);
    s.begin(Route::Destroy, &parts, &cloud, fields.clone(), None)?;
    check_resource_type(&resource_type)?;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(error(
            400,
            "This fake reads only application/x-www-form-urlencoded bodies",
        ));
    }
    s.check_signed(&fields)?;
    let Some(public_id) = fields.get("public_id") else {
        return Err(error(400, "Missing required parameter - public_id"));
    };
    let authenticated = fields.get("type").map(String::as_str) == Some("authenticated");
    let mut store = s.store.lock().unwrap();
    let removed = authenticated
        && store
            .resources
            .remove(&(resource_type, public_id.clone()))
            .is_some();
    Ok(Json(json!({ "result": if removed { "ok" } else { "not found" } })).into_response())
}

pub(super) async fn ping(
    State(s): State<Arc<Shared>>,
    Path(cloud): Path<String>,
    request: Request,
) -> Reply {
    let (parts, _) = request.into_parts();
    s.begin(Route::Ping, &parts, &cloud, BTreeMap::new(), None)?;
    s.check_basic(&parts.headers)?;
    Ok(Json(json!({ "status": "ok" })).into_response())
}

pub(super) async fn list(
    State(s): State<Arc<Shared>>,
    Path((cloud, resource_type, kind)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Reply {
    let (parts, _) = request.into_parts();
    let params = parse_form(query.unwrap_or_default().as_bytes());
    s.begin(Route::List, &parts, &cloud, params.clone(), None)?;
    s.check_basic(&parts.headers)?;
    check_resource_type(&resource_type)?;
    let max = match params.get("max_results").map(|m| m.parse::<usize>()) {
        None => 10,
        Some(Ok(max @ 1..=500)) => max,
        Some(_) => return Err(error(400, "max_results must be between 1 and 500")),
    };
    let after = match params.get("next_cursor") {
        None => None,
        Some(cursor) => Some(from_cursor(cursor).ok_or_else(|| error(400, "Invalid next_cursor"))?),
    };
    let prefix = params.get("prefix").cloned().unwrap_or_default();
    let store = s.store.lock().unwrap();
    let mut page: Vec<(&String, &Resource)> = store
        .resources
        .iter()
        .filter(|((t, id), _)| {
            kind == "authenticated" && *t == resource_type && id.starts_with(&prefix)
        })
        .filter(|((_, id), _)| after.as_ref().is_none_or(|a| id > a))
        .map(|((_, id), r)| (id, r))
        .take(max + 1)
        .collect();
    let more = page.len() > max;
    page.truncate(max);
    let resources: Vec<Value> = page
        .iter()
        .map(|(id, r)| {
            let mut v = json!({ "public_id": id, "resource_type": resource_type, "type": "authenticated", "bytes": r.bytes.len(), "created_at": r.created_at, "version": r.version });
            if let Some(format) = &r.format {
                v["format"] = json!(format);
            }
            v
        })
        .collect();
    let mut answer = json!({ "resources": resources });
    if let (true, Some((id, _))) = (more, page.last()) {
        answer["next_cursor"] = json!(hex(id.as_bytes()));
    }
    Ok(Json(answer).into_response())
}

/// Most resources one deletion removes, as Cloudinary documents.
const DELETE_LIMIT: usize = 1000;

pub(super) async fn delete_resources(
    State(s): State<Arc<Shared>>,
    Path((cloud, resource_type, kind)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Reply {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let mut params = parse_form(query.unwrap_or_default().as_bytes());
    params.extend(parse_form(&body));
    s.begin(Route::DeleteResources, &parts, &cloud, params.clone(), None)?;
    s.check_basic(&parts.headers)?;
    check_resource_type(&resource_type)?;
    let selectors = ["public_ids[]", "prefix", "all"]
        .into_iter()
        .filter(|p| params.contains_key(*p))
        .count();
    if selectors != 1 {
        return Err(error(
            400,
            "Must specify exactly one of public_ids, prefix or all",
        ));
    }
    let Some(prefix) = params.get("prefix").filter(|p| !p.is_empty()) else {
        return Err(error(400, "This fake deletes only by a non-empty prefix"));
    };
    if params
        .get("next_cursor")
        .is_some_and(|c| from_cursor(c).is_none())
    {
        return Err(error(400, "Invalid next_cursor"));
    }
    let mut store = s.store.lock().unwrap();
    let matching: Vec<(String, String)> = store
        .resources
        .keys()
        .filter(|(t, id)| {
            kind == "authenticated" && *t == resource_type && id.starts_with(prefix.as_str())
        })
        .take(DELETE_LIMIT + 1)
        .cloned()
        .collect();
    let partial = matching.len() > DELETE_LIMIT;
    let mut deleted = serde_json::Map::new();
    for key in matching.into_iter().take(DELETE_LIMIT) {
        store.resources.remove(&key);
        deleted.insert(key.1, json!("deleted"));
    }
    let mut answer = json!({ "partial": partial });
    if let (true, Some(last)) = (partial, deleted.keys().next_back()) {
        answer["next_cursor"] = json!(hex(last.as_bytes()));
    }
    answer["deleted"] = Value::Object(deleted);
    Ok(Json(answer).into_response())
}

fn from_cursor(cursor: &str) -> Option<String> {
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(cursor.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}
