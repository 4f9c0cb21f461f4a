//! One result enum for every fallible call, and its text.

use std::ffi::{c_char, c_int};
use std::io;

use fcgi_core::ErrorKind;

use crate::panic::ffi_boundary;

/// What a call did. Every fallible function returns one; outputs go through out-parameters.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum fcgi_result {
    /// Success.
    FCGI_OK = 0,
    /// A required pointer argument was NULL.
    FCGI_ERR_NULL = 1,
    /// An argument was out of range or malformed (a bind address that does not parse, a zero
    /// limit, a name that is not UTF-8).
    FCGI_ERR_INVALID_ARG = 2,
    /// An I/O error: the server could not start (see its log line on stderr), or a read or
    /// write on the web server's connection failed.
    FCGI_ERR_IO = 3,
    /// The web server abandoned the request (FCGI_ABORT_REQUEST, or it closed the connection).
    /// Stop working on it and call `fcgi_request_finish`.
    FCGI_ERR_ABORTED = 4,
    /// The server is stopping and holds no more requests: leave the accept loop.
    FCGI_ERR_STOPPED = 5,
    /// The library panicked (a bug); the call did nothing more.
    FCGI_ERR_PANIC = 6,
    /// No param of that name, or no param at that index.
    FCGI_ERR_NOT_FOUND = 7,
    /// The web server sent nothing, or read nothing, within the configured timeout.
    FCGI_ERR_TIMEOUT = 8,
    /// The web server broke the FastCGI protocol on this connection.
    FCGI_ERR_PROTOCOL = 9,
    /// The param's value holds a NUL byte, so it has no C string form: use
    /// `fcgi_request_param`, which gives bytes and a length.
    FCGI_ERR_NOT_A_STRING = 10,
    /// The request body passed the `max_body_bytes` option.
    FCGI_ERR_TOO_LARGE = 11,
    /// `fcgi_server_close` ended this request while the program still held it (it waited for
    /// it first, up to its deadline): nothing more reaches the web server. Every call on the
    /// handle but `fcgi_request_finish` returns this; finish frees the handle and returns it
    /// too.
    FCGI_ERR_CLOSED = 12,
}

use fcgi_result::*;

impl fcgi_result {
    const ALL: [Self; 13] = [
        FCGI_OK,
        FCGI_ERR_NULL,
        FCGI_ERR_INVALID_ARG,
        FCGI_ERR_IO,
        FCGI_ERR_ABORTED,
        FCGI_ERR_STOPPED,
        FCGI_ERR_PANIC,
        FCGI_ERR_NOT_FOUND,
        FCGI_ERR_TIMEOUT,
        FCGI_ERR_PROTOCOL,
        FCGI_ERR_NOT_A_STRING,
        FCGI_ERR_TOO_LARGE,
        FCGI_ERR_CLOSED,
    ];

    /// The code for an I/O error from the core.
    pub(crate) fn from_io(e: &io::Error) -> Self {
        match ErrorKind::of(e) {
            ErrorKind::Aborted | ErrorKind::Disconnected => FCGI_ERR_ABORTED,
            ErrorKind::TimedOut | ErrorKind::RequestTimedOut => FCGI_ERR_TIMEOUT,
            ErrorKind::Protocol | ErrorKind::BodyTruncated => FCGI_ERR_PROTOCOL,
            ErrorKind::BodyTooLarge => FCGI_ERR_TOO_LARGE,
            ErrorKind::Io => FCGI_ERR_IO,
        }
    }

    /// The text of this code, NUL-terminated.
    fn text(self) -> &'static str {
        match self {
            FCGI_OK => "ok\0",
            FCGI_ERR_NULL => "a required pointer argument was NULL\0",
            FCGI_ERR_INVALID_ARG => "invalid argument\0",
            FCGI_ERR_IO => "I/O error\0",
            FCGI_ERR_ABORTED => "the web server aborted the request\0",
            FCGI_ERR_STOPPED => "the server is stopping and has no more requests\0",
            FCGI_ERR_PANIC => "internal error: the library panicked\0",
            FCGI_ERR_NOT_FOUND => "not found\0",
            FCGI_ERR_TIMEOUT => "timed out waiting for the web server\0",
            FCGI_ERR_PROTOCOL => "the web server broke the FastCGI protocol\0",
            FCGI_ERR_NOT_A_STRING => "the value holds a NUL byte and has no C string form\0",
            FCGI_ERR_TOO_LARGE => "the request body is larger than the configured limit\0",
            FCGI_ERR_CLOSED => "the server was closed while the request was held; only finish remains\0",
        }
    }
}

/// A result code as C hands it back: any `int` at all, checked before it is used, since an
/// out-of-range value in a Rust enum would be undefined behaviour. The header spells it
/// `fcgi_result` (cbindgen.toml renames it and leaves out its own definition).
#[repr(transparent)]
#[derive(Debug, Clone, Copy)]
pub struct ResultCode(pub c_int);

/// The text for `result`: a static NUL-terminated English sentence, never NULL (an unknown
/// code gives "unknown result code"). Do not free it.
#[no_mangle]
pub extern "C" fn fcgi_result_str(result: ResultCode) -> *const c_char {
    const UNKNOWN: &str = "unknown result code\0";
    ffi_boundary!(UNKNOWN.as_ptr().cast(), {
        let text = fcgi_result::ALL.iter().find(|r| **r as c_int == result.0).map_or(UNKNOWN, |r| r.text());
        text.as_ptr().cast()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_own_text() {
        for (i, code) in fcgi_result::ALL.iter().enumerate() {
            assert_eq!(*code as usize, i, "codes are dense and in order");
            assert!(code.text().ends_with('\0'));
        }
        // SAFETY: fcgi_result_str returns a static NUL-terminated string.
        let unknown = unsafe { std::ffi::CStr::from_ptr(fcgi_result_str(ResultCode(999))) };
        assert_eq!(unknown.to_str().unwrap(), "unknown result code");
    }
}
