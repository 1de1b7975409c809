//! Permission checkers.

pub mod http;
