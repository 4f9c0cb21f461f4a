//! `fcgi_request`: one request held by C, until `fcgi_request_finish`.

use std::ffi::{c_char, c_void, CStr, CString};
use std::io;
use std::sync::Arc;

use fcgi_core::{Input, Params, Request, Role};

use crate::fcgi_result::{self, *};
use crate::held::{Held, Slot};
use crate::panic::{ffi_boundary, try_mut, try_ref};

/// A FastCGI role, as the web server asked for it.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum fcgi_role {
    /// Produce a response (CGI/1.1). Always the role in CGI mode.
    FCGI_ROLE_RESPONDER = 1,
    /// Allow (200) or deny a request; `Variable-NAME: value` headers pass on to the next stage.
    FCGI_ROLE_AUTHORIZER = 2,
    /// Produce a response from stdin and the file on the data stream (`fcgi_request_read_data`).
    FCGI_ROLE_FILTER = 3,
}

/// One request. Returned by `fcgi_server_accept`; freed by `fcgi_request_finish`, exactly
/// once, on any thread, and by nothing else: not even `fcgi_server_close`, so a handle stays
/// valid until it is finished, whatever happens to the server. It may move between threads but
/// is used by one thread at a time. Pointers it hands out (param names and values) stay valid
/// until it is finished.
///
/// If the server is closed while the request is held, close waits for it to be finished (up
/// to 30 s); past that, close ends the request itself (the web server gets what was written,
/// or a 500 page, and END_REQUEST) and the handle becomes a tombstone: its calls return
/// FCGI_ERR_CLOSED, and `fcgi_request_finish` frees it (returning FCGI_ERR_CLOSED too).
pub struct fcgi_request {
    /// Where the request lives between calls, shared with the server so that close can end it.
    slot: Arc<Slot>,
    /// The server's registry of held requests, shared (it outlives the server if need be).
    held: Arc<Held>,
    role: Role,
    /// The request's params, sharing its buffer: the pointers handed out point here, so they
    /// stay valid until finish even if close ends the request first.
    params: Params,
    /// `fcgi_request_param_at`'s table, built on first use: (name, name len, value, value len).
    index: Option<Vec<(*const u8, usize, *const u8, usize)>>,
    /// C strings made by `fcgi_request_param_str`, by name.
    strings: Vec<(Vec<u8>, CString)>,
    /// The first error a read or write met, passed to the core at finish.
    error: Option<io::Error>,
}

impl fcgi_request {
    /// Lends `request` to the program, through `held`.
    pub(crate) fn lend(request: Request<'static>, held: &Arc<Held>) -> Self {
        let (role, params) = (request.role(), request.params().clone());
        let slot = held.lend(request);
        Self { slot, held: held.clone(), role, params, index: None, strings: Vec::new(), error: None }
    }

    /// Records the first error for the core and gives its code.
    fn fail(&mut self, error: io::Error) -> fcgi_result {
        let code = fcgi_result::from_io(&error);
        self.error.get_or_insert(error);
        code
    }

