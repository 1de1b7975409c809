//! The generators make what they say: real images of the quadrants, with the metadata promised.

use super::*;

const STORED: [Option<Colour>; 4] = [
    Some(Colour::Red),
    Some(Colour::Green),
    Some(Colour::Blue),
    Some(Colour::White),
];

#[test]
fn jpegs_png_and_webp_decode_to_their_quadrants() {
    for (name, bytes, format) in [
        ("jpeg", jpeg(64, 32, 90), "jpeg"),
        ("oriented", jpeg_oriented(64, 32, 6), "jpeg"),
        ("png", png_rgba(64, 32), "png"),
        ("webp", webp(64, 32), "webp"),
    ] {
        assert_eq!(format_of(&bytes), Some(format), "{name}");
        let image = decode(&bytes);
        assert_eq!((image.width, image.height), (64, 32), "{name}");
        assert_eq!(image.quadrants(), STORED, "{name}");
    }
    let png = decode(&png_rgba(64, 32));
    let alphas = png.quadrant_pixels().map(|p| p[3]);
    assert_eq!(alphas, [255, 255, 128, 128]);
    let gray = decode(&png_gray(8, 4));
    assert_eq!(gray.pixel(0, 0), [0, 0, 0, 255]);
    assert_eq!(gray.pixel(7, 3), [255, 255, 255, 255]);
}

#[test]
fn the_metadata_is_where_a_reader_looks_for_it() {
    let oriented = jpeg_oriented(32, 16, 8);
    let mut decoder = jpeg_decoder::Decoder::new(std::io::Cursor::new(&oriented));
    decoder.read_info().unwrap();
    let exif = decoder.exif_data().unwrap().to_vec();
    // Orientation, a SHORT holding 8, in the first directory.
    assert!(
        contains(&exif, &[0x12, 0x01, 3, 0, 1, 0, 0, 0, 8, 0]),
        "{exif:?}"
    );
    for secret in EXIF_SECRETS {
        assert!(contains(&oriented, secret));
    }
    assert_eq!(
        metadata_containers(&oriented),
        [
            "JPEG segment FFE1",
            "JPEG segment FFE1",
            "JPEG segment FFFE"
        ]
    );
    assert!(metadata_containers(&jpeg(16, 16, 80)).is_empty());
    assert_eq!(metadata_containers(&png_rgba(4, 4)), ["tEXt", "eXIf"]);
    assert_eq!(metadata_containers(&webp_with_exif(4, 4)), ["EXIF"]);
    assert!(metadata_containers(&webp(4, 4)).is_empty());
}

#[test]
fn gifs_have_their_frames_and_bombs_stay_small() {
    let frames = |bytes: &[u8]| {
        let mut options = gif::DecodeOptions::new();
        options.set_color_output(gif::ColorOutput::RGBA);
        let mut decoder = options.read_info(std::io::Cursor::new(bytes)).unwrap();
        let (w, h) = (decoder.width(), decoder.height());
        let mut firsts = Vec::new();
        while let Some(frame) = decoder.read_next_frame().unwrap() {
            firsts.push(frame.buffer[..3].to_vec());
        }
        (w, h, firsts)
    };
    assert_eq!(frames(&gif(10, 6)), (10, 6, vec![vec![255, 0, 0]]));
    assert_eq!(
        frames(&gif_animated(10, 6)),
        (10, 6, vec![vec![255, 0, 0], vec![0, 0, 0]])
    );
    let bomb = gif_bomb();
    assert!(bomb.len() < 100, "{}", bomb.len());
    assert_eq!(&bomb[6..10], &[0xFF, 0xFF, 0xFF, 0xFF]);
    let bomb = jpeg_bomb();
    assert!(bomb.len() < 200, "{}", bomb.len());
    assert!(contains(
        &bomb,
        &[0xFF, 0xC0, 0, 11, 8, 0xFF, 0xDC, 0xFF, 0xDC]
    ));
}

#[test]
fn orientations_move_the_corners_as_exif_says() {
    // Each orientation is a permutation of the corners, and 6 and 8 undo each other.
    for o in 1..=8 {
        let mut corners = oriented_quadrants(o).to_vec();
        corners.sort_by_key(|c| c.rgb());
        let mut all = QUADRANTS.to_vec();
        all.sort_by_key(|c| c.rgb());
        assert_eq!(corners, all, "{o}");
    }
    let [tl, tr, bl, br] = oriented_quadrants(6);
    let turned_back = [tr, br, tl, bl];
    assert_eq!(turned_back, QUADRANTS);
    assert_eq!(Colour::of([250, 10, 20]), Some(Colour::Red));
    assert_eq!(Colour::of([128, 128, 128]), None);
}
