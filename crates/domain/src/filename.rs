//! [`Filename`]: an uploaded file's name, made safe by the contract's sanitising rule.

use std::fmt;

/// A file name that is safe to store and to send back in `Content-Disposition`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Filename(String);

/// What an empty name becomes.
const UNNAMED: &str = "unnamed_file";

/// The longest name kept, in bytes (the usual file-system limit).
const MAX_BYTES: usize = 255;

/// The longest extension, in bytes, that survives a cut.
const MAX_EXTENSION_BYTES: usize = 16;

impl Filename {
    /// Applies the contract's filename rule to a client-supplied name.
    ///
    /// In order: trim white space; replace every character that is not a letter, a digit,
    /// `.`, `-` or white space by `_`; collapse runs of white space and `_` into one `_`;
    /// strip leading and trailing `.` and `_`; cut to 255 bytes, keeping an extension of
    /// at most 16 bytes; fall back to `unnamed_file`. The result is a fixed point:
    /// sanitising it again changes nothing.
    pub fn sanitize(raw: &str) -> Filename {
        let mut collapsed = String::with_capacity(raw.len());
        let mut in_run = false;
        for c in raw.trim().chars() {
            if c.is_whitespace() || c == '_' || !(c.is_alphanumeric() || c == '.' || c == '-') {
                if !in_run {
                    collapsed.push('_');
                }
                in_run = true;
            } else {
                collapsed.push(c);
                in_run = false;
            }
        }
        let stripped = strip_dots_and_underscores(&collapsed);
        let cut = cut_to_limit(stripped);
        if cut.is_empty() {
            Filename(UNNAMED.to_owned())
        } else {
            Filename(cut)
        }
    }

    /// Wraps a name already stored in the database, keeping it exactly as it is.
    pub fn from_stored(s: String) -> Filename {
        Filename(s)
    }

