//! Recognises binary formats by their magic bytes.

/// A group of content types that share one magic-byte signature.
///
/// A declared type is kept when the bytes sniff as a format of its family, so
/// `application/vnd.openxmlformats-officedocument.wordprocessingml.document` survives
/// bytes that merely say "ZIP".
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Family {
    Png,
    Jpeg,
    Gif,
    Webp,
    Bmp,
    Tiff,
    Ico,
    Pdf,
    Zip,
    Gzip,
    SevenZip,
    Rar,
    Tar,
    Bzip2,
    Xz,
    Ole2,
    MpegAudio,
    Aac,
    Flac,
    Ogg,
    Wav,
    Avi,
    IsoMedia,
    Matroska,
    Midi,
    MpegVideo,
}

/// A recognised format: its family and the type it is served as when nothing better is known.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Sniffed {
    pub(crate) family: Family,
    pub(crate) canonical: &'static str,
}

const fn found(family: Family, canonical: &'static str) -> Option<Sniffed> {
    Some(Sniffed { family, canonical })
}

/// Recognises the binary format `prefix` starts with.
pub(crate) fn sniff(p: &[u8]) -> Option<Sniffed> {
    use Family as F;
    if at(p, 0, b"\x89PNG\r\n\x1a\n") {
        return found(F::Png, "image/png");
    }
    if at(p, 0, &[0xFF, 0xD8, 0xFF]) {
        return found(F::Jpeg, "image/jpeg");
    }
    if at(p, 0, b"GIF87a") || at(p, 0, b"GIF89a") {
        return found(F::Gif, "image/gif");
    }
    if at(p, 0, b"RIFF") {
        return match p.get(8..12) {
            Some(b"WEBP") => found(F::Webp, "image/webp"),
            Some(b"WAVE") => found(F::Wav, "audio/wav"),
            Some(b"AVI ") => found(F::Avi, "video/x-msvideo"),
            _ => None,
        };
    }
    if is_bmp(p) {
        return found(F::Bmp, "image/bmp");
    }
    if [b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"]
        .iter()
        .any(|m| at(p, 0, *m))
    {
        return found(F::Tiff, "image/tiff");
    }
    if at(p, 0, &[0, 0, 1, 0]) && le16(p, 4).is_some_and(|images| images > 0) {
        return found(F::Ico, "image/x-icon");
    }
    if at(p, 0, b"%PDF-") {
        return found(F::Pdf, "application/pdf");
    }
    if at(p, 0, b"PK\x03\x04") {
        return found(F::Zip, zip_member_type(p).unwrap_or("application/zip"));
    }
    if at(p, 0, b"PK\x05\x06") || at(p, 0, b"PK\x07\x08") {
        return found(F::Zip, "application/zip");
    }
    if at(p, 0, &[0x1F, 0x8B, 0x08]) {
        return found(F::Gzip, "application/gzip");
    }
    if at(p, 0, &[0x37, 0x7A, 0xBC, 0xAF, 0x27, 0x1C]) {
        return found(F::SevenZip, "application/x-7z-compressed");
    }
    if at(p, 0, b"Rar!\x1A\x07\x00") || at(p, 0, b"Rar!\x1A\x07\x01\x00") {
        return found(F::Rar, "application/vnd.rar");
    }
    if at(p, 257, b"ustar") && matches!(p.get(262), Some(0 | b' ')) {
        return found(F::Tar, "application/x-tar");
    }
    if is_bzip2(p) {
        return found(F::Bzip2, "application/x-bzip2");
    }
    if at(p, 0, &[0xFD, b'7', b'z', b'X', b'Z', 0x00]) {
        return found(F::Xz, "application/x-xz");
    }
    if at(p, 0, &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        // Word, Excel, PowerPoint, MSI and Outlook all use this container; the directory
        // that tells them apart lies past the sniffed prefix.
        return found(F::Ole2, "application/x-ole-storage");
    }
    if at(p, 0, b"ID3") && matches!(p.get(3), Some(2..=4)) && p.get(4).is_some_and(|&r| r != 0xFF) {
        return found(F::MpegAudio, "audio/mpeg");
    }
    if is_mpeg_audio_frame(p) {
        return found(F::MpegAudio, "audio/mpeg");
    }
    if is_adts_frame(p) || at(p, 0, b"ADIF") {
        return found(F::Aac, "audio/aac");
    }
    if at(p, 0, b"fLaC") {
        return found(F::Flac, "audio/flac");
    }
    if at(p, 0, b"OggS\0") {
        return found(F::Ogg, ogg_type(p));
    }
    if at(p, 0, b"MThd\0\0\0\x06") {
        return found(F::Midi, "audio/midi");
    }
    if at(p, 0, &[0x1A, 0x45, 0xDF, 0xA3]) {
        return found(F::Matroska, matroska_type(p));
    }
    if let Some(canonical) = iso_media_type(p) {
        return found(F::IsoMedia, canonical);
    }
    if at(p, 0, &[0, 0, 1, 0xBA]) || at(p, 0, &[0, 0, 1, 0xB3]) {
        return found(F::MpegVideo, "video/mpeg");
    }
    if [0, 188, 376]
        .iter()
        .all(|&offset| p.get(offset) == Some(&0x47))
    {
        return found(F::MpegVideo, "video/mp2t");
    }
    None
}

fn at(p: &[u8], offset: usize, magic: &[u8]) -> bool {
    p.get(offset..offset + magic.len()) == Some(magic)
}

fn le16(p: &[u8], offset: usize) -> Option<u16> {
    match p.get(offset..offset + 2)? {
        &[a, b] => Some(u16::from_le_bytes([a, b])),
        _ => None,
    }
}

fn le32(p: &[u8], offset: usize) -> Option<u32> {
    match p.get(offset..offset + 4)? {
        &[a, b, c, d] => Some(u32::from_le_bytes([a, b, c, d])),
        _ => None,
    }
}

fn be32(p: &[u8], offset: usize) -> Option<u32> {
    match p.get(offset..offset + 4)? {
        &[a, b, c, d] => Some(u32::from_be_bytes([a, b, c, d])),
        _ => None,
    }
}

/// "BM" alone starts too much plain text, so the reserved words and the DIB header size are checked too.
fn is_bmp(p: &[u8]) -> bool {
    const DIB_HEADER_SIZES: [u32; 7] = [12, 40, 52, 56, 64, 108, 124];
    at(p, 0, b"BM")
        && le32(p, 6) == Some(0)
        && le32(p, 14).is_some_and(|size| DIB_HEADER_SIZES.contains(&size))
}

/// "BZh1" could start a sentence, so the block (or end-of-stream) magic that follows is required.
fn is_bzip2(p: &[u8]) -> bool {
    at(p, 0, b"BZh")
        && matches!(p.get(3), Some(b'1'..=b'9'))
        && (at(p, 4, &[0x31, 0x41, 0x59, 0x26, 0x53, 0x59])
            || at(p, 4, &[0x17, 0x72, 0x45, 0x38, 0x50, 0x90]))
}

/// An MPEG audio layer II or III frame header without reserved field values.
///
/// Layer I is left out: its sync word `FF FE` is also the UTF-16 little-endian byte-order mark.
fn is_mpeg_audio_frame(p: &[u8]) -> bool {
    let (Some(&b1), Some(&b2)) = (p.get(1), p.get(2)) else {
        return false;
    };
    let version = (b1 >> 3) & 0b11;
    let layer = (b1 >> 1) & 0b11;
    let bitrate = b2 >> 4;
    let sample_rate = (b2 >> 2) & 0b11;
    p.first() == Some(&0xFF)
        && b1 & 0xE0 == 0xE0
        && version != 0b01
        && matches!(layer, 0b01 | 0b10)
        && !matches!(bitrate, 0b0000 | 0b1111)
        && sample_rate != 0b11
}

/// An AAC ADTS frame header: sync word, layer 0, a defined sampling-frequency index.
fn is_adts_frame(p: &[u8]) -> bool {
    p.first() == Some(&0xFF)
        && p.get(1).is_some_and(|&b| b & 0xF6 == 0xF0)
        && p.get(2).is_some_and(|&b| (b >> 2) & 0x0F < 13)
}

/// Types that ZIP-based formats name in their leading `mimetype` member.
const SELF_DESCRIBED: [&str; 4] = [
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
    "application/epub+zip",
];

/// The more precise type of a ZIP whose first member says what it is: ODF and EPUB store a
/// `mimetype` member first, OOXML documents usually start with their part folder.
fn zip_member_type(p: &[u8]) -> Option<&'static str> {
    let name_len = usize::from(le16(p, 26)?);
    let extra_len = usize::from(le16(p, 28)?);
    let name = p.get(30..30 + name_len)?;
    let data_start = 30 + name_len + extra_len;
    let stored = le16(p, 8)? == 0;
    if name == b"mimetype" && stored {
        let data_len = usize::try_from(le32(p, 18)?).ok()?;
        let declared = p.get(data_start..data_start.checked_add(data_len)?)?;
        return SELF_DESCRIBED
            .into_iter()
            .find(|t| t.as_bytes() == declared);
    }
    if name.starts_with(b"word/") {
        Some("application/vnd.openxmlformats-officedocument.wordprocessingml.document")
    } else if name.starts_with(b"xl/") {
        Some("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    } else if name.starts_with(b"ppt/") {
        Some("application/vnd.openxmlformats-officedocument.presentationml.presentation")
    } else {
        None
    }
}

/// Audio or video Ogg, by the codec header in the first packet.
fn ogg_type(p: &[u8]) -> &'static str {
    let packet_start = p.get(26).map(|&segments| 27 + usize::from(segments));
    let is_video = packet_start.is_some_and(|start| {
        at(p, start, b"\x80theora") || at(p, start, b"\x01video") || at(p, start, b"fishead")
    });
    if is_video { "video/ogg" } else { "audio/ogg" }
}

