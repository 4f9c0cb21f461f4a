//! `FCGX_Request` and the calls on it: set-up, accept, finish, params; the single-threaded
//! `FCGX_Accept`/`FCGX_Finish` over a slot of ours; and the process-wide calls (`FCGX_IsCGI`,
//! `FCGX_Init`, `FCGX_OpenSocket`, `FCGX_ShutdownPending`).

use std::collections::HashSet;
use std::ffi::{c_char, c_int, c_ulonglong, CStr};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use fcgi_core::runtime::listener;
use fcgi_core::runtime::logging::{self, Level};
use fcgi_core::{Output, Params, Role};

use crate::panic::boundary;
use crate::server;
use crate::socket;
use crate::stream::{self, lock, Held, Live, StreamState, ERR_BUFFER, OUT_BUFFER};
use crate::types::*;

/// What the library keeps for a request slot (`FCGX_Request.paramsPtr`): the request,
/// the three streams, and the params as an environment. Made at the slot's first accept,
/// reused for every request after, freed by `FCGX_Free`.
pub(crate) struct Slot {
    held: Held,
    /// in, out, err.
    streams: [NonNull<FCGX_Stream>; 3],
    /// "NAME=value\0" strings, and the pointers into them, NULL-terminated.
    env: Vec<u8>,
    envp: Vec<*mut c_char>,
}

impl Slot {
    fn new() -> Box<Self> {
        let held: Held = Arc::new(Mutex::new(None));
        let streams = [
            stream::new_stream(StreamState::reader(held.clone())),
            stream::new_stream(StreamState::writer(held.clone(), Output::Stdout, OUT_BUFFER)),
            stream::new_stream(StreamState::writer(held.clone(), Output::Stderr, ERR_BUFFER)),
        ];
        Box::new(Self { held, streams, env: Vec::new(), envp: Vec::new() })
    }

    /// Takes `accepted` and fills the program's view of it into `request`.
    fn begin(&mut self, accepted: fcgi_core::Request<'static>, request: &mut FCGX_Request) {
        let mut live = Live::new(accepted);
        let role = match live.request().role() {
            Role::Authorizer => FCGI_AUTHORIZER,
            Role::Filter => FCGI_FILTER,
            // The core answers unknown roles with UNKNOWN_ROLE before handing anything out.
            Role::Responder | Role::Unknown(_) => FCGI_RESPONDER,
        };
        self.build_env(live.request().params());
        for stream in self.streams {
            // SAFETY: the slot's own streams, used by this thread only (the crate's contract).
            unsafe { stream::reset(stream) };
        }
        *lock(&self.held) = Some(live);
        request.requestId = 1;
        request.role = role;
        request.in_ = self.streams[0].as_ptr();
        request.out = self.streams[1].as_ptr();
        request.err = self.streams[2].as_ptr();
        request.envp = self.envp.as_mut_ptr();
        request.ipcFd = -1;
        request.isBeginProcessed = 1;
        request.keepConnection = 0;
        request.appStatus = 0;
        request.nWriters = 2;
    }

    /// The params as "NAME=value" strings. A name sent twice is kept once, with the later value
    /// at its place (nginx sends a `fastcgi_param` set twice twice and means the later one).
    fn build_env(&mut self, params: &Params) {
        self.env.clear();
        self.envp.clear();
        let pairs: Vec<(&[u8], &[u8])> = params.iter().collect();
        let mut seen = HashSet::with_capacity(pairs.len());
        let mut keep = vec![false; pairs.len()];
        for (i, (name, _)) in pairs.iter().enumerate().rev() {
            keep[i] = seen.insert(*name);
        }
        let mut starts = Vec::with_capacity(pairs.len());
        for ((name, value), keep) in pairs.iter().zip(keep) {
            if keep {
                starts.push(self.env.len());
                self.env.extend_from_slice(name);
                self.env.push(b'=');
                self.env.extend_from_slice(value);
                self.env.push(0);
            }
        }
        let base = self.env.as_mut_ptr();
        self.envp.extend(starts.into_iter().map(|start| base.wrapping_add(start).cast::<c_char>()));
        self.envp.push(std::ptr::null_mut());
    }

