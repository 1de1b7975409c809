//! Image variants as a request names them: size, fit, output format and quality, named presets,
//! and the canonical names under which a variant is signed and stored.

use std::collections::BTreeMap;
use std::fmt;

use super::header::ImageFormat;

pub mod geometry;
pub mod name;

pub use geometry::{Crop, Geometry, MAX_OUTPUT_SIDE, plan};
pub use name::{InvalidVariantName, VariantName};

/// Quality of lossy output when `q` is left out.
pub const DEFAULT_QUALITY: u8 = 80;

/// `IMAGE_MAX_OUTPUT_PX` when unset: the largest `w` or `h` a variant may ask for.
pub const DEFAULT_MAX_OUTPUT_PX: u32 = 2500;

/// `IMAGE_PRESETS` when unset.
pub const DEFAULT_PRESETS: &str = "small=32x32,medium=150x150,large=300x300";

/// A variant request that breaks a rule; the message names it, for a `400`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidVariant(pub String);

fn invalid(message: impl Into<String>) -> InvalidVariant {
    InvalidVariant(message.into())
}

/// How the source is fitted into a box of `w` × `h`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Fit {
    /// Scale to fill the box and crop what overflows, centred (the default).
    #[default]
    Cover,
    /// Scale to fit inside the box, keeping the aspect ratio; no padding is added.
    Contain,
    /// Stretch to the box.
    Fill,
}

impl Fit {
    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Fit::Cover => "cover",
            Fit::Contain => "contain",
            Fit::Fill => "fill",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "cover" => Some(Fit::Cover),
            "contain" => Some(Fit::Contain),
            "fill" => Some(Fit::Fill),
            _ => None,
        }
    }
}

/// A format a variant is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// Baseline JPEG.
    Jpeg,
    /// PNG.
    Png,
    /// Lossy WebP.
    WebP,
    /// AVIF.
    Avif,
}

impl OutputFormat {
    /// The media type the variant is served as.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::WebP => "image/webp",
            Self::Avif => "image/avif",
        }
    }

    /// The contract's spelling, which is also the file extension of a stored variant.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::WebP => "webp",
            Self::Avif => "avif",
        }
    }

    /// Whether `q` changes the output.
    pub fn is_lossy(self) -> bool {
        !matches!(self, Self::Png)
    }

    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "jpeg" => Some(Self::Jpeg),
            "png" => Some(Self::Png),
            "webp" => Some(Self::WebP),
            "avif" => Some(Self::Avif),
            _ => None,
        }
    }

    /// The format a variant keeps when none is asked for: the source's, except that a GIF's
    /// first frame becomes a PNG.
    pub fn of_source(source: ImageFormat) -> Self {
        match source {
            ImageFormat::Jpeg => Self::Jpeg,
            ImageFormat::Png | ImageFormat::Gif => Self::Png,
            ImageFormat::WebP => Self::WebP,
            ImageFormat::Avif => Self::Avif,
        }
    }
}

/// The `format` a request asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FormatChoice {
    /// No `format`: the source's (see [`OutputFormat::of_source`]).
    #[default]
    Source,
    /// `auto`: the best the `Accept` header allows.
    Auto,
    /// One format.
    Exact(OutputFormat),
}

impl FormatChoice {
    /// Whether the answer depends on `Accept` (and so carries `Vary: Accept`).
    pub fn varies_by_accept(self) -> bool {
        self == FormatChoice::Auto
    }

    /// The format to write for a `source` image, read with `accept` (the request's `Accept`
    /// header); `avif` says whether AVIF can be written at all.
    pub fn resolve(self, source: ImageFormat, accept: Option<&str>, avif: bool) -> OutputFormat {
        match self {
            FormatChoice::Exact(format) => format,
            FormatChoice::Source => OutputFormat::of_source(source),
            FormatChoice::Auto => {
                let accepts = |media: &str| accept.is_some_and(|a| accepts_media(a, media));
                if avif && accepts("image/avif") {
                    OutputFormat::Avif
                } else if accepts("image/webp") {
                    OutputFormat::WebP
                } else {
                    match OutputFormat::of_source(source) {
                        // A client that did not name them gets a format every client reads.
                        OutputFormat::WebP | OutputFormat::Avif => OutputFormat::Png,
                        other => other,
                    }
                }
            }
        }
    }
}

