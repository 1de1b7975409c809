//! Turns the credentials a request presents into a [`Principal`], in the contract's order.
//!
//! Where a token arrived decides only the order it is tried in and how it is read (JWT, opaque
//! Redis token, public token). Whether a JWT is a user's or a guest's comes from its claims
//! ([`TokenKind`]): a guest JWT is never valid as a user credential (`Authorization: Bearer`, the
//! `file_service_auth` and `token` cookies), and a user JWT in a guest position is still a user,
//! forwarded to the permission service as `Authorization: Bearer`.

use std::sync::Arc;

use stowage_domain::{Credential, CredentialForm, Principal, PrincipalKind};

use crate::error::Error;
use crate::ports::{TokenClaims, TokenKind, TokenStore, TokenVerifier};

/// Where a credential was found; the order of a request's credentials is the order they are tried in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    /// `Authorization: Bearer <t>`: a user JWT, or an opaque user token (never a guest JWT).
    Bearer,
    /// `X-Guest-Authorization: <jwt>`: a guest JWT (a user JWT here still speaks for its user).
    GuestHeader,
    /// `X-Public-Authorization: Token <t>` (the `Token ` prefix already removed).
    PublicHeader,
    /// Cookie `file_service_auth` or `token`: as [`CredentialSource::Bearer`].
    UserCookie,
    /// Cookie `guest-token`: as [`CredentialSource::GuestHeader`].
    GuestCookie,
    /// Cookie `public-token`, bare or `Token `-prefixed.
    PublicCookie,
}

/// One credential found on a request.
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedCredential {
    /// Where it was found.
    pub source: CredentialSource,
    /// The token itself.
    pub token: String,
}

impl std::fmt::Debug for PresentedCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresentedCredential")
            .field("source", &self.source)
            .field("token", &"[REDACTED]")
            .finish()
    }
}

/// Authenticates a request: the first credential that is present and valid wins.
#[derive(Clone)]
pub struct Authenticate {
    jwt: Arc<dyn TokenVerifier>,
    store: Option<Arc<dyn TokenStore>>,
}

impl Authenticate {
    /// Verifies JWTs with `jwt`, and opaque tokens with `store` when one is configured.
    pub fn new(jwt: Arc<dyn TokenVerifier>, store: Option<Arc<dyn TokenStore>>) -> Self {
        Self { jwt, store }
    }

    /// The principal of the first valid credential; invalid ones are skipped.
    ///
    /// # Errors
    /// `Unauthenticated` when none is valid; `AuthBackendUnavailable` at once when the token store
    /// fails while a credential needs it.
    pub async fn execute(&self, presented: &[PresentedCredential]) -> Result<Principal, Error> {
        for candidate in presented {
            if let Some(principal) = self.try_one(candidate).await? {
                return Ok(principal);
            }
        }
        Err(Error::Unauthenticated)
    }

    async fn try_one(&self, candidate: &PresentedCredential) -> Result<Option<Principal>, Error> {
        let token = candidate.token.trim();
        if token.is_empty() {
            return Ok(None);
        }
        let principal = match candidate.source {
            CredentialSource::Bearer | CredentialSource::UserCookie => {
                let claims = if looks_like_jwt(token) {
                    self.verify_jwt(token)
                } else {
                    match &self.store {
                        Some(store) => store.user_token(token).await?,
                        None => None,
                    }
                };
                if claims.is_some_and(|c| c.kind == TokenKind::Guest) {
                    tracing::debug!("a guest token is not a user credential");
                    None
                } else {
                    claims.map(|c| principal(PrincipalKind::User, c, CredentialForm::Bearer, token))
                }
            }
            CredentialSource::GuestHeader | CredentialSource::GuestCookie => {
                self.verify_jwt(token).map(|c| match c.kind {
                    TokenKind::Guest => {
                        principal(PrincipalKind::Guest, c, CredentialForm::Guest, token)
                    }
                    TokenKind::User => {
                        principal(PrincipalKind::User, c, CredentialForm::Bearer, token)
                    }
                })
            }
            CredentialSource::PublicHeader | CredentialSource::PublicCookie => {
                let token = token.strip_prefix("Token ").map_or(token, str::trim);
                let claims = match &self.store {
                    Some(store) if is_public_token_shape(token) => {
                        store.public_token(token).await?
                    }
                    _ => None,
                };
                claims.map(|c| {
                    let account_only = TokenClaims { user_id: None, ..c };
                    principal(
                        PrincipalKind::Public,
                        account_only,
                        CredentialForm::Public,
                        token,
                    )
                })
            }
        };
        if principal.is_none() {
            tracing::debug!(source = ?candidate.source, "credential present but not valid; trying the next");
        }
        Ok(principal)
    }

