use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use stowage_application::ports::{ImageRenderer, RenderError, Rendered};
use stowage_domain::image::header::{ImageFormat, ImageHeader};
use stowage_domain::image::variant::{Fit, FormatChoice, OutputFormat, VariantSpec, plan};

use super::*;

#[cfg(feature = "avif")]
mod avif;
mod concurrency;
mod orientation;
mod samples;

use samples::*;

fn spec(width: Option<u32>, height: Option<u32>, fit: Fit) -> VariantSpec {
    VariantSpec {
        width,
        height,
        fit,
        format: FormatChoice::Source,
        quality: 85,
    }
}

fn renderer() -> PixelRenderer {
    PixelRenderer::new(ImageRendererSettings {
        concurrency: 2,
        queue: 8,
        wait: Duration::from_secs(30),
    })
}

impl PixelRenderer {
    /// What a caller of the port does: a slot first, then the render.
    async fn reserve_and_render(
        &self,
        source: Bytes,
        header: ImageHeader,
        spec: VariantSpec,
        format: OutputFormat,
    ) -> Result<Rendered, RenderError> {
        let slot = self.reserve().await?;
        self.render(slot, source, header, spec, format).await
    }
}

async fn render(
    source: &[u8],
    spec: VariantSpec,
    format: OutputFormat,
) -> Result<Rendered, RenderError> {
    let header = header(source);
    renderer()
        .reserve_and_render(Bytes::copy_from_slice(source), header, spec, format)
        .await
}

const FORMATS: [OutputFormat; 3] = [OutputFormat::Jpeg, OutputFormat::Png, OutputFormat::WebP];

/// Every source format and colour type, 64×48, with the colours of its halves (the right one
/// `None` when transparent): red and blue, or dark and light gray.
#[allow(clippy::type_complexity)]
fn sources() -> Vec<(&'static str, Vec<u8>, [u8; 3], Option<[u8; 3]>)> {
    let (w, h) = (64, 48);
    let left = |x: u32| x < w / 2;
    let rgb = image(w, h, |x, _| if left(x) { RED } else { BLUE });
    let rgba = image(w, h, |x, _| {
        if left(x) {
            [RED[0], RED[1], RED[2], 255]
        } else {
            [0, 0, 0, 0]
        }
    });
    let gray = image(w, h, |x, _| if left(x) { [60] } else { [190] });
    let gray_alpha = image(w, h, |x, _| if left(x) { [60, 255] } else { [190, 0] });
    let rgb16 = image(w, h, |x, _| {
        let [r, g, b] = if left(x) { RED } else { BLUE };
        [r, r, g, g, b, b]
    });
    let indices = image(w, h, |x, _| if left(x) { [0] } else { [1] });
    let palette = [RED, BLUE].concat();
    let gif_palette = [RED, BLUE, WHITE, WHITE].concat();
    let (dark, light) = ([60; 3], [190; 3]);
    vec![
        ("jpeg", jpeg(w, h, &rgb, 95, None), RED, Some(BLUE)),
        ("jpeg gray", jpeg(w, h, &gray, 95, None), dark, Some(light)),
        (
            "png rgb",
            png(
                w,
                h,
                png::ColorType::Rgb,
                png::BitDepth::Eight,
                &rgb,
                None,
                None,
            ),
            RED,
            Some(BLUE),
        ),
        (
            "png rgba",
            png(
                w,
                h,
                png::ColorType::Rgba,
                png::BitDepth::Eight,
                &rgba,
                None,
                None,
            ),
            RED,
            None,
        ),
        (
            "png gray",
            png(
                w,
                h,
                png::ColorType::Grayscale,
                png::BitDepth::Eight,
                &gray,
                None,
                None,
            ),
            dark,
            Some(light),
        ),
        (
            "png gray+alpha",
            png(
                w,
                h,
                png::ColorType::GrayscaleAlpha,
                png::BitDepth::Eight,
                &gray_alpha,
                None,
                None,
            ),
            dark,
            None,
        ),
        (
            "png 16-bit",
            png(
                w,
                h,
                png::ColorType::Rgb,
                png::BitDepth::Sixteen,
                &rgb16,
                None,
                None,
            ),
            RED,
            Some(BLUE),
        ),
        (
            "png palette",
            png(
                w,
                h,
                png::ColorType::Indexed,
                png::BitDepth::Eight,
                &indices,
                Some((&palette, &[])),
                None,
            ),
            RED,
            Some(BLUE),
        ),
        (
            "png palette+tRNS",
            png(
                w,
                h,
                png::ColorType::Indexed,
                png::BitDepth::Eight,
                &indices,
                Some((&palette, &[255, 0])),
                None,
            ),
            RED,
            None,
        ),
        (
            "gif",
            gif((64, 48), (0, 0, 64, 48), &indices, &gif_palette, None),
            RED,
            Some(BLUE),
        ),
        (
            "gif transparent",
            gif((64, 48), (0, 0, 64, 48), &indices, &gif_palette, Some(1)),
            RED,
            None,
        ),
        ("webp lossy", webp_lossy(w, h, &rgb), RED, Some(BLUE)),
        ("webp lossless alpha", webp_lossless(w, h, &rgba), RED, None),
    ]
}