/// Whether an `Accept` header names `media` with a non-zero weight. Wildcards do not count:
/// browsers name the image formats they decode, and `*/*` promises nothing about them.
fn accepts_media(accept: &str, media: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';');
        let name = parts.next().unwrap_or_default().trim();
        if !name.eq_ignore_ascii_case(media) {
            return false;
        }
        parts.all(|param| {
            let Some((key, value)) = param.split_once('=') else {
                return true;
            };
            !key.trim().eq_ignore_ascii_case("q")
                || value.trim().parse::<f32>().is_ok_and(|q| q > 0.0)
        })
    })
}

/// What a variant is: a box, a fit, a format and a quality.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VariantSpec {
    /// Width of the box in pixels; `None` follows the aspect ratio.
    pub width: Option<u32>,
    /// Height of the box in pixels; `None` follows the aspect ratio.
    pub height: Option<u32>,
    /// How the source fills the box (only matters when both sides are given).
    pub fit: Fit,
    /// The format asked for.
    pub format: FormatChoice,
    /// Quality of lossy output, 1..=100.
    pub quality: u8,
}

impl VariantSpec {
    /// The variant written in `format`, as stored: its blob name and the format it holds.
    ///
    /// # Errors
    /// Never for a spec built by this module; [`InvalidVariantName`] guards the name's shape.
    pub fn name(&self, format: OutputFormat) -> VariantName {
        let mut parts: Vec<String> = Vec::with_capacity(4);
        if let Some(w) = self.width {
            parts.push(format!("w{w}"));
        }
        if let Some(h) = self.height {
            parts.push(format!("h{h}"));
        }
        if self.width.is_some() && self.height.is_some() {
            parts.push(self.fit.as_str().to_owned());
        }
        if format.is_lossy() {
            parts.push(format!("q{}", self.quality));
        }
        if parts.is_empty() {
            parts.push("full".to_owned());
        }
        VariantName::compose(&parts.join("-"), format.as_str())
    }
}

/// The raw variant parameters of a request (`w`, `h`, `fit`, `format`, `q`, `variant`), each as
/// the query spelled it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VariantParams<'a> {
    /// `w`.
    pub w: Option<&'a str>,
    /// `h`.
    pub h: Option<&'a str>,
    /// `fit`.
    pub fit: Option<&'a str>,
    /// `format`.
    pub format: Option<&'a str>,
    /// `q`.
    pub q: Option<&'a str>,
    /// `variant`: a preset's name.
    pub variant: Option<&'a str>,
}

impl VariantParams<'_> {
    /// Whether the request asks for a variant at all.
    pub fn is_empty(&self) -> bool {
        *self == VariantParams::default()
    }
}

/// A validated variant request: the spec to make and the canonical parameters a signed URL
/// signs (so that adding or changing one breaks the signature).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VariantRequest {
    /// What to make.
    pub spec: VariantSpec,
    /// `variant=…&format=…&q=…` or `w=…&h=…&fit=…&format=…&q=…`, only the parameters given, in
    /// that order, each in its canonical spelling.
    pub canonical: String,
}

/// Named presets (`IMAGE_PRESETS`), each a box with `cover` fit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Presets(BTreeMap<String, VariantSpec>);

impl Presets {
    /// Parses `name=WxH,…` (one side may be left out: `wide=1200x`); names are 1 to 32 of
    /// `a-z 0-9 _ -`, sides 1..=`max_px`.
    ///
    /// # Errors
    /// [`InvalidVariant`] naming the entry at fault.
    pub fn parse(raw: &str, max_px: u32) -> Result<Self, InvalidVariant> {
        let mut presets = BTreeMap::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, size) = entry
                .split_once('=')
                .ok_or_else(|| invalid(format!("preset `{entry}` must be NAME=WxH")))?;
            let name = name.trim();
            if !valid_preset_name(name) {
                return Err(invalid(format!(
                    "preset name `{name}` must be 1 to 32 of a-z, 0-9, _ and -"
                )));
            }
            let (w, h) = size
                .trim()
                .split_once('x')
                .ok_or_else(|| invalid(format!("preset `{name}` must be NAME=WxH")))?;
            let side = |raw: &str, which: &str| -> Result<Option<u32>, InvalidVariant> {
                if raw.is_empty() {
                    Ok(None)
                } else {
                    parse_side(raw, max_px).map(Some).ok_or_else(|| {
                        invalid(format!(
                            "preset `{name}`: {which} must be from 1 to {max_px}"
                        ))
                    })
                }
            };
            let (width, height) = (side(w, "width")?, side(h, "height")?);
            if width.is_none() && height.is_none() {
                return Err(invalid(format!(
                    "preset `{name}` needs a width or a height"
                )));
            }
            let spec = VariantSpec {
                width,
                height,
                fit: Fit::Cover,
                format: FormatChoice::Source,
                quality: DEFAULT_QUALITY,
            };
            if presets.insert(name.to_owned(), spec).is_some() {
                return Err(invalid(format!("preset `{name}` is named twice")));
            }
        }
        Ok(Self(presets))
    }

    /// The preset called `name`.
    pub fn get(&self, name: &str) -> Option<&VariantSpec> {
        self.0.get(name)
    }

    /// Every preset's name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

