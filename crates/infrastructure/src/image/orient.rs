//! The EXIF orientation: how the stored pixels are turned for display.
//!
//! Variants are sized and cropped in displayed (oriented) coordinates, but the pipeline crops
//! and resizes the stored pixels and turns only the small result, so the rectangle and the
//! output size are mapped back to stored coordinates first.

use stowage_domain::image::variant::Crop;

use super::pixels::Pixels;

/// One of the eight EXIF orientations (1 when absent or out of range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Orientation(u8);

impl Orientation {
    pub(super) fn from_exif(tag: Option<u8>) -> Self {
        match tag {
            Some(n @ 1..=8) => Self(n),
            _ => Self(1),
        }
    }

    /// Whether displaying turns the image a quarter, swapping its width and height.
    pub(super) fn swaps_axes(self) -> bool {
        self.0 >= 5
    }

    /// The stored size of something `size` large once displayed (or the reverse: the swap is its
    /// own inverse).
    pub(super) fn swap(self, (width, height): (u32, u32)) -> (u32, u32) {
        if self.swaps_axes() {
            (height, width)
        } else {
            (width, height)
        }
    }

    /// The stored pixel shown at displayed `(x, y)` of an image stored `width` × `height`.
    fn source(self, x: usize, y: usize, width: usize, height: usize) -> (usize, usize) {
        let (last_x, last_y) = (width.saturating_sub(1), height.saturating_sub(1));
        match self.0 {
            2 => (last_x - x, y),
            3 => (last_x - x, last_y - y),
            4 => (x, last_y - y),
            5 => (y, x),
            6 => (y, last_y - x),
            7 => (last_x - y, last_y - x),
            8 => (last_x - y, x),
            _ => (x, y),
        }
    }

    /// The stored rectangle shown as `rect` of an image stored `width` × `height`.
    pub(super) fn stored_rect(self, rect: Crop, width: u32, height: u32) -> Crop {
        let Crop {
            x,
            y,
            width: w,
            height: h,
        } = rect;
        // Each edge is measured from the far side where the transform mirrors that axis.
        let from_right = |start: u32, len: u32| width.saturating_sub(start.saturating_add(len));
        let from_bottom = |start: u32, len: u32| height.saturating_sub(start.saturating_add(len));
        let (sx, sy) = match self.0 {
            2 => (from_right(x, w), y),
            3 => (from_right(x, w), from_bottom(y, h)),
            4 => (x, from_bottom(y, h)),
            5 => (y, x),
            6 => (y, from_bottom(x, w)),
            7 => (from_right(y, h), from_bottom(x, w)),
            8 => (from_right(y, h), x),
            _ => (x, y),
        };
        let (sw, sh) = self.swap((w, h));
        Crop {
            x: sx,
            y: sy,
            width: sw,
            height: sh,
        }
    }

    /// Turns stored pixels for display.
    pub(super) fn apply(self, pixels: Pixels) -> Pixels {
        if self.0 == 1 {
            return pixels;
        }
        let bpp = pixels.layout.channels();
        let (w, h) = (pixels.width as usize, pixels.height as usize);
        let (out_w, out_h) = if self.swaps_axes() { (h, w) } else { (w, h) };
        let mut data = vec![0; pixels.data.len()];
        for y in 0..out_h {
            for x in 0..out_w {
                let (sx, sy) = self.source(x, y, w, h);
                let from = (sy * w + sx) * bpp;
                let to = (y * out_w + x) * bpp;
                if let (Some(src), Some(dst)) = (
                    pixels.data.get(from..from + bpp),
                    data.get_mut(to..to + bpp),
                ) {
                    dst.copy_from_slice(src);
                }
            }
        }
        let (width, height) = self.swap((pixels.width, pixels.height));
        Pixels {
            width,
            height,
            layout: pixels.layout,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::pixels::Layout;

    /// A `width` × `height` gray image whose every pixel is distinct.
    fn numbered(width: u32, height: u32) -> Pixels {
        let data = (0..width * height).map(|v| v as u8).collect();
        Pixels::new(width, height, Layout::Gray, data).unwrap()
    }

    fn cut(p: &Pixels, r: Crop) -> Pixels {
        let mut data = Vec::new();
        for y in r.y..r.y + r.height {
            let at = (y * p.width + r.x) as usize;
            data.extend_from_slice(&p.data[at..at + r.width as usize]);
        }
        Pixels::new(r.width, r.height, Layout::Gray, data).unwrap()
    }

    #[test]
    fn a_stored_rectangle_turned_is_the_displayed_one() {
        let (w, h) = (7, 4);
        // Off-centre, so that a mirrored axis would pick other pixels.
        let rect = |width, height| Crop {
            x: 1,
            y: 0,
            width,
            height,
        };
        for n in 1..=8 {
            let o = Orientation::from_exif(Some(n));
            let shown = o.apply(numbered(w, h));
            assert_eq!((shown.width, shown.height), o.swap((w, h)));
            let r = if o.swaps_axes() {
                rect(2, 5)
            } else {
                rect(4, 3)
            };
            let expected = cut(&shown, r);
            let turned = o.apply(cut(&numbered(w, h), o.stored_rect(r, w, h)));
            assert_eq!(turned.data, expected.data, "orientation {n}");
            assert_eq!((turned.width, turned.height), (r.width, r.height));
        }
    }

    #[test]
    fn out_of_range_tags_are_upright() {
        assert_eq!(Orientation::from_exif(None), Orientation(1));
        assert_eq!(Orientation::from_exif(Some(0)), Orientation(1));
        assert_eq!(Orientation::from_exif(Some(9)), Orientation(1));
    }
}