    fn verify_jwt(&self, token: &str) -> Option<TokenClaims> {
        match self.jwt.verify(token) {
            Ok(claims) => Some(claims),
            Err(e) => {
                tracing::debug!(reason = e.reason, "JWT refused");
                None
            }
        }
    }
}

fn principal(
    kind: PrincipalKind,
    claims: TokenClaims,
    form: CredentialForm,
    token: &str,
) -> Principal {
    Principal::new(
        kind,
        claims.user_id,
        claims.account_id,
        Credential::new(form, token.to_owned()),
    )
}

/// Three non-empty base64url parts separated by dots.
pub fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Public tokens are 8 characters (form) or 32 (embed).
fn is_public_token_shape(token: &str) -> bool {
    matches!(token.chars().count(), 8 | 32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::token_store::{MockTokenStore, TokenStoreError};
    use crate::ports::token_verifier::{InvalidToken, MockTokenVerifier};
    use mockall::predicate::eq;
    use stowage_domain::{AccountId, UserId};

    /// An expired JWT.
    const JWT_A: &str = "aaa.bbb.ccc";
    /// A user JWT of user 7, account 3.
    const JWT_B: &str = "ddd.eee.fff";
    /// A guest JWT of user 5, account 3.
    const JWT_G: &str = "ggg.hhh.iii";

    fn claims(user: Option<i64>, account: i64) -> TokenClaims {
        TokenClaims {
            user_id: user.map(UserId::new),
            account_id: AccountId::new(account),
            kind: TokenKind::User,
        }
    }

    fn guest_claims(user: Option<i64>, account: i64) -> TokenClaims {
        TokenClaims {
            kind: TokenKind::Guest,
            ..claims(user, account)
        }
    }

    fn cred(source: CredentialSource, token: &str) -> PresentedCredential {
        PresentedCredential {
            source,
            token: token.into(),
        }
    }

    fn verifier() -> MockTokenVerifier {
        let mut jwt = MockTokenVerifier::new();
        jwt.expect_verify()
            .with(eq(JWT_A))
            .returning(|_| Err(InvalidToken { reason: "expired" }));
        jwt.expect_verify()
            .with(eq(JWT_B))
            .returning(|_| Ok(claims(Some(7), 3)));
        jwt.expect_verify()
            .with(eq(JWT_G))
            .returning(|_| Ok(guest_claims(Some(5), 3)));
        jwt
    }

    /// Authentication by the JWTs [`verifier`] knows, without a token store.
    fn by_jwt() -> Authenticate {
        Authenticate::new(Arc::new(verifier()), None)
    }

    /// Authentication by opaque tokens in `store` only: no JWT verifies.
    fn with_store(store: MockTokenStore) -> Authenticate {
        Authenticate::new(Arc::new(MockTokenVerifier::new()), Some(Arc::new(store)))
    }

    #[tokio::test]
    async fn no_credential_is_unauthenticated() {
        let auth = Authenticate::new(Arc::new(MockTokenVerifier::new()), None);
        assert!(matches!(
            auth.execute(&[]).await,
            Err(Error::Unauthenticated)
        ));
    }

    #[tokio::test]
    async fn invalid_bearer_falls_through_to_guest_header() {
        let auth = by_jwt();
        let p = auth
            .execute(&[
                cred(CredentialSource::Bearer, JWT_A),
                cred(CredentialSource::GuestHeader, JWT_G),
            ])
            .await
            .unwrap();
        assert_eq!(p.kind(), PrincipalKind::Guest);
        assert_eq!(p.credential().form(), CredentialForm::Guest);
        assert_eq!(p.user_id(), Some(UserId::new(5)));
    }

    #[tokio::test]
    async fn guest_jwt_is_not_a_user_credential() {
        let auth = by_jwt();
        for source in [CredentialSource::Bearer, CredentialSource::UserCookie] {
            let err = auth.execute(&[cred(source, JWT_G)]).await;
            assert!(matches!(err, Err(Error::Unauthenticated)), "{source:?}");
        }
    }

    #[tokio::test]
    async fn guest_jwt_as_bearer_is_skipped_for_the_next_credential() {
        let auth = by_jwt();
        let p = auth
            .execute(&[
                cred(CredentialSource::Bearer, JWT_G),
                cred(CredentialSource::UserCookie, JWT_G),
                cred(CredentialSource::GuestCookie, JWT_B),
            ])
            .await
            .unwrap();
        assert_eq!(p.kind(), PrincipalKind::User);
        assert_eq!(p.user_id(), Some(UserId::new(7)));
        assert_eq!(p.credential().expose_secret(), JWT_B);
    }

    #[tokio::test]
    async fn guest_jwt_in_a_guest_position_is_a_guest_forwarded_as_guest() {
        let auth = by_jwt();
        for source in [CredentialSource::GuestHeader, CredentialSource::GuestCookie] {
            let p = auth.execute(&[cred(source, JWT_G)]).await.unwrap();
            assert_eq!(p.kind(), PrincipalKind::Guest, "{source:?}");
            assert_eq!(p.credential().form(), CredentialForm::Guest, "{source:?}");
            assert_eq!(p.user_id(), Some(UserId::new(5)));
            assert_eq!(p.account_id(), AccountId::new(3));
        }
    }

    #[tokio::test]
    async fn user_jwt_in_a_guest_position_is_a_user_forwarded_as_bearer() {
        let auth = by_jwt();
        for source in [CredentialSource::GuestHeader, CredentialSource::GuestCookie] {
            let p = auth.execute(&[cred(source, JWT_B)]).await.unwrap();
            assert_eq!(p.kind(), PrincipalKind::User, "{source:?}");
            assert_eq!(p.credential().form(), CredentialForm::Bearer, "{source:?}");
            assert_eq!(p.user_id(), Some(UserId::new(7)));
        }
    }

    #[tokio::test]
    async fn first_valid_credential_wins() {
        let auth = by_jwt();
        let p = auth
            .execute(&[
                cred(CredentialSource::Bearer, JWT_B),
                cred(CredentialSource::GuestHeader, JWT_A),
            ])
            .await
            .unwrap();
        assert_eq!(p.kind(), PrincipalKind::User);
        assert_eq!(p.credential().expose_secret(), JWT_B);
    }

    #[tokio::test]
    async fn opaque_bearer_without_store_is_unauthenticated() {
        let auth = Authenticate::new(Arc::new(MockTokenVerifier::new()), None);
        let err = auth
            .execute(&[cred(CredentialSource::Bearer, "opaque-token")])
            .await;
        assert!(matches!(err, Err(Error::Unauthenticated)));
    }

    #[tokio::test]
    async fn opaque_bearer_uses_the_store() {
        let mut store = MockTokenStore::new();
        store
            .expect_user_token()
            .with(eq("opaque"))
            .returning(|_| Ok(Some(claims(Some(1), 2))));
        let auth = with_store(store);
        let p = auth
            .execute(&[cred(CredentialSource::UserCookie, "opaque")])
            .await
            .unwrap();
        assert_eq!(p.kind(), PrincipalKind::User);
        assert_eq!(p.credential().form(), CredentialForm::Bearer);
    }

    #[tokio::test]
    async fn store_failure_stops_at_once_with_auth_backend_unavailable() {
        let mut store = MockTokenStore::new();
        store
            .expect_user_token()
            .returning(|_| Err(TokenStoreError::Unavailable("refused".into())));
        let mut jwt = MockTokenVerifier::new();
        jwt.expect_verify().times(0);
        let auth = Authenticate::new(Arc::new(jwt), Some(Arc::new(store)));
        let err = auth
            .execute(&[
                cred(CredentialSource::Bearer, "opaque"),
                cred(CredentialSource::GuestHeader, JWT_B),
            ])
            .await;
        assert!(matches!(err, Err(Error::AuthBackendUnavailable(_))));
    }

    #[tokio::test]
    async fn public_token_gives_a_null_user_principal() {
        let mut store = MockTokenStore::new();
        store
            .expect_public_token()
            .with(eq("abcdefgh"))
            .returning(|_| Ok(Some(claims(Some(99), 4))));
        let auth = with_store(store);
        let p = auth
            .execute(&[cred(CredentialSource::PublicCookie, "Token abcdefgh")])
            .await
            .unwrap();
        assert_eq!(p.kind(), PrincipalKind::Public);
        assert_eq!(p.user_id(), None);
        assert_eq!(p.account_id(), AccountId::new(4));
    }

    #[tokio::test]
    async fn public_token_of_wrong_length_is_never_looked_up() {
        let mut store = MockTokenStore::new();
        store.expect_public_token().times(0);
        let auth = with_store(store);
        let err = auth
            .execute(&[cred(CredentialSource::PublicHeader, "short")])
            .await;
        assert!(matches!(err, Err(Error::Unauthenticated)));
    }

    #[test]
    fn jwt_shape_is_three_base64url_parts() {
        assert!(looks_like_jwt("a.b.c"));
        assert!(looks_like_jwt("eyJ-_0.x9.Zz"));
        for bad in [
            "a.b", "a.b.c.d", "a..c", "a.b.", "a.b.c=", "a b.c.d", "opaque",
        ] {
            assert!(!looks_like_jwt(bad), "{bad}");
        }
    }
}
