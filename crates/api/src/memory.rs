//! Memory: jemalloc is the global allocator of the `stowage-api` binary.
//!
//! glibc's allocator keeps what its per-thread arenas once held, so after a burst of concurrent
//! transfers their freed part buffers stayed resident and the next burst landed on top. jemalloc
//! hands pages left unused for its decay time (10 s by default; `_RJEM_MALLOC_CONF=dirty_decay_ms:…` tunes it) back to
//! the operating system, and its background thread does so even while the service is idle.

/// Starts jemalloc's background purging thread; false when the allocator refused (the pages are
/// then still purged, as allocations happen).
pub fn purge_in_background() -> bool {
    #[cfg(not(target_env = "msvc"))]
    {
        tikv_jemalloc_ctl::background_thread::write(true).is_ok()
    }
    #[cfg(target_env = "msvc")]
    {
        false
    }
}

#[cfg(all(test, not(target_env = "msvc")))]
mod tests {
    use super::*;

    #[test]
    fn the_background_thread_runs_once_asked_for() {
        assert!(purge_in_background());
        assert_eq!(tikv_jemalloc_ctl::background_thread::read(), Ok(true));
    }
}
