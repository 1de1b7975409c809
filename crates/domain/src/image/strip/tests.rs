//! Stripping hand-built files: exact outputs, secrets gone, streaming and hostile input.

mod jpeg;
mod png;
mod webp;

use super::{MetadataStripper, StripError, StripFormat, crc::crc32, strip, tiff};
use jpeg::camera_jpeg;
use png::{PNG_SIGNATURE, camera_png, chunk};
use webp::camera_webp;

const GPS_SECRET: &[u8; 24] = b"GPS-SECRET-LATITUDE-DATA";
const XMP_SECRET: &[u8; 17] = b"secret-xmp-packet";
const MAKE: &[u8; 4] = b"Cam\0";

/// The minimal little-endian TIFF holding only Orientation = 6, written out by hand.
const MINIMAL_TIFF_6: [u8; 26] = [
    b'I', b'I', 42, 0, 8, 0, 0, 0, // header, IFD0 at 8
    1, 0, // one entry
    0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, // Orientation, SHORT, 1, value 6
    0, 0, 0, 0, // no next IFD
];

fn push_entry(tiff: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: [u8; 4]) {
    tiff.extend_from_slice(&tag.to_le_bytes());
    tiff.extend_from_slice(&kind.to_le_bytes());
    tiff.extend_from_slice(&count.to_le_bytes());
    tiff.extend_from_slice(&value);
}

