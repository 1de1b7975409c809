//! The Upload API: signed multipart uploads, whole or in chunks.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use bytes::{Bytes, BytesMut};
use serde_json::{Value, json};

use super::{
    Pending, Refusal, Reply, Resource, Route, Shared, check_resource_type, error, hex, unix_now,
};

/// Cloudinary's smallest chunk of a chunked upload, but the last.
const MIN_CHUNK: usize = 5_000_000;

/// Fields that never enter the string to sign.
const UNSIGNED: [&str; 5] = [
    "file",
    "api_key",
    "signature",
    "resource_type",
    "cloud_name",
];

impl Shared {
    /// Checks api_key, signature and timestamp of an Upload API call.
    pub(super) fn check_signed(&self, fields: &BTreeMap<String, String>) -> Result<(), Refusal> {
        let field = |name: &str| fields.get(name).map(String::as_str);
        match field("api_key") {
            None => return Err(error(401, "Must supply api_key")),
            Some(key) if key != self.api_key => return Err(error(401, "Invalid api_key")),
            Some(_) => {}
        }
        let Some(timestamp) = field("timestamp") else {
            return Err(error(400, "Missing required parameter - timestamp"));
        };
        let Some(signature) = field("signature") else {
            return Err(error(400, "Missing required parameter - signature"));
        };
        let to_sign = fields
            .iter()
            .filter(|(name, _)| !UNSIGNED.contains(&name.as_str()))
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("&");
        let expected = hex(&self
            .algorithm
            .digest(format!("{to_sign}{}", self.api_secret).as_bytes()));
        if signature != expected {
            let message = format!("Invalid Signature {signature}. String to sign - '{to_sign}'.");
            return Err(error(401, message));
        }
        let Ok(timestamp) = timestamp.parse::<u64>() else {
            return Err(error(400, format!("Invalid timestamp {timestamp}")));
        };
        if unix_now().abs_diff(timestamp) > 3600 {
            let message = format!(
                "Stale request - reported time is {timestamp} which is more than 1 hour from now"
            );
            return Err(error(400, message));
        }
        Ok(())
    }
    pub(super) fn store(&self, resource_type: &str, public_id: &str, bytes: Bytes) -> Value {
        let format = if resource_type == "image" {
            image_format(&bytes).map(str::to_owned)
        } else {
            public_id
                .rsplit_once('.')
                .map(|(_, ext)| ext.to_owned())
                .filter(|e| !e.contains('/'))
        };
        let now = time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap();
        let created_at = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let mut store = self.store.lock().unwrap();
        let version = unix_now().max(store.last_version + 1);
        store.last_version = version;
        let signature = self.delivery_signature(public_id);
        let mut answer = json!({
            "public_id": public_id,
            "version": version,
            "resource_type": resource_type,
            "type": "authenticated",
            "bytes": bytes.len(),
            "created_at": created_at,
            "secure_url": format!("{}/{}/{resource_type}/authenticated/s--{signature}--/v{version}/{public_id}", self.base, self.cloud_name),
        });
        if let Some(format) = &format {
            answer["format"] = json!(format);
        }
        let resource = Resource {
            bytes,
            version,
            created_at,
            format,
        };
        store
            .resources
            .insert((resource_type.to_owned(), public_id.to_owned()), resource);
        answer
    }

    /// Takes one chunk; the whole file once it was the last.
    fn chunk(
        &self,
        id: &str,
        range: Option<&str>,
        resource_type: &str,
        public_id: &str,
        file: Bytes,
    ) -> Result<Option<Bytes>, Refusal> {
        let Some((start, end, total)) = range.and_then(parse_content_range) else {
            return Err(error(400, "Invalid Content-Range header"));
        };
        let mut store = self.store.lock().unwrap();
        let pending = store.pending.get(id);
        if pending.is_some_and(|p| p.resource_type != resource_type || p.public_id != public_id) {
            return Err(error(400, format!("Chunk does not belong to upload {id}")));
        }
        let received = pending.map_or(0, |p| p.data.len() as u64);
        if start != received {
            return Err(error(
                400,
                format!("Chunk out of order: starts at {start}, expected {received}"),
            ));
        }
        if end < start || end - start + 1 != file.len() as u64 {
            return Err(error(400, "Content-Range does not match the chunk's size"));
        }
        if let Some(total) = total
            && (end + 1 > total || pending.and_then(|p| p.total).is_some_and(|t| t != total))
        {
            return Err(error(
                400,
                format!("Content-Range total {total} does not match the upload"),
            ));
        }
        let last = total.is_some_and(|t| end + 1 == t);
        if !last && file.len() < MIN_CHUNK {
            return Err(error(400, "Chunk size is too small"));
        }
        let pending = store
            .pending
            .entry(id.to_owned())
            .or_insert_with(|| Pending {
                resource_type: resource_type.to_owned(),
                public_id: public_id.to_owned(),
                data: BytesMut::new(),
                total: None,
            });
        pending.data.extend_from_slice(&file);
        pending.total = pending.total.or(total);
        if !last {
            return Ok(None);
        }
        Ok(store.pending.remove(id).map(|p| p.data.freeze()))
    }
}