impl Default for Presets {
    fn default() -> Self {
        Self::parse(DEFAULT_PRESETS, DEFAULT_MAX_OUTPUT_PX).unwrap_or(Self(BTreeMap::new()))
    }
}

impl fmt::Display for Presets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, spec) in &self.0 {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{name}=")?;
            if let Some(w) = spec.width {
                write!(f, "{w}")?;
            }
            f.write_str("x")?;
            if let Some(h) = spec.height {
                write!(f, "{h}")?;
            }
        }
        Ok(())
    }
}

fn valid_preset_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A side in plain decimal, 1..=`max`.
fn parse_side(raw: &str, max: u32) -> Option<u32> {
    if raw.is_empty() || raw.len() > 10 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse::<u32>().ok().filter(|v| (1..=max).contains(v))
}

/// Reads a request's variant parameters; `Ok(None)` when it asks for none (the file itself).
///
/// `variant` names a preset and may be combined with `format` and `q` only. `fit` defaults to
/// `cover`; `q` to [`DEFAULT_QUALITY`].
///
/// # Errors
/// [`InvalidVariant`] naming the parameter at fault.
pub fn parse_request(
    params: &VariantParams<'_>,
    presets: &Presets,
    max_px: u32,
) -> Result<Option<VariantRequest>, InvalidVariant> {
    if params.is_empty() {
        return Ok(None);
    }
    let format = match params.format {
        None => FormatChoice::Source,
        Some("auto") => FormatChoice::Auto,
        Some(raw) => FormatChoice::Exact(
            OutputFormat::parse(raw)
                .ok_or_else(|| invalid("format must be jpeg, png, webp, avif or auto"))?,
        ),
    };
    let quality = match params.q {
        None => DEFAULT_QUALITY,
        Some(raw) => parse_side(raw, 100)
            .and_then(|q| u8::try_from(q).ok())
            .ok_or_else(|| invalid("q must be from 1 to 100"))?,
    };
    let mut canonical = Vec::new();
    let spec = if let Some(name) = params.variant {
        if params.w.is_some() || params.h.is_some() || params.fit.is_some() {
            return Err(invalid("variant cannot be combined with w, h or fit"));
        }
        let preset = presets
            .get(name)
            .ok_or_else(|| invalid(format!("variant must be one of: {}", names(presets))))?;
        canonical.push(format!("variant={name}"));
        VariantSpec {
            format,
            quality,
            ..*preset
        }
    } else {
        let side = |raw: Option<&str>, which: &str| {
            raw.map(|raw| {
                parse_side(raw, max_px)
                    .ok_or_else(|| invalid(format!("{which} must be from 1 to {max_px}")))
            })
            .transpose()
        };
        let width = side(params.w, "w")?;
        let height = side(params.h, "h")?;
        let fit = match params.fit {
            None => Fit::Cover,
            Some(raw) => {
                Fit::parse(raw).ok_or_else(|| invalid("fit must be cover, contain or fill"))?
            }
        };
        if params.fit.is_some() && (width.is_none() || height.is_none()) {
            return Err(invalid("fit needs both w and h"));
        }
        if let Some(w) = width {
            canonical.push(format!("w={w}"));
        }
        if let Some(h) = height {
            canonical.push(format!("h={h}"));
        }
        if params.fit.is_some() {
            canonical.push(format!("fit={}", fit.as_str()));
        }
        VariantSpec {
            width,
            height,
            fit,
            format,
            quality,
        }
    };
    if let Some(format) = params.format {
        canonical.push(format!("format={format}"));
    }
    if params.q.is_some() {
        canonical.push(format!("q={quality}"));
    }
    Ok(Some(VariantRequest {
        spec,
        canonical: canonical.join("&"),
    }))
}

fn names(presets: &Presets) -> String {
    presets.names().collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests;
