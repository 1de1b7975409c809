//! Pure helpers for download headers: `Content-Disposition`, entity tags, URI encoding.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use stowage_domain::Filename;

/// RFC 8187 `attr-char`: everything else is percent-encoded in `filename*`.
const ATTR_CHAR_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// What JavaScript's `encodeURIComponent` leaves alone.
const URI_COMPONENT_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// `s` percent-encoded exactly like JavaScript's `encodeURIComponent`.
pub fn encode_uri_component(s: &str) -> String {
    utf8_percent_encode(s, URI_COMPONENT_ESCAPES).to_string()
}

/// `{kind}; filename="{ascii}"; filename*=UTF-8''{encoded}`.
pub fn content_disposition(inline: bool, name: &Filename) -> String {
    let kind = if inline { "inline" } else { "attachment" };
    let encoded = utf8_percent_encode(name.as_str(), ATTR_CHAR_ESCAPES);
    format!(
        "{kind}; filename=\"{}\"; filename*=UTF-8''{encoded}",
        name.ascii_fallback()
    )
}

/// The strong entity tag of a file: its validator (SHA-256, or id while that is unknown) in quotes.
pub fn etag_of(validator: &str) -> String {
    format!("\"{validator}\"")
}

/// Whether an `If-None-Match` value matches `etag` (weak comparison, `*` matches anything).
pub fn if_none_match_matches(header: &str, etag: &str) -> bool {
    header.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

/// Whether an `If-Range` value still designates this representation: an exact strong entity
/// tag, or an HTTP date equal to `last_modified` (both strong validators here, as blobs never change).
pub fn if_range_matches(header: &str, etag: &str, last_modified: Option<&str>) -> bool {
    let header = header.trim();
    if header.starts_with('"') {
        header == etag
    } else {
        last_modified == Some(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_disposition_has_ascii_fallback_and_utf8_name() {
        let name = Filename::sanitize("отчёт 2024.pdf");
        assert_eq!(
            content_disposition(false, &name),
            "attachment; filename=\"______2024.pdf\"; filename*=UTF-8''%D0%BE%D1%82%D1%87%D1%91%D1%82_2024.pdf"
        );
        let plain = Filename::sanitize("a b.txt");
        assert_eq!(
            content_disposition(true, &plain),
            "inline; filename=\"a_b.txt\"; filename*=UTF-8''a_b.txt"
        );
    }

    #[test]
    fn encode_uri_component_matches_javascript() {
        assert_eq!(
            encode_uri_component("https://app.example/files/x?a=1&b=é (ok)!*'~"),
            "https%3A%2F%2Fapp.example%2Ffiles%2Fx%3Fa%3D1%26b%3D%C3%A9%20(ok)!*'~"
        );
    }

    #[test]
    fn if_none_match_handles_lists_weak_tags_and_star() {
        let tag = "\"abc\"";
        assert!(if_none_match_matches("\"abc\"", tag));
        assert!(if_none_match_matches("\"x\", W/\"abc\"", tag));
        assert!(if_none_match_matches("*", tag));
        assert!(!if_none_match_matches("\"abd\"", tag));
        assert!(!if_none_match_matches("abc", tag));
    }

    #[test]
    fn if_range_needs_the_exact_tag_or_date() {
        let tag = "\"abc\"";
        let date = Some("Sun, 06 Nov 1994 08:49:37 GMT");
        assert!(if_range_matches("\"abc\"", tag, date));
        assert!(!if_range_matches("W/\"abc\"", tag, date));
        assert!(!if_range_matches("\"abd\"", tag, date));
        assert!(if_range_matches("Sun, 06 Nov 1994 08:49:37 GMT", tag, date));
        assert!(!if_range_matches(
            "Mon, 07 Nov 1994 08:49:37 GMT",
            tag,
            date
        ));
        assert!(!if_range_matches(
            "Sun, 06 Nov 1994 08:49:37 GMT",
            tag,
            None
        ));
    }
}
