//! `Validated<T>`: the one way a query string or a JSON body becomes a request DTO.
//!
//! The DTO is deserialised, then checked with its `validator` rules; any failure of either step
//! is the contract's `400 VALIDATION_ERROR`, its `details.reason` saying what is wrong.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use stowage_application::Error;
use validator::{Validate, ValidationErrors};

use crate::error::ApiError;

/// A request DTO that has been deserialised and validated.
///
/// - `Validated<Query<T>>`: the query string.
/// - `Validated<Json<T>>`: a small JSON control body (never a file body) of at most
///   [`MAX_JSON_BODY`] bytes, whatever its `Content-Type`; an empty body (no bytes at all) is
///   `T::default()`, while white space alone, `null`, an array or any other text that is not a
///   JSON object of `T`'s shape is refused.
#[derive(Clone, Debug)]
pub struct Validated<T>(pub T);

/// Largest JSON control body accepted.
pub const MAX_JSON_BODY: usize = 16 * 1024;

impl<T, S> FromRequestParts<S> for Validated<Query<T>>
where
    T: DeserializeOwned + Validate + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(value) =
            Query::<T>::from_request_parts(parts, state)
                .await
                .map_err(|rejection| {
                    // The deserialiser's own words (the DTO's messages), without axum's preamble.
                    let reason = std::error::Error::source(&rejection)
                        .map_or_else(|| rejection.body_text(), ToString::to_string);
                    ApiError::validation(without_repeated_field(reason))
                })?;
        check(&value)?;
        Ok(Validated(Query(value)))
    }
}

impl<T, S> FromRequest<S> for Validated<Json<T>>
where
    T: DeserializeOwned + Validate + Default + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::to_bytes(request.into_body(), MAX_JSON_BODY)
            .await
            .map_err(|e| {
                if crate::transfer::is_body_idle(&e) {
                    ApiError::App(Error::RequestTimeout)
                } else {
                    ApiError::validation(format!(
                        "the body must be JSON of at most {MAX_JSON_BODY} bytes"
                    ))
                }
            })?;
        // Only a body of no bytes means "no body": white space alone is not a JSON text.
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        let value = if bytes.is_empty() {
            T::default()
        } else if first != Some(&b'{') {
            // Serde would read a struct from an array too; the contract's bodies are objects.
            return Err(ApiError::validation(
                "invalid JSON body: the body must be a JSON object",
            ));
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::validation(format!("invalid JSON body: {e}")))?
        };
        check(&value)?;
        Ok(Validated(Json(value)))
    }
}

/// `"limit: limit must be …"` as `"limit must be …"`: a message that names its field already
/// needs no path in front of it.
fn without_repeated_field(reason: String) -> String {
    match reason.split_once(": ") {
        Some((field, message)) if !field.is_empty() && message.contains(field) => {
            message.to_owned()
        }
        _ => reason,
    }
}

fn check<T: Validate>(value: &T) -> Result<(), ApiError> {
    value
        .validate()
        .map_err(|errors| ApiError::validation(reason_of(&errors)))
}

