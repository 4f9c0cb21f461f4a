//! The request being served, shared with the Python objects that reach it (`wsgi.input`,
//! `wsgi.errors`, `start_response`'s `write`, an ASGI request's I/O) while the app runs.
//!
//! This is the FFI boundary of the module: Python objects are `'static` and may outlive the
//! request, but the core's `Request` borrows its connection for the length of the handler call.
//! So the handler publishes a pointer to the request for exactly that long, every access goes
//! through one mutex, and after the handler returns the pointer is gone and any access is an error.
//! A request taken whole (the ASGI face's) is owned instead, until it is finished.

use std::io;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use fcgi_core::Request;

struct RequestPtr(NonNull<Request<'static>>);

// SAFETY: `Request` is `Send` (fcgi-core asserts it); the pointer is dereferenced only while the
// mutex that owns it is held, so at most one thread uses the request at a time.
unsafe impl Send for RequestPtr {}

/// Where the request is.
enum Held {
    /// Published by a handler call, for its length.
    Borrowed(RequestPtr),
    /// Taken whole, until [`LiveRequest::take_owned`].
    Owned(Box<Request<'static>>),
}

impl Held {
    fn request(&mut self) -> &mut Request<'static> {
        match self {
            // SAFETY: the pointer came from the `&mut Request` given to `publish`, which
            // outlives the publication (it is withdrawn before `publish` returns), and the lock
            // held by the caller makes this the only access.
            Held::Borrowed(ptr) => unsafe { ptr.0.as_mut() },
            Held::Owned(request) => request,
        }
    }
}

/// A request that may have finished.
pub struct LiveRequest {
    slot: Mutex<Option<Held>>,
}

impl LiveRequest {
    /// A live request that owns `request` (taken whole), until it is finished.
    pub fn own(request: Request<'static>) -> Arc<Self> {
        Arc::new(Self { slot: Mutex::new(Some(Held::Owned(Box::new(request)))) })
    }

    /// A request that has finished already: every access is an error. What an empty stream,
    /// which never reads, holds in place of a request.
    pub fn finished() -> Arc<Self> {
        Arc::new(Self { slot: Mutex::new(None) })
    }

    /// The request it owns, taken out to be finished; `None` if it was taken already (or is
    /// borrowed). Any access after this is an error.
    pub fn take_owned(&self) -> Option<Box<Request<'static>>> {
        let mut slot = self.lock();
        match slot.take() {
            Some(Held::Owned(request)) => Some(request),
            other => {
                *slot = other;
                None
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Held>> {
        self.slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the request, or fails if it has finished. Blocking I/O in `f` must run
    /// without the GIL (callers wrap this in `Python::detach`), and `f` must never take the GIL:
    /// a thread waiting for the GIL while holding this lock could deadlock with one holding the
    /// GIL while waiting for the lock.
    pub fn with<R>(&self, f: impl FnOnce(&mut Request<'_>) -> io::Result<R>) -> io::Result<R> {
        let mut slot = self.lock();
        let Some(held) = slot.as_mut() else {
            return Err(io::Error::other("the request has finished"));
        };
        f(held.request())
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
        let Some(held) = slot.as_mut() else {
            return Err(io::Error::other("the request has finished"));
        };
        f(held.request()).map(Some)
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
    let live = Arc::new(LiveRequest { slot: Mutex::new(Some(Held::Borrowed(ptr))) });
    let _withdraw = Withdraw(&live);
    f(&live)
}
