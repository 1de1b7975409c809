//! Rate limiters: in memory (one process) and in Redis (shared by every replica).

pub mod memory;
pub mod redis;
