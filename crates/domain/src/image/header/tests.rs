mod build;

use super::*;
use build::*;

fn header(probe: Probe) -> ImageHeader {
    match probe {
        Probe::Found(header) => header,
        other => panic!("expected a header, got {other:?}"),
    }
}

fn size(bytes: &[u8]) -> (ImageFormat, u32, u32) {
    let found = header(probe(bytes));
    (found.format, found.width, found.height)
}

/// Feeds `bytes` in chunks of `chunk` bytes and returns the outcome at the end of the stream.
fn streamed(bytes: &[u8], chunk: usize) -> Probe {
    let mut reader = HeaderReader::new();
    for piece in bytes.chunks(chunk) {
        reader.push(piece);
    }
    reader.finish()
}

/// `probe` on the whole file, with an incomplete header read as the end of the stream does.
fn probe_whole(bytes: &[u8]) -> Probe {
    match probe(bytes) {
        Probe::NeedMore => Probe::NotImage,
        outcome => outcome,
    }
}

fn samples() -> Vec<Vec<u8>> {
    let exif = exif_segment(&tiff(false, 6));
    vec![
        jpeg(640, 480),
        jpeg_with(&exif, 640, 480),
        png(64, 32),
        png_with(3, 2, &[png_chunk(b"acTL", &[0, 0, 0, 2, 0, 0, 0, 0])]),
        png_with(3, 2, &[png_chunk(b"eXIf", &tiff(true, 8))]),
        gif(10, 20),
        gif_with((4, 4), (2, 2, 8, 8), true),
        webp(&[vp8(100, 50)]),
        webp(&[vp8l(7, 9)]),
        webp(&[
            vp8x(0x08, 7, 9),
            riff_chunk(b"EXIF", &tiff(true, 6)),
            vp8l(7, 9),
        ]),
        webp(&[
            vp8x(0x02, 30, 40),
            riff_chunk(b"ANIM", &[0; 6]),
            riff_chunk(b"ANMF", &[0; 16]),
        ]),
        avif(1920, 1080),
    ]
}

#[test]
fn probe_reads_each_formats_minimal_header() {
    assert_eq!(size(&jpeg(640, 480)), (ImageFormat::Jpeg, 640, 480));
    assert_eq!(size(&png(64, 32)), (ImageFormat::Png, 64, 32));
    assert_eq!(size(&gif(10, 20)), (ImageFormat::Gif, 10, 20));
    assert_eq!(size(&webp(&[vp8(100, 50)])), (ImageFormat::WebP, 100, 50));
    assert_eq!(size(&webp(&[vp8l(7, 9)])), (ImageFormat::WebP, 7, 9));
    assert_eq!(
        size(&webp(&[vp8x(0, 300, 200), vp8(300, 200)])),
        (ImageFormat::WebP, 300, 200)
    );
    assert_eq!(size(&avif(1920, 1080)), (ImageFormat::Avif, 1920, 1080));
    for sample in samples() {
        let found = header(probe(&sample));
        assert!(found.width > 0 && found.height > 0);
        assert_eq!(
            found.pixels(),
            u64::from(found.width) * u64::from(found.height)
        );
    }
}

#[test]
fn probe_measures_decompression_bombs_from_the_header_alone() {
    let png_bomb = png(100_000, 100_000);
    let jpeg_bomb = jpeg(65_500, 65_500);
    let gif_bomb = gif(65_535, 65_535);
    assert!(png_bomb.len() < 100 && jpeg_bomb.len() < 100 && gif_bomb.len() < 100);

    assert_eq!(header(probe(&png_bomb)).pixels(), 10_000_000_000);
    assert_eq!(header(probe(&jpeg_bomb)).pixels(), 65_500 * 65_500);
    assert_eq!(header(probe(&gif_bomb)).pixels(), 65_535 * 65_535);
}

#[test]
fn probe_reads_the_exif_orientation_in_either_byte_order() {
    for big_endian in [false, true] {
        let jpeg = jpeg_with(&exif_segment(&tiff(big_endian, 6)), 640, 480);
        let found = header(probe(&jpeg));
        assert_eq!(found.orientation, Some(6));
        assert_eq!(found.oriented_size(), (480, 640));
    }
    assert_eq!(header(probe(&jpeg(640, 480))).orientation, None);
    assert_eq!(header(probe(&jpeg(640, 480))).oriented_size(), (640, 480));
}

