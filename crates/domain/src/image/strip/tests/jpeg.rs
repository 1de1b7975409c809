//! JPEG files with Exif, XMP, Photoshop and comment segments around the image segments.

use super::{
    GPS_SECRET, MAKE, MINIMAL_TIFF_6, XMP_SECRET, big_endian_tiff, camera_tiff, contains,
    exif_payload,
};
use crate::image::strip::{StripError, StripFormat, strip};

fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
    let length = u16::try_from(payload.len() + 2).unwrap();
    let mut s = vec![0xFF, marker];
    s.extend_from_slice(&length.to_be_bytes());
    s.extend_from_slice(payload);
    s
}

struct JpegParts {
    app0: Vec<u8>,
    icc: Vec<u8>,
    tables_and_scan: Vec<u8>,
}

fn jpeg_parts() -> JpegParts {
    let mut tables_and_scan = segment(0xDB, &[0; 65]);
    tables_and_scan.extend(segment(0xC0, &[8, 0, 1, 0, 1, 1, 1, 0x11, 0]));
    tables_and_scan.extend(segment(0xDA, &[1, 1, 0, 0, 63, 0]));
    tables_and_scan.extend_from_slice(&[0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56]);
    tables_and_scan.extend_from_slice(b"Exif");
    tables_and_scan.extend_from_slice(&[0xFF, 0xD9]);
    JpegParts {
        app0: segment(0xE0, b"JFIF\0\x01\x02\0\0\x01\0\x01\0\0"),
        icc: segment(0xE2, b"ICC_PROFILE\0\x01\x01fake-icc-profile-bytes"),
        tables_and_scan,
    }
}

pub(super) fn camera_jpeg(exif_tiff: &[u8]) -> Vec<u8> {
    let parts = jpeg_parts();
    let mut xmp = b"http://ns.adobe.com/xap/1.0/\0".to_vec();
    xmp.extend_from_slice(XMP_SECRET);
    [
        vec![0xFF, 0xD8],
        parts.app0,
        segment(0xE1, &exif_payload(exif_tiff)),
        segment(0xE1, &xmp),
        segment(0xED, b"Photoshop 3.0\08BIM-iptc"),
        segment(0xFE, b"secret comment"),
        parts.icc,
        parts.tables_and_scan,
    ]
    .concat()
}

#[test]
fn jpeg_strip_keeps_image_segments_and_only_the_orientation() {
    let input = camera_jpeg(&camera_tiff(6));
    let parts = jpeg_parts();
    let mut minimal_app1 = vec![0xFF, 0xE1, 0, 34];
    minimal_app1.extend_from_slice(b"Exif\0\0");
    minimal_app1.extend_from_slice(&MINIMAL_TIFF_6);
    let expected = [
        vec![0xFF, 0xD8],
        parts.app0,
        minimal_app1,
        parts.icc,
        parts.tables_and_scan,
    ]
    .concat();

    let out = strip(StripFormat::Jpeg, &input).unwrap();

    assert_eq!(out, expected);
    for secret in [
        &GPS_SECRET[..],
        XMP_SECRET,
        MAKE,
        b"secret comment",
        b"8BIM",
    ] {
        assert!(!contains(&out, secret));
    }
}

#[test]
fn jpeg_strip_with_orientation_1_leaves_no_app1() {
    let input = camera_jpeg(&camera_tiff(1));

    let out = strip(StripFormat::Jpeg, &input).unwrap();

    assert!(!contains(&out, &[0xFF, 0xE1]));
    assert!(!contains(&out, GPS_SECRET));
}

#[test]
fn jpeg_strip_reads_big_endian_exif() {
    let input = camera_jpeg(&big_endian_tiff(3));

    let out = strip(StripFormat::Jpeg, &input).unwrap();

    let mut expected_tiff = MINIMAL_TIFF_6;
    expected_tiff[18] = 3;
    assert!(contains(&out, &exif_payload(&expected_tiff)));
}

