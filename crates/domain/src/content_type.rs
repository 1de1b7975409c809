//! [`ContentType`]: the media type a file is stored and served as, and the upload rule that picks it.

mod magic;
mod markup;

use std::fmt;

use magic::Family;

/// How many leading bytes `resolve` wants to see.
pub const SNIFF_LEN: usize = 512;

/// The type served when nothing safer can be said about a file.
const OCTET_STREAM: &str = "application/octet-stream";

/// The types an upload may be stored as, each with the magic-byte family its bytes must
/// belong to (`None` for formats without magic bytes).
const ALLOWED: &[(&str, Option<Family>)] = &[
    ("image/png", Some(Family::Png)),
    ("image/jpeg", Some(Family::Jpeg)),
    ("image/gif", Some(Family::Gif)),
    ("image/webp", Some(Family::Webp)),
    ("image/bmp", Some(Family::Bmp)),
    ("image/tiff", Some(Family::Tiff)),
    ("image/x-icon", Some(Family::Ico)),
    ("image/vnd.microsoft.icon", Some(Family::Ico)),
    ("image/heic", Some(Family::IsoMedia)),
    ("image/heif", Some(Family::IsoMedia)),
    ("image/avif", Some(Family::IsoMedia)),
    ("application/pdf", Some(Family::Pdf)),
    ("application/rtf", None),
    ("text/plain", None),
    ("text/csv", None),
    ("text/markdown", None),
    ("application/json", None),
    ("application/msword", Some(Family::Ole2)),
    ("application/vnd.ms-excel", Some(Family::Ole2)),
    ("application/vnd.ms-powerpoint", Some(Family::Ole2)),
    (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        Some(Family::Zip),
    ),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        Some(Family::Zip),
    ),
    (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        Some(Family::Zip),
    ),
    ("application/vnd.oasis.opendocument.text", Some(Family::Zip)),
    (
        "application/vnd.oasis.opendocument.spreadsheet",
        Some(Family::Zip),
    ),
    (
        "application/vnd.oasis.opendocument.presentation",
        Some(Family::Zip),
    ),
    ("application/epub+zip", Some(Family::Zip)),
    ("audio/mpeg", Some(Family::MpegAudio)),
    ("audio/mp4", Some(Family::IsoMedia)),
    ("audio/x-m4a", Some(Family::IsoMedia)),
    ("audio/aac", Some(Family::Aac)),
    ("audio/ogg", Some(Family::Ogg)),
    ("audio/opus", Some(Family::Ogg)),
    ("audio/wav", Some(Family::Wav)),
    ("audio/x-wav", Some(Family::Wav)),
    ("audio/webm", Some(Family::Matroska)),
    ("audio/flac", Some(Family::Flac)),
    ("audio/midi", Some(Family::Midi)),
    ("audio/x-midi", Some(Family::Midi)),
    ("video/mp4", Some(Family::IsoMedia)),
    ("video/mpeg", Some(Family::MpegVideo)),
    ("video/webm", Some(Family::Matroska)),
    ("video/ogg", Some(Family::Ogg)),
    ("video/quicktime", Some(Family::IsoMedia)),
    ("video/x-msvideo", Some(Family::Avi)),
    ("video/x-matroska", Some(Family::Matroska)),
    ("application/zip", Some(Family::Zip)),
    ("application/x-zip-compressed", Some(Family::Zip)),
    ("application/gzip", Some(Family::Gzip)),
    ("application/x-gzip", Some(Family::Gzip)),
    ("application/x-tar", Some(Family::Tar)),
    ("application/x-7z-compressed", Some(Family::SevenZip)),
    ("application/x-rar-compressed", Some(Family::Rar)),
    ("application/vnd.rar", Some(Family::Rar)),
    ("application/x-bzip2", Some(Family::Bzip2)),
    ("application/x-xz", Some(Family::Xz)),
    (OCTET_STREAM, None),
];

/// A file's media type, as stored and sent in `Content-Type`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ContentType(String);

impl ContentType {
    /// Returns `application/octet-stream`.
    pub fn octet_stream() -> ContentType {
        ContentType(OCTET_STREAM.to_owned())
    }