#[test]
fn exif_orientation_reads_blocks_with_or_without_the_exif_prefix() {
    for big_endian in [false, true] {
        let block = tiff(big_endian, 6);
        assert_eq!(exif_orientation(&block), Some(6));
        assert_eq!(
            exif_orientation(&[b"Exif\0\0".as_slice(), &block].concat()),
            Some(6)
        );
    }
    assert_eq!(exif_orientation(&tiff(true, 1)), Some(1));
    assert_eq!(exif_orientation(&tiff(false, 8)), Some(8));
}

#[test]
fn exif_orientation_refuses_bad_blocks() {
    let cases: &[(&str, Vec<u8>)] = &[
        ("value 0", tiff(false, 0)),
        ("value 9", tiff(true, 9)),
        ("empty", Vec::new()),
        ("no byte order", b"XX*\0\x08\0\0\0".to_vec()),
        ("cut before the entry", tiff(false, 6)[..20].to_vec()),
        ("IFD0 past the end", b"II*\0\xFF\xFF\xFF\xFF".to_vec()),
        ("IFD0 inside the header", b"II*\0\x00\0\0\0\x01\0".to_vec()),
    ];
    for (name, block) in cases {
        assert_eq!(exif_orientation(block), None, "{name}");
    }
}

#[test]
fn png_orientation_counts_only_before_idat() {
    let before = png_with(30, 20, &[png_chunk(b"eXIf", &tiff(false, 6))]);
    assert_eq!(header(probe(&before)).oriented_size(), (20, 30));

    let mut after = png(30, 20);
    let iend = after.split_off(after.len() - 12);
    after.extend(png_chunk(b"eXIf", &tiff(false, 6)));
    after.extend(iend);
    assert_eq!(header(probe(&after)).orientation, None);
}

#[test]
fn probe_reports_announced_animations() {
    let apng = png_with(3, 2, &[png_chunk(b"acTL", &[0, 0, 0, 2, 0, 0, 0, 0])]);
    assert!(header(probe(&apng)).animated);
    assert!(!header(probe(&png(3, 2))).animated);

    let animated_webp = webp(&[
        vp8x(0x02, 30, 40),
        riff_chunk(b"ANIM", &[0; 6]),
        riff_chunk(b"ANMF", &[0; 16]),
    ]);
    assert!(header(probe(&animated_webp)).animated);
    assert!(header(probe(&gif_with((4, 4), (0, 0, 4, 4), true))).animated);
    assert!(!header(probe(&gif(4, 4))).animated);

    let sequence = [
        ftyp(b"avis", &[b"avif", b"msf1"]),
        avif(8, 8)[24..].to_vec(),
    ]
    .concat();
    assert!(header(probe(&sequence)).animated);
    assert!(!header(probe(&avif(8, 8))).animated);
}

#[test]
fn jpeg_skips_a_large_app_segment_without_holding_it() {
    let xmp = segment(
        0xE1,
        &[
            b"http://ns.adobe.com/xap/1.0/\0".as_slice(),
            &[b' '; 60 * 1024],
        ]
        .concat(),
    );
    let file = jpeg_with(&xmp, 800, 600);
    assert_eq!(size(&file), (ImageFormat::Jpeg, 800, 600));

    let mut reader = HeaderReader::new();
    let mut outcome = None;
    for piece in file.chunks(4096) {
        outcome = reader.push(piece);
        assert!(
            reader.held.capacity() <= 64,
            "held {}",
            reader.held.capacity()
        );
        if outcome.is_some() {
            break;
        }
    }
    assert_eq!(outcome, Some(probe(&file)));
}

#[test]
fn jpeg_reads_a_large_exif_segment_before_the_frame() {
    let mut block = tiff(true, 6);
    block.resize(60 * 1024, 0);
    let file = jpeg_with(&exif_segment(&block), 800, 600);
    let found = header(probe(&file));
    assert_eq!(
        (found.width, found.height, found.orientation),
        (800, 600, Some(6))
    );
}

#[test]
fn jpeg_allows_fill_bytes_before_markers() {
    let mut file = jpeg(16, 8);
    let frame = file.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    file.splice(frame..frame, [0xFF, 0xFF, 0xFF]);
    assert_eq!(size(&file), (ImageFormat::Jpeg, 16, 8));
}