#[test]
fn jpeg_strip_drops_fill_bytes_and_keeps_standalone_markers() {
    let parts = jpeg_parts();
    let input = [
        vec![0xFF, 0xD8, 0xFF, 0xFF],
        parts.app0.clone(),
        vec![0xFF, 0x01],
        parts.tables_and_scan.clone(),
    ]
    .concat();

    let out = strip(StripFormat::Jpeg, &input).unwrap();

    let expected = [
        vec![0xFF, 0xD8],
        parts.app0,
        vec![0xFF, 0x01],
        parts.tables_and_scan,
    ]
    .concat();
    assert_eq!(out, expected);
}

#[test]
fn jpeg_strip_rejects_broken_structure() {
    let cases: [&[u8]; 5] = [
        b"GIF89a",
        &[0xFF, 0xD8, 0x00],
        &[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01],
        &[0xFF, 0xD8, 0xFF, 0xD8],
        &[0xFF, 0xD8, 0xFF, 0xD9],
    ];
    for input in cases {
        assert!(
            matches!(
                strip(StripFormat::Jpeg, input),
                Err(StripError::Malformed(_))
            ),
            "{input:?}"
        );
    }
}

#[test]
fn jpeg_strip_rejects_a_scan_without_eoi() {
    let mut input = camera_jpeg(&camera_tiff(6));
    input.truncate(input.len() - 2);

    assert!(strip(StripFormat::Jpeg, &input).is_err());
}

#[test]
fn jpeg_strip_drops_what_follows_eoi_and_the_mpf_index() {
    let parts = jpeg_parts();
    // A phone's multi-picture JPEG: an MPF index, then a second JPEG with its own Exif after EOI.
    let trailer = camera_jpeg(&camera_tiff(1));
    let input = [
        vec![0xFF, 0xD8],
        parts.app0.clone(),
        segment(0xE2, b"MPF\0II*\0offsets-of-the-next-images"),
        parts.icc.clone(),
        parts.tables_and_scan.clone(),
        trailer,
    ]
    .concat();

    let out = strip(StripFormat::Jpeg, &input).expect("strips");

    let expected = [
        vec![0xFF, 0xD8],
        parts.app0,
        parts.icc,
        parts.tables_and_scan,
    ]
    .concat();
    assert_eq!(out, expected);
    assert!(!contains(&out, GPS_SECRET));
    assert!(!contains(&out, b"MPF\0"));
}

#[test]
fn jpeg_strip_filters_segments_between_progressive_scans() {
    let parts = jpeg_parts();
    let scan_data = [0x11, 0xFF, 0x00, 0x22, 0xFF, 0xD3, 0x33];
    let second_scan = [
        segment(0xC4, &[0x10, 0xFF, 0xD9, 0x01]),
        segment(0xE1, &exif_payload(&camera_tiff(3))),
        segment(0xFE, b"late comment"),
        segment(0xDA, &[1, 1, 0, 0, 63, 0]),
        scan_data.to_vec(),
    ]
    .concat();
    // The first scan's data, then the second scan and EOI, with fill bytes before a marker.
    let tables_and_scan = parts.tables_and_scan[..parts.tables_and_scan.len() - 2].to_vec();
    let input = [
        vec![0xFF, 0xD8],
        parts.app0.clone(),
        tables_and_scan.clone(),
        vec![0xFF, 0xFF],
        second_scan,
        vec![0xFF, 0xD9],
    ]
    .concat();

    let out = strip(StripFormat::Jpeg, &input).expect("strips");

    let expected = [
        vec![0xFF, 0xD8],
        parts.app0,
        tables_and_scan,
        segment(0xC4, &[0x10, 0xFF, 0xD9, 0x01]),
        segment(0xDA, &[1, 1, 0, 0, 63, 0]),
        scan_data.to_vec(),
        vec![0xFF, 0xD9],
    ]
    .concat();
    assert_eq!(out, expected);
    assert!(!contains(&out, GPS_SECRET));
    assert!(!contains(&out, b"late comment"));
}
