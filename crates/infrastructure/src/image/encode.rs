//! Encoding the variant: JPEG, PNG, lossy WebP or (with the `avif` feature) AVIF, with no
//! metadata at all (no EXIF, ICC or text): the orientation is already applied to the pixels.

#[cfg(feature = "avif")]
mod avif;

use bytes::Bytes;
use stowage_application::ports::RenderError;
use stowage_domain::image::variant::OutputFormat;

use super::pixels::{Layout, Pixels};

/// An encoder's refusal, for [`RenderError::Failed`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct EncodeError(String);

fn failed(message: impl Into<String>) -> RenderError {
    RenderError::Failed(Box::new(EncodeError(message.into())))
}

/// Encodes `pixels` as `format`; `quality` (1..=100) drives the lossy formats.
pub(super) fn encode(
    pixels: Pixels,
    format: OutputFormat,
    quality: u8,
) -> Result<Bytes, RenderError> {
    match format {
        OutputFormat::Jpeg => jpeg(pixels, quality),
        OutputFormat::Png => png(&pixels),
        OutputFormat::WebP => webp(pixels, quality),
        #[cfg(feature = "avif")]
        OutputFormat::Avif => avif::avif(pixels, quality),
        #[cfg(not(feature = "avif"))]
        OutputFormat::Avif => Err(RenderError::FormatUnavailable(OutputFormat::Avif)),
    }
}

fn jpeg(pixels: Pixels, quality: u8) -> Result<Bytes, RenderError> {
    let pixels = pixels.over_white();
    let color = match pixels.layout {
        Layout::Gray => jpeg_encoder::ColorType::Luma,
        _ => jpeg_encoder::ColorType::Rgb,
    };
    let side = |v: u32| u16::try_from(v).map_err(|_| failed("too large for JPEG"));
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100));
    // Still baseline; a second pass over a thumbnail is cheap and saves several percent.
    encoder.set_optimized_huffman_tables(true);
    encoder
        .encode(
            &pixels.data,
            side(pixels.width)?,
            side(pixels.height)?,
            color,
        )
        .map_err(|e| failed(format!("JPEG encoder: {e}")))?;
    Ok(Bytes::from(out))
}

fn png(pixels: &Pixels) -> Result<Bytes, RenderError> {
    let color = match pixels.layout {
        Layout::Gray => png::ColorType::Grayscale,
        Layout::GrayAlpha => png::ColorType::GrayscaleAlpha,
        Layout::Rgb => png::ColorType::Rgb,
        Layout::Rgba => png::ColorType::Rgba,
    };
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, pixels.width, pixels.height);
    encoder.set_color(color);
    encoder.set_depth(png::BitDepth::Eight);
    let png_failed = |e: png::EncodingError| failed(format!("PNG encoder: {e}"));
    let mut writer = encoder.write_header().map_err(png_failed)?;
    writer.write_image_data(&pixels.data).map_err(png_failed)?;
    writer.finish().map_err(png_failed)?;
    Ok(Bytes::from(out))
}

fn webp(pixels: Pixels, quality: u8) -> Result<Bytes, RenderError> {
    let pixels = pixels.into_color();
    let encoder = if pixels.layout == Layout::Rgba {
        webp::Encoder::from_rgba(&pixels.data, pixels.width, pixels.height)
    } else {
        webp::Encoder::from_rgb(&pixels.data, pixels.width, pixels.height)
    };
    let encoded = encoder
        .encode_simple(false, f32::from(quality.clamp(1, 100)))
        .map_err(|e| failed(format!("WebP encoder: {e:?}")))?;
    Ok(Bytes::copy_from_slice(&encoded))
}
