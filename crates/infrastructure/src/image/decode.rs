//! Source decoding: the first frame of a JPEG, PNG, GIF or WebP, as 8-bit pixels in its stored
//! orientation.
//!
//! Every decoder is bounded: its dimensions must be the header's (which the caller checked
//! against the pixel limits) before any pixel buffer is allocated, and the codecs' own
//! allocation limits are set so that a file lying about itself fails instead of growing.

use std::io::Cursor;
use std::num::NonZeroU64;

use stowage_application::ports::RenderError;
use stowage_domain::image::header::{ImageFormat, ImageHeader};

use super::pixels::{Layout, Pixels, buffer_len};

mod jpeg;

/// What a PNG decoder may allocate besides the image: row buffers and the ancillary chunks it
/// keeps (text and ICC chunks are skipped).
const PNG_DECODER_BYTES: usize = 8 << 20;

/// Decodes `source`, whose header is `header`, at no less than `need` (stored orientation)
/// where the format can decode at a reduced scale.
pub(super) fn decode(
    source: &[u8],
    header: &ImageHeader,
    need: (u32, u32),
) -> Result<Pixels, RenderError> {
    match header.format {
        ImageFormat::Jpeg => jpeg::decode(source, header, need),
        ImageFormat::Png => decode_png(source, header),
        ImageFormat::Gif => decode_gif(source, header),
        ImageFormat::WebP => decode_webp(source, header),
        ImageFormat::Avif => Err(RenderError::Unsupported(
            "AVIF sources are not decoded".to_owned(),
        )),
    }
}

pub(super) fn unsupported(error: impl std::fmt::Display) -> RenderError {
    RenderError::Unsupported(error.to_string())
}

/// Refuses a decoder whose idea of the size is not the header's.
fn check_size(found: (u32, u32), header: &ImageHeader) -> Result<(), RenderError> {
    if found == (header.width, header.height) {
        Ok(())
    } else {
        Err(RenderError::Unsupported(format!(
            "the image is {}x{} but its header said {}x{}",
            found.0, found.1, header.width, header.height
        )))
    }
}

/// A zeroed buffer for an image of this size, refusing one the address space cannot hold.
fn pixel_buffer(width: u32, height: u32, layout: Layout) -> Result<Vec<u8>, RenderError> {
    let len = buffer_len(width, height, layout)
        .ok_or_else(|| RenderError::Unsupported("the image is too large".to_owned()))?;
    Ok(vec![0; len])
}

fn decode_png(source: &[u8], header: &ImageHeader) -> Result<Pixels, RenderError> {
    let limits = png::Limits {
        bytes: PNG_DECODER_BYTES,
    };
    let mut decoder = png::Decoder::new_with_limits(Cursor::new(source), limits);
    // Palette, low bit depths and tRNS become plain gray/RGB(A); 16-bit samples keep their high byte.
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    decoder.set_ignore_text_chunk(true);
    decoder.set_ignore_iccp_chunk(true);
    let mut reader = decoder.read_info().map_err(unsupported)?;
    let info = reader.info();
    check_size((info.width, info.height), header)?;
    let layout = match reader.output_color_type() {
        (png::ColorType::Grayscale, png::BitDepth::Eight) => Layout::Gray,
        (png::ColorType::GrayscaleAlpha, png::BitDepth::Eight) => Layout::GrayAlpha,
        (png::ColorType::Rgb, png::BitDepth::Eight) => Layout::Rgb,
        (png::ColorType::Rgba, png::BitDepth::Eight) => Layout::Rgba,
        (color, depth) => {
            return Err(RenderError::Unsupported(format!(
                "PNG decodes to {color:?} at {depth:?}"
            )));
        }
    };
    let mut data = pixel_buffer(header.width, header.height, layout)?;
    if reader.output_buffer_size() != Some(data.len()) {
        return Err(unsupported("PNG frame size does not match its header"));
    }
    // The first call yields the default image (IDAT), which an APNG shows where it is not animated.
    reader.next_frame(&mut data).map_err(unsupported)?;
    Pixels::new(header.width, header.height, layout, data)
}

fn decode_gif(source: &[u8], header: &ImageHeader) -> Result<Pixels, RenderError> {
    let canvas = pixel_buffer(header.width, header.height, Layout::Rgba)?;
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::RGBA);
    // No frame can be larger than the canvas, which the header bounds.
    let limit = NonZeroU64::new(canvas.len() as u64).unwrap_or(NonZeroU64::MIN);
    options.set_memory_limit(gif::MemoryLimit::Bytes(limit));
    let mut decoder = options.read_info(source).map_err(unsupported)?;
    let (screen_w, screen_h) = (u32::from(decoder.width()), u32::from(decoder.height()));
    let frame = decoder
        .next_frame_info()
        .map_err(unsupported)?
        .ok_or_else(|| unsupported("the GIF has no frame"))?;
    let (left, top) = (u32::from(frame.left), u32::from(frame.top));
    let (width, height) = (u32::from(frame.width), u32::from(frame.height));
    // The header's size is the logical screen grown to hold the first frame.
    check_size(
        (screen_w.max(left + width), screen_h.max(top + height)),
        header,
    )?;
    if (left, top, width, height) == (0, 0, header.width, header.height) {
        let mut canvas = canvas;
        decoder.read_into_buffer(&mut canvas).map_err(unsupported)?;
        return Pixels::new(width, height, Layout::Rgba, canvas);
    }
    let mut frame_pixels = pixel_buffer(width, height, Layout::Rgba)?;
    decoder
        .read_into_buffer(&mut frame_pixels)
        .map_err(unsupported)?;
    let mut canvas = canvas;
    let (stride, row_len) = (header.width as usize * 4, width as usize * 4);
    if row_len > 0 {
        for (row, line) in frame_pixels.chunks_exact(row_len).enumerate() {
            let at = (top as usize + row) * stride + left as usize * 4;
            if let Some(dst) = canvas.get_mut(at..at + row_len) {
                dst.copy_from_slice(line);
            }
        }
    }
    Pixels::new(header.width, header.height, Layout::Rgba, canvas)
}

fn decode_webp(source: &[u8], header: &ImageHeader) -> Result<Pixels, RenderError> {
    let mut decoder = image_webp::WebPDecoder::new(Cursor::new(source)).map_err(unsupported)?;
    check_size(decoder.dimensions(), header)?;
    let layout = if decoder.has_alpha() {
        Layout::Rgba
    } else {
        Layout::Rgb
    };
    let mut data = pixel_buffer(header.width, header.height, layout)?;
    if decoder.output_buffer_size() != Some(data.len()) {
        return Err(unsupported("WebP frame size does not match its header"));
    }
    // An animation yields its first frame, composed on a transparent canvas.
    decoder.read_image(&mut data).map_err(unsupported)?;
    Pixels::new(header.width, header.height, layout, data)
}