/// `bytes <start>-<end>/<total|-1>`.
fn parse_content_range(value: &str) -> Option<(u64, u64, Option<u64>)> {
    let (range, total) = value.strip_prefix("bytes ")?.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let total = if total == "-1" {
        None
    } else {
        Some(total.parse().ok()?)
    };
    Some((start.parse().ok()?, end.parse().ok()?, total))
}

/// The format Cloudinary would detect from the magic bytes, if it takes the file as an image.
fn image_format(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("jpg")
    } else if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some("png")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("gif")
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Some("webp")
    } else if bytes.len() >= 12 && matches!(&bytes[4..12], b"ftypavif" | b"ftypavis") {
        Some("avif")
    } else {
        None
    }
}

async fn read_multipart(
    headers: &HeaderMap,
    body: Body,
) -> Result<(BTreeMap<String, String>, Option<Bytes>), String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary =
        multer::parse_boundary(content_type).map_err(|e| format!("Invalid multipart body: {e}"))?;
    let mut multipart = multer::Multipart::new(body.into_data_stream(), boundary);
    let (mut fields, mut file) = (BTreeMap::new(), None);
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| format!("Invalid multipart body: {e}"))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        let data = field
            .bytes()
            .await
            .map_err(|e| format!("Invalid multipart body: {e}"))?;
        if name == "file" {
            file = Some(data);
        } else {
            fields.insert(name, String::from_utf8_lossy(&data).into_owned());
        }
    }
    Ok((fields, file))
}

pub(super) async fn upload(
    State(s): State<Arc<Shared>>,
    Path((cloud, resource_type)): Path<(String, String)>,
    request: Request,
) -> Reply {
    let (parts, body) = request.into_parts();
    let form = read_multipart(&parts.headers, body).await;
    let (fields, file_len) = form.as_ref().map_or_else(
        |_| (BTreeMap::new(), None),
        |(f, file)| (f.clone(), file.as_ref().map(Bytes::len)),
    );
    s.begin(Route::Upload, &parts, &cloud, fields, file_len)?;
    check_resource_type(&resource_type)?;
    let (fields, file) = form.map_err(|message| error(400, message))?;
    s.check_signed(&fields)?;
    if fields.get("type").map(String::as_str) != Some("authenticated") {
        return Err(error(400, "This fake stores only type=authenticated"));
    }
    let Some(file) = file else {
        return Err(error(400, "Missing required parameter - file"));
    };
    let public_id = fields
        .get("public_id")
        .filter(|p| !p.is_empty())
        .cloned()
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let data = match header("x-unique-upload-id") {
        None if header("content-range").is_some() => {
            return Err(error(400, "Content-Range without X-Unique-Upload-Id"));
        }
        None if file.is_empty() => return Err(error(400, "Empty file")),
        None => file,
        Some(id) => match s.chunk(
            id,
            header("content-range"),
            &resource_type,
            &public_id,
            file,
        )? {
            Some(data) => data,
            None => {
                let received = s
                    .store
                    .lock()
                    .unwrap()
                    .pending
                    .get(id)
                    .map_or(0, |p| p.data.len());
                return Ok(Json(json!({ "done": false, "bytes": received })).into_response());
            }
        },
    };
    if resource_type == "image" && image_format(&data).is_none() {
        return Err(error(400, "Invalid image file"));
    }
    Ok(Json(s.store(&resource_type, &public_id, data)).into_response())
}