    /// Runs `call` on the request: FCGI_ERR_CLOSED if close has ended it. An I/O error is
    /// recorded for finish and turned into its code.
    fn with(&mut self, call: impl FnOnce(&mut Request<'static>) -> io::Result<fcgi_result>) -> fcgi_result {
        let outcome = match self.slot.borrow() {
            Ok(mut request) => call(&mut request),
            Err(code) => return code,
        };
        outcome.unwrap_or_else(|e| self.fail(e))
    }

    /// Ends the request on the wire (the first error met decides the error page, if nothing
    /// was written), then gives it back to the server, whose close may be waiting for it (so
    /// that END_REQUEST is out before close returns and the program exits):
    /// FCGI_ERR_CLOSED if close ended it first.
    fn finish(mut self) -> fcgi_result {
        let code = match self.slot.take() {
            Some(request) => {
                let outcome = self.error.take().map_or(Ok(()), Err);
                request.finish(outcome);
                FCGI_OK
            }
            None => FCGI_ERR_CLOSED,
        };
        self.held.give_back(&self.slot);
        code
    }

    fn read(&mut self, input: Input, buf: *mut c_void, cap: usize, n: *mut usize) -> fcgi_result {
        let n = try_mut!(n);
        *n = 0;
        if self.slot.is_closed() {
            return FCGI_ERR_CLOSED;
        }
        // Only a Filter gets a data stream: waiting for one on another role would block until
        // the web server gave up.
        if cap == 0 || (input == Input::Data && self.role != Role::Filter) {
            return FCGI_OK;
        }
        if buf.is_null() {
            return FCGI_ERR_NULL;
        }
        // SAFETY: `buf` is non-NULL and points to `cap` writable bytes that nothing else uses
        // during the call (the caller's contract).
        let buf = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), cap) };
        self.with(|request| {
            *n = request.read_into(input, buf)?;
            Ok(FCGI_OK)
        })
    }

    fn write(&mut self, stderr: bool, buf: *const c_void, len: usize) -> fcgi_result {
        if self.slot.is_closed() {
            return FCGI_ERR_CLOSED;
        }
        if len == 0 {
            return FCGI_OK;
        }
        if buf.is_null() {
            return FCGI_ERR_NULL;
        }
        // SAFETY: `buf` is non-NULL and points to `len` readable bytes (the caller's contract).
        let data = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) };
        self.with(|request| {
            if stderr {
                request.write_stderr(data)?;
            } else {
                request.write_stdout(data)?;
            }
            Ok(FCGI_OK)
        })
    }
}

/// `name` as bytes: NULL is `FCGI_ERR_NULL`.
///
/// # Safety
/// A non-NULL `name` is a NUL-terminated string that lives through the call.
unsafe fn name_bytes<'a>(name: *const c_char) -> Result<&'a [u8], fcgi_result> {
    if name.is_null() {
        return Err(FCGI_ERR_NULL);
    }
    // SAFETY: non-NULL and NUL-terminated (this function's contract).
    Ok(unsafe { CStr::from_ptr(name) }.to_bytes())
}

/// The bytes of the param name `name` for a lookup on `request`: FCGI_ERR_NULL or
/// FCGI_ERR_INVALID_ARG for a bad name, FCGI_ERR_CLOSED once close has ended the request.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string that outlives the returned slice.
unsafe fn param_name<'n>(request: &fcgi_request, name: *const c_char) -> Result<&'n [u8], fcgi_result> {
    // SAFETY: the caller's contract, passed on.
    let name = unsafe { name_bytes(name) }?;
    if request.slot.is_closed() {
        return Err(FCGI_ERR_CLOSED);
    }
    Ok(name)
}

/// The role the web server asked for.
#[no_mangle]
pub unsafe extern "C" fn fcgi_request_role(request: *const fcgi_request, out: *mut fcgi_role) -> fcgi_result {
    ffi_boundary!({
        let request = try_ref!(request);
        let out = try_mut!(out);
        if request.slot.is_closed() {
            return FCGI_ERR_CLOSED;
        }
        *out = match request.role {
            Role::Responder => fcgi_role::FCGI_ROLE_RESPONDER,
            Role::Authorizer => fcgi_role::FCGI_ROLE_AUTHORIZER,
            Role::Filter => fcgi_role::FCGI_ROLE_FILTER,
            // The core refuses unknown roles with UNKNOWN_ROLE before any handler runs.
            Role::Unknown(_) => return FCGI_ERR_PROTOCOL,
        };
        FCGI_OK
    })
}

