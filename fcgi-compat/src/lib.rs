//! A drop-in for libfcgi: `include/compat/fcgiapp.h`, `fcgi_stdio.h` and `fastcgi.h` over
//! `fcgi-core`. A program written for libfcgi compiles against those headers unchanged and
//! links with `-lfcgi_compat` instead of `-lfcgi`.
//!
//! - [`server`]: the process's server. The first `FCGX_Accept_r` starts the core's
//!   `Acceptor` (the pull model of `fcgi-capi`); each accepting C thread takes its next request
//!   itself, with a wait that a signal can interrupt, as `FCGI_FAIL_ACCEPT_ON_INTR` wants.
//! - [`request`]: `FCGX_Request` and the calls on it (accept, finish, params).
//! - [`stream`]: `FCGX_Stream`: bounded buffers over the request's reads and writes, and
//!   the raw record writer of `FCGX_CreateWriter`.
//! - [`socket`]: `FCGX_OpenSocket` (libfcgi's address syntax, plus IPv6) and what a process
//!   created, to remove at the end.
//! - [`config`]: the `FCGI_COMPAT_*` environment knobs libfcgi has no API for.
//! - `src/c/`: the variadic printf pair and the `fcgi_stdio.h` layer, in C (see build.rs).
//!
//! Everything that touches the protocol is the core's: this crate never parses a record.
//!
//! # Safety
//!
//! The exports are `unsafe extern "C"` functions with libfcgi's contract, stated once here:
//! every pointer argument is NULL or valid for its documented use (a request slot set up by
//! `FCGX_InitRequest`, a stream the library handed out and has not freed, a buffer of the
//! stated length, a NUL-terminated string), and a request slot and its streams are used by one
//! thread at a time. NULL is an error return, never a crash; a panic inside is caught at the
//! export and becomes the function's error return.

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
// The one safety contract is the crate-level section above (and the header's docs).
#![allow(clippy::missing_safety_doc)]
// libfcgi's names: FCGX_Request, FCGX_Accept_r, requestId, FCGI_errno.
#![allow(non_camel_case_types, non_snake_case)]

mod panic;

pub mod config;
pub mod request;
pub mod server;
pub mod socket;
pub mod stream;
pub mod types;

pub use request::*;
pub use stream::*;
pub use types::{FCGX_Request, FCGX_Stream};
