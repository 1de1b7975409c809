//! Extractors that reject in the contract's JSON shape.

use axum::extract::{FromRequestParts, Path};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};
use stowage_application::use_cases::{CredentialSource, PresentedCredential};
use stowage_domain::{FileId, FileKey, Principal};

use crate::error::ApiError;
use crate::state::AppState;

const GUEST_AUTHORIZATION: HeaderName = HeaderName::from_static("x-guest-authorization");
const PUBLIC_AUTHORIZATION: HeaderName = HeaderName::from_static("x-public-authorization");

/// The `{file_id}` path segment; anything but a canonical lower-case UUID v4 is `404 FILE_NOT_FOUND`.
#[derive(Clone, Copy, Debug)]
pub struct FileIdPath(pub FileId);

impl<S: Send + Sync> FromRequestParts<S> for FileIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::App(stowage_application::Error::NotFound))?;
        let id =
            FileId::parse(&raw).map_err(|_| ApiError::App(stowage_application::Error::NotFound))?;
        tracing::Span::current().record("file_id", tracing::field::display(id));
        Ok(FileIdPath(id))
    }
}

/// The `{*key}` path tail, percent-decoded (`%2F` and `/` alike); one that is not UTF-8 or not a
/// valid key is `404 FILE_NOT_FOUND`, as a malformed id is.
#[derive(Clone, Debug)]
pub struct FileKeyPath(pub FileKey);

impl<S: Send + Sync> FromRequestParts<S> for FileKeyPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::App(stowage_application::Error::NotFound))?;
        let key = FileKey::parse(&raw)
            .map_err(|_| ApiError::App(stowage_application::Error::NotFound))?;
        Ok(FileKeyPath(key))
    }
}

/// The caller, authenticated by the contract's credential order; `401 UNAUTHENTICATED` otherwise.
#[derive(Clone, Debug)]
pub struct Authenticated(pub Principal);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let presented = presented_credentials(&parts.headers);
        let principal = state.services().authenticate.execute(&presented).await?;
        let span = tracing::Span::current();
        span.record("account_id", principal.account_id().get());
        span.record(
            "principal",
            match principal.kind() {
                stowage_domain::PrincipalKind::User => "user",
                stowage_domain::PrincipalKind::Guest => "guest",
                stowage_domain::PrincipalKind::Public => "public",
            },
        );
        Ok(Authenticated(principal))
    }
}

/// Who reads a file: the holder of a signed URL, an authenticated principal, or someone without
/// a valid credential, who may read public files only.
#[derive(Clone)]
pub enum Reader {
    /// `?expires=…&signature=…` (not yet verified).
    Signed {
        /// Expiry, Unix seconds.
        expires: i64,
        /// Hex signature.
        signature: String,
    },
    /// A caller authenticated by its credential.
    Principal(Principal),
    /// A caller without a credential, or with one that did not authenticate (a stale cookie
    /// must not keep a browser from a public image): public files only, else `401`.
    Anonymous,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reader::Signed { expires, .. } => f
                .debug_struct("Signed")
                .field("expires", expires)
                .field("signature", &"[REDACTED]")
                .finish(),
            Reader::Principal(p) => f.debug_tuple("Principal").field(p).finish(),
            Reader::Anonymous => f.write_str("Anonymous"),
        }
    }
}

impl FromRequestParts<AppState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default().to_owned();
        let mut expires = None;
        let mut signature = None;
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("expires", v)) => expires = Some(v),
                Some(("signature", v)) => signature = Some(v),
                _ => {}
            }
        }
        match (expires, signature) {
            (None, None) => match Authenticated::from_request_parts(parts, state).await {
                Ok(Authenticated(principal)) => Ok(Reader::Principal(principal)),
                Err(ApiError::App(stowage_application::Error::Unauthenticated)) => {
                    // Without a credential, no id is told apart from another (401 for all, as
                    // a private file would be), malformed ones included.
                    FileIdPath::from_request_parts(parts, state)
                        .await
                        .map_err(|_| ApiError::App(stowage_application::Error::Unauthenticated))?;
                    Ok(Reader::Anonymous)
                }
                Err(e) => Err(e),
            },
            (Some(expires), Some(signature)) => {
                // Without a credential to check first, the id's shape (404) comes before the
                // signature (403), as the contract orders them.
                FileIdPath::from_request_parts(parts, state).await?;
                let expires = canonical_expires(expires)
                    .ok_or(ApiError::App(stowage_application::Error::InvalidSignature))?;
                Ok(Reader::Signed {
                    expires,
                    signature: signature.to_owned(),
                })
            }
            _ => {
                FileIdPath::from_request_parts(parts, state).await?;
                Err(ApiError::App(stowage_application::Error::InvalidSignature))
            }
        }
    }
}

/// `expires` written exactly as it was signed: decimal digits, no sign, no leading zero (but "0").
/// Any other spelling of the same number (`+N`, `0N`) would be a second URL for one signature.
fn canonical_expires(raw: &str) -> Option<i64> {
    let canonical = !raw.is_empty()
        && raw.bytes().all(|b| b.is_ascii_digit())
        && (raw == "0" || !raw.starts_with('0'));
    if canonical { raw.parse().ok() } else { None }
}

