//! The source images: a 12 MP camera-like JPEG (smooth light and colour with sensor-like grain,
//! an EXIF orientation that turns it upright), in copies that differ by one comment byte.

use anyhow::{Context, Result};
use jpeg_encoder::{ColorType, Encoder, SamplingFactor};

/// The stored width; shown upright it is the height.
pub const WIDTH: u16 = 4000;
/// The stored height.
pub const HEIGHT: u16 = 3000;
/// The quality a camera saves at.
pub const QUALITY: u8 = 90;
/// The EXIF orientation: the stored pixels are shown turned 90° clockwise, as a phone held
/// upright writes them.
pub const ORIENTATION: u16 = 6;

/// A little-endian TIFF header and one IFD with one entry, `Orientation` (0x0112, a SHORT).
fn exif() -> Vec<u8> {
    let mut tiff = b"II\x2a\x00\x08\x00\x00\x00".to_vec();
    tiff.extend_from_slice(&1u16.to_le_bytes());
    tiff.extend_from_slice(&[0x12, 0x01, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00]);
    tiff.extend_from_slice(&ORIENTATION.to_le_bytes());
    tiff.extend_from_slice(&[0; 2]);
    // No next IFD.
    tiff.extend_from_slice(&[0; 4]);
    tiff
}

/// A smooth periodic curve over `n` samples: a sum of two slow waves around `mean`.
fn wave(n: usize, mean: f32, periods: [f32; 2], amplitude: f32, phase: f32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let t = i as f32 / n as f32 * std::f32::consts::TAU;
            mean + amplitude * ((t * periods[0] + phase).sin() + 0.5 * (t * periods[1]).cos())
        })
        .collect()
}

/// The next value of a xorshift generator.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Detail at a scale of `cell` pixels: random levels on a grid, blended bilinearly. Foliage,
/// fabric and faces give a photo detail of this kind, which survives downscaling.
struct Detail {
    cell: usize,
    columns: usize,
    levels: Vec<f32>,
}

impl Detail {
    fn new(cell: usize, amplitude: f32, state: &mut u64) -> Self {
        let columns = usize::from(WIDTH) / cell + 2;
        let rows = usize::from(HEIGHT) / cell + 2;
        let levels = (0..columns * rows)
            .map(|_| (next(state) % 1024) as f32 / 1023.0 * 2.0 * amplitude - amplitude)
            .collect();
        Self {
            cell,
            columns,
            levels,
        }
    }

    fn at(&self, x: usize, y: usize) -> f32 {
        let (i, j) = (x / self.cell, y / self.cell);
        let fx = (x % self.cell) as f32 / self.cell as f32;
        let fy = (y % self.cell) as f32 / self.cell as f32;
        let level = |i: usize, j: usize| self.levels[j * self.columns + i];
        let top = level(i, j) + (level(i + 1, j) - level(i, j)) * fx;
        let bottom = level(i, j + 1) + (level(i + 1, j + 1) - level(i, j + 1)) * fx;
        top + (bottom - top) * fy
    }
}

/// The RGB pixels of the photo for `seed`: light and colour varying smoothly over the frame, as
/// sky, walls and skin do, detail at two scales, and grain on top, so that it compresses as a
/// photo does rather than to almost nothing, and so does its thumbnail.
fn pixels(seed: u64) -> Vec<u8> {
    let (w, h) = (usize::from(WIDTH), usize::from(HEIGHT));
    let columns: Vec<Vec<f32>> = [(1.3, 3.1, 0.0), (2.1, 4.7, 1.0), (0.7, 5.3, 2.0)]
        .iter()
        .map(|&(a, b, phase)| wave(w, 64.0, [a, b], 30.0, phase))
        .collect();
    let rows: Vec<Vec<f32>> = [(1.7, 2.9, 0.5), (0.9, 3.7, 1.5), (2.3, 6.1, 2.5)]
        .iter()
        .map(|&(a, b, phase)| wave(h, 64.0, [a, b], 24.0, phase))
        .collect();
    let mut state = seed | 1;
    let coarse = Detail::new(48, 28.0, &mut state);
    let fine = Detail::new(9, 10.0, &mut state);
    let mut out = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let noise = next(&mut state);
            // Mostly brightness grain, a little colour grain, as a sensor makes.
            let luma = coarse.at(x, y) + fine.at(x, y) + f32::from((noise & 0x1f) as u8) - 16.0;
            for (c, (column, row)) in columns.iter().zip(&rows).enumerate() {
                let chroma = f32::from(((noise >> (8 + 8 * c)) & 0x7) as u8) - 3.5;
                let v = column[x] + row[y] + luma + chroma;
                out.push(v.clamp(0.0, 255.0) as u8);
            }
        }
    }
    out
}

/// The photo for `seed`, encoded at [`QUALITY`] with 4:2:0 chroma, as cameras store it.
pub fn photo(seed: u64) -> Result<Vec<u8>> {
    let mut jpeg = Vec::new();
    let mut encoder = Encoder::new(&mut jpeg, QUALITY);
    encoder.set_sampling_factor(SamplingFactor::F_2_2);
    encoder.add_exif_metadata(&exif())?;
    encoder
        .encode(&pixels(seed), WIDTH, HEIGHT, ColorType::Rgb)
        .context("encoding the photo")?;
    Ok(jpeg)
}

/// `jpeg` with a comment segment holding `n` after its application segments: the same picture
/// under another SHA-256, so that Stowage stores and renders it as a file of its own.
pub fn copy(jpeg: &[u8], n: u64) -> Vec<u8> {
    // SOI, then APPn segments (JFIF, EXIF), each a marker and a big-endian length.
    let mut at = 2;
    while jpeg.len() > at + 3 && jpeg[at] == 0xff && (0xe0..=0xef).contains(&jpeg[at + 1]) {
        at += 2 + usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
    }
    let mut out = Vec::with_capacity(jpeg.len() + 12);
    out.extend_from_slice(&jpeg[..at]);
    out.extend_from_slice(&[0xff, 0xfe, 0x00, 0x0a]);
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&jpeg[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_photo_is_a_camera_sized_jpeg_with_its_orientation_and_distinct_copies() {
        let started = std::time::Instant::now();
        let jpeg = photo(7).unwrap();
        println!("{} bytes in {:?}", jpeg.len(), started.elapsed());
        assert!(jpeg.len() > 2_000_000, "{} bytes", jpeg.len());
        assert!(jpeg.len() < 12_000_000, "{} bytes", jpeg.len());
        assert_eq!(&jpeg[..2], [0xff, 0xd8]);
        let exif = jpeg.windows(6).position(|w| w == b"Exif\0\0").unwrap();
        assert_eq!(&jpeg[exif + 6 + 18..exif + 6 + 20], [6, 0]);
        let (a, b) = (copy(&jpeg, 1), copy(&jpeg, 2));
        assert_ne!(a, b);
        assert_eq!(a.len(), jpeg.len() + 12);
        let com = a.windows(2).position(|w| w == [0xff, 0xfe]).unwrap();
        assert!(com > exif, "the comment follows the EXIF segment");
    }
}