/// A camera-like little-endian TIFF: IFD0 with Make, Orientation and a GPS IFD pointer, and a
/// GPS IFD whose latitude rationals are [`GPS_SECRET`].
fn camera_tiff(orientation: u16) -> Vec<u8> {
    let mut t = b"II*\0".to_vec();
    t.extend_from_slice(&8u32.to_le_bytes());
    t.extend_from_slice(&3u16.to_le_bytes());
    push_entry(&mut t, 0x010F, 2, 4, *MAKE);
    let [lo, hi] = orientation.to_le_bytes();
    push_entry(&mut t, 0x0112, 3, 1, [lo, hi, 0, 0]);
    push_entry(&mut t, 0x8825, 4, 1, 50u32.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(t.len(), 50);
    t.extend_from_slice(&1u16.to_le_bytes());
    push_entry(&mut t, 0x0002, 5, 3, 68u32.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(t.len(), 68);
    t.extend_from_slice(GPS_SECRET);
    t
}

/// A big-endian TIFF whose IFD0 holds only the orientation.
fn big_endian_tiff(orientation: u16) -> Vec<u8> {
    let mut t = b"MM\0*".to_vec();
    t.extend_from_slice(&8u32.to_be_bytes());
    t.extend_from_slice(&1u16.to_be_bytes());
    t.extend_from_slice(&0x0112u16.to_be_bytes());
    t.extend_from_slice(&3u16.to_be_bytes());
    t.extend_from_slice(&1u32.to_be_bytes());
    t.extend_from_slice(&orientation.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    t
}

fn exif_payload(tiff: &[u8]) -> Vec<u8> {
    [b"Exif\0\0".as_slice(), tiff].concat()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Strips `bytes` fed in pieces of `step` bytes.
fn strip_in_pieces(format: StripFormat, bytes: &[u8], step: usize) -> Result<Vec<u8>, StripError> {
    let mut stripper = MetadataStripper::new(format);
    let mut out = Vec::new();
    for piece in bytes.chunks(step) {
        stripper.push(piece, &mut out)?;
    }
    stripper.finish(&mut out)?;
    Ok(out)
}

// --- every format ---

fn samples() -> Vec<(StripFormat, Vec<u8>)> {
    vec![
        (StripFormat::Jpeg, camera_jpeg(&camera_tiff(6))),
        (StripFormat::Jpeg, camera_jpeg(&big_endian_tiff(2))),
        (
            StripFormat::Png,
            camera_png(chunk(b"eXIf", &camera_tiff(8))),
        ),
        (StripFormat::WebP, camera_webp(&camera_tiff(5))),
    ]
}

#[test]
fn strip_gives_the_same_output_whatever_the_pieces() {
    for (format, input) in samples() {
        let whole = strip(format, &input).unwrap();
        for step in [1, 2, 3, 7, 64] {
            assert_eq!(
                strip_in_pieces(format, &input, step).unwrap(),
                whole,
                "{format:?} step {step}"
            );
        }
    }
}

#[test]
fn strip_is_idempotent() {
    for (format, input) in samples() {
        let once = strip(format, &input).unwrap();

        let twice = strip(format, &once).unwrap();

        assert_eq!(twice, once, "{format:?}");
    }
}

#[test]
fn strip_rejects_every_truncation() {
    for (format, input) in samples() {
        for end in 0..input.len() {
            assert!(
                matches!(strip(format, &input[..end]), Err(StripError::Malformed(_))),
                "{format:?} cut at {end}"
            );
        }
    }
}

#[test]
fn strip_of_hostile_lengths_neither_panics_nor_allocates_them() {
    let cases: [(StripFormat, &[u8]); 4] = [
        (
            StripFormat::Jpeg,
            &[0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xFF, b'E', b'x'],
        ),
        (
            StripFormat::Png,
            &[
                0x89, b'P', b'N', b'G', 13, 10, 26, 10, 0x7F, 0xFF, 0xFF, 0xFF, b'I', b'H', b'D',
                b'R',
            ],
        ),
        (
            StripFormat::WebP,
            b"RIFF\xFF\xFF\xFF\xFFWEBPVP8L\xFF\xFF\xFF\xFF",
        ),
        (
            StripFormat::WebP,
            b"RIFF\xFF\xFF\xFF\xFFWEBPVP8X\xFE\xFF\xFF\xFF\x0c",
        ),
    ];
    for (format, input) in cases {
        assert!(
            matches!(strip(format, input), Err(StripError::Malformed(_))),
            "{format:?}"
        );
    }
}

#[test]
fn strip_errors_are_sticky() {
    let mut stripper = MetadataStripper::new(StripFormat::Png);
    let mut out = Vec::new();
    let first = stripper.push(b"not a png", &mut out);

    let second = stripper.push(PNG_SIGNATURE, &mut out);

    assert!(first.is_err());
    assert_eq!(first, second);
    assert_eq!(stripper.finish(&mut out), second);
}

#[test]
fn strip_of_mutated_inputs_never_panics_nor_grows_and_ignores_piece_size() {
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(seed >> 33).unwrap()
    };
    for (format, input) in samples() {
        for _ in 0..400 {
            let mut mutated = input.clone();
            for _ in 0..1 + next() % 4 {
                let at = next() % mutated.len();
                mutated[at] = u8::try_from(next() % 256).unwrap();
            }
            let whole = strip(format, &mutated);
            let pieces = strip_in_pieces(format, &mutated, 1 + next() % 17);
            assert_eq!(whole, pieces);
            if let Ok(out) = whole {
                assert!(out.len() <= mutated.len());
            }
        }
    }
}

#[test]
fn crc32_matches_known_vectors() {
    assert_eq!(crc32(&[b"IEND"]), 0xAE42_6082);
    assert_eq!(crc32(&[b"1234", b"56789"]), 0xCBF4_3926);
    assert_eq!(crc32(&[]), 0);
}

// --- TIFF ---

#[test]
fn tiff_orientation_reads_both_byte_orders() {
    assert_eq!(tiff::orientation(&camera_tiff(6)), Some(6));
    assert_eq!(tiff::orientation(&big_endian_tiff(7)), Some(7));
    for orientation in 1..=8 {
        assert_eq!(
            tiff::orientation(&tiff::minimal(orientation)),
            Some(orientation)
        );
    }
}

#[test]
fn tiff_orientation_rejects_bad_values_and_bounds() {
    let mut wrong_type = big_endian_tiff(6);
    wrong_type[13] = 4;
    let mut wrong_count = big_endian_tiff(6);
    wrong_count[17] = 2;
    let mut ifd_past_end = big_endian_tiff(6);
    ifd_past_end[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    let mut many_entries = big_endian_tiff(6);
    many_entries[8..10].copy_from_slice(&u16::MAX.to_be_bytes());
    let truncated = &big_endian_tiff(6)[..22];
    let cases: [&[u8]; 8] = [
        &[],
        b"II*\0",
        &big_endian_tiff(0),
        &big_endian_tiff(9),
        &wrong_type,
        &wrong_count,
        &ifd_past_end,
        &many_entries,
    ];
    for tiff in cases.iter().chain([&truncated]) {
        assert_eq!(tiff::orientation(tiff), None, "{tiff:?}");
    }
}