    /// Applies the contract's upload rule to a declared type and the file's first bytes.
    ///
    /// Only the first [`SNIFF_LEN`] bytes of `prefix` are looked at. In order:
    /// a start that looks like HTML, SVG or XML gives `application/octet-stream`; recognised
    /// magic bytes give the declared type when it belongs to the same format family, else the
    /// sniffed type; without magic bytes, an allowed declared type is kept unless it is a
    /// binary format (whose magic bytes are then missing), and an empty file keeps only a
    /// text, JSON or octet-stream type. Everything else, unknown and scriptable types
    /// included, becomes `application/octet-stream`.
    pub fn resolve(declared: Option<&str>, prefix: &[u8]) -> ContentType {
        let prefix = prefix.get(..SNIFF_LEN).unwrap_or(prefix);
        let declared = declared.and_then(|raw| allowed_entry(&essence(raw)));
        if markup::looks_like_markup(prefix) {
            return Self::octet_stream();
        }
        let chosen = match (magic::sniff(prefix), declared) {
            (Some(sniffed), Some((name, family))) if family == Some(sniffed.family) => Some(name),
            (Some(sniffed), _) => allowed_entry(sniffed.canonical).map(|(name, _)| name),
            (None, Some((name, None))) if !prefix.is_empty() || may_be_empty(name) => Some(name),
            (None, _) => None,
        };
        chosen.map_or_else(Self::octet_stream, |name| ContentType(name.to_owned()))
    }

    /// Wraps a type already stored in the database, keeping it exactly as it is.
    pub fn from_stored(s: String) -> ContentType {
        ContentType(s)
    }

    /// Wraps a type stored by someone else (the Pneumatic service's rows): the allow-listed type
    /// it names, in canonical form, or `application/octet-stream` for anything the upload rules
    /// would not keep. A type Stowage stored comes back unchanged.
    pub fn from_legacy(stored: &str) -> ContentType {
        allowed_entry(&essence(stored))
            .map_or_else(Self::octet_stream, |(name, _)| ContentType(name.to_owned()))
    }

    /// Returns the type.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a browser may be asked to show the file inline: images (never SVG), audio, video and PDF.
    pub fn is_inline_safe(&self) -> bool {
        let essence = essence(&self.0);
        let Some((top, sub)) = essence.split_once('/') else {
            return false;
        };
        if sub.contains("svg") || sub.contains("xml") || sub.contains("html") {
            return false;
        }
        matches!(top, "image" | "audio" | "video") || essence == "application/pdf"
    }

    /// Returns the canonical type of the binary format `prefix` starts with, if it is recognised.
    pub fn sniff(prefix: &[u8]) -> Option<ContentType> {
        let prefix = prefix.get(..SNIFF_LEN).unwrap_or(prefix);
        magic::sniff(prefix).map(|sniffed| ContentType(sniffed.canonical.to_owned()))
    }

    /// Whether this type matches one of `allowed`, ignoring case and parameters.
    ///
    /// Entries may be exact types (`image/png`), a whole top-level type (`image/*`) or `*/*`.
    pub fn matches_any(&self, allowed: &[&str]) -> bool {
        let essence = essence(&self.0);
        allowed.iter().any(|pattern| {
            let pattern = essence_of_pattern(pattern);
            match pattern.strip_suffix("/*") {
                Some("*") => true,
                Some(top) => essence
                    .split_once('/')
                    .is_some_and(|(own_top, _)| own_top == top),
                None => pattern == essence,
            }
        })
    }
}

