//! AVIF output through rav1e (the `avif` feature). rav1e is built without its own threads, so
//! one variant uses one core and `IMAGE_CONCURRENCY` bounds the CPU as for the other formats.

use bytes::Bytes;
use ravif::{Encoder, Img, RGB8, RGBA8};
use stowage_application::ports::RenderError;

use super::failed;
use crate::image::pixels::{Layout, Pixels};

/// rav1e's speed preset (1 slowest .. 10 fastest). A variant is made once while a client waits:
/// 8 makes a 300 × 300 AVIF in about 0.4 s, 30 % smaller than 10 does in 0.07 s.
const SPEED: u8 = 8;

/// Past this many pixels the fastest preset is used: at speed 8 a 2500 × 2500 variant would hold
/// a render slot for tens of seconds.
const LARGE: u64 = 1_000_000;

pub(super) fn avif(pixels: Pixels, quality: u8) -> Result<Bytes, RenderError> {
    let pixels = pixels.into_color();
    let width = usize::try_from(pixels.width).map_err(|_| failed("too wide for AVIF"))?;
    let height = usize::try_from(pixels.height).map_err(|_| failed("too tall for AVIF"))?;
    let encoder = Encoder::new()
        .with_quality(f32::from(quality.clamp(1, 100)))
        .with_alpha_quality(f32::from(quality.clamp(1, 100)))
        .with_speed(
            if u64::from(pixels.width) * u64::from(pixels.height) > LARGE {
                10
            } else {
                SPEED
            },
        )
        .with_num_threads(Some(1));
    let encoded = if pixels.layout == Layout::Rgba {
        let rgba: Vec<RGBA8> = pixels
            .data
            .chunks_exact(4)
            .map(|p| match *p {
                [r, g, b, a] => RGBA8::new(r, g, b, a),
                _ => RGBA8::default(),
            })
            .collect();
        encoder.encode_rgba(Img::new(rgba.as_slice(), width, height))
    } else {
        let rgb: Vec<RGB8> = pixels
            .data
            .chunks_exact(3)
            .map(|p| match *p {
                [r, g, b] => RGB8::new(r, g, b),
                _ => RGB8::default(),
            })
            .collect();
        encoder.encode_rgb(Img::new(rgb.as_slice(), width, height))
    };
    let encoded = encoded.map_err(|e| failed(format!("AVIF encoder: {e}")))?;
    Ok(Bytes::from(encoded.avif_file))
}
