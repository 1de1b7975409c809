//! Images built by hand, byte by byte, as small as each format allows.

/// A TIFF block whose IFD0 holds an unrelated tag, then the orientation (as a SHORT).
pub fn tiff(big_endian: bool, orientation: u16) -> Vec<u8> {
    let u16b = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u32b = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut out = Vec::new();
    out.extend_from_slice(if big_endian { b"MM\0*" } else { b"II*\0" });
    out.extend_from_slice(&u32b(8));
    out.extend_from_slice(&u16b(2));
    // ImageWidth (LONG, 1) = 640, then Orientation (SHORT, 1).
    out.extend_from_slice(&u16b(0x0100));
    out.extend_from_slice(&u16b(4));
    out.extend_from_slice(&u32b(1));
    out.extend_from_slice(&u32b(640));
    out.extend_from_slice(&u16b(0x0112));
    out.extend_from_slice(&u16b(3));
    out.extend_from_slice(&u32b(1));
    out.extend_from_slice(&u16b(orientation));
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&u32b(0));
    out
}

/// A JPEG segment: marker, length (counting itself), body.
pub fn segment(marker: u8, body: &[u8]) -> Vec<u8> {
    let len = u16::try_from(body.len() + 2).unwrap();
    let mut out = vec![0xFF, marker];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out
}

pub fn exif_segment(tiff: &[u8]) -> Vec<u8> {
    segment(0xE1, &[b"Exif\0\0".as_slice(), tiff].concat())
}

/// Segments (COM) filling exactly `total` bytes.
pub fn jpeg_padding(mut total: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(total);
    while total > 65_537 {
        out.extend(segment(0xFE, &vec![b'x'; 60_000 - 4]));
        total -= 60_000;
    }
    out.extend(segment(0xFE, &vec![b'x'; total - 4]));
    out
}

/// SOI, `before` (segments), a baseline frame header with three components, a scan, EOI.
pub fn jpeg_with(before: &[u8], width: u16, height: u16) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    out.extend_from_slice(before);
    let mut frame = vec![8];
    frame.extend_from_slice(&height.to_be_bytes());
    frame.extend_from_slice(&width.to_be_bytes());
    frame.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    out.extend(segment(0xC0, &frame));
    out.extend(segment(0xDA, &[3, 1, 0, 2, 0x11, 3, 0x11, 0, 0x3F, 0]));
    out.extend_from_slice(&[0x12, 0x34, 0xFF, 0x00, 0x56, 0xFF, 0xD9]);
    out
}

pub fn jpeg(width: u16, height: u16) -> Vec<u8> {
    let jfif = segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
    jpeg_with(&jfif, width, height)
}

pub fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(data.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&[0; 4]);
    out
}

/// Signature, IHDR (8-bit RGBA), the `before` chunks, a tiny IDAT, IEND.
pub fn png_with(width: u32, height: u32, before: &[Vec<u8>]) -> Vec<u8> {
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1A\n".to_vec();
    out.extend(png_chunk(b"IHDR", &ihdr));
    for chunk in before {
        out.extend_from_slice(chunk);
    }
    out.extend(png_chunk(b"IDAT", &[0x78, 0x9C, 0x63, 0, 0, 0, 1, 0, 1]));
    out.extend(png_chunk(b"IEND", &[]));
    out
}

pub fn png(width: u32, height: u32) -> Vec<u8> {
    png_with(width, height, &[])
}

/// A GIF89a with a 4-colour global table, optionally the looping extension and a comment, then
/// one frame at `(left, top)` of `frame` size.
pub fn gif_with(screen: (u16, u16), frame: (u16, u16, u16, u16), looping: bool) -> Vec<u8> {
    let mut out = b"GIF89a".to_vec();
    out.extend_from_slice(&screen.0.to_le_bytes());
    out.extend_from_slice(&screen.1.to_le_bytes());
    out.extend_from_slice(&[0x81, 0, 0]);
    out.extend_from_slice(&[0; 12]);
    if looping {
        out.extend_from_slice(b"\x21\xFF\x0BNETSCAPE2.0\x03\x01\x00\x00\x00");
    }
    out.extend_from_slice(b"\x21\xFE\x05hello\x03abc\x00");
    out.extend_from_slice(b"\x21\xF9\x04\x00\x0A\x00\x00\x00");
    out.push(0x2C);
    for v in [frame.0, frame.1, frame.2, frame.3] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&[0, 2, 2, 0x44, 0x01, 0, 0x3B]);
    out
}

