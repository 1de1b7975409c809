//! Bounds-checked integer reads: every offset in a header comes from the file, so none is
//! trusted, and a read past the end is `None` rather than a panic.

/// The `N` bytes at `at`.
fn bytes<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

pub(super) fn u16_be(b: &[u8], at: usize) -> Option<u16> {
    bytes(b, at).map(u16::from_be_bytes)
}

pub(super) fn u16_le(b: &[u8], at: usize) -> Option<u16> {
    bytes(b, at).map(u16::from_le_bytes)
}

/// A 24-bit little-endian value, as WebP stores its canvas size.
pub(super) fn u24_le(b: &[u8], at: usize) -> Option<u32> {
    bytes::<3>(b, at).map(|[x, y, z]| u32::from_le_bytes([x, y, z, 0]))
}

pub(super) fn u32_be(b: &[u8], at: usize) -> Option<u32> {
    bytes(b, at).map(u32::from_be_bytes)
}

pub(super) fn u32_le(b: &[u8], at: usize) -> Option<u32> {
    bytes(b, at).map(u32::from_le_bytes)
}

pub(super) fn u64_be(b: &[u8], at: usize) -> Option<u64> {
    bytes(b, at).map(u64::from_be_bytes)
}

/// The four-character code at `at` (a PNG chunk type, a RIFF chunk id, an ISO-BMFF box type).
pub(super) fn tag(b: &[u8], at: usize) -> Option<[u8; 4]> {
    bytes(b, at)
}