#[test]
fn webp_orientation_comes_from_an_exif_chunk_before_the_image_data() {
    let before = webp(&[
        vp8x(0x08, 7, 9),
        riff_chunk(b"EXIF", &tiff(true, 6)),
        vp8l(7, 9),
    ]);
    assert_eq!(header(probe(&before)).oriented_size(), (9, 7));

    let after = webp(&[
        vp8x(0x08, 7, 9),
        vp8l(7, 9),
        riff_chunk(b"EXIF", &tiff(true, 6)),
    ]);
    assert_eq!(header(probe(&after)).orientation, None);
}

#[test]
fn webp_refuses_a_bitstream_that_disagrees_with_its_canvas() {
    let file = webp(&[
        vp8x(0, 10, 10),
        riff_chunk(b"ICCP", &[0; 33]),
        vp8l(10_000, 10_000),
    ]);
    assert_eq!(probe(&file), Probe::NotImage);
}

#[test]
fn gif_grows_the_screen_to_hold_the_first_frame() {
    let file = gif_with((1, 1), (10, 20, 65_535, 65_535), false);
    assert_eq!(size(&file), (ImageFormat::Gif, 65_545, 65_555));
}

#[test]
fn avif_takes_the_primary_items_extent() {
    let av1c = iso_box(b"av1C", &[0x81, 0, 0x0C, 0]);
    // A thumbnail (item 2) whose extent comes first, then the primary's.
    let file = avif_with(
        &[av1c, ispe(160, 90), ispe(4000, 3000)],
        &[(2, &[1, 2]), (1, &[1, 3])],
    );
    assert_eq!(size(&file), (ImageFormat::Avif, 4000, 3000));

    // Without an association for the primary item, the largest extent is assumed.
    let unassociated = avif_with(&[ispe(50_000, 50_000), ispe(16, 16)], &[(2, &[2])]);
    assert_eq!(size(&unassociated), (ImageFormat::Avif, 50_000, 50_000));
}

#[test]
fn avif_without_an_extent_or_brand_is_no_image() {
    let no_extent = avif_with(&[iso_box(b"av1C", &[0x81, 0, 0x0C, 0])], &[(1, &[1])]);
    assert_eq!(probe(&no_extent), Probe::NotImage);

    let heic = [
        ftyp(b"heic", &[b"mif1", b"heic"]),
        avif(8, 8)[24..].to_vec(),
    ]
    .concat();
    assert_eq!(probe(&heic), Probe::NotImage);

    let mp4 = [
        ftyp(b"isom", &[b"isom", b"mp41"]),
        iso_box(b"moov", &[0; 32]),
    ]
    .concat();
    assert_eq!(probe(&mp4), Probe::NotImage);
}

#[test]
fn avif_skips_a_media_box_stored_before_meta() {
    let file = avif(320, 240);
    let (ftyp_box, rest) = file.split_at(24);
    let mdat = iso_box(b"mdat", &vec![0xAB; 200_000]);
    let moved = [ftyp_box, &mdat, rest].concat();
    assert_eq!(size(&moved), (ImageFormat::Avif, 320, 240));
}

#[test]
fn zero_dimensions_are_no_image() {
    let cases: &[(&str, Vec<u8>)] = &[
        ("jpeg width", jpeg(0, 10)),
        ("jpeg height", jpeg(10, 0)),
        ("png", png(0, 10)),
        ("gif", gif(10, 0)),
        ("webp lossy", webp(&[vp8(0, 10)])),
        ("avif", avif(10, 0)),
    ];
    for (name, file) in cases {
        assert_eq!(probe(file), Probe::NotImage, "{name}");
    }
}

#[test]
fn garbage_and_text_are_no_image() {
    let cases: &[&[u8]] = &[
        b"hello, world: this is plain text and no image at all",
        b"%PDF-1.7\n",
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        b"GIF90a\x01\x00\x01\x00",
        b"RIFF\x24\0\0\0WAVEfmt ",
        b"\x89PNG\r\n\x1A\x0B",
        b"\xFF\xD8\x00\x00\x00\x00",
        b"\xFF\xD8\xFF\xD9",
        &[0; 64],
        &[0xFF; 64],
    ];
    for file in cases {
        assert_eq!(probe(file), Probe::NotImage, "{file:?}");
    }
    assert_eq!(probe(b"h"), Probe::NotImage);
}

