//! The audit envelope: the JSON body the Django backend reads from the events stream (the
//! `data` field) and from webhooks, as the Pneumatic file service wrote it.

use serde_json::{Value, json};
use stowage_application::events::{EventKind, FileEvent, MAX_USER_AGENT_CHARS};
use time::{OffsetDateTime, UtcOffset};

/// The fields of an event that may identify a person, named as the backend redacts them.
pub const PII_FIELDS: [&str; 3] = ["ip", "user_agent", "payload.filename"];

/// The envelope of `event` for `service` (`EVENTS_SERVICE_NAME`). Pure, so the stream and
/// webhooks send the same body for the same event.
pub fn envelope(event: &FileEvent, service: &str) -> Value {
    let actor = &event.actor;
    let mut payload = json!({
        "filename": event.filename,
        "size": event.size,
        "content_type": event.content_type,
    });
    if let Some(is_owner) = event.is_owner {
        payload["is_owner"] = Value::Bool(is_owner);
    }
    if event.kind == EventKind::AccessDenied && event.file_account_id != actor.account_id {
        payload["file_account_id"] = json!(event.file_account_id.get());
    }
    let user_agent = event
        .request
        .user_agent
        .as_deref()
        .map(|ua| ua.chars().take(MAX_USER_AGENT_CHARS).collect::<String>());
    json!({
        "type": event.kind.as_str(),
        "category": "audit",
        "service": service,
        "ts": timestamp(event.at),
        "account_id": actor.account_id.get(),
        "actor": {
            "type": actor.kind.as_str(),
            "id": actor.user_id.map(|id| id.get()),
            "email": null,
        },
        "object": {"type": "file", "id": event.file_id.to_string()},
        "workflow_id": null,
        "task_id": null,
        "ip": event.request.ip,
        "user_agent": user_agent,
        "request_id": event.request.request_id,
        "payload": payload,
        "pii": PII_FIELDS,
    })
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC, as Python's `isoformat()` with a `Z` gave it.
pub fn timestamp(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.microsecond()
    )
}

#[cfg(test)]
mod tests {
    use stowage_application::events::{Actor, ActorKind, RequestFacts};
    use stowage_domain::{AccountId, FileId, UserId};
    use time::macros::datetime;

    use super::*;

    const FILE: &str = "7c0e2a52-8f0b-4c39-9f77-2b0d5c1e4a10";

    fn event(kind: EventKind, actor: Actor) -> FileEvent {
        FileEvent {
            id: uuid::Uuid::new_v4(),
            kind,
            at: datetime!(2026-11-23 19:10:15.051622 +02:00),
            actor,
            file_id: FileId::parse(FILE).unwrap(),
            filename: "report.pdf".to_owned(),
            size: 48_213,
            content_type: "application/pdf".to_owned(),
            file_account_id: AccountId::new(7),
            is_owner: None,
            request: RequestFacts::new(
                Some("203.0.113.9".to_owned()),
                Some("curl/8.5"),
                Some("req-1".to_owned()),
            ),
        }
    }

    fn user(account: i64) -> Actor {
        Actor {
            kind: ActorKind::User,
            user_id: Some(UserId::new(3)),
            account_id: AccountId::new(account),
        }
    }

    #[test]
    fn an_upload_has_every_field_of_the_pneumatic_envelope() {
        let value = envelope(&event(EventKind::Upload, user(7)), "stowage");
        assert_eq!(
            value,
            json!({
                "type": "file.upload",
                "category": "audit",
                "service": "stowage",
                "ts": "2026-11-23T17:10:15.051622Z",
                "account_id": 7,
                "actor": {"type": "user", "id": 3, "email": null},
                "object": {"type": "file", "id": FILE},
                "workflow_id": null,
                "task_id": null,
                "ip": "203.0.113.9",
                "user_agent": "curl/8.5",
                "request_id": "req-1",
                "payload": {
                    "filename": "report.pdf",
                    "size": 48_213,
                    "content_type": "application/pdf",
                },
                "pii": ["ip", "user_agent", "payload.filename"],
            })
        );
    }

    #[test]
    fn a_download_says_whether_the_actor_owns_the_file() {
        let value = envelope(
            &event(EventKind::Download, user(7)).with_owner(false),
            "files",
        );
        assert_eq!(value["type"], "file.download");
        assert_eq!(value["service"], "files");
        assert_eq!(value["payload"]["is_owner"], false);
        assert!(value["payload"].get("file_account_id").is_none());
    }

    #[test]
    fn a_denial_across_accounts_names_the_files_account() {
        let across = envelope(&event(EventKind::AccessDenied, user(9)), "stowage");
        assert_eq!(across["type"], "file.access_denied");
        assert_eq!(across["account_id"], 9);
        assert_eq!(across["payload"]["file_account_id"], 7);
        assert!(across["payload"].get("is_owner").is_none());

        let within = envelope(&event(EventKind::AccessDenied, user(7)), "stowage");
        assert!(within["payload"].get("file_account_id").is_none());
        let upload = envelope(&event(EventKind::Upload, user(9)), "stowage");
        assert!(upload["payload"].get("file_account_id").is_none());
    }

    #[test]
    fn guests_and_api_keys_have_no_user_id() {
        for (kind, name) in [(ActorKind::Guest, "guest"), (ActorKind::ApiKey, "api_key")] {
            let actor = Actor {
                kind,
                user_id: None,
                account_id: AccountId::new(7),
            };
            let value = envelope(&event(EventKind::Download, actor), "stowage");
            assert_eq!(
                value["actor"],
                json!({"type": name, "id": null, "email": null})
            );
        }
    }

    #[test]
    fn missing_request_facts_are_null_and_the_user_agent_is_cut() {
        let mut bare = event(EventKind::Upload, user(7));
        bare.request = RequestFacts::default();
        let value = envelope(&bare, "stowage");
        for field in ["ip", "user_agent", "request_id"] {
            assert_eq!(value[field], Value::Null, "{field}");
        }
        bare.request.user_agent = Some("é".repeat(MAX_USER_AGENT_CHARS + 20));
        let value = envelope(&bare, "stowage");
        let ua = value["user_agent"].as_str().unwrap();
        assert_eq!(ua.chars().count(), MAX_USER_AGENT_CHARS);
    }

    #[test]
    fn the_timestamp_always_has_six_fractional_digits() {
        assert_eq!(
            timestamp(datetime!(2026-01-02 03:04:05 UTC)),
            "2026-01-02T03:04:05.000000Z"
        );
        assert_eq!(
            timestamp(datetime!(2026-01-02 03:04:05.000_000_999 UTC)),
            "2026-01-02T03:04:05.000000Z"
        );
        assert_eq!(
            timestamp(datetime!(2026-12-31 23:59:59.999_999 -01:00)),
            "2027-01-01T00:59:59.999999Z"
        );
    }
}
