//! Credentials taken out of text bound for error tracking.
//!
//! Error messages and panic messages are written for people, and a cause chain may quote a URL,
//! a header or a query string. Whatever leaves the process for Sentry goes through [`scrub`]
//! first: it replaces every value that looks like a credential with `[Filtered]`, keeping the
//! text around it readable.

/// What a removed value is replaced with.
pub const FILTERED: &str = "[Filtered]";

/// Words that make a `name=value` or `name: value` pair secret when the name contains them.
const SECRET_NAMES: [&str; 11] = [
    "auth",
    "cookie",
    "token",
    "signature",
    "secret",
    "password",
    "passwd",
    "credential",
    "session",
    "apikey",
    "api_key",
];

/// Names whose value runs to the end of the line (headers: `Authorization: Bearer …`,
/// `Cookie: a=1; b=2`), rather than to the next separator.
const HEADER_NAMES: [&str; 2] = ["auth", "cookie"];

/// Authorization schemes whose next word is a credential.
const SCHEMES: [&str; 4] = ["bearer", "token", "basic", "digest"];

/// `text` with credentials replaced by [`FILTERED`]: values of secret-sounding names
/// (`signature=…`, `Authorization: …`, `"token": "…"`), the credential after an authorization
/// scheme (`Bearer …`, `Token …`), the query string of a URL or path (`/files/…?…`), and the
/// password of a URL (`scheme://user:…@host`).
pub fn scrub(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        match secret_at(bytes, at) {
            Some((keep, end)) => {
                out.push_str(&text[copied..keep]);
                out.push_str(FILTERED);
                copied = end;
                at = end.max(at + 1);
            }
            None => at += 1,
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// Whether a field called `name` holds a secret whatever its value.
pub fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_NAMES.iter().any(|word| name.contains(word))
}

/// When a secret starts at `at`: the end of what stays (a name, a scheme, `?`) and the end of
/// the value that goes. Every returned offset follows an ASCII byte or ends the text, so it is
/// a character boundary.
fn secret_at(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    let before = at.checked_sub(1).map(|i| bytes[i]);
    match bytes[at] {
        b'?' if before.is_some_and(|b| !b.is_ascii_whitespace()) => query(bytes, at + 1),
        b':' if bytes[at..].starts_with(b"://") => password(bytes, at + 3),
        b if is_name_byte(b) && !before.is_some_and(is_name_byte) => {
            named_value(bytes, at).or_else(|| scheme_credential(bytes, at))
        }
        _ => None,
    }
}

/// A query string (`?a=b&c=d`) from `start`, when it has a `=`.
fn query(bytes: &[u8], start: usize) -> Option<(usize, usize)> {
    let end = run_end(bytes, start, |b| {
        b.is_ascii_whitespace() || matches!(b, b'"' | b'\'' | b')' | b']' | b'}' | b'>' | b'#')
    });
    bytes[start..end].contains(&b'=').then_some((start, end))
}

/// The password of `user:password@host`, the authority starting at `start`.
fn password(bytes: &[u8], start: usize) -> Option<(usize, usize)> {
    let end = run_end(bytes, start, |b| {
        b.is_ascii_whitespace() || matches!(b, b'/' | b'?' | b'#' | b'"' | b'\'' | b'>')
    });
    let authority = &bytes[start..end];
    let at_sign = authority.iter().rposition(|&b| b == b'@')?;
    let colon = authority[..at_sign].iter().position(|&b| b == b':')?;
    (colon + 1 < at_sign).then_some((start + colon + 1, start + at_sign))
}

/// `name=value`, `name: value`, `"name": "value"` where the name sounds secret.
fn named_value(bytes: &[u8], start: usize) -> Option<(usize, usize)> {
    let name_end = run_end(bytes, start, |b| !is_name_byte(b));
    let name = std::str::from_utf8(&bytes[start..name_end]).ok()?;
    if !is_secret_name(name) {
        return None;
    }
    let mut at = name_end;
    if matches!(bytes.get(at), Some(b'"' | b'\'')) {
        at += 1;
    }
    at = skip_spaces(bytes, at);
    if !matches!(bytes.get(at), Some(b'=' | b':')) {
        return None;
    }
    at = skip_spaces(bytes, at + 1);
    let quoted = matches!(bytes.get(at), Some(b'"' | b'\''));
    if quoted {
        at += 1;
    }
    let lower = name.to_ascii_lowercase();
    let header = HEADER_NAMES.iter().any(|word| lower.contains(word));
    let end = if quoted {
        run_end(bytes, at, |b| matches!(b, b'"' | b'\'' | b'\n' | b'\r'))
    } else if header {
        run_end(bytes, at, |b| matches!(b, b'\n' | b'\r' | b'"'))
    } else {
        run_end(bytes, at, is_value_end)
    };
    (end > at).then_some((at, end))
}

/// `Bearer <credential>`, `Token <credential>` and the other schemes.
fn scheme_credential(bytes: &[u8], start: usize) -> Option<(usize, usize)> {
    let word_end = run_end(bytes, start, |b| !b.is_ascii_alphabetic());
    let word = &bytes[start..word_end];
    if !SCHEMES
        .iter()
        .any(|s| word.eq_ignore_ascii_case(s.as_bytes()))
    {
        return None;
    }
    let at = skip_spaces(bytes, word_end);
    if at == word_end {
        return None;
    }
    let end = run_end(bytes, at, is_value_end);
    (end > at).then_some((at, end))
}

/// Bytes of a name: letters, digits, `_`, `-`, `.`.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// Where an unquoted value ends.
fn is_value_end(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(
            b,
            b'&' | b';' | b',' | b'"' | b'\'' | b')' | b']' | b'}' | b'>' | b'#'
        )
}

fn run_end(bytes: &[u8], start: usize, stop: impl Fn(u8) -> bool) -> usize {
    bytes[start.min(bytes.len())..]
        .iter()
        .position(|&b| stop(b))
        .map_or(bytes.len(), |n| start + n)
}

fn skip_spaces(bytes: &[u8], start: usize) -> usize {
    run_end(bytes, start, |b| b != b' ' && b != b'\t')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_urls_lose_their_query() {
        assert_eq!(
            scrub("GET /files/7c0e?expires=1795461613&signature=9f2c failed"),
            "GET /files/7c0e?[Filtered] failed"
        );
        assert_eq!(
            scrub("error sending request for url (http://perm:8000/check?file_id=1&token=abc)"),
            "error sending request for url (http://perm:8000/check?[Filtered])"
        );
        assert_eq!(scrub("why? because"), "why? because");
        assert_eq!(scrub("a ?b=c"), "a ?b=c");
    }

    #[test]
    fn secret_names_lose_their_values() {
        assert_eq!(scrub("signature=9f2c&x=1"), "signature=[Filtered]&x=1");
        assert_eq!(
            scrub("X-Amz-Signature=abc X-Amz-Credential=AK/2026"),
            "X-Amz-Signature=[Filtered] X-Amz-Credential=[Filtered]"
        );
        assert_eq!(
            scrub("access_token: abc, AUTH_SECRET_KEY = s3cr3t"),
            "access_token: [Filtered], AUTH_SECRET_KEY = [Filtered]"
        );
        assert_eq!(
            scrub(r#"{"authorization": "Bearer abc.def", "cookie":"sessionid=x; csrftoken=y"}"#),
            r#"{"authorization": "[Filtered]", "cookie":"[Filtered]"}"#
        );
        assert_eq!(
            scrub("Authorization: Bearer abc.def\nnext line"),
            "Authorization: [Filtered]\nnext line"
        );
        assert_eq!(
            scrub("Cookie: file_service_auth=abc; token=def"),
            "Cookie: [Filtered]"
        );
        assert_eq!(scrub("password=hunter2"), "password=[Filtered]");
    }

    #[test]
    fn credentials_after_a_scheme_go() {
        assert_eq!(
            scrub("rejected Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig here"),
            "rejected Bearer [Filtered] here"
        );
        assert_eq!(
            scrub("X-Public-Authorization was Token abcdefgh"),
            "X-Public-Authorization was Token [Filtered]"
        );
        assert_eq!(scrub("bearer\tq1w2e3"), "bearer\t[Filtered]");
        assert_eq!(scrub("Bearer"), "Bearer");
        assert_eq!(scrub("Tokens abc"), "Tokens abc");
    }

    #[test]
    fn url_passwords_go() {
        assert_eq!(
            scrub("connecting to redis://:pw@cache:6379/0 and postgres://app:dbpw@db/x failed"),
            "connecting to redis://:[Filtered]@cache:6379/0 and postgres://app:[Filtered]@db/x failed"
        );
        assert_eq!(
            scrub("https://publickey@o1.ingest.sentry.io/42"),
            "https://publickey@o1.ingest.sentry.io/42"
        );
    }

    #[test]
    fn ordinary_text_is_kept_as_it_is() {
        for text in [
            "request failed",
            "database: pool timed out while waiting for an open connection",
            "blob store: Not a directory (os error 20)",
            "unknown upload policy 'avatar' – ünïcödé",
            "status=503 code=STORAGE_UNAVAILABLE",
            "",
        ] {
            assert_eq!(scrub(text), text);
        }
    }

    #[test]
    fn non_ascii_text_around_secrets_survives() {
        assert_eq!(
            scrub("ünï?signature=é€ ü token=ß"),
            "ünï?[Filtered] ü token=[Filtered]"
        );
        assert!(is_secret_name("X-Guest-Authorization"));
        assert!(!is_secret_name("file_id"));
    }
}
