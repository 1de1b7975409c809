//! What happened to a file, as the audit stream and webhooks report it: an upload, a download
//! from its first byte, a read the permission service refused, a deletion.

use stowage_domain::{AccountId, FileId, FileRecord, Principal, PrincipalKind, UserId};
use time::OffsetDateTime;

/// The kind of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A file was stored (`file.upload`).
    Upload,
    /// A download started at the file's first byte (`file.download`).
    Download,
    /// The permission service refused a read (`file.access_denied`).
    AccessDenied,
    /// A file was deleted (`file.delete`; webhooks only).
    Delete,
}

impl EventKind {
    /// Every kind, in a stable order.
    pub const ALL: [EventKind; 4] = [
        EventKind::Upload,
        EventKind::Download,
        EventKind::AccessDenied,
        EventKind::Delete,
    ];

    /// The event's type as the stream and webhooks name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Upload => "file.upload",
            Self::Download => "file.download",
            Self::AccessDenied => "file.access_denied",
            Self::Delete => "file.delete",
        }
    }

    /// The kind named `name` (`file.upload`, …).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// How the audit log names a caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActorKind {
    /// A user's token.
    User,
    /// An account-level token (no user).
    ApiKey,
    /// A workflow guest, a public token, or a signed URL.
    Guest,
}

impl ActorKind {
    /// `user`, `api_key` or `guest`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::ApiKey => "api_key",
            Self::Guest => "guest",
        }
    }
}

/// Who acted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Actor {
    /// How the audit log names the caller.
    pub kind: ActorKind,
    /// The caller's user, when it is one.
    pub user_id: Option<UserId>,
    /// The caller's account.
    pub account_id: AccountId,
}

impl Actor {
    /// The actor `principal` is: a user token is a `user`, an account-level token an `api_key`,
    /// guest JWTs and public tokens a `guest`.
    pub fn of(principal: &Principal) -> Self {
        let kind = match (principal.kind(), principal.user_id()) {
            (PrincipalKind::User, Some(_)) => ActorKind::User,
            (PrincipalKind::User, None) => ActorKind::ApiKey,
            (PrincipalKind::Guest | PrincipalKind::Public, _) => ActorKind::Guest,
        };
        Self {
            kind,
            user_id: principal.user_id(),
            account_id: principal.account_id(),
        }
    }

    /// The holder of a signed URL: anonymous, acting within the file's account.
    pub fn signed_url(record: &FileRecord) -> Self {
        Self {
            kind: ActorKind::Guest,
            user_id: None,
            account_id: record.account_id(),
        }
    }
}

/// What the HTTP request behind an event tells about its client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestFacts {
    /// The client's address (as the rate limits see it).
    pub ip: Option<String>,
    /// The `User-Agent` header, at most 500 characters.
    pub user_agent: Option<String>,
    /// The request's id (`X-Request-Id`).
    pub request_id: Option<String>,
}

/// Longest `User-Agent` an event keeps.
pub const MAX_USER_AGENT_CHARS: usize = 500;

impl RequestFacts {
    /// Facts with the user agent cut to [`MAX_USER_AGENT_CHARS`].
    pub fn new(ip: Option<String>, user_agent: Option<&str>, request_id: Option<String>) -> Self {
        Self {
            ip,
            user_agent: user_agent.map(|ua| ua.chars().take(MAX_USER_AGENT_CHARS).collect()),
            request_id,
        }
    }
}

/// One event about one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEvent {
    /// Unique id of the event (a webhook's `id`, the same on every delivery attempt).
    pub id: uuid::Uuid,
    /// What happened.
    pub kind: EventKind,
    /// When.
    pub at: OffsetDateTime,
    /// Who.
    pub actor: Actor,
    /// The file.
    pub file_id: FileId,
    /// Its (sanitised) name.
    pub filename: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its stored content type.
    pub content_type: String,
    /// The account the file belongs to.
    pub file_account_id: AccountId,
    /// On downloads: whether the actor owns the file.
    pub is_owner: Option<bool>,
    /// The client behind it.
    pub request: RequestFacts,
}

impl FileEvent {
    /// An event of `kind` by `actor` about `record`, now.
    pub fn new(
        kind: EventKind,
        actor: Actor,
        record: &FileRecord,
        request: &RequestFacts,
        at: OffsetDateTime,
    ) -> Self {
        Self {
            id: uuid::Uuid::new_v4(),
            kind,
            at,
            actor,
            file_id: record.id(),
            filename: record.filename().as_str().to_owned(),
            size: record.size(),
            content_type: record.content_type().as_str().to_owned(),
            file_account_id: record.account_id(),
            is_owner: None,
            request: request.clone(),
        }
    }

    /// This event, saying whether the actor owns the file (downloads).
    pub fn with_owner(mut self, is_owner: bool) -> Self {
        self.is_owner = Some(is_owner);
        self
    }
}
