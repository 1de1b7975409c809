//! [`Principal`]: the authenticated caller, and the [`Credential`] it presented.

use std::fmt;

use crate::ids::{AccountId, UserId};

/// Which kind of credential authenticated the caller.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PrincipalKind {
    /// A user, by JWT or opaque user token.
    User,
    /// A guest of a workflow, by guest JWT.
    Guest,
    /// A public form or embed, by public token; it never has a user id.
    Public,
}

/// The header a credential is forwarded in to the permission service.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CredentialForm {
    /// `Authorization: Bearer <t>`.
    Bearer,
    /// `X-Guest-Authorization: <t>`.
    Guest,
    /// `X-Public-Authorization: Token <t>`.
    Public,
}

/// A credential kept only to forward it to the permission service.
///
/// Its `Debug` output never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    form: CredentialForm,
    secret: String,
}

impl Credential {
    /// Wraps a secret with the header form it is forwarded in.
    pub fn new(form: CredentialForm, secret: String) -> Self {
        Self { form, secret }
    }

    /// Returns the header form the credential is forwarded in.
    pub fn form(&self) -> CredentialForm {
        self.form
    }

    /// Returns the secret itself, to be put in the forwarded header and nowhere else.
    pub fn expose_secret(&self) -> &str {
        &self.secret
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("form", &self.form)
            .field("secret", &format_args!("[REDACTED]"))
            .finish()
    }
}

/// The authenticated caller of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    kind: PrincipalKind,
    user_id: Option<UserId>,
    account_id: AccountId,
    credential: Credential,
}

impl Principal {
    /// Builds a principal from what authentication established.
    pub fn new(
        kind: PrincipalKind,
        user_id: Option<UserId>,
        account_id: AccountId,
        credential: Credential,
    ) -> Self {
        Self {
            kind,
            user_id,
            account_id,
            credential,
        }
    }

    /// Returns the kind of caller.
    pub fn kind(&self) -> PrincipalKind {
        self.kind
    }

    /// Returns the caller's user id, `None` for account-level (public and embed) callers.
    pub fn user_id(&self) -> Option<UserId> {
        self.user_id
    }

    /// Returns the caller's account.
    pub fn account_id(&self) -> AccountId {
        self.account_id
    }

    /// Returns the credential the caller presented.
    pub fn credential(&self) -> &Credential {
        &self.credential
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t-t0ken-value";

    #[test]
    fn credential_debug_never_shows_the_secret() {
        let cases: &[(CredentialForm, &str)] = &[
            (CredentialForm::Bearer, "Bearer"),
            (CredentialForm::Guest, "Guest"),
            (CredentialForm::Public, "Public"),
        ];
        for &(form, form_name) in cases {
            let credential = Credential::new(form, SECRET.to_owned());
            let principal = Principal::new(
                PrincipalKind::User,
                Some(UserId::new(1)),
                AccountId::new(2),
                credential.clone(),
            );
            for printed in [format!("{credential:?}"), format!("{principal:#?}")] {
                assert!(!printed.contains(SECRET), "{printed}");
                assert!(printed.contains("[REDACTED]"), "{printed}");
                assert!(printed.contains(form_name), "{printed}");
            }
            assert_eq!(credential.form(), form);
            assert_eq!(credential.expose_secret(), SECRET);
        }
    }

    #[test]
    fn principal_accessors_return_what_was_given() {
        let cases: &[(PrincipalKind, Option<i64>, i64)] = &[
            (PrincipalKind::User, Some(7), 1),
            (PrincipalKind::Guest, Some(8), 2),
            (PrincipalKind::Public, None, 3),
        ];
        for &(kind, user, account) in cases {
            let credential = Credential::new(CredentialForm::Bearer, "t".to_owned());
            let principal = Principal::new(
                kind,
                user.map(UserId::new),
                AccountId::new(account),
                credential.clone(),
            );
            assert_eq!(principal.kind(), kind);
            assert_eq!(principal.user_id(), user.map(UserId::new));
            assert_eq!(principal.account_id(), AccountId::new(account));
            assert_eq!(principal.credential(), &credential);
        }
    }
}
