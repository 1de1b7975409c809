//! HS256 JSON Web Tokens, as the Django backend and `stowage-api token` issue them.
//!
//! Only `HS256` is accepted: `alg: none`, every other algorithm and any `crit` header are refused,
//! and the signature is compared in constant time before the claims are even parsed.
//!
//! A token is a workflow guest's when its claims say so: `token_type` "guest" (any case, as
//! rest_framework_simplejwt writes "Guest") or a `task_id` claim. Any other token is a user's.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use stowage_application::ports::{Clock, InvalidToken, TokenClaims, TokenKind, TokenVerifier};
use stowage_domain::{AccountId, UserId};

type HmacSha256 = Hmac<Sha256>;

/// The claims Stowage reads from, and writes into, a token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtClaims {
    /// The user, or null for account-level callers.
    #[serde(default)]
    pub user_id: Option<i64>,
    /// The account.
    pub account_id: i64,
    /// Expiry, in Unix seconds; enforced when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Not before, in Unix seconds; enforced when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Issued at, in Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// `"Guest"` in a guest token (rest_framework_simplejwt's token type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// The workflow task a guest token is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<i64>,
}

/// The `token_type` of the guest tokens this service issues, as the Django backend writes it.
const GUEST_TOKEN_TYPE: &str = "Guest";

/// Whether a claims object is a guest token's: `token_type` "guest" in any case, or a `task_id`.
fn kind_of(claims: &serde_json::Map<String, serde_json::Value>) -> TokenKind {
    let guest_type = claims
        .get("token_type")
        .and_then(serde_json::Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("guest"));
    if guest_type || claims.contains_key("task_id") {
        TokenKind::Guest
    } else {
        TokenKind::User
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// Signs and verifies HS256 tokens with one shared secret.
#[derive(Clone)]
pub struct Hs256Jwt {
    key: Arc<[u8]>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Hs256Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hs256Jwt")
            .field("key", &"[REDACTED]")
            .finish()
    }
}

impl Hs256Jwt {
    /// A signer/verifier with `secret` as the HMAC key, reading the time from `clock`.
    pub fn new(secret: &[u8], clock: Arc<dyn Clock>) -> Self {
        Self {
            key: Arc::from(secret),
            clock,
        }
    }

    /// A token for `user_id` in `account_id`, valid for `ttl` from now.
    pub fn issue(&self, user_id: Option<i64>, account_id: i64, ttl: Duration) -> String {
        self.issue_with(user_id, account_id, ttl, None)
    }

    /// A guest token for `user_id` in `account_id` on workflow task `task_id`, valid for `ttl`
    /// from now: the claims of the Django backend's guest tokens (`token_type` "Guest", `task_id`).
    pub fn issue_guest(
        &self,
        user_id: Option<i64>,
        account_id: i64,
        task_id: i64,
        ttl: Duration,
    ) -> String {
        self.issue_with(user_id, account_id, ttl, Some(task_id))
    }

    /// A user token, or with `guest_task` a guest token on that task.
    fn issue_with(
        &self,
        user_id: Option<i64>,
        account_id: i64,
        ttl: Duration,
        guest_task: Option<i64>,
    ) -> String {
        let now = self.clock.now().unix_timestamp();
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = JwtClaims {
            user_id,
            account_id,
            exp: Some(now.saturating_add(ttl)),
            nbf: None,
            iat: Some(now),
            token_type: guest_task.map(|_| GUEST_TOKEN_TYPE.to_owned()),
            task_id: guest_task,
        };
        self.sign(&claims)
    }

    /// Signs arbitrary `claims` (tests use this to make expired tokens).
    pub fn sign(&self, claims: &JwtClaims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signing_input = format!("{header}.{payload}");
        let signature =
            URL_SAFE_NO_PAD.encode(self.mac(signing_input.as_bytes()).finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    fn mac(&self, input: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length, so this arm is unreachable; it keeps the path panic-free.
        let mut mac = HmacSha256::new_from_slice(&self.key)
            .unwrap_or_else(|_| <HmacSha256 as hmac::digest::KeyInit>::new(&Default::default()));
        mac.update(input);
        mac
    }

    fn decode(&self, token: &str) -> Result<(JwtClaims, TokenKind), InvalidToken> {
        let invalid = |reason| InvalidToken { reason };
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("not three parts"));
        };
        let header: Header = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|h| serde_json::from_slice(&h).ok())
            .ok_or(invalid("unreadable header"))?;
        if header.alg != "HS256" {
            return Err(invalid("algorithm refused"));
        }
        if header.crit.is_some() {
            return Err(invalid("critical header extensions refused"));
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| invalid("unreadable signature"))?;
        let signing_input_len = token.len() - token.rsplit('.').next().map_or(0, str::len) - 1;
        self.mac(&token.as_bytes()[..signing_input_len])
            .verify_slice(&signature)
            .map_err(|_| invalid("bad signature"))?;
        // Claims go through a JSON value first: a derived struct would also accept a JSON array
        // (fields taken by position), and only an object is a claims set.
        let claims: serde_json::Value = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|p| serde_json::from_slice(&p).ok())
            .ok_or(invalid("unreadable claims"))?;
        let serde_json::Value::Object(object) = claims else {
            return Err(invalid("claims are not a JSON object"));
        };
        let kind = kind_of(&object);
        let claims: JwtClaims = serde_json::from_value(serde_json::Value::Object(object))
            .map_err(|_| invalid("unreadable claims"))?;
        let now = self.clock.now().unix_timestamp();
        if claims.exp.is_some_and(|exp| exp <= now) {
            return Err(invalid("expired"));
        }
        if claims.nbf.is_some_and(|nbf| nbf > now) {
            return Err(invalid("not yet valid"));
        }
        Ok((claims, kind))
    }
}

