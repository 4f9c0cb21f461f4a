//! The panic boundary every export sits behind (rustls-ffi's `ffi_panic_boundary!`, hyper's
//! `ffi_fn!`): a panic must never unwind into C, so it becomes `FCGI_ERR_PANIC` (or a function's
//! stated fallback value) at the edge. And the checks that turn NULL pointers into
//! `FCGI_ERR_NULL` instead of a crash.
//!
//! The macro wraps a function's body rather than its signature, so that cbindgen, which does not
//! expand macros, still sees every `extern "C" fn` as written.

/// Runs a block under `catch_unwind`. `return` inside the block returns from the block.
///
/// - `ffi_boundary!({ ... })`: the block yields an `fcgi_result`; a panic yields
///   `FCGI_ERR_PANIC`.
/// - `ffi_boundary!(fallback, { ... })`: a panic yields `fallback` (for functions returning
///   something else, or nothing).
macro_rules! ffi_boundary {
    ($body:block) => {
        $crate::panic::ffi_boundary!($crate::fcgi_result::FCGI_ERR_PANIC, $body)
    };
    ($on_panic:expr, $body:block) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(value) => value,
            Err(_) => $on_panic,
        }
    };
}

/// A handle argument as a shared reference, or `return FCGI_ERR_NULL` from the enclosing
/// boundary block when it is NULL.
macro_rules! try_ref {
    ($ptr:expr) => {
        match ::std::ptr::NonNull::new($ptr.cast_mut()) {
            // SAFETY: every export documents that a non-NULL handle argument is live (made by
            // its _new/_open/_accept and not yet freed) and that no other thread uses it
            // during the call, except where an export says so (fcgi_server_accept and the other
            // calls on `const fcgi_server *`, which only take shared references).
            Some(ptr) => unsafe { ptr.as_ref() },
            None => return $crate::fcgi_result::FCGI_ERR_NULL,
        }
    };
}

/// A handle or out-parameter as an exclusive reference, or `return FCGI_ERR_NULL`.
macro_rules! try_mut {
    ($ptr:expr) => {
        match ::std::ptr::NonNull::new($ptr) {
            // SAFETY: as in `try_ref!`; and a non-NULL out-parameter points to writable memory
            // of its type that only this call touches.
            Some(mut ptr) => unsafe { ptr.as_mut() },
            None => return $crate::fcgi_result::FCGI_ERR_NULL,
        }
    };
}

pub(crate) use {ffi_boundary, try_mut, try_ref};