/// The type without parameters, trimmed and lower-cased.
fn essence(raw: &str) -> String {
    raw.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn essence_of_pattern(pattern: &str) -> String {
    let essence = essence(pattern);
    if essence == "*" {
        "*/*".to_owned()
    } else {
        essence
    }
}

fn allowed_entry(essence: &str) -> Option<(&'static str, Option<Family>)> {
    ALLOWED.iter().copied().find(|(name, _)| *name == essence)
}

/// Whether an empty file may keep this declared type: only formats that can be empty.
fn may_be_empty(name: &str) -> bool {
    name.starts_with("text/") || name == "application/json" || name == OCTET_STREAM
}

impl AsRef<str> for ContentType {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContentType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::magic::tests::zip_entry;
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01";
    const JPEG: &[u8] = b"\xFF\xD8\xFF\xE0\0\x10JFIF\0";
    const PDF: &[u8] = b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n";
    const GZIP: &[u8] = b"\x1F\x8B\x08\0\0\0\0\0\0\x03";
    const OLE2: &[u8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1\0\0\0\0";
    const WAV: &[u8] = b"RIFF\x24\0\0\0WAVEfmt ";
    const OGG: &[u8] = b"OggS\0\x02\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01\x13OpusHead";
    const WEBM: &[u8] = b"\x1A\x45\xDF\xA3\x9F\x42\x86\x81\x01\x42\x82\x84webm";
    const MP4: &[u8] = b"\0\0\0\x18ftypisom\0\0\x02\0isommp41";
    const HTML: &[u8] = b"<!DOCTYPE html><html><script>alert(1)</script></html>";
    const TEXT: &[u8] = b"hello, world\n";
    const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
    const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
    const ODT: &str = "application/vnd.oasis.opendocument.text";
    const OCTET: &str = OCTET_STREAM;

    /// The first local file header of a docx as written by Word: `[Content_Types].xml`, deflated.
    fn docx_prefix() -> Vec<u8> {
        let mut out = b"PK\x03\x04\x14\0\x06\0\x08\0\0\0!\0".to_vec();
        out.extend_from_slice(&[0x8A, 0x21, 0x4F, 0x5C, 0x6B, 0x01, 0, 0, 0x50, 0x05, 0, 0]);
        out.extend_from_slice(&[0x13, 0, 0x08, 0x02]);
        out.extend_from_slice(b"[Content_Types].xml");
        out.extend_from_slice(&[0xA2, 0x04, 0x02, 0x28, 0xA0, 0]);
        out.resize(SNIFF_LEN, 0xAB);
        out
    }

    #[test]
    fn resolve_follows_the_upload_rule() {
        let docx = docx_prefix();
        let odt = zip_entry("mimetype", 0, ODT.as_bytes());
        let late_png = [TEXT.repeat(40).as_slice(), PNG].concat();
        let html_after_limit = [TEXT.repeat(40).as_slice(), HTML].concat();
        let cases: &[(Option<&str>, &[u8], &str)] = &[
            // markup is never trusted, whatever is declared
            (Some("text/plain"), HTML, OCTET),
            (Some("image/png"), HTML, OCTET),
            (Some("application/json"), HTML, OCTET),
            (Some("application/octet-stream"), HTML, OCTET),
            (Some("text/html"), HTML, OCTET),
            (None, HTML, OCTET),
            (Some("text/plain"), b"\xEF\xBB\xBF  <svg onload=x>", OCTET),
            (Some("text/csv"), b"<?xml version=\"1.0\"?>", OCTET),
            // magic bytes override a contradicting declaration
            (Some("text/plain"), PNG, "image/png"),
            (Some("image/jpeg"), PNG, "image/png"),
            (Some("text/html"), PNG, "image/png"),
            (Some("image/svg+xml"), PNG, "image/png"),
            (Some("application/x-unknown"), PNG, "image/png"),
            (Some("application/octet-stream"), PNG, "image/png"),
            (None, PNG, "image/png"),
            (None, JPEG, "image/jpeg"),
            (Some("application/msword"), PDF, "application/pdf"),
            (Some(DOCX), OLE2, OCTET),
            (None, OLE2, OCTET),
            // a declaration of the same family is kept
            (Some("image/png"), PNG, "image/png"),
            (Some("IMAGE/PNG; foo=bar"), PNG, "image/png"),
            (Some(DOCX), &docx, DOCX),
            (Some(XLSX), &docx, XLSX),
            (Some("application/zip"), &docx, "application/zip"),
            (None, &docx, "application/zip"),
            (Some("text/plain"), &docx, "application/zip"),
            (Some("application/msword"), &docx, "application/zip"),
            (Some(DOCX), &odt, DOCX),
            (None, &odt, ODT),
            (Some("application/msword"), OLE2, "application/msword"),
            (
                Some("application/vnd.ms-excel"),
                OLE2,
                "application/vnd.ms-excel",
            ),
            (Some("application/x-gzip"), GZIP, "application/x-gzip"),
            (Some("audio/x-wav"), WAV, "audio/x-wav"),
            (Some("audio/opus"), OGG, "audio/opus"),
            (Some("video/ogg"), OGG, "video/ogg"),
            (None, OGG, "audio/ogg"),
            (Some("audio/webm"), WEBM, "audio/webm"),
            (Some("video/quicktime"), MP4, "video/quicktime"),
            (Some("audio/x-m4a"), MP4, "audio/x-m4a"),
            (Some("image/avif"), MP4, "image/avif"),
            (Some("audio/mpeg"), MP4, "video/mp4"),
            // binary types without their magic bytes
            (Some("image/png"), TEXT, OCTET),
            (Some("application/pdf"), TEXT, OCTET),
            (Some(DOCX), TEXT, OCTET),
            (Some("video/mp4"), TEXT, OCTET),
            (Some("application/zip"), TEXT, OCTET),
            // types without magic bytes are kept
            (Some("text/plain"), TEXT, "text/plain"),
            (Some("Text/Plain; charset=utf-8"), TEXT, "text/plain"),
            (
                Some("  text/csv ; header=present"),
                b"a,b\n1,2\n",
                "text/csv",
            ),
            (Some("text/markdown"), b"# Title\n", "text/markdown"),
            (Some("application/json"), b"{\"a\": 1}", "application/json"),
            (Some("application/rtf"), b"{\\rtf1\\ansi", "application/rtf"),
            (Some("application/octet-stream"), TEXT, OCTET),
            (Some("text/plain"), b"<a@example.com> wrote:", "text/plain"),
            // refused declarations
            (Some("image/svg+xml"), b"<svg/>", OCTET),
            (Some("image/svg+xml"), TEXT, OCTET),
            (Some("application/javascript"), b"alert(1)", OCTET),
            (Some("text/javascript"), b"alert(1)", OCTET),
            (Some("application/ecmascript"), b"alert(1)", OCTET),
            (Some("application/xml"), TEXT, OCTET),
            (Some("text/xml"), TEXT, OCTET),
            (Some("application/xhtml+xml"), TEXT, OCTET),
            (Some("application/rss+xml"), TEXT, OCTET),
            (Some("text/html"), TEXT, OCTET),
            (Some("application/x-unknown"), TEXT, OCTET),
            (Some(""), TEXT, OCTET),
            (Some("text/plain/extra"), TEXT, OCTET),
            (None, TEXT, OCTET),
            // empty files
            (Some("text/plain"), b"", "text/plain"),
            (Some("text/csv"), b"", "text/csv"),
            (Some("application/json"), b"", "application/json"),
            (Some("application/octet-stream"), b"", OCTET),
            (Some("application/rtf"), b"", OCTET),
            (Some("image/png"), b"", OCTET),
            (Some("application/zip"), b"", OCTET),
            (None, b"", OCTET),
            // only the first SNIFF_LEN bytes count
            (Some("text/plain"), &late_png, "text/plain"),
            (Some("text/plain"), &html_after_limit, "text/plain"),
        ];
        for &(declared, prefix, expected) in cases {
            assert_eq!(
                ContentType::resolve(declared, prefix).as_str(),
                expected,
                "declared {declared:?}, prefix {:?}",
                String::from_utf8_lossy(&prefix[..prefix.len().min(24)])
            );
        }
    }

    #[test]
    fn resolve_only_yields_allowed_types() {
        let prefixes: &[&[u8]] = &[
            PNG, JPEG, PDF, GZIP, OLE2, WAV, OGG, WEBM, MP4, HTML, TEXT, b"",
        ];
        let declared = ALLOWED.iter().map(|(name, _)| Some(*name)).chain([
            None,
            Some("text/html"),
            Some("video/mp2t"),
        ]);
        for declared in declared {
            for &prefix in prefixes {
                let resolved = ContentType::resolve(declared, prefix);
                assert!(
                    allowed_entry(resolved.as_str()).is_some(),
                    "{declared:?} resolved to {resolved}"
                );
            }
        }
    }

    #[test]
    fn sniff_returns_canonical_types() {
        let cases: &[(&[u8], Option<&str>)] = &[
            (PNG, Some("image/png")),
            (PDF, Some("application/pdf")),
            (OLE2, Some("application/x-ole-storage")),
            (TEXT, None),
            (HTML, None),
            (b"", None),
        ];
        for &(prefix, expected) in cases {
            assert_eq!(
                ContentType::sniff(prefix).as_ref().map(ContentType::as_str),
                expected
            );
        }
    }

    #[test]
    fn is_inline_safe_allows_only_media_and_pdf() {
        let cases: &[(&str, bool)] = &[
            ("image/png", true),
            ("image/jpeg", true),
            ("IMAGE/GIF", true),
            ("audio/mpeg", true),
            ("video/mp4", true),
            ("application/pdf", true),
            ("application/pdf; x=y", true),
            ("image/svg+xml", false),
            ("image/svg", false),
            ("text/plain", false),
            ("text/html", false),
            ("application/json", false),
            ("application/octet-stream", false),
            ("application/zip", false),
            ("image", false),
            ("", false),
        ];
        for &(stored, expected) in cases {
            let content_type = ContentType::from_stored(stored.to_owned());
            assert_eq!(content_type.is_inline_safe(), expected, "{stored}");
        }
    }

    #[test]
    fn matches_any_compares_essences_and_wildcards() {
        let cases: &[(&str, &[&str], bool)] = &[
            ("image/png", &["image/jpeg", "image/png"], true),
            ("image/png", &["IMAGE/PNG"], true),
            ("image/png; x=y", &["image/png"], true),
            ("image/png", &["image/png; charset=x"], true),
            ("image/png", &["image/*"], true),
            ("image/png", &["*/*"], true),
            ("image/png", &["*"], true),
            ("image/png", &["image/jpeg", "image/webp"], false),
            ("image/png", &["video/*"], false),
            ("image/png", &["imag/*"], false),
            ("image/png", &[], false),
            ("image/png", &["image"], false),
        ];
        for &(stored, allowed, expected) in cases {
            let content_type = ContentType::from_stored(stored.to_owned());
            assert_eq!(
                content_type.matches_any(allowed),
                expected,
                "{stored} in {allowed:?}"
            );
        }
    }

    #[test]
    fn from_legacy_keeps_only_what_uploads_would_keep() {
        let cases: &[(&str, &str)] = &[
            ("application/pdf", "application/pdf"),
            ("Image/PNG; x=y", "image/png"),
            ("text/plain; charset=utf-8", "text/plain"),
            ("text/html", OCTET),
            ("image/svg+xml", OCTET),
            ("application/x-msdownload", OCTET),
            ("", OCTET),
            ("nonsense", OCTET),
        ];
        for &(stored, expected) in cases {
            assert_eq!(
                ContentType::from_legacy(stored).as_str(),
                expected,
                "{stored}"
            );
        }
        for &(name, _) in ALLOWED {
            assert_eq!(ContentType::from_legacy(name).as_str(), name);
        }
        assert_eq!(ContentType::from_legacy(OCTET), ContentType::octet_stream());
    }

    #[test]
    fn octet_stream_and_stored_types_display_as_is() {
        let cases: &[(ContentType, &str)] = &[
            (ContentType::octet_stream(), OCTET),
            (
                ContentType::from_stored("Text/Plain".to_owned()),
                "Text/Plain",
            ),
        ];
        for (content_type, expected) in cases {
            assert_eq!(content_type.as_str(), *expected);
            assert_eq!(content_type.as_ref(), *expected);
            assert_eq!(content_type.to_string(), *expected);
        }
    }
}
