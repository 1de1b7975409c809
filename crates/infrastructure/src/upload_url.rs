//! [`UploadUrlSigner`] with HMAC-SHA256: a token is `{base64url(grant)}.{hex(mac)}`.
//!
//! The grant is a compact JSON array (`[1, grant_id, kind, user_id, account_id, expires, policy,
//! key, max_bytes]`, the leading 1 its version, then `visibility` when the grant names one, so
//! that a grant without it reads the same on a replica that predates it). The MAC covers the encoded text exactly as it
//! appears in the URL, after a domain-separation prefix, so that no other encoding of the same
//! grant verifies and no other signature made with the secret can pass for one.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use stowage_application::ports::{GrantPrincipal, UploadGrant, UploadGrantId, UploadUrlSigner};
use stowage_domain::{AccountId, FileKey, PrincipalKind, UserId, Visibility};

type HmacSha256 = Hmac<Sha256>;

/// The signing key is derived from the secret for this use only.
const KEY_CONTEXT: &[u8] = b"stowage upload-url key v1";

/// What every MAC starts with.
const PREFIX: &[u8] = b"stowage-upload-url\n";

/// The grant format this signer writes and reads.
const VERSION: i64 = 1;

/// Longest token read (a 512-byte key encodes to some 700 characters): anything longer is
/// refused before it is decoded.
const MAX_TOKEN_LEN: usize = 4096;

/// Signs upload URLs with a key derived from `SIGNED_URL_SECRET` (or `AUTH_SECRET_KEY`), the
/// secret of signed download URLs.
#[derive(Clone)]
pub struct HmacUploadUrlSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for HmacUploadUrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HmacUploadUrlSigner")
            .field("key", &"[REDACTED]")
            .finish()
    }
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; the fallback keeps this path panic-free.
    HmacSha256::new_from_slice(key)
        .unwrap_or_else(|_| <HmacSha256 as hmac::digest::KeyInit>::new(&Default::default()))
}

impl HmacUploadUrlSigner {
    /// A signer whose key is derived from `secret`.
    pub fn new(secret: &[u8]) -> Self {
        let mut derive = mac(secret);
        derive.update(KEY_CONTEXT);
        Self {
            key: derive.finalize().into_bytes().into(),
        }
    }

    fn tag(&self, payload: &str) -> HmacSha256 {
        let mut m = mac(&self.key);
        m.update(PREFIX);
        m.update(payload.as_bytes());
        m
    }
}

fn kind_code(kind: PrincipalKind) -> &'static str {
    match kind {
        PrincipalKind::User => "u",
        PrincipalKind::Guest => "g",
        PrincipalKind::Public => "p",
    }
}

fn kind_of(code: &str) -> Option<PrincipalKind> {
    match code {
        "u" => Some(PrincipalKind::User),
        "g" => Some(PrincipalKind::Guest),
        "p" => Some(PrincipalKind::Public),
        _ => None,
    }
}

fn encode(grant: &UploadGrant) -> String {
    let p = &grant.principal;
    let mut array = json!([
        VERSION,
        grant.id.to_string(),
        kind_code(p.kind),
        p.user_id.map(UserId::get),
        p.account_id.get(),
        grant.expires,
        grant.policy,
        grant.key.as_ref().map(FileKey::as_str),
        grant.max_bytes,
    ]);
    if let (Some(visibility), Value::Array(fields)) = (grant.visibility, &mut array) {
        fields.push(Value::from(visibility.as_str()));
    }
    URL_SAFE_NO_PAD.encode(array.to_string())
}

/// `v`, unless it is JSON `null`.
fn optional(v: &Value) -> Option<&Value> {
    (!v.is_null()).then_some(v)
}

/// The grant in a payload whose MAC verified; `None` for one this signer would not write.
fn decode(payload: &str) -> Option<UploadGrant> {
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let Value::Array(fields) = serde_json::from_slice(&bytes).ok()? else {
        return None;
    };
    let (visibility, fields) = match fields.as_slice() {
        [rest @ .., visibility] if rest.len() == 9 => {
            (Some(Visibility::parse(visibility.as_str()?)?), rest)
        }
        all => (None, all),
    };
    let [version, id, kind, user, account, expires, policy, key, max] = fields else {
        return None;
    };
    if version.as_i64()? != VERSION {
        return None;
    }
    let user_id = match optional(user) {
        Some(u) => Some(UserId::new(u.as_i64()?)),
        None => None,
    };
    Some(UploadGrant {
        id: UploadGrantId::from_uuid(uuid::Uuid::parse_str(id.as_str()?).ok()?),
        principal: GrantPrincipal {
            kind: kind_of(kind.as_str()?)?,
            user_id,
            account_id: AccountId::new(account.as_i64()?),
        },
        expires: expires.as_i64()?,
        policy: match optional(policy) {
            Some(p) => Some(p.as_str()?.to_owned()),
            None => None,
        },
        key: match optional(key) {
            Some(k) => Some(FileKey::parse(k.as_str()?).ok()?),
            None => None,
        },
        max_bytes: match optional(max) {
            Some(m) => Some(m.as_u64()?),
            None => None,
        },
        visibility,
    })
}

