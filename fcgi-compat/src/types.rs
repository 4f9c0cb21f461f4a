//! The C structs of fcgiapp.h, laid out exactly as the header declares them (the tests compare
//! both layouts), and libfcgi's constants.

use std::ffi::{c_char, c_int, c_void};

/// `FCGX_GetError` codes (negative; positive values are errno values).
pub const FCGX_UNSUPPORTED_VERSION: c_int = -2;
pub const FCGX_PROTOCOL_ERROR: c_int = -3;
pub const FCGX_PARAMS_ERROR: c_int = -4;
pub const FCGX_CALL_SEQ_ERROR: c_int = -5;

/// `FCGX_InitRequest` flag: a signal interrupts `FCGX_Accept_r` (-EINTR).
pub const FCGI_FAIL_ACCEPT_ON_INTR: c_int = 1;

/// The end of a stream.
pub const EOF: c_int = -1;

/// `FCGX_Request.role` values.
pub const FCGI_RESPONDER: c_int = 1;
pub const FCGI_AUTHORIZER: c_int = 2;
pub const FCGI_FILTER: c_int = 3;

/// A stream of a request, or a raw writer. Allocated and freed by the library only; `data`
/// points to the Rust state (`stream::StreamState`). The buffer pointers stay NULL.
#[repr(C)]
pub struct FCGX_Stream {
    pub rdNext: *mut u8,
    pub wrNext: *mut u8,
    pub stop: *mut u8,
    pub stopUnget: *mut u8,
    pub isReader: c_int,
    pub isClosed: c_int,
    pub wasFCloseCalled: c_int,
    pub FCGI_errno: c_int,
    pub fillBuffProc: Option<unsafe extern "C" fn(*mut FCGX_Stream)>,
    pub emptyBuffProc: Option<unsafe extern "C" fn(*mut FCGX_Stream, c_int)>,
    pub data: *mut c_void,
}

/// A request slot, allocated by the program. `paramsPtr` holds the library's state for the
/// slot (`request::Slot`), NULL until the first accept and after `FCGX_Free`.
#[repr(C)]
pub struct FCGX_Request {
    pub requestId: c_int,
    pub role: c_int,
    pub in_: *mut FCGX_Stream,
    pub out: *mut FCGX_Stream,
    pub err: *mut FCGX_Stream,
    pub envp: *mut *mut c_char,
    pub paramsPtr: *mut c_void,
    pub ipcFd: c_int,
    pub isBeginProcessed: c_int,
    pub keepConnection: c_int,
    pub appStatus: c_int,
    pub nWriters: c_int,
    pub flags: c_int,
    pub listen_sock: c_int,
    pub detached: c_int,
}

impl FCGX_Request {
    /// A cleared slot for `sock`, as `FCGX_InitRequest` leaves it.
    pub fn new(sock: c_int, flags: c_int) -> Self {
        Self {
            requestId: 0,
            role: 0,
            in_: std::ptr::null_mut(),
            out: std::ptr::null_mut(),
            err: std::ptr::null_mut(),
            envp: std::ptr::null_mut(),
            paramsPtr: std::ptr::null_mut(),
            ipcFd: -1,
            isBeginProcessed: 0,
            keepConnection: 0,
            appStatus: 0,
            nWriters: 0,
            flags,
            listen_sock: sock,
            detached: 0,
        }
    }
}

/// `(struct, field, offset)` for each field named, then `(struct, "", size)`.
macro_rules! layout_of {
    ($ty:ident { $($field:ident $(as $c_name:literal)?),* $(,)? }) => {
        [
            $((stringify!($ty), layout_of!(@name $field $($c_name)?), std::mem::offset_of!($ty, $field)),)*
            (stringify!($ty), "", std::mem::size_of::<$ty>()),
        ]
    };
    (@name $field:ident) => { stringify!($field) };
    (@name $field:ident $c_name:literal) => { $c_name };
}

/// The offsets and sizes the C side must agree with: `(name, offset)` of every field, then
/// the struct's size, for a test that compiles the same table in C.
pub fn layout() -> Vec<(&'static str, &'static str, usize)> {
    let stream = layout_of!(FCGX_Stream {
        rdNext,
        isReader,
        isClosed,
        wasFCloseCalled,
        FCGI_errno,
        fillBuffProc,
        emptyBuffProc,
        data
    });
    let request = layout_of!(FCGX_Request {
        requestId, role, in_ as "in", out, err, envp, paramsPtr, ipcFd, keepConnection, appStatus,
        flags, listen_sock, detached
    });
    stream.into_iter().chain(request).collect()
}