/// The credentials on a request, in the order the contract tries them: at most one of each kind.
///
/// Only the first `Authorization: Bearer` header, the first `X-Guest-Authorization`, the first
/// `X-Public-Authorization` and the first occurrence of each credential cookie (across every
/// `Cookie` header) count. Repeats are ignored, so a request cannot make the service try thousands
/// of tokens (each one a PBKDF2 and a Redis lookup) by repeating a header or a cookie.
pub fn presented_credentials(headers: &HeaderMap) -> Vec<PresentedCredential> {
    let mut found = Vec::new();
    let mut push = |source, token: &str| {
        let token = token.trim();
        if !token.is_empty() {
            found.push(PresentedCredential {
                source,
                token: token.to_owned(),
            });
        }
    };
    let bearer = headers.get_all(AUTHORIZATION).iter().find_map(|value| {
        let (scheme, token) = value.to_str().ok()?.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then_some(token)
    });
    if let Some(token) = bearer {
        push(CredentialSource::Bearer, token);
    }
    if let Some(token) = header_str(headers, &GUEST_AUTHORIZATION) {
        push(CredentialSource::GuestHeader, token);
    }
    if let Some(value) = header_str(headers, &PUBLIC_AUTHORIZATION) {
        push(CredentialSource::PublicHeader, value);
    }
    let cookies = cookies(headers);
    for (name, source) in [
        ("file_service_auth", CredentialSource::UserCookie),
        ("token", CredentialSource::UserCookie),
        ("guest-token", CredentialSource::GuestCookie),
        ("public-token", CredentialSource::PublicCookie),
    ] {
        if let Some((_, value)) = cookies.iter().find(|(cookie, _)| *cookie == name) {
            push(source, value);
        }
    }
    found
}

fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn cookies(headers: &HeaderMap) -> Vec<(&str, &str)> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            Some((name.trim(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// Asserts that `headers` present one credential of each kind, in the order they are tried:
    /// bearer, guest header, public header, the two user cookies, guest cookie, public cookie.
    fn assert_one_of_each(headers: &HeaderMap, tokens: [&str; 7]) {
        let sources = [
            CredentialSource::Bearer,
            CredentialSource::GuestHeader,
            CredentialSource::PublicHeader,
            CredentialSource::UserCookie,
            CredentialSource::UserCookie,
            CredentialSource::GuestCookie,
            CredentialSource::PublicCookie,
        ];
        let found: Vec<(CredentialSource, String)> = presented_credentials(headers)
            .into_iter()
            .map(|c| (c.source, c.token))
            .collect();
        let expected: Vec<(CredentialSource, String)> =
            sources.into_iter().zip(tokens.map(str::to_owned)).collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn credentials_come_in_contract_order() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static(
                "public-token=\"Token abcdefgh\"; guest-token=g; token=t; file_service_auth=f",
            ),
        );
        headers.insert(
            PUBLIC_AUTHORIZATION,
            HeaderValue::from_static("Token pppppppp"),
        );
        headers.insert(GUEST_AUTHORIZATION, HeaderValue::from_static("gh"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        assert_one_of_each(
            &headers,
            ["b", "gh", "Token pppppppp", "f", "t", "g", "Token abcdefgh"],
        );
    }

    #[test]
    fn only_the_first_credential_of_each_kind_is_taken() {
        let mut headers = HeaderMap::new();
        headers.append(
            AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcjpwYXNz"),
        );
        headers.append(AUTHORIZATION, HeaderValue::from_static("Bearer b1"));
        headers.append(AUTHORIZATION, HeaderValue::from_static("Bearer b2"));
        headers.append(GUEST_AUTHORIZATION, HeaderValue::from_static("g1"));
        headers.append(GUEST_AUTHORIZATION, HeaderValue::from_static("g2"));
        headers.append(
            PUBLIC_AUTHORIZATION,
            HeaderValue::from_static("Token p1p1p1p1"),
        );
        headers.append(
            PUBLIC_AUTHORIZATION,
            HeaderValue::from_static("Token p2p2p2p2"),
        );
        headers.append(
            COOKIE,
            HeaderValue::from_static("token=t1; theme=dark; token=t2; guest-token=c1"),
        );
        headers.append(
            COOKIE,
            HeaderValue::from_static(
                "token=t3; file_service_auth=f1; guest-token=c2; public-token=q1; public-token=q2; file_service_auth=f2",
            ),
        );
        assert_one_of_each(
            &headers,
            ["b1", "g1", "Token p1p1p1p1", "f1", "t1", "c1", "q1"],
        );
    }

    #[test]
    fn thousands_of_repeated_credentials_give_at_most_one_each() {
        let mut headers = HeaderMap::new();
        for i in 0..50 {
            headers.append(
                AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer b{i}")).unwrap(),
            );
        }
        let cookie: Vec<String> = (0..5000).map(|i| format!("token=n{i}")).collect();
        headers.append(COOKIE, HeaderValue::from_str(&cookie.join("; ")).unwrap());
        assert_eq!(presented_credentials(&headers).len(), 2);
    }

    #[test]
    fn expires_is_accepted_only_in_canonical_decimal() {
        assert_eq!(canonical_expires("0"), Some(0));
        assert_eq!(canonical_expires("1700000000"), Some(1_700_000_000));
        assert_eq!(canonical_expires("9223372036854775807"), Some(i64::MAX));
        for bad in [
            "",
            "+1700000000",
            "01700000000",
            "00",
            "-1",
            "-0",
            " 1",
            "1 ",
            "1e9",
            "0x10",
            "%2B1700000000",
            "9223372036854775808",
        ] {
            assert_eq!(canonical_expires(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn non_bearer_authorization_is_ignored() {
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcjpwYXNz"),
        );
        assert!(presented_credentials(&headers).is_empty());
    }
}
