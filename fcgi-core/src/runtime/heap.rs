//! Reusing a connection's buffers, and giving freed memory back to the system after a flood of
//! connections.
//!
//! A connection per request (nginx without `fastcgi_keep_conn`) would otherwise allocate and
//! free a 64 KiB read buffer and a 72 KiB output buffer per request: each thread keeps the last
//! ones it let go of for its next connection.
//!
//! The allocator keeps what a thread freed for that thread's next allocations: after thousands
//! of connections held at once and closed, or threads started for a burst and ended, the
//! process's resident memory would stay at its peak, split across the arenas of the threads
//! that held them, though nothing uses it.

use std::cell::Cell;
use std::thread::LocalKey;

use bytes::BytesMut;

thread_local! {
    static SPARE_READ: Cell<Option<BytesMut>> = const { Cell::new(None) };
    static SPARE_OUTPUT: Cell<Option<BytesMut>> = const { Cell::new(None) };
}

/// What a connection's buffer is for: each thread keeps one spare of each.
#[derive(Clone, Copy)]
pub(crate) enum Spare {
    /// Input, read off the socket.
    Read,
    /// Output, encoded for the socket.
    Output,
}

impl Spare {
    fn key(self) -> &'static LocalKey<Cell<Option<BytesMut>>> {
        match self {
            Spare::Read => &SPARE_READ,
            Spare::Output => &SPARE_OUTPUT,
        }
    }
}

/// An empty buffer with room for `capacity` bytes: this thread's spare, if it has one.
pub(crate) fn buffer(spare: Spare, capacity: usize) -> BytesMut {
    // `try_with`: a thread that is exiting has no spares (its thread-locals are gone).
    match spare.key().try_with(Cell::take).ok().flatten() {
        Some(kept) if kept.capacity() >= capacity => kept,
        _ => BytesMut::with_capacity(capacity),
    }
}

/// Keeps `buffer` as this thread's spare if it is whole again, with room for `capacity` bytes
/// without allocating: nothing else holds a part of it (a request's body chunk still read by an
/// app does).
pub(crate) fn recycle(spare: Spare, mut buffer: BytesMut, capacity: usize) {
    buffer.clear();
    if buffer.try_reclaim(capacity) {
        let _ = spare.key().try_with(|kept| kept.set(Some(buffer)));
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