impl UploadUrlSigner for HmacUploadUrlSigner {
    fn sign(&self, grant: &UploadGrant) -> String {
        let payload = encode(grant);
        let signature = hex::encode(self.tag(&payload).finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    fn verify(&self, token: &str) -> Option<UploadGrant> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let (payload, signature) = token.rsplit_once('.')?;
        let given = hex::decode(signature).ok()?;
        self.tag(payload).verify_slice(&given).ok()?;
        decode(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> UploadGrant {
        UploadGrant {
            id: UploadGrantId::new_random(),
            principal: GrantPrincipal {
                kind: PrincipalKind::Guest,
                user_id: Some(UserId::new(7)),
                account_id: AccountId::new(3),
            },
            expires: 1_900_000_000,
            policy: Some("avatar".into()),
            key: Some(FileKey::parse("avatars/ünï code").unwrap()),
            max_bytes: Some(1234),
            visibility: Some(Visibility::Public),
        }
    }

    #[test]
    fn a_token_verifies_to_the_grant_it_was_signed_from() {
        let signer = HmacUploadUrlSigner::new(b"secret");
        let bare = UploadGrant {
            principal: GrantPrincipal {
                kind: PrincipalKind::Public,
                user_id: None,
                account_id: AccountId::new(9),
            },
            policy: None,
            key: None,
            max_bytes: None,
            visibility: None,
            ..grant()
        };
        for g in [grant(), bare] {
            let token = signer.sign(&g);
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
                "{token}"
            );
            assert_eq!(signer.verify(&token), Some(g));
        }
    }

    #[test]
    fn a_tampered_token_or_another_keys_token_does_not_verify() {
        let signer = HmacUploadUrlSigner::new(b"secret");
        let token = signer.sign(&grant());
        let (payload, signature) = token.rsplit_once('.').unwrap();
        let mut other = grant();
        other.max_bytes = Some(1_000_000);
        let swapped_payload = format!("{}.{signature}", encode(&other));
        let flipped = |s: &str, at: usize| {
            let mut b = s.as_bytes().to_vec();
            b[at] = if b[at] == b'a' { b'b' } else { b'a' };
            String::from_utf8(b).unwrap()
        };
        let refused = [
            swapped_payload,
            format!("{}.{signature}", flipped(payload, 5)),
            format!("{payload}.{}", flipped(signature, 0)),
            format!("{payload}.{}", &signature[..62]),
            format!("{payload}A.{signature}"),
            payload.to_owned(),
            format!("{payload}.zz"),
            String::new(),
            ".".to_owned(),
            "x".repeat(MAX_TOKEN_LEN + 1),
        ];
        for t in &refused {
            assert_eq!(signer.verify(t), None, "{t}");
        }
        assert_eq!(HmacUploadUrlSigner::new(b"other").verify(&token), None);
    }

    #[test]
    fn a_signed_payload_this_signer_would_not_write_is_refused() {
        let signer = HmacUploadUrlSigner::new(b"secret");
        let id = uuid::Uuid::new_v4().to_string();
        let payloads = [
            json!([2, id, "u", 1, 1, 1, null, null, null]),
            json!([1, id, "x", 1, 1, 1, null, null, null]),
            json!([1, "not-a-uuid", "u", 1, 1, 1, null, null, null]),
            json!([1, id, "u", 1, 1, 1, null, "../bad//key", null]),
            json!([1, id, "u", 1, 1, 1, null, null, -1]),
            json!([1, id, "u", 1, 1, 1, null, null]),
            json!({"v": 1}),
        ];
        for p in payloads {
            let payload = URL_SAFE_NO_PAD.encode(p.to_string());
            let signature = hex::encode(signer.tag(&payload).finalize().into_bytes());
            assert_eq!(
                signer.verify(&format!("{payload}.{signature}")),
                None,
                "{p}"
            );
        }
    }

    #[test]
    fn debug_hides_the_key() {
        assert!(format!("{:?}", HmacUploadUrlSigner::new(b"s")).contains("REDACTED"));
    }
}