    /// Ends the request the slot holds, if any: the buffered output goes out, then the request
    /// ends on the wire.
    fn finish(&mut self) {
        let Some(mut live) = lock(&self.held).take() else { return };
        for stream in [self.streams[1], self.streams[2]] {
            // SAFETY: the slot's own streams, used by this thread only (the crate's contract).
            unsafe { stream::flush_into(stream, &mut live) };
        }
        live.finish();
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.finish();
        for stream in self.streams {
            // SAFETY: the slot made these streams and frees them once, here.
            unsafe { stream::free_stream(stream) };
        }
    }
}

/// The slot state of `request`, made on first use.
fn slot_of(request: &mut FCGX_Request) -> &mut Slot {
    if request.paramsPtr.is_null() {
        request.paramsPtr = Box::into_raw(Slot::new()).cast();
    }
    // SAFETY: a non-NULL paramsPtr was set above or by an earlier accept on this slot (the
    // program clears it only through FCGX_InitRequest), and `request` is used by this thread
    // only.
    unsafe { &mut *request.paramsPtr.cast::<Slot>() }
}

fn finish(request: &mut FCGX_Request) {
    if !request.paramsPtr.is_null() {
        slot_of(request).finish();
    }
    request.in_ = std::ptr::null_mut();
    request.out = std::ptr::null_mut();
    request.err = std::ptr::null_mut();
    request.envp = std::ptr::null_mut();
}

fn accept(request: &mut FCGX_Request) -> c_int {
    finish(request);
    let server = match server::for_socket(request.listen_sock) {
        Ok(server) => server,
        Err(e) => return e.code(),
    };
    match server.accept(request.flags & FCGI_FAIL_ACCEPT_ON_INTR != 0) {
        Ok(accepted) => {
            // The slot is made or borrowed apart from `request` so both can be written.
            let slot = slot_of(request) as *mut Slot;
            // SAFETY: `slot` points to the Box owned through request.paramsPtr, a separate
            // allocation from `request`; nothing else uses it during this call.
            unsafe { (*slot).begin(accepted, request) };
            0
        }
        Err(e) => e.code(),
    }
}

/// Sets `errno`.
fn set_errno(errno: c_int) {
    // SAFETY: __errno_location returns this thread's errno, always valid to write.
    unsafe { *libc::__errno_location() = errno };
}

/// 1 if this process is a CGI program, 0 if it serves FastCGI.
#[no_mangle]
pub extern "C" fn FCGX_IsCGI() -> c_int {
    static ANSWER: AtomicI32 = AtomicI32::new(-1);
    boundary!(1, {
        let known = ANSWER.load(Ordering::SeqCst);
        if known >= 0 {
            return known;
        }
        let forced = std::env::var("FCGI_FORCE_CGI").is_ok_and(|v| !v.is_empty() && v != "0");
        let fastcgi = !forced && (listener::is_listening_socket(0) || listener::has_systemd_socket());
        let answer = c_int::from(!fastcgi);
        ANSWER.store(answer, Ordering::SeqCst);
        answer
    })
}

/// Prepares the library: nothing to do.
#[no_mangle]
pub extern "C" fn FCGX_Init() -> c_int {
    0
}

/// A listening socket at `path`, or -1 with errno set.
#[no_mangle]
pub unsafe extern "C" fn FCGX_OpenSocket(path: *const c_char, backlog: c_int) -> c_int {
    boundary!(-1, {
        if path.is_null() {
            set_errno(libc::EINVAL);
            return -1;
        }
        // SAFETY: a non-NULL `path` is NUL-terminated (the caller's contract).
        let text = unsafe { CStr::from_ptr(path) }.to_bytes();
        let opened = socket::parse(text).and_then(|address| socket::open(&address, backlog));
        match opened {
            Ok(fd) => {
                server::register_at_exit();
                fd
            }
            Err(e) => {
                logging::install_default(Level::Info);
                log::error!("FCGX_OpenSocket({}): {e}", String::from_utf8_lossy(text));
                set_errno(e.raw_os_error().unwrap_or(libc::EINVAL));
                -1
            }
        }
    })
}

/// Clears `request` and sets it up to accept on `sock`.
#[no_mangle]
pub unsafe extern "C" fn FCGX_InitRequest(request: *mut FCGX_Request, sock: c_int, flags: c_int) -> c_int {
    boundary!(-1, {
        if request.is_null() {
            return -1;
        }
        // SAFETY: a non-NULL `request` points to writable memory for an FCGX_Request (the
        // caller's contract), perhaps uninitialised: written without reading it.
        unsafe { request.write(FCGX_Request::new(sock, flags)) };
        0
    })
}

