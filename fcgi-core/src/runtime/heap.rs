//! Reusing a connection's read buffer, and giving freed memory back to the system after a
//! flood of connections.
//!
//! A connection per request (nginx without `fastcgi_keep_conn`) would otherwise allocate and
//! free a 64 KiB read buffer per request: each thread keeps the last one it let go of for its
//! next connection.
//!
//! The allocator keeps what a thread freed for that thread's next allocations: after thousands
//! of connections held at once and closed, or threads started for a burst and ended, the
//! process's resident memory would stay at its peak, split across the arenas of the threads
//! that held them, though nothing uses it.

use std::cell::Cell;

use bytes::BytesMut;

thread_local! {
    static SPARE_READ_BUFFER: Cell<Option<BytesMut>> = const { Cell::new(None) };
}

/// An empty buffer with room for `capacity` bytes: the one this thread kept, if it has one.
pub(crate) fn read_buffer(capacity: usize) -> BytesMut {
    match SPARE_READ_BUFFER.take() {
        Some(spare) if spare.capacity() >= capacity => spare,
        _ => BytesMut::with_capacity(capacity),
    }
}

/// Keeps `buffer` for this thread's next [`read_buffer`] if it is whole again, with room for
/// `capacity` bytes without allocating: nothing else holds a part of it (a request's body chunk
/// still read by an app does).
pub(crate) fn recycle_read_buffer(mut buffer: BytesMut, capacity: usize) {
    buffer.clear();
    if buffer.try_reclaim(capacity) {
        SPARE_READ_BUFFER.set(Some(buffer));
    }
}

/// Returns the allocator's free memory to the system (glibc's `malloc_trim`); elsewhere a no-op.
/// A face calls it when threads it started for a burst have ended.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists, under its own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