#[tokio::test]
async fn every_output_format_from_every_source_format() {
    for (name, source, left, right) in sources() {
        for format in FORMATS {
            let out = render(&source, spec(Some(32), Some(32), Fit::Cover), format)
                .await
                .unwrap_or_else(|e| panic!("{name} → {format:?}: {e}"));
            assert_eq!((out.width, out.height), (32, 32), "{name} → {format:?}");
            let found = header(&out.bytes);
            let expected = match format {
                OutputFormat::Jpeg => ImageFormat::Jpeg,
                OutputFormat::Png => ImageFormat::Png,
                _ => ImageFormat::WebP,
            };
            assert_eq!(found.format, expected, "{name} → {format:?}");
            assert_eq!((found.width, found.height), (32, 32));
            let pixels = decoded(&out.bytes);
            let (l, r) = (rgba_at(&pixels, 4, 16), rgba_at(&pixels, 28, 16));
            let ctx = format!("{name} → {format:?}: left {l:?}, right {r:?}");
            assert!(near(l, left, 40) && l[3] == 255, "{ctx}");
            match (right, format) {
                (Some(color), _) => assert!(near(r, color, 40) && r[3] == 255, "{ctx}"),
                // JPEG has no alpha: transparent pixels are laid over white.
                (None, OutputFormat::Jpeg) => assert!(near(r, WHITE, 12), "{ctx}"),
                (None, _) => assert_eq!(r[3], 0, "{ctx}"),
            }
        }
    }
}

#[tokio::test]
async fn sizes_follow_the_plan_and_never_upscale() {
    let source = png(
        64,
        48,
        png::ColorType::Rgb,
        png::BitDepth::Eight,
        &quadrants(64, 48),
        None,
        None,
    );
    let specs = [
        spec(Some(30), Some(30), Fit::Cover),
        spec(Some(30), Some(30), Fit::Contain),
        spec(Some(30), Some(10), Fit::Fill),
        spec(Some(20), None, Fit::Cover),
        spec(None, Some(12), Fit::Cover),
        spec(None, None, Fit::Cover),
        spec(Some(400), Some(400), Fit::Cover),
        spec(Some(400), Some(400), Fit::Contain),
        spec(Some(400), Some(400), Fit::Fill),
        spec(Some(1000), None, Fit::Cover),
        spec(Some(1), Some(1), Fit::Cover),
    ];
    for s in specs {
        let planned = plan(64, 48, &s);
        for format in FORMATS {
            let out = render(&source, s, format).await.unwrap();
            assert_eq!(
                (out.width, out.height),
                (planned.width, planned.height),
                "{s:?}"
            );
            let pixels = decoded(&out.bytes);
            assert_eq!(
                (pixels.width, pixels.height),
                (planned.width, planned.height)
            );
            assert!(out.width <= 64 && out.height <= 48, "{s:?} upscaled");
        }
    }
}
#[tokio::test]
async fn output_carries_no_metadata() {
    let (w, h) = (64, 48);
    let source = jpeg(w, h, &quadrants(w, h), 90, Some(&exif(1, true)));
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    assert!(contains(&source, b"Exif\0\0"));
    for format in FORMATS {
        let out = render(&source, spec(Some(32), None, Fit::Cover), format)
            .await
            .unwrap();
        for marker in [
            &b"Exif"[..],
            b"EXIF",
            b"eXIf",
            b"GPS",
            b"XMP",
            b"ICC",
            b"iCCP",
            b"tEXt",
            b"zTXt",
            b"iTXt",
        ] {
            assert!(
                !contains(&out.bytes, marker),
                "{format:?} output holds {marker:?}"
            );
        }
        assert_eq!(header(&out.bytes).orientation, None);
    }
}

