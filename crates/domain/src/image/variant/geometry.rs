//! Where a variant's pixels come from and how large it is: a pure function of the source's size
//! (once oriented) and the spec, so that every image backend sizes variants alike.

use super::{Fit, VariantSpec};

/// The longest side a variant has, whatever is asked: WebP's limit, and a bound on the side a
/// request leaves to the aspect ratio (`?h=100` of a 100 000 px wide panorama).
pub const MAX_OUTPUT_SIDE: u32 = 16_383;

/// A rectangle of the (oriented) source, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crop {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width, at least 1.
    pub width: u32,
    /// Height, at least 1.
    pub height: u32,
}

/// How a variant is made: the part of the source taken (all of it when `crop` is `None`) and
/// the size it is resized to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// The part of the source that is kept (`cover` crops the overflow).
    pub crop: Option<Crop>,
    /// Output width, 1..=the source's.
    pub width: u32,
    /// Output height, 1..=the source's.
    pub height: u32,
}

/// Plans the variant `spec` of a source of `width` × `height` pixels (after its orientation is
/// applied). A variant is never larger than its source: a box bigger than the source shrinks,
/// keeping its aspect ratio, until it fits; and no side passes [`MAX_OUTPUT_SIDE`].
pub fn plan(width: u32, height: u32, spec: &VariantSpec) -> Geometry {
    let (sw, sh) = (width.max(1), height.max(1));
    let whole = |w: u32, h: u32| {
        let (w, h) = (u64::from(w.clamp(1, sw)), u64::from(h.clamp(1, sh)));
        let longest = w.max(h);
        let max = u64::from(MAX_OUTPUT_SIDE);
        // Scaled down together, keeping the shape, when a side is too long.
        let fit = |side: u64| {
            if longest > max {
                ((side * max + longest / 2) / longest).max(1)
            } else {
                side
            }
        };
        Geometry {
            crop: None,
            // At most the source's sides, which are u32.
            width: fit(w) as u32,
            height: fit(h) as u32,
        }
    };
    let scaled = |num: u64, den: u64, side: u32| -> u32 {
        // round(side * num / den), in integers; never 0.
        let v = (u64::from(side) * num * 2 + den) / (den * 2);
        u32::try_from(v).unwrap_or(u32::MAX).max(1)
    };
    match (spec.width, spec.height) {
        (None, None) => whole(sw, sh),
        (Some(w), None) => {
            let w = w.min(sw);
            whole(w, scaled(u64::from(w), u64::from(sw), sh))
        }
        (None, Some(h)) => {
            let h = h.min(sh);
            whole(scaled(u64::from(h), u64::from(sh), sw), h)
        }
        (Some(w), Some(h)) => match spec.fit {
            Fit::Fill => whole(w, h),
            Fit::Contain => {
                // The smaller of the two scales (and never above 1) keeps the image inside the box.
                let (w, h) = (u64::from(w), u64::from(h));
                if w * u64::from(sh) <= h * u64::from(sw) {
                    let w = w.min(u64::from(sw));
                    whole(w as u32, scaled(w, u64::from(sw), sh))
                } else {
                    let h = h.min(u64::from(sh));
                    whole(scaled(h, u64::from(sh), sw), h as u32)
                }
            }
            Fit::Cover => {
                // Shrink the box, keeping its ratio, until it fits inside the source.
                let (mut bw, mut bh) = (u64::from(w), u64::from(h));
                if bw > u64::from(sw) {
                    bh = (bh * u64::from(sw) * 2 + bw) / (bw * 2);
                    bw = u64::from(sw);
                }
                if bh > u64::from(sh) {
                    bw = (bw * u64::from(sh) * 2 + bh) / (bh * 2);
                    bh = u64::from(sh);
                }
                let (bw, bh) = (bw.max(1), bh.max(1));
                // The largest centred part of the source with the box's aspect ratio.
                let (cw, ch) = if u64::from(sw) * bh > u64::from(sh) * bw {
                    (
                        ((u64::from(sh) * bw * 2 + bh) / (bh * 2)).clamp(1, u64::from(sw)),
                        u64::from(sh),
                    )
                } else {
                    (
                        u64::from(sw),
                        ((u64::from(sw) * bh * 2 + bw) / (bw * 2)).clamp(1, u64::from(sh)),
                    )
                };
                // Every value here is at most the source's side, a u32.
                let (cw, ch) = (cw as u32, ch as u32);
                let crop = (cw, ch) != (sw, sh);
                Geometry {
                    crop: crop.then(|| Crop {
                        x: (sw - cw) / 2,
                        y: (sh - ch) / 2,
                        width: cw,
                        height: ch,
                    }),
                    width: bw as u32,
                    height: bh as u32,
                }
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::variant::{DEFAULT_QUALITY, FormatChoice};

    fn spec(width: Option<u32>, height: Option<u32>, fit: Fit) -> VariantSpec {
        VariantSpec {
            width,
            height,
            fit,
            format: FormatChoice::Source,
            quality: DEFAULT_QUALITY,
        }
    }

    #[test]
    fn cover_crops_the_overflow_centred() {
        let g = plan(4000, 3000, &spec(Some(300), Some(300), Fit::Cover));
        assert_eq!((g.width, g.height), (300, 300));
        assert_eq!(
            g.crop,
            Some(Crop {
                x: 500,
                y: 0,
                width: 3000,
                height: 3000
            })
        );
    }

    #[test]
    fn contain_fits_inside_the_box() {
        let g = plan(4000, 3000, &spec(Some(300), Some(300), Fit::Contain));
        assert_eq!((g.crop, g.width, g.height), (None, 300, 225));
        let g = plan(3000, 4000, &spec(Some(300), Some(300), Fit::Contain));
        assert_eq!((g.width, g.height), (225, 300));
    }

    #[test]
    fn one_side_keeps_the_aspect_ratio() {
        let g = plan(4000, 3000, &spec(Some(400), None, Fit::Cover));
        assert_eq!((g.width, g.height), (400, 300));
        let g = plan(4000, 3000, &spec(None, Some(150), Fit::Cover));
        assert_eq!((g.width, g.height), (200, 150));
    }

    #[test]
    fn no_side_passes_the_limit_whatever_is_left_to_the_aspect_ratio() {
        for s in [
            spec(None, Some(100), Fit::Cover),
            spec(None, None, Fit::Cover),
            spec(Some(20_000), None, Fit::Cover),
        ] {
            let g = plan(100_000, 300, &s);
            assert!(g.width <= MAX_OUTPUT_SIDE && g.height >= 1, "{s:?}: {g:?}");
        }
        let g = plan(100_000, 1_000, &spec(None, None, Fit::Cover));
        assert_eq!((g.width, g.height), (MAX_OUTPUT_SIDE, 164));
    }

    #[test]
    fn fill_stretches() {
        let g = plan(4000, 3000, &spec(Some(100), Some(400), Fit::Fill));
        assert_eq!((g.crop, g.width, g.height), (None, 100, 400));
    }

    #[test]
    fn a_variant_is_never_larger_than_its_source() {
        for fit in [Fit::Cover, Fit::Contain, Fit::Fill] {
            let g = plan(200, 100, &spec(Some(800), Some(800), fit));
            assert!(g.width <= 200 && g.height <= 100, "{fit:?}: {g:?}");
        }
        // Cover keeps the box's shape while it shrinks to fit.
        let g = plan(200, 100, &spec(Some(800), Some(800), Fit::Cover));
        assert_eq!((g.width, g.height), (100, 100));
        let g = plan(200, 100, &spec(Some(1000), None, Fit::Cover));
        assert_eq!((g.width, g.height), (200, 100));
    }

    #[test]
    fn tiny_and_extreme_shapes_never_give_a_zero_side() {
        for (w, h) in [(1, 1), (1, 10_000), (10_000, 1), (3, 7)] {
            for fit in [Fit::Cover, Fit::Contain, Fit::Fill] {
                for (bw, bh) in [
                    (Some(1), Some(1)),
                    (Some(2500), Some(1)),
                    (Some(1), None),
                    (None, Some(2500)),
                ] {
                    let g = plan(w, h, &spec(bw, bh, fit));
                    assert!(
                        g.width >= 1 && g.height >= 1 && g.width <= w && g.height <= h,
                        "{w}x{h} {fit:?} {bw:?}x{bh:?}: {g:?}"
                    );
                    if let Some(c) = g.crop {
                        assert!(
                            c.width >= 1
                                && c.height >= 1
                                && c.x + c.width <= w
                                && c.y + c.height <= h
                        );
                    }
                }
            }
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::spec;
        use crate::image::variant::{Fit, MAX_OUTPUT_SIDE, plan};
        use crate::properties::config;

        /// Source sides of every size a header can state, small ones often.
        fn source_side() -> impl Strategy<Value = u32> {
            prop_oneof![0..=64u32, any::<u32>()]
        }

        /// A side a request may ask for (`IMAGE_MAX_OUTPUT_PX` is at most [`MAX_OUTPUT_SIDE`]).
        fn box_side() -> impl Strategy<Value = Option<u32>> {
            prop::option::of(prop_oneof![1..=64u32, 1..=MAX_OUTPUT_SIDE])
        }

        fn fit() -> impl Strategy<Value = Fit> {
            prop::sample::select(vec![Fit::Cover, Fit::Contain, Fit::Fill])
        }

        /// Whether `width` × `height` has the shape `ratio_w` : `ratio_h`, give or take the pixel
        /// each side is rounded to (a side of one pixel can be no smaller, whatever the shape).
        fn shaped(width: u32, height: u32, ratio_w: u32, ratio_h: u32) -> bool {
            let (w, h, rw, rh) = (
                u128::from(width),
                u128::from(height),
                u128::from(ratio_w),
                u128::from(ratio_h),
            );
            w == 1 || h == 1 || (w * rh).abs_diff(h * rw) <= rw + rh
        }

        proptest! {
            #![proptest_config(config())]

            /// `fill` stretches to the box, each side at most the source's; `cover` keeps the
            /// box's shape, the others the source's.
            #[test]
            fn a_variant_keeps_the_shape_its_fit_promises(
                width in source_side(),
                height in source_side(),
                box_width in box_side(),
                box_height in box_side(),
                fit in fit(),
            ) {
                let g = plan(width, height, &spec(box_width, box_height, fit));
                let (sw, sh) = (width.max(1), height.max(1));
                match (box_width, box_height, fit) {
                    (Some(w), Some(h), Fit::Fill) => {
                        prop_assert_eq!((g.width, g.height), (w.min(sw), h.min(sh)));
                    }
                    (Some(w), Some(h), Fit::Cover) => {
                        prop_assert!(shaped(g.width, g.height, w, h), "{:?}", g);
                        let crop = g.crop.map_or((sw, sh), |c| (c.width, c.height));
                        prop_assert!(shaped(crop.0, crop.1, w, h), "{:?}", g);
                    }
                    _ => prop_assert!(shaped(g.width, g.height, sw, sh), "{:?}", g),
                }
            }

            #[test]
            fn a_variant_fits_its_source_its_box_and_the_limit(
                width in source_side(),
                height in source_side(),
                box_width in box_side(),
                box_height in box_side(),
                fit in fit(),
            ) {
                let spec = spec(box_width, box_height, fit);
                let g = plan(width, height, &spec);
                let (sw, sh) = (width.max(1), height.max(1));
                prop_assert!((1..=sw.min(MAX_OUTPUT_SIDE)).contains(&g.width), "{:?}", g);
                prop_assert!((1..=sh.min(MAX_OUTPUT_SIDE)).contains(&g.height), "{:?}", g);
                prop_assert!(box_width.is_none_or(|w| g.width <= w), "{:?}", g);
                prop_assert!(box_height.is_none_or(|h| g.height <= h), "{:?}", g);
                if let Some(crop) = g.crop {
                    let both = box_width.is_some() && box_height.is_some();
                    prop_assert!(fit == Fit::Cover && both, "only cover crops: {:?}", g);
                    prop_assert!(crop.width >= 1 && crop.height >= 1, "{:?}", crop);
                    prop_assert!(crop.x + crop.width <= sw, "{:?}", crop);
                    prop_assert!(crop.y + crop.height <= sh, "{:?}", crop);
                    let centred = ((sw - crop.width) / 2, (sh - crop.height) / 2);
                    prop_assert_eq!((crop.x, crop.y), centred);
                }
            }
        }
    }
}
