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

mod properties {
    use proptest::prelude::*;

    use super::params;
    use crate::image::variant::*;
    use crate::properties::config;

    /// One query parameter: a valid number with leading zeros, or a word from a list that holds
    /// valid and invalid values.
    #[derive(Clone, Debug)]
    enum Param {
        Number(u32, usize),
        Word(&'static str),
    }

    impl Param {
        fn spelled(&self) -> String {
            match self {
                Param::Number(n, zeros) => format!("{}{n}", "0".repeat(*zeros)),
                Param::Word(word) => (*word).to_owned(),
            }
        }

        fn plain(&self) -> String {
            match self {
                Param::Number(n, _) => n.to_string(),
                Param::Word(word) => (*word).to_owned(),
            }
        }
    }

    fn valid_number(max: u32) -> impl Strategy<Value = Param> {
        (1..=max, 0..3usize).prop_map(|(n, zeros)| Param::Number(n, zeros))
    }

    fn number(max: u32, junk: &'static [&'static str]) -> impl Strategy<Value = Option<Param>> {
        prop::option::of(prop_oneof![
            6 => valid_number(max),
            1 => prop::sample::select(junk).prop_map(Param::Word),
        ])
    }

    fn word(words: &'static [&'static str]) -> impl Strategy<Value = Option<Param>> {
        prop::option::of(prop::sample::select(words).prop_map(Param::Word))
    }

    /// `w`, `h`, `fit`, `format`, `q`, `variant`.
    fn query() -> impl Strategy<Value = [Option<Param>; 6]> {
        const SIDE_JUNK: &[&str] = &["0", "", "-1", "1e3", "2501", " 5", "99999999999"];
        (
            number(DEFAULT_MAX_OUTPUT_PX, SIDE_JUNK),
            number(DEFAULT_MAX_OUTPUT_PX, SIDE_JUNK),
            word(&["cover", "contain", "fill", "crop", "Cover"]),
            word(&["jpeg", "png", "webp", "avif", "auto", "gif", "JPEG", ""]),
            number(100, &["0", "101", "", "q"]),
            // Rarely a preset, which refuses w, h and fit.
            prop_oneof![3 => Just(None), 1 => word(&["small", "medium", "large", "huge"])],
        )
            .prop_map(|(w, h, fit, format, q, variant)| [w, h, fit, format, q, variant])
    }

    fn request(
        query: &[Option<Param>; 6],
        spell: fn(&Param) -> String,
    ) -> Result<Option<VariantRequest>, InvalidVariant> {
        let names = ["w", "h", "fit", "format", "q", "variant"];
        let values: Vec<(&str, String)> = names
            .iter()
            .zip(query)
            .filter_map(|(name, value)| value.as_ref().map(|v| (*name, spell(v))))
            .collect();
        let pairs: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
        parse_request(&params(&pairs), &Presets::default(), DEFAULT_MAX_OUTPUT_PX)
    }

    fn format() -> impl Strategy<Value = OutputFormat> {
        prop::sample::select(vec![
            OutputFormat::Jpeg,
            OutputFormat::Png,
            OutputFormat::WebP,
            OutputFormat::Avif,
        ])
    }

    /// Specs from few values, so that two drawn specs are often alike.
    fn spec(side: fn() -> BoxedStrategy<u32>) -> impl Strategy<Value = VariantSpec> {
        let fit = prop::sample::select(vec![Fit::Cover, Fit::Contain, Fit::Fill]);
        let choice = prop_oneof![
            Just(FormatChoice::Source),
            Just(FormatChoice::Auto),
            format().prop_map(FormatChoice::Exact),
        ];
        let quality = prop_oneof![Just(1u8), Just(DEFAULT_QUALITY), 1..=100u8];
        (
            prop::option::of(side()),
            prop::option::of(side()),
            fit,
            choice,
            quality,
        )
            .prop_map(|(width, height, fit, format, quality)| VariantSpec {
                width,
                height,
                fit,
                format,
                quality,
            })
    }

    fn few_sides() -> BoxedStrategy<u32> {
        (1..=3u32).boxed()
    }

    fn any_side() -> BoxedStrategy<u32> {
        prop_oneof![1..=3u32, 1..=MAX_OUTPUT_SIDE].boxed()
    }

    /// What a stored variant's bytes depend on: the fit only with both sides, the quality only
    /// for lossy formats.
    fn made_of(spec: &VariantSpec, format: OutputFormat) -> impl PartialEq + std::fmt::Debug {
        let both = spec.width.is_some() && spec.height.is_some();
        (
            spec.width,
            spec.height,
            both.then_some(spec.fit),
            format.is_lossy().then_some(spec.quality),
            format,
        )
    }

    proptest! {
        #![proptest_config(config())]

        /// A signed URL carries the canonical parameters: read again, they ask for the same
        /// variant, with the same canonical form, however the request spelled its numbers.
        #[test]
        fn canonical_parameters_read_back_as_the_same_request(query in query()) {
            let got = request(&query, Param::spelled);
            prop_assert_eq!(&request(&query, Param::plain), &got);
            if let Ok(Some(got)) = got {
                let pairs: Vec<(&str, &str)> = got
                    .canonical
                    .split('&')
                    .map(|pair| pair.split_once('=').unwrap())
                    .collect();
                let again =
                    parse_request(&params(&pairs), &Presets::default(), DEFAULT_MAX_OUTPUT_PX);
                prop_assert_eq!(again, Ok(Some(got)));
            }
        }

        #[test]
        fn a_variant_name_is_a_valid_name_ending_in_its_format(
            spec in spec(any_side),
            format in format(),
        ) {
            let name = spec.name(format);
            prop_assert_eq!(VariantName::parse(name.as_str()), Ok(name));
            let extension = format!(".{}", format.as_str());
            prop_assert!(name.as_str().ends_with(&extension), "{}", name);
        }

        /// Two variants share a blob exactly when they are the same bytes. The second variant
        /// takes each field from the first or from another spec, so that they often differ in
        /// one field only.
        #[test]
        fn variant_names_differ_exactly_when_the_variants_do(
            (a, a_format) in (spec(few_sides), format()),
            (other, other_format) in (spec(few_sides), format()),
            keep in prop::array::uniform5(any::<bool>()),
        ) {
            fn pick<T>(keep: bool, mine: T, theirs: T) -> T {
                if keep { mine } else { theirs }
            }
            let b = VariantSpec {
                width: pick(keep[0], a.width, other.width),
                height: pick(keep[1], a.height, other.height),
                fit: pick(keep[2], a.fit, other.fit),
                format: a.format,
                quality: pick(keep[3], a.quality, other.quality),
            };
            let b_format = pick(keep[4], a_format, other_format);
            prop_assert_eq!(
                a.name(a_format) == b.name(b_format),
                made_of(&a, a_format) == made_of(&b, b_format),
                "{} and {}", a.name(a_format), b.name(b_format)
            );
        }

        #[test]
        fn presets_print_as_they_parse(
            entries in prop::collection::btree_map(
                prop::collection::vec(
                    prop::sample::select(b"abcxyz0189_-".as_slice()),
                    1..=32,
                )
                .prop_map(|name| String::from_utf8(name).unwrap()),
                (
                    prop::option::of(valid_number(DEFAULT_MAX_OUTPUT_PX)),
                    prop::option::of(valid_number(DEFAULT_MAX_OUTPUT_PX)),
                ),
                0..6,
            ),
            separator in prop::sample::select(vec![",", ", ", " ,\t"]),
        ) {
            let raw = entries
                .iter()
                .map(|(name, (w, h))| {
                    let side = |v: &Option<Param>| {
                        v.as_ref().map(Param::spelled).unwrap_or_default()
                    };
                    // A preset needs a side.
                    let w = if w.is_none() && h.is_none() {
                        "1".to_owned()
                    } else {
                        side(w)
                    };
                    format!("{name}={w}x{}", side(h))
                })
                .collect::<Vec<_>>()
                .join(separator);
            let presets = Presets::parse(&raw, DEFAULT_MAX_OUTPUT_PX).unwrap();
            prop_assert_eq!(presets.names().count(), entries.len());
            let printed = presets.to_string();
            prop_assert_eq!(Presets::parse(&printed, DEFAULT_MAX_OUTPUT_PX), Ok(presets));
        }
    }
}
