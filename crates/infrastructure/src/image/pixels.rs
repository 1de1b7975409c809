//! Decoded pixels, 8 bits a sample, in one of the four layouts the codecs and the resizer share.

use fast_image_resize::PixelType;
use stowage_application::ports::RenderError;

/// How a pixel's samples are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Layout {
    Gray,
    GrayAlpha,
    Rgb,
    Rgba,
}

impl Layout {
    pub(super) fn channels(self) -> usize {
        match self {
            Self::Gray => 1,
            Self::GrayAlpha => 2,
            Self::Rgb => 3,
            Self::Rgba => 4,
        }
    }

    pub(super) fn pixel_type(self) -> PixelType {
        match self {
            Self::Gray => PixelType::U8,
            Self::GrayAlpha => PixelType::U8x2,
            Self::Rgb => PixelType::U8x3,
            Self::Rgba => PixelType::U8x4,
        }
    }
}

/// An image held row by row, without padding.
#[derive(Debug)]
pub(super) struct Pixels {
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) layout: Layout,
    pub(super) data: Vec<u8>,
}

impl Pixels {
    /// Wraps `data`, refusing a buffer whose length does not match the size (a decoder that
    /// returned less than it announced).
    pub(super) fn new(
        width: u32,
        height: u32,
        layout: Layout,
        data: Vec<u8>,
    ) -> Result<Self, RenderError> {
        let expected = buffer_len(width, height, layout);
        if width == 0 || height == 0 || expected != Some(data.len()) {
            return Err(RenderError::Unsupported(format!(
                "decoded {} bytes for a {width}x{height} image",
                data.len()
            )));
        }
        Ok(Self {
            width,
            height,
            layout,
            data,
        })
    }

    /// The image laid over white, for formats without transparency. Done in place: each pixel
    /// is written no further on than it was read.
    pub(super) fn over_white(mut self) -> Self {
        let (from, to) = match self.layout {
            Layout::Gray | Layout::Rgb => return self,
            Layout::GrayAlpha => (2, Layout::Gray),
            Layout::Rgba => (4, Layout::Rgb),
        };
        let color = from - 1;
        let pixels = self.data.len() / from;
        for i in 0..pixels {
            let alpha = u16::from(self.data.get(i * from + color).copied().unwrap_or(255));
            for c in 0..color {
                let value = u16::from(self.data.get(i * from + c).copied().unwrap_or(0));
                // value·α + 255·(1 − α), rounded.
                let blended = (value * alpha + 255 * (255 - alpha) + 127) / 255;
                if let Some(out) = self.data.get_mut(i * color + c) {
                    *out = u8::try_from(blended).unwrap_or(u8::MAX);
                }
            }
        }
        self.data.truncate(pixels * color);
        self.layout = to;
        self
    }

    /// The image in RGB or RGBA, for encoders that only take colour.
    pub(super) fn into_color(self) -> Self {
        let to = match self.layout {
            Layout::Rgb | Layout::Rgba => return self,
            Layout::Gray => Layout::Rgb,
            Layout::GrayAlpha => Layout::Rgba,
        };
        let mut data = Vec::with_capacity(self.data.len() / self.layout.channels() * to.channels());
        match self.layout {
            Layout::Gray => {
                for &v in &self.data {
                    data.extend_from_slice(&[v, v, v]);
                }
            }
            _ => {
                for pair in self.data.chunks_exact(2) {
                    if let [v, a] = *pair {
                        data.extend_from_slice(&[v, v, v, a]);
                    }
                }
            }
        }
        Self {
            width: self.width,
            height: self.height,
            layout: to,
            data,
        }
    }
}

/// Bytes an image of this size and layout takes, or `None` past the address space.
pub(super) fn buffer_len(width: u32, height: u32, layout: Layout) -> Option<usize> {
    usize::try_from(width)
        .ok()?
        .checked_mul(usize::try_from(height).ok()?)?
        .checked_mul(layout.channels())
}
