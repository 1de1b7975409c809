//! Recognises content a browser could render as a document: HTML, SVG, XML.

/// Tags that mark markup when the text starts with them, in any case.
const PREFIX_TAGS: &[&[u8]] = &[
    b"<!doctype",
    b"<html",
    b"<head",
    b"<body",
    b"<script",
    b"<iframe",
    b"<svg",
    b"<?xml",
    b"<!--",
    b"<style",
    b"<meta",
    b"<img",
    b"<div",
    b"<title",
    b"<table",
    b"<br",
    b"<h1",
    b"<font",
    b"<frameset",
    b"<object",
    b"<embed",
    b"<link",
    b"<base",
    b"<form",
];

/// One-letter tags, which only count when the tag name ends right after them
/// (so `<a@b.c>` in a plain-text e-mail is not mistaken for a link).
const SHORT_TAGS: &[&[u8]] = &[b"<a", b"<b", b"<p"];

/// How many characters of the start are looked at; the longest tag is shorter.
const WINDOW: usize = 64;

/// Whether `prefix` starts, after an optional byte-order mark and leading ASCII white space,
/// like an HTML, SVG or XML document.
pub(crate) fn looks_like_markup(prefix: &[u8]) -> bool {
    let text = ascii_start(prefix);
    let start = text
        .iter()
        .position(|b| !is_ascii_space(*b))
        .unwrap_or(text.len());
    let text = &text[start..];
    PREFIX_TAGS
        .iter()
        .any(|tag| starts_with_ignore_case(text, tag))
        || SHORT_TAGS.iter().any(|tag| {
            starts_with_ignore_case(text, tag)
                && text
                    .get(tag.len())
                    .is_none_or(|&b| b == b'>' || b == b'/' || is_ascii_space(b))
        })
}

/// The start of the text as single bytes, decoding UTF-16 (by its byte-order mark) as far
/// as it stays ASCII, since browsers honour those marks when they guess a document.
fn ascii_start(prefix: &[u8]) -> Vec<u8> {
    let utf16 = |body: &[u8], little_endian: bool| -> Vec<u8> {
        body.chunks_exact(2)
            .map(|pair| {
                if little_endian {
                    (pair[0], pair[1])
                } else {
                    (pair[1], pair[0])
                }
            })
            .take_while(|&(_, high)| high == 0)
            .map(|(low, _)| low)
            .take(WINDOW)
            .collect()
    };
    match prefix {
        [0xEF, 0xBB, 0xBF, body @ ..] => body.iter().copied().take(WINDOW).collect(),
        [0xFF, 0xFE, body @ ..] => utf16(body, true),
        [0xFE, 0xFF, body @ ..] => utf16(body, false),
        body => body.iter().copied().take(WINDOW).collect(),
    }
}

fn is_ascii_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0C)
}

fn starts_with_ignore_case(text: &[u8], tag: &[u8]) -> bool {
    text.get(..tag.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16(s: &str, little_endian: bool) -> Vec<u8> {
        let mut out = if little_endian {
            vec![0xFF, 0xFE]
        } else {
            vec![0xFE, 0xFF]
        };
        for unit in s.encode_utf16() {
            let bytes = if little_endian {
                unit.to_le_bytes()
            } else {
                unit.to_be_bytes()
            };
            out.extend_from_slice(&bytes);
        }
        out
    }

    #[test]
    fn looks_like_markup_recognises_documents() {
        let utf16_le = utf16("<html><body>", true);
        let utf16_be = utf16("  <svg xmlns=", false);
        let utf16_text = utf16("hello <html>", true);
        let cases: &[(&[u8], bool)] = &[
            (b"<!DOCTYPE html><html>", true),
            (b"<!doctype HTML>", true),
            (b"<html>", true),
            (b"<HTML lang=en>", true),
            (b"<head><title>x", true),
            (b"<body onload=alert(1)>", true),
            (b"<script>alert(1)</script>", true),
            (b"<iframe src=x>", true),
            (b"<svg xmlns=\"http://www.w3.org/2000/svg\">", true),
            (b"<?xml version=\"1.0\"?><svg>", true),
            (b"<!-- comment -->", true),
            (b"<style>", true),
            (b"<meta charset=utf-8>", true),
            (b"<a href=x>", true),
            (b"<a>", true),
            (b"<A\nhref=x>", true),
            (b"<img src=x onerror=y>", true),
            (b"<div>", true),
            (b"<p>hello", true),
            (b"<P class=x>", true),
            (b"<title>", true),
            (b"<table>", true),
            (b"<br/>", true),
            (b"<h1>", true),
            (b"<b>bold", true),
            (b"<font color=red>", true),
            (b"<b", true),
            (b" \t\r\n<html>", true),
            (b"\xEF\xBB\xBF<html>", true),
            (b"\xEF\xBB\xBF \n<ScRiPt>", true),
            (&utf16_le, true),
            (&utf16_be, true),
            (b"", false),
            (b"hello <html>", false),
            (b"plain text", false),
            (b"{\"json\": \"<html>\"}", false),
            (b"<a@example.com> wrote:", false),
            (b"<abc>", false),
            (b"<pre-formatted", false),
            (b"<bold>", false),
            (b"< html>", false),
            (b"\x00<html>", false),
            (b"\xC2\xA0<html>", false),
            (b"\x89PNG\r\n\x1a\n", false),
            (&utf16_text, false),
        ];
        for &(prefix, expected) in cases {
            assert_eq!(
                looks_like_markup(prefix),
                expected,
                "prefix {:?}",
                String::from_utf8_lossy(prefix)
            );
        }
    }
}
