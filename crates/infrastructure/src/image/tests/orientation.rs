//! EXIF orientation, applied exactly and through crop and resize.

use super::*;

/// For each orientation, the stored corner shown at the displayed top-left, top-right,
/// bottom-left and bottom-right, read off the EXIF definitions (where the 0th row and column go).
const SHOWN: [[(bool, bool); 4]; 8] = {
    const TL: (bool, bool) = (false, false);
    const TR: (bool, bool) = (true, false);
    const BL: (bool, bool) = (false, true);
    const BR: (bool, bool) = (true, true);
    [
        [TL, TR, BL, BR],
        [TR, TL, BR, BL],
        [BR, BL, TR, TL],
        [BL, BR, TL, TR],
        [TL, BL, TR, BR],
        [BL, TL, BR, TR],
        [BR, TR, BL, TL],
        [TR, BR, TL, BL],
    ]
};

/// The quadrant colour of a stored corner (see [`quadrants`]).
fn corner_color((right, bottom): (bool, bool)) -> [u8; 3] {
    match (right, bottom) {
        (false, false) => RED,
        (true, false) => GREEN,
        (false, true) => BLUE,
        (true, true) => YELLOW,
    }
}

#[tokio::test]
async fn all_eight_orientations_are_applied_exactly() {
    // 4×2 stored: red top-left, green top-right, the rest white; PNG in and out is lossless.
    let (w, h) = (4, 2);
    let stored = image(w, h, |x, y| match (x, y) {
        (0, 0) => RED,
        (3, 0) => GREEN,
        _ => WHITE,
    });
    for n in 1..=8u16 {
        let source = png(
            w,
            h,
            png::ColorType::Rgb,
            png::BitDepth::Eight,
            &stored,
            None,
            Some(&exif(n, false)),
        );
        assert_eq!(header(&source).orientation, Some(n as u8));
        let out = render(&source, spec(None, None, Fit::Cover), OutputFormat::Png)
            .await
            .unwrap();
        let pixels = decoded(&out.bytes);
        let (dw, dh) = if n >= 5 { (h, w) } else { (w, h) };
        assert_eq!((pixels.width, pixels.height), (dw, dh), "orientation {n}");
        let at = |(right, bottom): (bool, bool)| {
            (
                if right { dw - 1 } else { 0 },
                if bottom { dh - 1 } else { 0 },
            )
        };
        // Where stored top-left and top-right are shown.
        let shown = SHOWN[usize::from(n - 1)];
        let place = |stored: (bool, bool)| {
            let i = shown.iter().position(|&c| c == stored).unwrap();
            at([(false, false), (true, false), (false, true), (true, true)][i])
        };
        let (red, green) = (place((false, false)), place((true, false)));
        for y in 0..dh {
            for x in 0..dw {
                let expected = if (x, y) == red {
                    RED
                } else if (x, y) == green {
                    GREEN
                } else {
                    WHITE
                };
                assert_eq!(
                    rgba_at(&pixels, x, y),
                    [expected[0], expected[1], expected[2], 255],
                    "orientation {n} at {x},{y}"
                );
            }
        }
    }
}

#[tokio::test]
async fn orientation_holds_through_crop_and_resize() {
    let (w, h) = (80, 40);
    let stored = quadrants(w, h);
    for n in 1..=8u16 {
        let source = png(
            w,
            h,
            png::ColorType::Rgb,
            png::BitDepth::Eight,
            &stored,
            None,
            Some(&exif(n, false)),
        );
        // A centred square crop of the displayed image still holds all four quadrants.
        let out = render(
            &source,
            spec(Some(20), Some(20), Fit::Cover),
            OutputFormat::Png,
        )
        .await
        .unwrap();
        let pixels = decoded(&out.bytes);
        assert_eq!((pixels.width, pixels.height), (20, 20));
        let shown = SHOWN[usize::from(n - 1)];
        for (i, (x, y)) in [(4, 4), (15, 4), (4, 15), (15, 15)].into_iter().enumerate() {
            let got = rgba_at(&pixels, x, y);
            assert!(
                near(got, corner_color(shown[i]), 8),
                "orientation {n} at {x},{y}: {got:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_jpeg_with_exif_orientation_6_is_turned_clockwise() {
    let (w, h) = (64, 32);
    let source = jpeg(w, h, &quadrants(w, h), 95, Some(&exif(6, false)));
    assert_eq!(header(&source).orientation, Some(6));
    let out = render(&source, spec(None, None, Fit::Cover), OutputFormat::Png)
        .await
        .unwrap();
    assert_eq!((out.width, out.height), (32, 64));
    let pixels = decoded(&out.bytes);
    let shown = SHOWN[5];
    for (i, (x, y)) in [(8, 8), (24, 8), (8, 56), (24, 56)].into_iter().enumerate() {
        let got = rgba_at(&pixels, x, y);
        assert!(near(got, corner_color(shown[i]), 30), "at {x},{y}: {got:?}");
    }
}
