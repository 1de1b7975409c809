//! Images as the upload policies see them: what a header tells before any pixel is
//! decoded, and metadata removed from a stored image without re-encoding it.

pub mod header;
pub mod strip;
pub mod variant;