/// Finishes the slot's request, if any, and waits for the next.
#[no_mangle]
pub unsafe extern "C" fn FCGX_Accept_r(request: *mut FCGX_Request) -> c_int {
    boundary!(-libc::EIO, {
        // SAFETY: a non-NULL `request` is a slot set up by FCGX_InitRequest, used by this
        // thread only (the crate's contract).
        match unsafe { request.as_mut() } {
            Some(request) => accept(request),
            None => -libc::EINVAL,
        }
    })
}

/// Ends the slot's request, if any.
#[no_mangle]
pub unsafe extern "C" fn FCGX_Finish_r(request: *mut FCGX_Request) {
    boundary!((), {
        // SAFETY: as in FCGX_Accept_r.
        if let Some(request) = unsafe { request.as_mut() } {
            finish(request);
        }
    })
}

/// Finishes the slot's request and frees the library's state for it.
#[no_mangle]
pub unsafe extern "C" fn FCGX_Free(request: *mut FCGX_Request, close: c_int) {
    let _ = close;
    boundary!((), {
        // SAFETY: as in FCGX_Accept_r.
        let Some(request) = (unsafe { request.as_mut() }) else { return };
        finish(request);
        if !request.paramsPtr.is_null() {
            // SAFETY: paramsPtr came from Box::into_raw in slot_of and is freed once: it is
            // cleared right after.
            drop(unsafe { Box::from_raw(request.paramsPtr.cast::<Slot>()) });
            request.paramsPtr = std::ptr::null_mut();
        }
        request.ipcFd = -1;
    })
}

/// The slot of `FCGX_Accept`, on fd 0.
struct Global(Option<Box<FCGX_Request>>);

// SAFETY: the slot's raw pointers are the library's own state; the mutex makes one thread at a
// time use them.
unsafe impl Send for Global {}

static GLOBAL: Mutex<Global> = Mutex::new(Global(None));

/// The single-threaded accept on fd 0.
#[no_mangle]
pub unsafe extern "C" fn FCGX_Accept(
    in_: *mut *mut FCGX_Stream,
    out: *mut *mut FCGX_Stream,
    err: *mut *mut FCGX_Stream,
    envp: *mut *mut *mut c_char,
) -> c_int {
    boundary!(-libc::EIO, {
        let mut global = GLOBAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let request = global.0.get_or_insert_with(|| Box::new(FCGX_Request::new(0, 0)));
        let rc = accept(request);
        // SAFETY: each non-NULL out-parameter points to writable memory of its type.
        unsafe {
            if let Some(in_) = in_.as_mut() {
                *in_ = request.in_;
            }
            if let Some(out) = out.as_mut() {
                *out = request.out;
            }
            if let Some(err) = err.as_mut() {
                *err = request.err;
            }
            if let Some(envp) = envp.as_mut() {
                *envp = request.envp;
            }
        }
        rc
    })
}

/// Finishes the request of `FCGX_Accept`.
#[no_mangle]
pub extern "C" fn FCGX_Finish() {
    boundary!((), {
        let mut global = GLOBAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(request) = global.0.as_mut() {
            finish(request);
        }
    })
}

/// At exit: finishes the request of `FCGX_Accept` unless another thread is inside it.
pub(crate) fn finish_global_at_exit() {
    if let Ok(mut global) = GLOBAL.try_lock() {
        if let Some(request) = global.0.as_mut() {
            finish(request);
        }
    }
}

/// The value of `name` in `envp`.
#[no_mangle]
pub unsafe extern "C" fn FCGX_GetParam(name: *const c_char, envp: *mut *mut c_char) -> *mut c_char {
    boundary!(std::ptr::null_mut(), {
        if name.is_null() || envp.is_null() {
            return std::ptr::null_mut();
        }
        // SAFETY: `name` is NUL-terminated (the caller's contract).
        let name = unsafe { CStr::from_ptr(name) }.to_bytes();
        let mut entry = envp;
        // SAFETY: `envp` is a NULL-terminated array of NUL-terminated strings (the caller's
        // contract); the walk stops at the NULL.
        unsafe {
            while let Some(&string) = entry.as_ref().filter(|s| !s.is_null()) {
                let bytes = CStr::from_ptr(string).to_bytes();
                if bytes.len() > name.len() && bytes.starts_with(name) && bytes[name.len()] == b'=' {
                    return string.add(name.len() + 1);
                }
                entry = entry.add(1);
            }
        }
        std::ptr::null_mut()
    })
}