#[test]
fn truncated_headers_need_more_then_are_no_image_at_the_end() {
    for sample in samples() {
        let decided = (0..=sample.len())
            .find(|&len| probe(&sample[..len]) != Probe::NeedMore)
            .unwrap();
        assert!(decided > 0);
        for len in 0..decided {
            let prefix = &sample[..len];
            assert_eq!(probe(prefix), Probe::NeedMore, "{len} bytes of {sample:?}");
            let mut reader = HeaderReader::new();
            assert_eq!(reader.push(prefix), None);
            assert_eq!(reader.outcome(), Probe::NeedMore);
            assert_eq!(reader.finish(), Probe::NotImage);
        }
        assert_eq!(probe(&sample[..decided]), probe(&sample));
    }
}

#[test]
fn header_reader_fed_byte_by_byte_agrees_with_probe() {
    for sample in samples() {
        let whole = probe(&sample);
        let mut reader = HeaderReader::new();
        for (i, byte) in sample.iter().enumerate() {
            let pushed = reader.push(std::slice::from_ref(byte));
            assert_eq!(pushed.unwrap_or(Probe::NeedMore), probe(&sample[..=i]));
        }
        assert_eq!(reader.outcome(), whole);
        for chunk in [2, 3, 7, 64, 4096] {
            assert_eq!(streamed(&sample, chunk), whole, "chunks of {chunk}");
        }
    }
}

#[test]
fn headers_must_end_within_the_limit() {
    // The frame header's 8 bytes end exactly at the limit, then one byte past it.
    for (extra, fits) in [(0, true), (1, false)] {
        let padding = jpeg_padding(MAX_HEADER_BYTES - 12 + extra);
        let file = jpeg_with(&padding, 64, 64);
        if fits {
            assert_eq!(size(&file), (ImageFormat::Jpeg, 64, 64));
        } else {
            assert_eq!(probe(&file), Probe::NotImage);
        }
        assert_ne!(probe(&file[..MAX_HEADER_BYTES]), Probe::NeedMore);
        assert_eq!(streamed(&file, 1000), probe_whole(&file));
    }

    // A PNG's size is known from IHDR, so ancillary chunks past the limit are not waited for.
    let text = png_chunk(b"zTXt", &vec![0; 2 * MAX_HEADER_BYTES]);
    let file = png_with(5, 6, &[text]);
    assert_eq!(probe(&file[..MAX_HEADER_BYTES]), probe(&file));
    assert_eq!(size(&file), (ImageFormat::Png, 5, 6));
}

#[test]
fn hostile_lengths_do_not_panic() {
    let huge_segment = [b"\xFF\xD8\xFF\xE1\xFF\xFFExif\0\0".as_slice(), &[0xFF; 32]].concat();
    let huge_chunk = [&png(1, 1)[..33], b"\xFF\xFF\xFF\xFFeXIf".as_slice()].concat();
    let huge_box = [
        &avif(1, 1)[..24],
        b"\0\0\0\x01meta\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF".as_slice(),
    ]
    .concat();
    let huge_riff = webp(&[
        riff_chunk(b"VP8X", &[0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        b"EXIF\xFF\xFF\xFF\xFF".to_vec(),
    ]);
    for file in [huge_segment, huge_chunk, huge_box, huge_riff] {
        assert_eq!(probe_whole(&file), Probe::NotImage);
        assert_eq!(streamed(&file, 1), Probe::NotImage);
    }
}

/// Mutated and truncated samples, as a fuzzer would make them: no panic, and every chunking of
/// a file gives the same outcome.
#[test]
fn mutated_headers_read_the_same_in_any_chunking() {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for sample in samples() {
        for _ in 0..400 {
            let mut file = sample.clone();
            for _ in 0..=(random() % 4) {
                let at = (random() % file.len() as u64) as usize;
                file[at] = random() as u8;
            }
            if random() % 4 == 0 {
                file.truncate((random() % file.len() as u64) as usize);
            }
            let whole = probe_whole(&file);
            for chunk in [1, 5] {
                assert_eq!(streamed(&file, chunk), whole, "{file:?}");
            }
        }
    }
}

#[test]
fn media_types_name_each_format_once() {
    for format in [
        ImageFormat::Jpeg,
        ImageFormat::Png,
        ImageFormat::Gif,
        ImageFormat::WebP,
        ImageFormat::Avif,
    ] {
        assert_eq!(
            ImageFormat::from_media_type(format.media_type()),
            Some(format)
        );
    }
    assert_eq!(ImageFormat::from_media_type("image/svg+xml"), None);
    assert_eq!(ImageFormat::from_media_type("IMAGE/JPEG"), None);
}
