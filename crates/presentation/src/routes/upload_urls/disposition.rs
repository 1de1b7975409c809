//! The file name of a raw upload's `Content-Disposition` header (RFC 6266, RFC 8187).

use percent_encoding::percent_decode_str;

/// The `filename*` parameter (UTF-8 or ISO-8859-1, percent-encoded) when it can be read, else
/// the `filename` parameter (a token or a quoted string); `None` when there is neither. The name
/// is sanitised later, as every upload's is.
pub(super) fn filename_of(header: &str) -> Option<String> {
    let mut plain = None;
    let mut extended = None;
    for (name, value) in parameters(header) {
        if name.eq_ignore_ascii_case("filename*") {
            extended = extended.or_else(|| extended_value(&value));
        } else if name.eq_ignore_ascii_case("filename") {
            plain = plain.or(Some(value));
        }
    }
    extended.or(plain)
}

/// The `name=value` parameters after the disposition type, with quoted values unquoted.
fn parameters(header: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let Some((_, mut rest)) = header.split_once(';') else {
        return found;
    };
    loop {
        let Some((name, after)) = rest.split_once('=') else {
            return found;
        };
        let after = after.trim_start();
        let (value, next) = match after.strip_prefix('"') {
            Some(quoted) => quoted_string(quoted),
            None => match after.split_once(';') {
                Some((token, next)) => (token.trim_end().to_owned(), Some(next)),
                None => (after.trim_end().to_owned(), None),
            },
        };
        found.push((name.trim().to_owned(), value));
        match next {
            Some(next) => rest = next,
            None => return found,
        }
    }
}

/// A quoted string's text (after its opening quote) and what follows its next `;`.
fn quoted_string(s: &str) -> (String, Option<&str>) {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, escaped)) = chars.next() {
                    value.push(escaped);
                }
            }
            '"' => {
                let next = s[i + 1..].split_once(';').map(|(_, next)| next);
                return (value, next);
            }
            c => value.push(c),
        }
    }
    (value, None)
}

/// RFC 8187 `charset'language'value-chars`.
fn extended_value(value: &str) -> Option<String> {
    let mut parts = value.splitn(3, '\'');
    let (charset, _language, encoded) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes: Vec<u8> = percent_decode_str(encoded).collect();
    if charset.eq_ignore_ascii_case("utf-8") {
        String::from_utf8(bytes).ok()
    } else if charset.eq_ignore_ascii_case("iso-8859-1") {
        Some(bytes.into_iter().map(char::from).collect())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::filename_of;

    #[test]
    fn the_file_name_comes_from_filename_star_then_filename() {
        let cases: &[(&str, Option<&str>)] = &[
            ("attachment; filename=\"a b.txt\"", Some("a b.txt")),
            ("attachment; filename=plain.txt", Some("plain.txt")),
            ("inline;filename=plain.txt ; size=3", Some("plain.txt")),
            (
                "attachment; filename=\"x.pdf\"; filename*=UTF-8''%D0%BE%D1%82%D1%87%D1%91%D1%82.pdf",
                Some("отчёт.pdf"),
            ),
            (
                "attachment; filename*=utf-8'en'%E2%82%AC%20rates.txt; filename=\"rates.txt\"",
                Some("€ rates.txt"),
            ),
            (
                "attachment; filename*=ISO-8859-1''caf%E9.txt",
                Some("café.txt"),
            ),
            (
                "attachment; filename*=UTF-8''%FF%FE.txt; filename=\"fallback.txt\"",
                Some("fallback.txt"),
            ),
            (
                "attachment; filename*=KOI8-R''%C1.txt; filename=\"fallback.txt\"",
                Some("fallback.txt"),
            ),
            (
                "attachment; filename=\"q\\\"uote;d.txt\"; x=1",
                Some("q\"uote;d.txt"),
            ),
            ("attachment", None),
            ("attachment; name=\"file\"", None),
            ("", None),
            ("attachment; filename=\"unterminated", Some("unterminated")),
        ];
        for (header, expected) in cases {
            assert_eq!(filename_of(header).as_deref(), *expected, "{header}");
        }
    }
}