/// Stops the server gracefully. Async-signal-safe.
#[no_mangle]
pub extern "C" fn FCGX_ShutdownPending() {
    boundary!((), { server::shutdown_pending() })
}

/// Nothing to attach: 0.
#[no_mangle]
pub unsafe extern "C" fn FCGX_Attach(request: *mut FCGX_Request) -> c_int {
    boundary!(-1, {
        // SAFETY: as in FCGX_Accept_r.
        if let Some(request) = unsafe { request.as_mut() } {
            request.detached = 0;
        }
        0
    })
}

/// A request's connection belongs to the library's threads: it cannot be detached.
#[no_mangle]
pub unsafe extern "C" fn FCGX_Detach(request: *mut FCGX_Request) -> c_int {
    let _ = request;
    -1
}

/// The server's counters (an fcgi-compat extension).
#[no_mangle]
pub unsafe extern "C" fn FCGX_CompatStats(connections: *mut c_ulonglong, requests: *mut c_ulonglong) -> c_int {
    boundary!(-1, {
        let stats = server::stats();
        let (c, r) = stats.unwrap_or((0, 0));
        // SAFETY: each non-NULL out-parameter points to a writable unsigned long long.
        unsafe {
            if let Some(connections) = connections.as_mut() {
                *connections = c;
            }
            if let Some(requests) = requests.as_mut() {
                *requests = r;
            }
        }
        if stats.is_some() {
            0
        } else {
            -1
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_keeps_the_later_of_a_repeated_name() {
        let params = Params::from_pairs([
            (&b"SCRIPT_NAME"[..], &b"/app"[..]),
            (b"PATH_INFO", b"/old"),
            (b"HTTP_HOST", b"example.org"),
            (b"PATH_INFO", b"/new"),
        ]);
        let mut slot = Slot::new();
        slot.build_env(&params);
        let strings: Vec<String> = slot
            .envp
            .iter()
            .take_while(|p| !p.is_null())
            // SAFETY: the pointers point into slot.env at NUL-terminated strings.
            .map(|p| unsafe { CStr::from_ptr(*p) }.to_string_lossy().into_owned())
            .collect();
        assert_eq!(strings, ["SCRIPT_NAME=/app", "HTTP_HOST=example.org", "PATH_INFO=/new"]);
        // SAFETY: a NULL-terminated environment built above, and NUL-terminated names.
        unsafe {
            let value = FCGX_GetParam(c"PATH_INFO".as_ptr(), slot.envp.as_mut_ptr());
            assert_eq!(CStr::from_ptr(value).to_bytes(), b"/new");
            assert!(FCGX_GetParam(c"PATH".as_ptr(), slot.envp.as_mut_ptr()).is_null());
            assert!(FCGX_GetParam(c"HTTP_HOS".as_ptr(), slot.envp.as_mut_ptr()).is_null());
            assert!(FCGX_GetParam(c"X".as_ptr(), std::ptr::null_mut()).is_null());
        }
    }

    #[test]
    fn a_slot_without_a_request_is_a_sequence_error() {
        let mut request = FCGX_Request::new(0, 0);
        let slot = slot_of(&mut request) as *mut Slot;
        // SAFETY: the slot and its streams were just made; FCGX_Free frees them once.
        unsafe {
            let input = (*slot).streams[0].as_ptr();
            assert_eq!(crate::FCGX_GetChar(input), EOF);
            assert_eq!(crate::FCGX_GetError(input), FCGX_CALL_SEQ_ERROR);
            let out = (*slot).streams[1].as_ptr();
            assert_eq!(crate::FCGX_PutStr(b"abc".as_ptr().cast(), 3, out), 3, "buffered");
            assert_eq!(crate::FCGX_FFlush(out), -1);
            assert_eq!(crate::FCGX_GetError(out), FCGX_CALL_SEQ_ERROR);
            FCGX_Free(&mut request, 1);
        }
        assert!(request.paramsPtr.is_null());
    }
}