#[tokio::test]
async fn truncated_or_corrupt_sources_are_unsupported() {
    let (w, h) = (64, 48);
    let stored = quadrants(w, h);
    let rgba = image(w, h, |x, y| [x as u8, y as u8, 7, 200]);
    let indices = image(w, h, |x, y| [((x / 3 + y / 5) % 4) as u8]);
    let sources = [
        ("jpeg", jpeg(w, h, &stored, 90, None)),
        (
            "png",
            png(
                w,
                h,
                png::ColorType::Rgb,
                png::BitDepth::Eight,
                &stored,
                None,
                None,
            ),
        ),
        (
            "gif",
            gif(
                (64, 48),
                (0, 0, 64, 48),
                &indices,
                &[RED, GREEN, BLUE, WHITE].concat(),
                None,
            ),
        ),
        ("webp", webp_lossless(w, h, &rgba)),
    ];
    for (name, full) in sources {
        let header = header(&full);
        let mut corrupt = full.clone();
        let tail = corrupt.len() * 3 / 4;
        corrupt.truncate(tail);
        let cut = renderer()
            .reserve_and_render(
                Bytes::from(corrupt),
                header,
                spec(Some(10), None, Fit::Cover),
                OutputFormat::Png,
            )
            .await;
        assert!(
            matches!(cut, Err(RenderError::Unsupported(_))),
            "{name} truncated: {cut:?}"
        );
    }
    // A header that does not match the data is refused too.
    let source = png(
        w,
        h,
        png::ColorType::Rgb,
        png::BitDepth::Eight,
        &stored,
        None,
        None,
    );
    let lying = ImageHeader {
        width: 65,
        ..header(&source)
    };
    let out = renderer()
        .reserve_and_render(
            Bytes::from(source),
            lying,
            spec(None, None, Fit::Cover),
            OutputFormat::Png,
        )
        .await;
    assert!(matches!(out, Err(RenderError::Unsupported(_))), "{out:?}");
}

#[cfg(not(feature = "avif"))]
#[tokio::test]
async fn avif_is_not_written_without_the_feature() {
    let renderer = renderer();
    assert!(!renderer.can_write(OutputFormat::Avif));
    assert!(FORMATS.into_iter().all(|f| renderer.can_write(f)));
    let source = source_png();
    let png_header = header(&source);
    let out = renderer
        .reserve_and_render(
            Bytes::from(source),
            png_header,
            spec(None, None, Fit::Cover),
            OutputFormat::Avif,
        )
        .await;
    assert!(
        matches!(out, Err(RenderError::FormatUnavailable(OutputFormat::Avif))),
        "{out:?}"
    );
}

#[tokio::test]
async fn avif_sources_are_not_decoded() {
    let renderer = renderer();
    assert!(!renderer.can_read(ImageFormat::Avif));
    let avif = ImageHeader {
        format: ImageFormat::Avif,
        width: 8,
        height: 8,
        orientation: None,
        animated: false,
    };
    let out = renderer
        .reserve_and_render(
            Bytes::from_static(b"not decoded"),
            avif,
            spec(None, None, Fit::Cover),
            OutputFormat::Png,
        )
        .await;
    assert!(matches!(out, Err(RenderError::Unsupported(_))), "{out:?}");
}

fn source_png() -> Vec<u8> {
    png(
        8,
        8,
        png::ColorType::Rgb,
        png::BitDepth::Eight,
        &quadrants(8, 8),
        None,
        None,
    )
}

