//! The request being served, shared with the Python objects that reach it (`wsgi.input`,
//! `wsgi.errors`, `start_response`'s `write`) while the app runs.
//!
//! This is the FFI boundary of the module: Python objects are `'static` and may outlive the
//! request, but the core's `Request` borrows its connection for the length of the handler call.
//! So the handler publishes a pointer to the request for exactly that long, every access goes
//! through one mutex, and after the handler returns the pointer is gone and any access is an error.

use std::io;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use fcgi_core::Request;

struct RequestPtr(NonNull<Request<'static>>);

// SAFETY: `Request` is `Send` (fcgi-core asserts it); the pointer is dereferenced only while the
// mutex that owns it is held, so at most one thread uses the request at a time.
unsafe impl Send for RequestPtr {}

/// A request that may have finished.
pub struct LiveRequest {
    slot: Mutex<Option<RequestPtr>>,
}

impl LiveRequest {
    fn lock(&self) -> MutexGuard<'_, Option<RequestPtr>> {
        self.slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the request, or fails if it has finished. Blocking I/O in `f` must run
    /// without the GIL (callers wrap this in `Python::detach`), and `f` must never take the GIL:
    /// a thread waiting for the GIL while holding this lock could deadlock with one holding the
    /// GIL while waiting for the lock.
    pub fn with<R>(&self, f: impl FnOnce(&mut Request<'_>) -> io::Result<R>) -> io::Result<R> {
        let mut slot = self.lock();
        let Some(ptr) = slot.as_mut() else {
            return Err(io::Error::other("the request has finished"));
        };
        // SAFETY: the pointer came from the `&mut Request` given to `publish`, which outlives
        // the publication (it is withdrawn before `publish` returns), and the lock held here
        // makes this the only access.
        let request = unsafe { ptr.0.as_mut() };
        f(request)
    }

    /// [`with`](Self::with) for a caller holding the GIL, which must never wait: `Ok(None)`
    /// when another thread is using the request (it may be blocked writing to a web server that
    /// does not read), and the caller then falls back to a detached [`with`](Self::with).
    pub fn try_with<R>(&self, f: impl FnOnce(&mut Request<'_>) -> io::Result<R>) -> io::Result<Option<R>> {
        let mut slot = match self.slot.try_lock() {
            Ok(slot) => slot,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(None),
        };
        let Some(ptr) = slot.as_mut() else {
            return Err(io::Error::other("the request has finished"));
        };
        // SAFETY: as in `with`: the pointer is published, and the lock held makes this the only access.
        let request = unsafe { ptr.0.as_mut() };
        f(request).map(Some)
    }
}

/// Calls `f` with the request published as a [`LiveRequest`]; withdraws it before returning,
/// also when `f` panics.
pub fn publish<R>(request: &mut Request<'_>, f: impl FnOnce(&Arc<LiveRequest>) -> R) -> R {
    struct Withdraw<'a>(&'a LiveRequest);
    impl Drop for Withdraw<'_> {
        fn drop(&mut self) {
            *self.0.lock() = None;
        }
    }
    let ptr = RequestPtr(NonNull::from(request).cast());
    let live = Arc::new(LiveRequest { slot: Mutex::new(Some(ptr)) });
    let _withdraw = Withdraw(&live);
    f(&live)
}