/// WebM or generic Matroska, by the EBML DocType near the start.
fn matroska_type(p: &[u8]) -> &'static str {
    let head = p.get(..64).unwrap_or(p);
    if head.windows(4).any(|w| w == b"webm") {
        "video/webm"
    } else {
        "video/x-matroska"
    }
}

/// ISO base media (MP4, QuickTime, HEIF, AVIF) by the `ftyp` box, or classic QuickTime by its first atom.
fn iso_media_type(p: &[u8]) -> Option<&'static str> {
    let box_size = be32(p, 0)?;
    let box_type = p.get(4..8)?;
    if box_type == b"ftyp" && (16..=0xFFFF).contains(&box_size) {
        let major = p.get(8..12)?;
        let compatible_end = usize::try_from(box_size).ok()?.min(p.len());
        let compatible = p.get(16..compatible_end).unwrap_or_default();
        let has_brand = |brand: &[u8]| compatible.chunks_exact(4).any(|b| b == brand);
        return Some(match major {
            b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" | b"hevm" | b"hevs" => {
                "image/heic"
            }
            b"avif" | b"avis" => "image/avif",
            b"mif1" | b"msf1" | b"mif2" if has_brand(b"avif") => "image/avif",
            b"mif1" | b"msf1" | b"mif2" if has_brand(b"heic") => "image/heic",
            b"mif1" | b"msf1" | b"mif2" => "image/heif",
            b"qt  " => "video/quicktime",
            b"M4A " | b"M4B " | b"M4P " => "audio/mp4",
            _ => "video/mp4",
        });
    }
    // Text cannot start with a NUL byte, which every small atom size has.
    let small = box_size < 0x0100_0000;
    let classic = match box_type {
        b"wide" => box_size == 8,
        b"pnot" => box_size == 20,
        b"moov" | b"mdat" | b"free" | b"skip" => small && box_size != 0,
        _ => false,
    };
    classic.then_some("video/quicktime")
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A ZIP local file header for `name`, compressed by `method`, followed by `data`.
    pub(in crate::content_type) fn zip_entry(name: &str, method: u16, data: &[u8]) -> Vec<u8> {
        let mut out = b"PK\x03\x04".to_vec();
        out.extend_from_slice(&20u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&method.to_le_bytes());
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        out
    }

    fn tar_header(magic: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 512];
        out[..8].copy_from_slice(b"file.txt");
        out[257..257 + magic.len()].copy_from_slice(magic);
        out
    }

    fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
        let size = 16 + 4 * compatible.len() as u32;
        let mut out = size.to_be_bytes().to_vec();
        out.extend_from_slice(b"ftyp");
        out.extend_from_slice(major);
        out.extend_from_slice(&[0, 0, 2, 0]);
        for brand in compatible {
            out.extend_from_slice(*brand);
        }
        out
    }

    fn ogg(packet: &[u8]) -> Vec<u8> {
        let mut out = b"OggS\0\x02".to_vec();
        out.extend_from_slice(&[0; 20]);
        out.push(1);
        out.push(packet.len() as u8);
        out.extend_from_slice(packet);
        out
    }

    fn mpeg_ts() -> Vec<u8> {
        let mut out = vec![0xFFu8; 512];
        for offset in [0, 188, 376] {
            out[offset] = 0x47;
        }
        out
    }

    fn bmp() -> Vec<u8> {
        let mut out = b"BM".to_vec();
        out.extend_from_slice(&1000u32.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&54u32.to_le_bytes());
        out.extend_from_slice(&40u32.to_le_bytes());
        out
    }

    #[test]
    fn sniff_recognises_binary_formats() {
        use Family as F;
        let docx = zip_entry("[Content_Types].xml", 8, b"xx");
        let docx_by_folder = zip_entry("word/document.xml", 8, b"xx");
        let xlsx = zip_entry("xl/workbook.xml", 8, b"xx");
        let pptx = zip_entry("ppt/presentation.xml", 8, b"xx");
        let odt = zip_entry("mimetype", 0, b"application/vnd.oasis.opendocument.text");
        let ods = zip_entry(
            "mimetype",
            0,
            b"application/vnd.oasis.opendocument.spreadsheet",
        );
        let epub = zip_entry("mimetype", 0, b"application/epub+zip");
        let unknown_mimetype = zip_entry("mimetype", 0, b"application/x-foo");
        let truncated_mimetype = &odt[..45];
        let ustar = tar_header(b"ustar\x0000");
        let gnu_tar = tar_header(b"ustar  \0");
        let mp4 = ftyp(b"isom", &[b"isom", b"mp41"]);
        let mov = ftyp(b"qt  ", &[b"qt  "]);
        let m4a = ftyp(b"M4A ", &[b"M4A ", b"mp42"]);
        let heic = ftyp(b"heic", &[b"mif1", b"heic"]);
        let heif_avif = ftyp(b"mif1", &[b"mif1", b"avif"]);
        let heif = ftyp(b"mif1", &[b"mif1"]);
        let avif = ftyp(b"avif", &[b"avif", b"mif1"]);
        let vorbis = ogg(b"\x01vorbis");
        let opus = ogg(b"OpusHead");
        let theora = ogg(b"\x80theora");
        let ts = mpeg_ts();
        let bmp = bmp();
        let cases: &[(&[u8], Family, &str)] = &[
            (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", F::Png, "image/png"),
            (b"\xFF\xD8\xFF\xE0\0\x10JFIF", F::Jpeg, "image/jpeg"),
            (b"GIF89a\x01\0", F::Gif, "image/gif"),
            (b"GIF87a", F::Gif, "image/gif"),
            (b"RIFF\0\0\0\0WEBPVP8 ", F::Webp, "image/webp"),
            (&bmp, F::Bmp, "image/bmp"),
            (b"II*\0\x08\0\0\0", F::Tiff, "image/tiff"),
            (b"MM\0*\0\0\0\x08", F::Tiff, "image/tiff"),
            (b"\0\0\x01\0\x01\0\x10\x10", F::Ico, "image/x-icon"),
            (b"%PDF-1.7\n", F::Pdf, "application/pdf"),
            (&docx, F::Zip, "application/zip"),
            (
                &docx_by_folder,
                F::Zip,
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            ),
            (
                &xlsx,
                F::Zip,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ),
            (
                &pptx,
                F::Zip,
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            ),
            (&odt, F::Zip, "application/vnd.oasis.opendocument.text"),
            (
                &ods,
                F::Zip,
                "application/vnd.oasis.opendocument.spreadsheet",
            ),
            (&epub, F::Zip, "application/epub+zip"),
            (&unknown_mimetype, F::Zip, "application/zip"),
            (truncated_mimetype, F::Zip, "application/zip"),
            (b"PK\x05\x06\0\0\0\0", F::Zip, "application/zip"),
            (b"\x1F\x8B\x08\0\0\0\0\0", F::Gzip, "application/gzip"),
            (
                b"7z\xBC\xAF\x27\x1C\0\x04",
                F::SevenZip,
                "application/x-7z-compressed",
            ),
            (b"Rar!\x1A\x07\x00", F::Rar, "application/vnd.rar"),
            (b"Rar!\x1A\x07\x01\x00", F::Rar, "application/vnd.rar"),
            (&ustar, F::Tar, "application/x-tar"),
            (&gnu_tar, F::Tar, "application/x-tar"),
            (b"BZh91AY&SY", F::Bzip2, "application/x-bzip2"),
            (
                b"BZh9\x17\x72\x45\x38\x50\x90",
                F::Bzip2,
                "application/x-bzip2",
            ),
            (b"\xFD7zXZ\0\0\x04", F::Xz, "application/x-xz"),
            (
                b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1\0\0",
                F::Ole2,
                "application/x-ole-storage",
            ),
            (b"ID3\x04\0\0\0\0\0\0", F::MpegAudio, "audio/mpeg"),
            (b"\xFF\xFB\x90\x64", F::MpegAudio, "audio/mpeg"),
            (b"\xFF\xF3\x48\xC4", F::MpegAudio, "audio/mpeg"),
            (b"\xFF\xFD\x90\x04", F::MpegAudio, "audio/mpeg"),
            (b"\xFF\xF1\x50\x80", F::Aac, "audio/aac"),
            (b"ADIF", F::Aac, "audio/aac"),
            (b"fLaC\0\0\0\x22", F::Flac, "audio/flac"),
            (&vorbis, F::Ogg, "audio/ogg"),
            (&opus, F::Ogg, "audio/ogg"),
            (&theora, F::Ogg, "video/ogg"),
            (b"RIFF\x24\0\0\0WAVEfmt ", F::Wav, "audio/wav"),
            (b"RIFF\x24\0\0\0AVI LIST", F::Avi, "video/x-msvideo"),
            (&mp4, F::IsoMedia, "video/mp4"),
            (&mov, F::IsoMedia, "video/quicktime"),
            (&m4a, F::IsoMedia, "audio/mp4"),
            (&heic, F::IsoMedia, "image/heic"),
            (&heif_avif, F::IsoMedia, "image/avif"),
            (&heif, F::IsoMedia, "image/heif"),
            (&avif, F::IsoMedia, "image/avif"),
            (
                b"\0\0\0\x08wide\0\0\x10\0mdat",
                F::IsoMedia,
                "video/quicktime",
            ),
            (b"\0\0\x10\0moov", F::IsoMedia, "video/quicktime"),
            (
                b"\x1A\x45\xDF\xA3\x9F\x42\x86\x81\x01\x42\x82\x84webm",
                F::Matroska,
                "video/webm",
            ),
            (
                b"\x1A\x45\xDF\xA3\xA3\x42\x86\x81\x01\x42\x82\x88matroska",
                F::Matroska,
                "video/x-matroska",
            ),
            (b"MThd\0\0\0\x06\0\x01", F::Midi, "audio/midi"),
            (b"\0\0\x01\xBA\x44", F::MpegVideo, "video/mpeg"),
            (&ts, F::MpegVideo, "video/mp2t"),
        ];
        for &(prefix, family, canonical) in cases {
            assert_eq!(
                sniff(prefix),
                Some(Sniffed { family, canonical }),
                "prefix {:?}",
                &prefix[..prefix.len().min(16)]
            );
        }
    }

    #[test]
    fn sniff_ignores_text_and_look_alikes() {
        let short_tar = &tar_header(b"ustar\x0000")[..261];
        let cases: &[&[u8]] = &[
            b"",
            b"hello",
            b"\xEF\xBB\xBFhello",
            b"\xFF\xFEh\0e\0l\0l\0o\0",
            b"\xFF\xFEA\0B\0",
            b"\xFE\xFF\0h\0e",
            b"BMW cars are fast and expensive",
            b"BZh1 is not a compressed file",
            b"ID3 tags describe songs",
            b"I'm free to go",
            b"abcdmoov",
            b"\0\0\0\x09wide",
            b"RIFF\0\0\0\0JUNK",
            b"%PD",
            b"PK",
            b"{\"a\": 1}",
            b"id,name\n1,x\n",
            b"\x89PNG",
            b"\xFF\xD8",
            short_tar,
            b"\x1F\x8B",
            b"\0\0\x01\0\0\0",
        ];
        for &prefix in cases {
            assert_eq!(
                sniff(prefix),
                None,
                "prefix {:?}",
                String::from_utf8_lossy(prefix)
            );
        }
    }
}
