//! AVIF output (the `avif` feature): every source format and colour type becomes an AVIF of the
//! planned size, with an alpha plane exactly when the source has transparency, and no metadata.

use super::*;

/// The auxiliary-image type an AVIF alpha plane is declared with.
const ALPHA_URN: &[u8] = b"urn:mpeg:mpegB:cicp:systems:auxiliary:alpha";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn avif_is_written_from_every_source_format() {
    let renderer = renderer();
    assert!(renderer.can_write(OutputFormat::Avif));
    for (name, source, _, right) in sources() {
        let out = render(
            &source,
            spec(Some(32), Some(24), Fit::Cover),
            OutputFormat::Avif,
        )
        .await
        .unwrap_or_else(|e| panic!("{name} → AVIF: {e}"));
        assert_eq!((out.width, out.height), (32, 24), "{name}");
        let found = header(&out.bytes);
        assert_eq!(found.format, ImageFormat::Avif, "{name}");
        assert_eq!((found.width, found.height), (32, 24), "{name}");
        assert_eq!(
            contains(&out.bytes, ALPHA_URN),
            right.is_none(),
            "{name}: an alpha plane exactly for transparent sources"
        );
        assert!(!contains(&out.bytes, b"Exif"), "{name}: no EXIF item");
    }
}

#[tokio::test]
async fn avif_quality_drives_the_size() {
    // Detail everywhere, so that quality has something to spend bytes on.
    let detail = image(256, 192, |x, y| {
        [(x * x + y) as u8, (x * y) as u8, (x + 3 * y) as u8]
    });
    let source = jpeg(256, 192, &detail, 95, None);
    let spec_q = |quality| VariantSpec {
        quality,
        ..spec(Some(128), Some(96), Fit::Cover)
    };
    let low = render(&source, spec_q(20), OutputFormat::Avif)
        .await
        .unwrap();
    let high = render(&source, spec_q(95), OutputFormat::Avif)
        .await
        .unwrap();
    assert!(
        low.bytes.len() < high.bytes.len(),
        "q20 {} bytes, q95 {} bytes",
        low.bytes.len(),
        high.bytes.len()
    );
}
