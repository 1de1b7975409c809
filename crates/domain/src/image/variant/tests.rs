use super::*;

fn params<'a>(pairs: &[(&str, &'a str)]) -> VariantParams<'a> {
    let mut p = VariantParams::default();
    for (k, v) in pairs {
        match *k {
            "w" => p.w = Some(v),
            "h" => p.h = Some(v),
            "fit" => p.fit = Some(v),
            "format" => p.format = Some(v),
            "q" => p.q = Some(v),
            "variant" => p.variant = Some(v),
            _ => unreachable!(),
        }
    }
    p
}

fn parse(pairs: &[(&str, &str)]) -> Result<Option<VariantRequest>, InvalidVariant> {
    parse_request(&params(pairs), &Presets::default(), DEFAULT_MAX_OUTPUT_PX)
}

#[test]
fn no_parameter_is_the_file_itself() {
    assert_eq!(parse(&[]), Ok(None));
}

#[test]
fn parameters_parse_with_their_defaults() {
    let got = parse(&[("w", "300"), ("h", "200"), ("format", "webp")])
        .unwrap()
        .unwrap();
    assert_eq!(
        got.spec,
        VariantSpec {
            width: Some(300),
            height: Some(200),
            fit: Fit::Cover,
            format: FormatChoice::Exact(OutputFormat::WebP),
            quality: 80,
        }
    );
    assert_eq!(got.canonical, "w=300&h=200&format=webp");
    assert_eq!(
        got.spec.name(OutputFormat::WebP).as_str(),
        "w300-h200-cover-q80.webp"
    );
    assert_eq!(
        got.spec.name(OutputFormat::Png).as_str(),
        "w300-h200-cover.png"
    );
}

#[test]
fn canonical_parameters_do_not_depend_on_spelling_or_order() {
    let a = parse(&[("q", "050"), ("fit", "contain"), ("h", "20"), ("w", "10")])
        .unwrap()
        .unwrap();
    assert_eq!(a.canonical, "w=10&h=20&fit=contain&q=50");
    let b = parse(&[("w", "10"), ("h", "20")]).unwrap().unwrap();
    assert_ne!(a.canonical, b.canonical);
}

#[test]
fn bad_parameters_are_refused_by_name() {
    for (pairs, word) in [
        (vec![("w", "0")], "w must"),
        (vec![("w", "2501")], "w must"),
        (vec![("h", "-1")], "h must"),
        (vec![("w", "1e3")], "w must"),
        (vec![("w", "")], "w must"),
        (vec![("q", "0")], "q must"),
        (vec![("q", "101")], "q must"),
        (vec![("fit", "crop"), ("w", "1"), ("h", "1")], "fit must"),
        (vec![("fit", "cover"), ("w", "1")], "fit needs"),
        (vec![("format", "gif")], "format must"),
        (
            vec![("variant", "huge")],
            "variant must be one of: large, medium, small",
        ),
        (vec![("variant", "small"), ("w", "3")], "cannot be combined"),
    ] {
        let err = parse(&pairs).unwrap_err();
        assert!(err.0.contains(word), "{pairs:?}: {err}");
    }
}

#[test]
fn presets_name_boxes() {
    let got = parse(&[("variant", "medium"), ("format", "auto")])
        .unwrap()
        .unwrap();
    assert_eq!((got.spec.width, got.spec.height), (Some(150), Some(150)));
    assert_eq!(got.spec.format, FormatChoice::Auto);
    assert_eq!(got.canonical, "variant=medium&format=auto");

    let custom = Presets::parse("thumb=64x64, wide=1200x", 2500).unwrap();
    assert_eq!(custom.get("wide").unwrap().height, None);
    assert_eq!(custom.to_string(), "thumb=64x64,wide=1200x");
    for bad in ["x=0x1", "x=1", "X=1x1", "x=x", "a=1x1,a=2x2", "a=3000x1"] {
        assert!(Presets::parse(bad, 2500).is_err(), "{bad}");
    }
}

#[test]
fn auto_picks_what_the_browser_accepts() {
    let chrome = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
    let auto = FormatChoice::Auto;
    assert_eq!(
        auto.resolve(ImageFormat::Jpeg, Some(chrome), true),
        OutputFormat::Avif
    );
    assert_eq!(
        auto.resolve(ImageFormat::Jpeg, Some(chrome), false),
        OutputFormat::WebP
    );
    assert_eq!(
        auto.resolve(ImageFormat::Jpeg, Some("*/*"), false),
        OutputFormat::Jpeg
    );
    assert_eq!(
        auto.resolve(ImageFormat::Jpeg, None, false),
        OutputFormat::Jpeg
    );
    assert_eq!(
        auto.resolve(ImageFormat::WebP, Some("image/png"), false),
        OutputFormat::Png
    );
    assert_eq!(
        auto.resolve(ImageFormat::Png, Some("image/webp;q=0, image/png"), false),
        OutputFormat::Png
    );
    assert_eq!(
        FormatChoice::Source.resolve(ImageFormat::Gif, None, true),
        OutputFormat::Png
    );
}