#[tokio::test]
async fn gif_first_frame_is_placed_on_its_screen() {
    // A 10×10 red frame at (5, 5) of a 20×20 screen: the rest is transparent.
    let indices = vec![0; 100];
    let source = gif(
        (20, 20),
        (5, 5, 10, 10),
        &indices,
        &[RED, BLUE].concat(),
        None,
    );
    let out = render(&source, spec(None, None, Fit::Cover), OutputFormat::Png)
        .await
        .unwrap();
    let pixels = decoded(&out.bytes);
    assert_eq!((pixels.width, pixels.height), (20, 20));
    assert_eq!(rgba_at(&pixels, 0, 0)[3], 0);
    assert_eq!(rgba_at(&pixels, 19, 19)[3], 0);
    assert_eq!(rgba_at(&pixels, 10, 10), [RED[0], RED[1], RED[2], 255]);
    // A frame reaching past the screen grows it, as the header reader does.
    let source = gif(
        (10, 10),
        (5, 5, 10, 10),
        &indices,
        &[RED, BLUE].concat(),
        None,
    );
    assert_eq!((header(&source).width, header(&source).height), (15, 15));
    let out = render(&source, spec(None, None, Fit::Cover), OutputFormat::Png)
        .await
        .unwrap();
    let pixels = decoded(&out.bytes);
    assert_eq!((pixels.width, pixels.height), (15, 15));
    assert_eq!(rgba_at(&pixels, 14, 14), [RED[0], RED[1], RED[2], 255]);
    assert_eq!(rgba_at(&pixels, 0, 0)[3], 0);
}

#[tokio::test]
async fn a_progressive_jpeg_is_decoded_at_a_reduced_scale_too() {
    let (w, h) = (800, 600);
    let source = jpeg_with(w, h, &quadrants(w, h), 90, None, true);
    let header = header(&source);
    let cover = spec(Some(100), Some(100), Fit::Cover);
    let plan = make_plan(&header, &cover);
    assert_eq!(plan.need, (134, 100));
    let decoded = decode::decode(&source, &header, plan.need).unwrap();
    assert_eq!((decoded.width, decoded.height), (200, 150));
    let out = render(&source, cover, OutputFormat::Png).await.unwrap();
    let pixels = samples::decoded(&out.bytes);
    for (x, y, color) in [
        (20, 20, RED),
        (80, 20, GREEN),
        (20, 80, BLUE),
        (80, 80, YELLOW),
    ] {
        let got = rgba_at(&pixels, x, y);
        assert!(near(got, color, 30), "at {x},{y}: {got:?}");
    }
}

#[tokio::test]
async fn a_large_jpeg_is_decoded_at_a_reduced_scale() {
    let (w, h) = (4000, 3000);
    let samples = image(w, h, |x, y| [(x / 16) as u8, (y / 12) as u8, 128]);
    let source = jpeg(w, h, &samples, 90, Some(&exif(6, false)));
    let header = header(&source);
    let cover = VariantSpec {
        format: FormatChoice::Exact(OutputFormat::WebP),
        quality: 80,
        ..spec(Some(300), Some(300), Fit::Cover)
    };
    let plan = make_plan(&header, &cover);
    // Displayed 3000×4000, cropped to 3000×3000 and shrunk to 300: 300×400 displayed are
    // needed, 400×300 stored, which a 1/8 decode (500×375) gives.
    assert_eq!(plan.need, (400, 300));
    let decoded = decode::decode(&source, &header, plan.need).unwrap();
    assert_eq!((decoded.width, decoded.height), (500, 375));
    let out = renderer()
        .reserve_and_render(Bytes::from(source), header, cover, OutputFormat::WebP)
        .await
        .unwrap();
    assert_eq!((out.width, out.height), (300, 300));
}
/// `cargo test --release -p stowage-infrastructure image::tests::release_timing -- --ignored --nocapture`
#[tokio::test]
#[ignore = "prints a timing; run in release"]
async fn release_timing() {
    let (w, h) = (4000, 3000);
    // A gradient with some texture, so that the entropy decoder has real work.
    let samples = image(w, h, |x, y| {
        let noise = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) >> 27;
        [
            (x / 16) as u8 ^ noise as u8,
            (y / 12) as u8,
            ((x + y) / 28) as u8,
        ]
    });
    let source = Bytes::from(jpeg(w, h, &samples, 90, Some(&exif(6, false))));
    let header = header(&source);
    let cover = VariantSpec {
        format: FormatChoice::Exact(OutputFormat::WebP),
        quality: 80,
        ..spec(Some(300), Some(300), Fit::Cover)
    };
    let renderer = renderer();
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = std::time::Instant::now();
        let out = renderer
            .reserve_and_render(source.clone(), header, cover, OutputFormat::WebP)
            .await
            .unwrap();
        times.push(started.elapsed());
        assert_eq!((out.width, out.height), (300, 300));
    }
    println!(
        "source {} bytes; 4000x3000 q90 orientation 6 -> 300x300 cover webp q80: {times:?}",
        source.len()
    );
}
