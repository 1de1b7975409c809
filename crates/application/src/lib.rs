//! Stowage's use cases and the ports (traits) they need from the outside world.
//!
//! Nothing here knows HTTP, SQL or a cloud SDK: adapters in `stowage-infrastructure` implement the
//! ports, and `stowage-presentation` drives the use cases.

pub mod checksum;
pub mod error;
pub mod events;
pub mod ports;
pub mod stream;
pub mod use_cases;

pub use error::{BoxError, Error};
pub use stream::{BodyError, ByteStream};
