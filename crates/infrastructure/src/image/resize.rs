//! Crop and resize, with alpha premultiplied around the filter so that transparent pixels do
//! not bleed their (meaningless) colour into their neighbours.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use stowage_application::ports::RenderError;

use super::pixels::Pixels;

/// A rectangle of the decoded pixels; fractional where the decode was scaled down.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Region {
    pub(super) x: f64,
    pub(super) y: f64,
    pub(super) width: f64,
    pub(super) height: f64,
}

/// Resizes `region` of `pixels` to `width` × `height`.
pub(super) fn resize(
    pixels: Pixels,
    region: Region,
    width: u32,
    height: u32,
) -> Result<Pixels, RenderError> {
    let whole = Region {
        x: 0.0,
        y: 0.0,
        width: f64::from(pixels.width),
        height: f64::from(pixels.height),
    };
    if region == whole && (width, height) == (pixels.width, pixels.height) {
        return Ok(pixels);
    }
    let pixel_type = pixels.layout.pixel_type();
    let source =
        ImageRef::new(pixels.width, pixels.height, &pixels.data, pixel_type).map_err(failed)?;
    let mut target = Image::new(width, height, pixel_type);
    // Kept inside the image: the crop was computed in integers at another scale.
    let x = region.x.clamp(0.0, whole.width - 1.0);
    let y = region.y.clamp(0.0, whole.height - 1.0);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
        .crop(
            x,
            y,
            region.width.clamp(1.0, whole.width - x),
            region.height.clamp(1.0, whole.height - y),
        )
        .use_alpha(true);
    Resizer::new()
        .resize(&source, &mut target, &options)
        .map_err(failed)?;
    Pixels::new(width, height, pixels.layout, target.into_vec())
}

fn failed(error: impl std::error::Error + Send + Sync + 'static) -> RenderError {
    RenderError::Failed(Box::new(error))
}