/// The value of param `name` (a CGI variable: "REQUEST_URI", "HTTP_HOST", ...): `*value`
/// points to `*len` bytes, not NUL-terminated, valid until the request is finished.
/// FCGI_ERR_NOT_FOUND (and `*value` NULL, `*len` 0) if there is none.
#[no_mangle]
pub unsafe extern "C" fn fcgi_request_param(
    request: *const fcgi_request,
    name: *const c_char,
    value: *mut *const c_char,
    len: *mut usize,
) -> fcgi_result {
    ffi_boundary!({
        let request = try_ref!(request);
        let value = try_mut!(value);
        let len = try_mut!(len);
        *value = std::ptr::null();
        *len = 0;
        // SAFETY: `name` is NULL or a NUL-terminated string (the caller's contract).
        let name = match unsafe { param_name(request, name) } {
            Ok(name) => name,
            Err(code) => return code,
        };
        match request.params.get(name) {
            Some(found) => {
                *value = found.as_ptr().cast();
                *len = found.len();
                FCGI_OK
            }
            None => FCGI_ERR_NOT_FOUND,
        }
    })
}

/// The value of param `name` as a NUL-terminated string, owned by the request and valid until
/// it is finished (the libfcgi `FCGX_GetParam` habit). FCGI_ERR_NOT_FOUND (`*value` NULL) if
/// there is none; FCGI_ERR_NOT_A_STRING if the value holds a NUL byte.
#[no_mangle]
pub unsafe extern "C" fn fcgi_request_param_str(
    request: *mut fcgi_request,
    name: *const c_char,
    value: *mut *const c_char,
) -> fcgi_result {
    ffi_boundary!({
        let request = try_mut!(request);
        let value = try_mut!(value);
        *value = std::ptr::null();
        // SAFETY: `name` is NULL or a NUL-terminated string (the caller's contract).
        let name = match unsafe { param_name(request, name) } {
            Ok(name) => name,
            Err(code) => return code,
        };
        let params = &request.params;
        if let Some((_, string)) = request.strings.iter().find(|(n, _)| n == name) {
            *value = string.as_ptr();
            return FCGI_OK;
        }
        let Some(found) = params.get(name) else { return FCGI_ERR_NOT_FOUND };
        let Ok(string) = CString::new(found) else { return FCGI_ERR_NOT_A_STRING };
        *value = string.as_ptr();
        request.strings.push((name.to_vec(), string));
        FCGI_OK
    })
}

/// How many params the request has.
#[no_mangle]
pub unsafe extern "C" fn fcgi_request_param_count(request: *const fcgi_request, out: *mut usize) -> fcgi_result {
    ffi_boundary!({
        let request = try_ref!(request);
        let out = try_mut!(out);
        *out = 0;
        if request.slot.is_closed() {
            return FCGI_ERR_CLOSED;
        }
        *out = request.params.len();
        FCGI_OK
    })
}

/// Param number `index` (0-based, in the order the web server sent them): name and value as
/// bytes with their lengths, not NUL-terminated, valid until the request is finished.
/// FCGI_ERR_NOT_FOUND past the last one.
#[no_mangle]
pub unsafe extern "C" fn fcgi_request_param_at(
    request: *mut fcgi_request,
    index: usize,
    name: *mut *const c_char,
    name_len: *mut usize,
    value: *mut *const c_char,
    value_len: *mut usize,
) -> fcgi_result {
    ffi_boundary!({
        let request = try_mut!(request);
        let (name, name_len) = (try_mut!(name), try_mut!(name_len));
        let (value, value_len) = (try_mut!(value), try_mut!(value_len));
        *name = std::ptr::null();
        *value = std::ptr::null();
        (*name_len, *value_len) = (0, 0);
        if request.slot.is_closed() {
            return FCGI_ERR_CLOSED;
        }
        let params = &request.params;
        if request.index.is_none() {
            let table = params.iter().map(|(n, v)| (n.as_ptr(), n.len(), v.as_ptr(), v.len())).collect();
            request.index = Some(table);
        }
        let Some(&(n, nl, v, vl)) = request.index.as_ref().and_then(|table| table.get(index)) else {
            return FCGI_ERR_NOT_FOUND;
        };
        (*name, *name_len, *value, *value_len) = (n.cast(), nl, v.cast(), vl);
        FCGI_OK
    })
}

