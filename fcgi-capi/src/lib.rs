//! A stable C ABI over `fcgi-core`: `include/fcgi.h`, generated from this crate by cbindgen.
//!
//! The C side is pull-style, as libfcgi users expect: open a server, then
//! `while (fcgi_server_accept(server, &request) == FCGI_OK) { ...; fcgi_request_finish(request); }`.
//!
//! - **Handles** are opaque: `fcgi_options` (`fcgi_options_new` / `fcgi_options_free`),
//!   `fcgi_server` (`fcgi_server_open` / `fcgi_server_close`), `fcgi_request`
//!   (`fcgi_server_accept` / `fcgi_request_finish`). Each is released exactly once by its pair,
//!   and by nothing else: `fcgi_server_close` waits for the requests still held (up to
//!   the graceful timeout, 30 s by default), then ends the rest, whose handles stay valid
//!   tombstones (`FCGI_ERR_CLOSED`) until finished; see `held.rs`.
//! - **Results**: every fallible call returns an `fcgi_result`, with outputs through
//!   out-parameters; `fcgi_result_str` gives the text. A NULL pointer is `FCGI_ERR_NULL`, a bad
//!   value `FCGI_ERR_INVALID_ARG`, never a crash; a panic inside is `FCGI_ERR_PANIC`.
//! - **Threads**: any number of threads may call `fcgi_server_accept` on one server at once;
//!   `fcgi_server_shutdown`, `_stats` and `_exit_code` are safe from any thread, and `_shutdown`
//!   from a signal handler. A request belongs to one thread at a time and may move between
//!   threads. The thread that accepts a request has read it from its connection itself: no
//!   other thread takes part, so a request costs no hand-off between threads.
//!
//! # Safety
//!
//! The exports are `unsafe extern "C"` functions with one contract, stated once here rather
//! than on each: every pointer argument is NULL or valid for its documented use (a handle made
//! by its constructor and not yet released; a buffer of the stated length; a NUL-terminated
//! string), and a handle is not used by two threads at once except where a function says so.

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
// The one safety contract is the crate-level section above (and the header's docs).
#![allow(clippy::missing_safety_doc)]
// C names: fcgi_server, fcgi_result, FCGI_OK.
#![allow(non_camel_case_types)]

mod panic;

// In the order the header lists them (cbindgen follows the source order).
mod result;

mod options;

mod log;

mod server;

mod held;

mod request;

use std::ffi::c_char;

pub use log::*;
pub use options::*;
pub use request::*;
pub use result::*;
pub use server::{
    fcgi_server, fcgi_server_accept, fcgi_server_close, fcgi_server_exit_code, fcgi_server_open, fcgi_server_shutdown,
    fcgi_server_stats,
};

/// The library version, "MAJOR.MINOR.PATCH": a static string, never NULL; do not free it.
#[no_mangle]
pub extern "C" fn fcgi_version() -> *const c_char {
    const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    panic::ffi_boundary!(VERSION.as_ptr().cast(), { VERSION.as_ptr().cast() })
}