/// Every failed rule's message (or `"{field} is not valid"`), in a stable order.
fn reason_of(errors: &ValidationErrors) -> String {
    let mut reasons: Vec<String> = errors
        .field_errors()
        .into_iter()
        .flat_map(|(field, list)| {
            list.iter().map(move |e| {
                e.message
                    .as_ref()
                    .map_or_else(|| format!("{field} is not valid"), ToString::to_string)
            })
        })
        .collect();
    reasons.sort();
    reasons.dedup();
    if reasons.is_empty() {
        "the request is not valid".to_owned()
    } else {
        reasons.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dto::{Disposition, DownloadQuery, ListQuery, SignedUrlRequest, UploadQuery};
    use axum::body::Body;
    use axum::response::IntoResponse;

    async fn query<T: DeserializeOwned + Validate + Send>(q: &str) -> Result<T, String> {
        let (mut parts, ()) = axum::http::Request::builder()
            .uri(format!("/files?{q}"))
            .body(())
            .unwrap()
            .into_parts();
        match Validated::<Query<T>>::from_request_parts(&mut parts, &()).await {
            Ok(Validated(Query(value))) => Ok(value),
            Err(e) => Err(reason(e).await),
        }
    }

    async fn body(text: &str) -> Result<SignedUrlRequest, String> {
        let request = axum::http::Request::builder()
            .method("POST")
            .uri("/files/x/signed-url")
            .body(Body::from(text.to_owned()))
            .unwrap();
        match Validated::<Json<SignedUrlRequest>>::from_request(request, &()).await {
            Ok(Validated(Json(value))) => Ok(value),
            Err(e) => Err(reason(e).await),
        }
    }

    async fn reason(error: ApiError) -> String {
        let response = error.into_response();
        assert_eq!(response.status(), 400);
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["code"], "VALIDATION_ERROR");
        json["details"]["reason"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn limit_is_an_integer_from_1_to_1000() {
        for good in ["1", "50", "1000"] {
            let q: ListQuery = query(&format!("limit={good}")).await.unwrap();
            assert_eq!(q.limit.map(|l| l.to_string()).as_deref(), Some(good));
        }
        for bad in ["0", "1001", "abc", "-1", "1.5", ""] {
            let reason = query::<ListQuery>(&format!("limit={bad}"))
                .await
                .unwrap_err();
            assert_eq!(reason, "limit must be an integer from 1 to 1000", "{bad:?}");
        }
        assert_eq!(query::<ListQuery>("").await.unwrap().limit, None);
    }

    #[tokio::test]
    async fn cursor_must_be_one_the_service_wrote() {
        let reason = query::<ListQuery>("cursor=garbage").await.unwrap_err();
        assert_eq!(reason, "cursor is not valid");
        assert!(
            query::<ListQuery>("cursor=")
                .await
                .unwrap()
                .cursor
                .is_none()
        );
        let reason = query::<ListQuery>("colour=red").await.unwrap_err();
        assert!(reason.contains("unknown field `colour`"), "{reason}");
    }

    #[tokio::test]
    async fn disposition_is_a_closed_list_and_a_policy_a_name() {
        let q: DownloadQuery = query("disposition=inline&expires=1&signature=ab")
            .await
            .unwrap();
        assert_eq!(q.disposition, Some(Disposition::Inline));
        let reason = query::<DownloadQuery>("disposition=evil")
            .await
            .unwrap_err();
        assert_eq!(reason, "disposition must be 'attachment' or 'inline'");
        let q: UploadQuery = query("policy=avatar").await.unwrap();
        assert_eq!(q.policy.as_deref(), Some("avatar"));
        // Which names exist is the configuration's: the use case refuses an unknown one.
        let q: UploadQuery = query("policy=banner").await.unwrap();
        assert_eq!(q.policy.as_deref(), Some("banner"));
    }

    #[tokio::test]
    async fn signed_url_body_is_empty_or_an_object_with_a_lifetime_in_range() {
        assert_eq!(body("").await.unwrap().expires_in, None);
        assert_eq!(body(" {}\n").await.unwrap().expires_in, None);
        assert_eq!(body("{}").await.unwrap().expires_in, None);
        assert_eq!(
            body(r#"{"expires_in": null}"#).await.unwrap().expires_in,
            None
        );
        assert_eq!(
            body(r#"{"expires_in": 604800}"#).await.unwrap().expires_in,
            Some(604_800)
        );
        for bad in ["0", "604801", "-1"] {
            let reason = body(&format!(r#"{{"expires_in": {bad}}}"#))
                .await
                .unwrap_err();
            assert_eq!(reason, "expires_in must be from 1 to 604800 seconds");
        }
        for bad in [
            r#"{"expires_in": "soon"}"#,
            "null",
            "[]",
            "\r",
            " \n",
            r#"{"x": 1}"#,
            "{",
        ] {
            let reason = body(bad).await.unwrap_err();
            assert!(reason.starts_with("invalid JSON body: "), "{bad}: {reason}");
        }
    }

    #[test]
    fn the_lifetime_range_is_the_use_case_range() {
        let max = stowage_application::use_cases::MAX_SIGNED_URL_LIFETIME.as_secs();
        let too_long = SignedUrlRequest {
            expires_in: Some(i64::try_from(max).unwrap() + 1),
            ..SignedUrlRequest::default()
        };
        let longest = SignedUrlRequest {
            expires_in: Some(i64::try_from(max).unwrap()),
            ..SignedUrlRequest::default()
        };
        assert!(too_long.validate().is_err());
        assert!(longest.validate().is_ok());
    }
}