/// Reads up to `cap` bytes of the request body (stdin) into `buf`; `*n` gets the count, 0 at
/// the end of the body. Blocks until some bytes arrive. Never reads past the body, whatever
/// CONTENT_LENGTH says. FCGI_ERR_ABORTED if the web server abandoned the request;
/// FCGI_ERR_TOO_LARGE past the `max_body_bytes` option.
#[no_mangle]
pub unsafe extern "C" fn fcgi_request_read(
    request: *mut fcgi_request,
    buf: *mut c_void,
    cap: usize,
    n: *mut usize,
) -> fcgi_result {
    ffi_boundary!({ try_mut!(request).read(Input::Stdin, buf, cap, n) })
}

/// As `fcgi_request_read`, from the Filter role's data stream (the file to filter, after
/// stdin). Other roles have no data stream: `*n` is 0 at once.
#[no_mangle]
pub unsafe extern "C" fn fcgi_request_read_data(
    request: *mut fcgi_request,
    buf: *mut c_void,
    cap: usize,
    n: *mut usize,
) -> fcgi_result {
    ffi_boundary!({ try_mut!(request).read(Input::Data, buf, cap, n) })
}

/// Writes `len` bytes of the response (CGI headers, a blank line, then the body) to stdout.
/// Small writes are buffered and coalesced into records; large ones go out without a copy.
/// All or nothing: FCGI_OK means every byte was taken. FCGI_ERR_ABORTED if the web server
/// abandoned the request.
#[no_mangle]
pub unsafe extern "C" fn fcgi_request_write(request: *mut fcgi_request, buf: *const c_void, len: usize) -> fcgi_result {
    ffi_boundary!({ try_mut!(request).write(false, buf, len) })
}

/// Writes `len` bytes to the web server's error log (FCGI_STDERR; stderr in CGI mode).
#[no_mangle]
pub unsafe extern "C" fn fcgi_request_write_stderr(
    request: *mut fcgi_request,
    buf: *const c_void,
    len: usize,
) -> fcgi_result {
    ffi_boundary!({ try_mut!(request).write(true, buf, len) })
}

/// Sends the buffered output now (a streamed response wants its first bytes out).
#[no_mangle]
pub unsafe extern "C" fn fcgi_request_flush(request: *mut fcgi_request) -> fcgi_result {
    ffi_boundary!({
        try_mut!(request).with(|request| {
            request.flush()?;
            Ok(FCGI_OK)
        })
    })
}

/// Sets the application status sent in END_REQUEST (the exit status of a CGI program; 0
/// unless set).
#[no_mangle]
pub unsafe extern "C" fn fcgi_request_set_status(request: *mut fcgi_request, status: u32) -> fcgi_result {
    ffi_boundary!({
        try_mut!(request).with(|request| {
            request.set_app_status(status);
            Ok(FCGI_OK)
        })
    })
}

/// Whether the web server abandoned the request (FCGI_ABORT_REQUEST or a closed connection):
/// a long-running request checks it and stops early. Never blocks.
#[no_mangle]
pub unsafe extern "C" fn fcgi_request_is_aborted(request: *mut fcgi_request, out: *mut bool) -> fcgi_result {
    ffi_boundary!({
        let request = try_mut!(request);
        let out = try_mut!(out);
        request.with(|request| {
            *out = request.is_aborted();
            Ok(FCGI_OK)
        })
    })
}

/// Ends the request and frees the handle: the remaining output is sent, then END_REQUEST.
/// Call it exactly once per accepted request, from any thread, even after `fcgi_server_close`;
/// the handle (and every pointer it gave out) is invalid afterwards. If a read or write failed
/// and nothing was written, the web server gets a 500 page and the error is logged.
/// FCGI_ERR_CLOSED (the handle freed all the same) if `fcgi_server_close` had ended the
/// request already.
#[no_mangle]
pub unsafe extern "C" fn fcgi_request_finish(request: *mut fcgi_request) -> fcgi_result {
    ffi_boundary!({
        if request.is_null() {
            return FCGI_ERR_NULL;
        }
        // SAFETY: a non-NULL `request` came from Box::into_raw in fcgi_server_accept and is
        // finished once, by this call (the caller's contract); nothing else frees it.
        let handle = unsafe { Box::from_raw(request) };
        handle.finish()
    })
}
