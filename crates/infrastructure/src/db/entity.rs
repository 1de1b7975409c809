//! SeaORM entities; converted to domain types in the repository, never exposed beyond this crate's adapters.

pub mod file;