impl TokenVerifier for Hs256Jwt {
    fn verify(&self, token: &str) -> Result<TokenClaims, InvalidToken> {
        let (claims, kind) = self.decode(token)?;
        Ok(TokenClaims {
            user_id: claims.user_id.map(UserId::new),
            account_id: AccountId::new(claims.account_id),
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    fn jwt(secret: &[u8]) -> Hs256Jwt {
        Hs256Jwt::new(secret, Arc::new(SystemClock))
    }

    fn forge(header: &str, claims: &str, key: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let mut mac = HmacSha256::new_from_slice(key).unwrap();
        mac.update(input.as_bytes());
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    #[test]
    fn issued_token_verifies() {
        let j = jwt(b"secret");
        let claims = j
            .verify(&j.issue(Some(5), 9, Duration::from_secs(60)))
            .unwrap();
        assert_eq!(claims.user_id, Some(UserId::new(5)));
        assert_eq!(claims.account_id, AccountId::new(9));
        assert_eq!(claims.kind, TokenKind::User);
    }

    #[test]
    fn issued_guest_token_verifies_as_a_guest() {
        let j = jwt(b"secret");
        let token = j.issue_guest(Some(5), 9, 77, Duration::from_secs(60));
        let claims = j.verify(&token).unwrap();
        assert_eq!(claims.user_id, Some(UserId::new(5)));
        assert_eq!(claims.account_id, AccountId::new(9));
        assert_eq!(claims.kind, TokenKind::Guest);
        let payload = token.split('.').nth(1).unwrap();
        let payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(payload["token_type"], "Guest");
        assert_eq!(payload["task_id"], 77);
    }

    #[test]
    fn the_kind_comes_from_token_type_or_task_id() {
        let guest = [
            // rest_framework_simplejwt's guest token, as Pneumatic issues it
            r#"{"token_type":"Guest","user_id":1,"account_id":1,"task_id":3,"exp":4102444800,"jti":"abc"}"#,
            r#"{"token_type":"guest","user_id":1,"account_id":1}"#,
            r#"{"token_type":"GUEST","user_id":1,"account_id":1}"#,
            r#"{"user_id":1,"account_id":1,"task_id":3}"#,
            r#"{"token_type":"access","user_id":1,"account_id":1,"task_id":3}"#,
        ];
        let user = [
            r#"{"user_id":1,"account_id":1}"#,
            r#"{"token_type":"access","user_id":1,"account_id":1,"jti":"abc"}"#,
            r#"{"token_type":"guests","user_id":1,"account_id":1}"#,
            r#"{"user_id":null,"account_id":1}"#,
        ];
        for (kind, all) in [(TokenKind::Guest, &guest[..]), (TokenKind::User, &user[..])] {
            for claims in all {
                let t = forge(r#"{"alg":"HS256"}"#, claims, b"k");
                assert_eq!(jwt(b"k").verify(&t).unwrap().kind, kind, "{claims}");
            }
        }
    }

    #[test]
    fn null_user_and_missing_exp_are_accepted() {
        let t = forge(
            r#"{"alg":"HS256"}"#,
            r#"{"user_id":null,"account_id":3}"#,
            b"k",
        );
        let claims = jwt(b"k").verify(&t).unwrap();
        assert_eq!(claims.user_id, None);
        let t = forge(r#"{"alg":"HS256"}"#, r#"{"account_id":3}"#, b"k");
        assert!(jwt(b"k").verify(&t).is_ok());
    }

    #[test]
    fn token_signed_with_another_key_is_refused() {
        let t = jwt(b"other").issue(Some(1), 1, Duration::from_secs(60));
        assert_eq!(
            jwt(b"secret").verify(&t).unwrap_err().reason,
            "bad signature"
        );
    }

    #[test]
    fn expired_token_is_refused() {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let t = jwt(b"k").sign(&JwtClaims {
            user_id: Some(1),
            account_id: 1,
            exp: Some(now - 1),
            nbf: None,
            iat: None,
            token_type: None,
            task_id: None,
        });
        assert_eq!(jwt(b"k").verify(&t).unwrap_err().reason, "expired");
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let body = URL_SAFE_NO_PAD.encode(r#"{"user_id":1,"account_id":1}"#);
        for header in [
            r#"{"alg":"none"}"#,
            r#"{"alg":"HS512"}"#,
            r#"{"alg":"RS256"}"#,
            r#"{"alg":"hs256"}"#,
        ] {
            let unsigned = format!("{}.{body}.", URL_SAFE_NO_PAD.encode(header));
            assert!(jwt(b"k").verify(&unsigned).is_err(), "{header}");
            let signed = forge(header, r#"{"user_id":1,"account_id":1}"#, b"k");
            assert_eq!(
                jwt(b"k").verify(&signed).unwrap_err().reason,
                "algorithm refused",
                "{header}"
            );
        }
    }

    #[test]
    fn tampered_claims_are_refused() {
        let t = jwt(b"k").issue(Some(1), 1, Duration::from_secs(60));
        let parts: Vec<&str> = t.split('.').collect();
        let evil = URL_SAFE_NO_PAD.encode(r#"{"user_id":2,"account_id":1}"#);
        let forged = format!("{}.{evil}.{}", parts[0], parts[2]);
        assert!(jwt(b"k").verify(&forged).is_err());
    }

    #[test]
    fn missing_account_or_non_integer_ids_are_refused() {
        for claims in [
            r#"{"user_id":1}"#,
            r#"{"user_id":"1","account_id":1}"#,
            r#"{"account_id":1.5}"#,
        ] {
            let t = forge(r#"{"alg":"HS256"}"#, claims, b"k");
            assert_eq!(
                jwt(b"k").verify(&t).unwrap_err().reason,
                "unreadable claims",
                "{claims}"
            );
        }
    }

    #[test]
    fn claims_that_are_not_a_json_object_are_refused() {
        for claims in [
            r#"[null,1]"#,
            r#"[5,9,null,null,null]"#,
            "1",
            r#""x""#,
            "null",
        ] {
            let t = forge(r#"{"alg":"HS256"}"#, claims, b"k");
            assert!(jwt(b"k").verify(&t).is_err(), "{claims}");
        }
        let t = forge(r#"{"alg":"HS256"}"#, r#"[null,1]"#, b"k");
        assert_eq!(
            jwt(b"k").verify(&t).unwrap_err().reason,
            "claims are not a JSON object"
        );
    }

    #[test]
    fn debug_does_not_show_the_key() {
        assert!(!format!("{:?}", jwt(b"supersecret")).contains("supersecret"));
    }
}
