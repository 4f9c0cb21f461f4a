//! Giving freed memory back to the system after a flood of connections.
//!
//! The allocator keeps what a thread freed for that thread's next allocations: after thousands
//! of connections held at once and closed, or threads started for a burst and ended, the
//! process's resident memory would stay at its peak, split across the arenas of the threads
//! that held them, though nothing uses it.

/// Returns the allocator's free memory to the system (glibc's `malloc_trim`); elsewhere a no-op.
/// A face calls it when threads it started for a burst have ended.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists, under its own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