pub fn gif(width: u16, height: u16) -> Vec<u8> {
    gif_with((width, height), (0, 0, width, height), false)
}

pub fn riff_chunk(id: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = id.to_vec();
    out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(0);
    }
    out
}

pub fn webp(chunks: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = chunks.concat();
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&u32::try_from(body.len() + 4).unwrap().to_le_bytes());
    out.extend_from_slice(b"WEBP");
    out.extend(body);
    out
}

/// A lossy key frame header (with a few bytes of partition data).
pub fn vp8(width: u16, height: u16) -> Vec<u8> {
    let mut data = vec![0x50, 0x01, 0x00, 0x9D, 0x01, 0x2A];
    data.extend_from_slice(&width.to_le_bytes());
    data.extend_from_slice(&height.to_le_bytes());
    data.extend_from_slice(&[0; 7]);
    riff_chunk(b"VP8 ", &data)
}

pub fn vp8l(width: u32, height: u32) -> Vec<u8> {
    let bits = (width - 1) | ((height - 1) << 14) | (1 << 28);
    let mut data = vec![0x2F];
    data.extend_from_slice(&bits.to_le_bytes());
    data.extend_from_slice(&[0; 3]);
    riff_chunk(b"VP8L", &data)
}

pub fn vp8x(flags: u8, width: u32, height: u32) -> Vec<u8> {
    let mut data = vec![flags, 0, 0, 0];
    data.extend_from_slice(&(width - 1).to_le_bytes()[..3]);
    data.extend_from_slice(&(height - 1).to_le_bytes()[..3]);
    riff_chunk(b"VP8X", &data)
}

pub fn iso_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(body.len() + 8)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
    out
}

pub fn full_box(kind: &[u8; 4], version: u8, body: &[u8]) -> Vec<u8> {
    iso_box(kind, &[&[version, 0, 0, 0], body].concat())
}

pub fn ispe(width: u32, height: u32) -> Vec<u8> {
    full_box(
        b"ispe",
        0,
        &[width.to_be_bytes(), height.to_be_bytes()].concat(),
    )
}

/// `ipma` version 0 with 8-bit indices: each item and its property indices.
pub fn ipma(items: &[(u16, &[u8])]) -> Vec<u8> {
    let mut body = u32::try_from(items.len()).unwrap().to_be_bytes().to_vec();
    for (item, indices) in items {
        body.extend_from_slice(&item.to_be_bytes());
        body.push(u8::try_from(indices.len()).unwrap());
        body.extend_from_slice(indices);
    }
    full_box(b"ipma", 0, &body)
}

pub fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
    let mut body = major.to_vec();
    body.extend_from_slice(&[0; 4]);
    for brand in compatible {
        body.extend_from_slice(*brand);
    }
    iso_box(b"ftyp", &body)
}

/// `ftyp`, then `meta` holding `pitm` (primary item 1), `iprp` (`ipco` with `properties`,
/// `ipma` with `items`), then an `mdat`.
pub fn avif_with(properties: &[Vec<u8>], items: &[(u16, &[u8])]) -> Vec<u8> {
    let hdlr = full_box(b"hdlr", 0, b"\0\0\0\0pict\0\0\0\0\0\0\0\0\0\0\0\0\0");
    let pitm = full_box(b"pitm", 0, &1u16.to_be_bytes());
    let iloc = full_box(b"iloc", 0, &[0x44, 0, 0, 0]);
    let ipco = iso_box(b"ipco", &properties.concat());
    let iprp = iso_box(b"iprp", &[ipco, ipma(items)].concat());
    let meta = full_box(b"meta", 0, &[hdlr, pitm, iloc, iprp].concat());
    let mut out = ftyp(b"avif", &[b"mif1", b"miaf"]);
    out.extend(meta);
    out.extend(iso_box(b"mdat", &[0x12, 0, 0, 0, 0x0A]));
    out
}

pub fn avif(width: u32, height: u32) -> Vec<u8> {
    let av1c = iso_box(b"av1C", &[0x81, 0, 0x0C, 0]);
    avif_with(&[av1c, ispe(width, height)], &[(1, &[0x81, 2])])
}