    /// Returns the name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Returns the ASCII-only form for `Content-Disposition: filename="..."`.
    ///
    /// Non-ASCII characters, `"`, `\` and control characters become `_`, so the value
    /// can be quoted verbatim; it is never empty.
    pub fn ascii_fallback(&self) -> String {
        let fallback: String = self
            .0
            .chars()
            .map(|c| {
                if !c.is_ascii() || c.is_ascii_control() || c == '"' || c == '\\' {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        if fallback.is_empty() {
            UNNAMED.to_owned()
        } else {
            fallback
        }
    }
}

fn strip_dots_and_underscores(s: &str) -> &str {
    s.trim_matches(['.', '_'])
}

/// Cuts `name` to [`MAX_BYTES`], keeping a short extension when there is one.
fn cut_to_limit(name: &str) -> String {
    if name.len() <= MAX_BYTES {
        return name.to_owned();
    }
    let extension = name
        .rsplit_once('.')
        .map(|(_, ext)| ext)
        .filter(|ext| ext.len() <= MAX_EXTENSION_BYTES);
    match extension {
        Some(ext) => {
            let stem_budget = MAX_BYTES - ext.len() - 1;
            let stem = strip_trailing(prefix_at_char_boundary(name, stem_budget));
            if stem.is_empty() {
                // Cannot happen, since the name starts with neither '.' nor '_'; a bare ".ext" would not be a fixed point.
                ext.to_owned()
            } else {
                format!("{stem}.{ext}")
            }
        }
        None => strip_trailing(prefix_at_char_boundary(name, MAX_BYTES)).to_owned(),
    }
}

fn strip_trailing(s: &str) -> &str {
    s.trim_end_matches(['.', '_'])
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn prefix_at_char_boundary(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl AsRef<str> for Filename {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Filename {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_follows_the_contract_examples() {
        let cases: &[(&str, &str)] = &[
            ("../../etc/passwd", "etc_passwd"),
            ("отчёт 2024.pdf", "отчёт_2024.pdf"),
            ("", "unnamed_file"),
            ("   ", "unnamed_file"),
            ("...", "unnamed_file"),
            ("___", "unnamed_file"),
            ("a  b", "a_b"),
            ("a _ b.txt", "a_b.txt"),
            ("<script>.html", "script_.html"),
            ("report.pdf", "report.pdf"),
            ("  report.pdf  ", "report.pdf"),
            ("my-file_v2.tar.gz", "my-file_v2.tar.gz"),
            ("a\tb\nc", "a_b_c"),
            ("a\u{3000}b", "a_b"),
            ("a\u{a0}b", "a_b"),
            ("C:\\Users\\me\\doc.txt", "C_Users_me_doc.txt"),
            ("._.hidden._", "hidden"),
            (".bashrc", "bashrc"),
            ("name.", "name"),
            ("a/b", "a_b"),
            ("a__b", "a_b"),
            ("a_ _b", "a_b"),
            ("a\0b", "a_b"),
            ("файл (1).docx", "файл_1_.docx"),
            ("日本語.txt", "日本語.txt"),
            ("e\u{301}.txt", "e_.txt"),
            ("emoji😀.png", "emoji_.png"),
            ("..\u{200b}..", "unnamed_file"),
            ("-leading-dash", "-leading-dash"),
            ("%2e%2e%2fetc", "2e_2e_2fetc"),
        ];
        for &(raw, expected) in cases {
            assert_eq!(Filename::sanitize(raw).as_str(), expected, "raw {raw:?}");
        }
    }

    #[test]
    fn sanitize_cuts_long_names_to_255_bytes() {
        let long_ascii = format!("{}.pdf", "x".repeat(296));
        let two_byte = "ж".repeat(300);
        let two_byte_with_ext = format!("{}.pdf", "ж".repeat(300));
        let long_extension = format!("{}.{}", "a".repeat(200), "e".repeat(100));
        let cut_leaves_dot = format!("{}.{}.pdf", "a".repeat(250), "b".repeat(10));
        let three_byte = format!("{}.txt", "中".repeat(100));
        let cases: &[(&str, usize, &str)] = &[
            (&long_ascii, 255, ".pdf"),
            (&two_byte, 254, "ж"),
            (&two_byte_with_ext, 254, "ж.pdf"),
            (&long_extension, 255, "e"),
            (&cut_leaves_dot, 254, "a.pdf"),
            (&three_byte, 253, "中.txt"),
        ];
        for &(raw, len, suffix) in cases {
            let name = Filename::sanitize(raw);
            assert_eq!(name.as_str().len(), len, "raw {raw:?}");
            assert!(
                name.as_str().ends_with(suffix),
                "{name} should end with {suffix}"
            );
        }
    }

    #[test]
    fn sanitize_is_idempotent() {
        let mut inputs: Vec<String> = [
            "../../etc/passwd",
            "отчёт 2024.pdf",
            "",
            "   ",
            "...",
            "___",
            "a  b",
            "a _ b.txt",
            "<script>.html",
            "._a_.",
            "a. .b",
            "a._.b",
            "x. _ .y",
            "\u{feff}bom.txt",
            "tab\there",
            "日本語 ファイル.txt",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let pieces = [
            "a", "ж", "€", "😀", ".", "_", " ", "-", "/", "\u{301}", "\t",
        ];
        for (i, first) in pieces.iter().enumerate() {
            for second in &pieces {
                for third in &pieces {
                    inputs.push(format!("{first}{second}x{third}{first}"));
                    inputs.push(format!(
                        "{}{first}{second}.{third}pdf",
                        pieces[i % 3].repeat(130)
                    ));
                    inputs.push(format!("{first}{}{second}", "ж".repeat(127)));
                    inputs.push(format!("{}.{third}{}", second.repeat(120), "e".repeat(15)));
                    inputs.push(format!("{}{second}.{third}", "a".repeat(250)));
                }
            }
        }
        for raw in &inputs {
            let once = Filename::sanitize(raw);
            let twice = Filename::sanitize(once.as_str());
            assert_eq!(once, twice, "raw {raw:?}");
            assert!(once.as_str().len() <= MAX_BYTES, "raw {raw:?}");
            assert!(!once.as_str().is_empty(), "raw {raw:?}");
        }
    }

    #[test]
    fn ascii_fallback_replaces_unsafe_characters() {
        let cases: &[(&str, &str)] = &[
            ("report.pdf", "report.pdf"),
            ("отчёт_2024.pdf", "______2024.pdf"),
            ("a\"b\\c.txt", "a_b_c.txt"),
            ("a\u{7f}b\u{1}c", "a_b_c"),
            ("x y;z.txt", "x y;z.txt"),
            ("", "unnamed_file"),
        ];
        for &(stored, expected) in cases {
            let name = Filename::from_stored(stored.to_owned());
            assert_eq!(name.ascii_fallback(), expected, "stored {stored:?}");
        }
    }

    #[test]
    fn from_stored_keeps_the_name_as_is() {
        let cases: &[&str] = &["  odd name ", "../x", ""];
        for &stored in cases {
            let name = Filename::from_stored(stored.to_owned());
            assert_eq!(name.as_str(), stored);
            assert_eq!(name.as_ref(), stored);
            assert_eq!(name.to_string(), stored);
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;
        use crate::properties::{config, text};

        /// The contract's numbers, written again so that a change of the constants above fails.
        const CONTRACT_BYTES: usize = 255;
        const CONTRACT_EXTENSION_BYTES: usize = 16;

        /// What names are made of: letters of 1 to 4 bytes, digits, the separators the rule
        /// keeps or collapses, white space, path and quoting characters, controls, marks.
        const POOL: &str =
            "aZ9жé中𝒜._- /\\\t\n\u{0}\u{7f}\u{a0}\u{3000}\u{200b}\u{301}\u{feff}<>\"😀";

        /// Letters and digits of 1 to 4 bytes, which the rule keeps as they are.
        const KEPT: &[char] = &['a', 'Z', '9', 'ж', 'é', '中', '𝒜', '٣'];

        /// The characters the rule keeps and never strips from the ends.
        fn letters_digits_dashes(s: &str) -> String {
            s.chars()
                .filter(|c| c.is_alphanumeric() || *c == '-')
                .collect()
        }

        /// A name the rule keeps as it is until the cut: letters and digits at both ends, single
        /// `-` or `.` between them.
        fn clean_stem(max: usize) -> impl Strategy<Value = String> {
            let separator = prop::option::of(prop::sample::select(vec!['-', '.']));
            prop::collection::vec((prop::sample::select(KEPT), separator), 1..=max).prop_map(
                |pairs| {
                    let mut stem = String::new();
                    for (i, (c, separator)) in pairs.iter().enumerate() {
                        stem.push(*c);
                        if let Some(s) = separator.filter(|_| i + 1 < pairs.len()) {
                            stem.push(s);
                        }
                    }
                    stem
                },
            )
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn a_sanitised_name_is_safe_and_a_fixed_point(raw in text(POOL, 400)) {
                let name = Filename::sanitize(&raw);
                let text = name.as_str();
                prop_assert_eq!(&Filename::sanitize(text), &name, "not a fixed point");
                let len = text.len();
                prop_assert!(len > 0 && len <= CONTRACT_BYTES, "{} bytes", len);
                prop_assert!(
                    text.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_')),
                    "{:?}", text
                );
                prop_assert!(
                    !text.chars().any(|c| c.is_control() || matches!(c, '/' | '\\')),
                    "{:?}", text
                );
                prop_assert!(
                    !text.starts_with(['.', '_']) && !text.ends_with(['.', '_']),
                    "{:?}", text
                );
                prop_assert!(!text.contains("__"), "{:?}", text);
            }

            /// At most 63 characters are at most 252 bytes: nothing is cut.
            #[test]
            fn a_short_name_keeps_every_letter_digit_and_dash(raw in text(POOL, 63)) {
                let name = Filename::sanitize(&raw);
                let kept = letters_digits_dashes(&raw);
                if kept.is_empty() {
                    prop_assert_eq!(name.as_str(), UNNAMED);
                } else {
                    prop_assert_eq!(letters_digits_dashes(name.as_str()), kept);
                }
            }

            #[test]
            fn a_long_name_keeps_an_extension_of_at_most_16_bytes(
                stem in clean_stem(150),
                extension in prop::collection::vec(prop::sample::select(KEPT), 1..=12)
                    .prop_map(String::from_iter),
            ) {
                let raw = format!("{stem}.{extension}");
                let name = Filename::sanitize(&raw);
                let text = name.as_str();
                if raw.len() <= CONTRACT_BYTES {
                    prop_assert_eq!(text, raw.as_str());
                    return Ok(());
                }
                // Cut no more than needed: 3 bytes of a character split at the limit, and a `.`
                // the cut left at the end.
                let len = text.len();
                prop_assert!((CONTRACT_BYTES - 4..=CONTRACT_BYTES).contains(&len), "{} bytes", len);
                if extension.len() <= CONTRACT_EXTENSION_BYTES {
                    let kept_stem = text.strip_suffix(&format!(".{extension}"));
                    prop_assert!(kept_stem.is_some(), "{:?} lost .{}", text, extension);
                    prop_assert!(kept_stem.is_some_and(|s| !s.is_empty() && stem.starts_with(s)));
                } else {
                    prop_assert!(raw.starts_with(text), "{:?} is not a prefix of the name", text);
                }
            }
        }
    }
}
