//! `FCGX_Stream`: the byte streams of a request, and the raw record writer of
//! `FCGX_CreateWriter`.
//!
//! A request's streams read and write the `fcgi_core::Request` that their slot holds.
//! Each keeps one bounded buffer: 8 KiB of input, so that `FCGX_GetChar` is not a call into
//! the core per byte, and 8 KiB (out) or 1 KiB (err) of output, sent when it fills, on
//! `FCGX_FFlush`, or when the request is finished. Larger writes and reads bypass the buffer.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::BytesMut;
use fcgi_core::protocol::header::{RecordType, MAX_CONTENT_LEN};
use fcgi_core::protocol::record::{encode_record, encode_stream_end};
use fcgi_core::{ErrorKind, Input, Output, Request, Role};

use crate::panic::boundary;
use crate::types::*;

/// Input read ahead for the character functions.
const READ_BUFFER: usize = 8 << 10;
/// Output buffered on a request's out stream.
pub(crate) const OUT_BUFFER: usize = 8 << 10;
/// Output buffered on a request's err stream.
pub(crate) const ERR_BUFFER: usize = 1 << 10;

/// The request a slot holds, shared by the slot and its three streams: `None` between
/// requests.
pub(crate) type Held = Arc<Mutex<Option<Live>>>;

pub(crate) fn lock(held: &Held) -> MutexGuard<'_, Option<Live>> {
    held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The request a slot holds, from `FCGX_Accept_r` to `FCGX_Finish_r`.
pub(crate) struct Live {
    request: Request<'static>,
    /// The first I/O error met, handed to the core at the end.
    error: Option<io::Error>,
}

impl Live {
    pub(crate) fn new(request: Request<'static>) -> Self {
        Self { request, error: None }
    }

    pub(crate) fn request(&mut self) -> &mut Request<'static> {
        &mut self.request
    }

    /// Notes an I/O error (the first is kept for the core) and gives the stream's code.
    fn fail(&mut self, error: io::Error) -> c_int {
        let code = code_of(&error);
        self.error.get_or_insert(error);
        code
    }

    /// Ends the request on the wire: the first I/O error, if any, is logged and, if nothing
    /// was written, answered with the core's error page.
    pub(crate) fn finish(self) {
        self.request.finish(self.error.map_or(Ok(()), Err));
    }
}

/// The `FCGX_GetError` code for an I/O error from the core.
fn code_of(error: &io::Error) -> c_int {
    if let Some(errno) = error.raw_os_error() {
        return errno;
    }
    match ErrorKind::of(error) {
        ErrorKind::Aborted => libc::ECONNABORTED,
        ErrorKind::Disconnected if error.kind() == io::ErrorKind::BrokenPipe => libc::EPIPE,
        ErrorKind::Disconnected => libc::ECONNRESET,
        ErrorKind::TimedOut | ErrorKind::RequestTimedOut => libc::ETIMEDOUT,
        ErrorKind::Protocol | ErrorKind::BodyTruncated => FCGX_PROTOCOL_ERROR,
        ErrorKind::BodyTooLarge => libc::EFBIG,
        ErrorKind::Io => libc::EIO,
    }
}

/// The Rust side of a stream (`FCGX_Stream.data`).
pub(crate) struct StreamState {
    kind: Kind,
    /// A stream of a request slot, freed with the slot (not by `FCGX_FreeStream`).
    owned_by_slot: bool,
}

enum Kind {
    Reader(Reader),
    Writer(Writer),
    Raw(RawWriter),
}

struct Reader {
    held: Held,
    input: Input,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
}

struct Writer {
    held: Held,
    output: Output,
    buf: Vec<u8>,
    cap: usize,
}

/// `FCGX_CreateWriter`: records straight to a socket.
struct RawWriter {
    fd: RawFd,
    request_id: u16,
    record_type: RecordType,
    buf: Vec<u8>,
    cap: usize,
}

/// Allocates a stream around `state`.
pub(crate) fn new_stream(state: StreamState) -> NonNull<FCGX_Stream> {
    let is_reader = matches!(state.kind, Kind::Reader(_));
    let data = Box::into_raw(Box::new(state)).cast::<c_void>();
    let stream = FCGX_Stream {
        rdNext: std::ptr::null_mut(),
        wrNext: std::ptr::null_mut(),
        stop: std::ptr::null_mut(),
        stopUnget: std::ptr::null_mut(),
        isReader: c_int::from(is_reader),
        isClosed: 0,
        wasFCloseCalled: 0,
        FCGI_errno: 0,
        fillBuffProc: None,
        emptyBuffProc: None,
        data,
    };
    NonNull::from(Box::leak(Box::new(stream)))
}

/// Frees a stream made by `new_stream`.
///
/// # Safety
/// `stream` came from `new_stream`, is freed once, and nothing uses it afterwards.
pub(crate) unsafe fn free_stream(stream: NonNull<FCGX_Stream>) {
    // SAFETY: both boxes were leaked by `new_stream` and are freed once (this function's
    // contract).
    unsafe {
        let stream = Box::from_raw(stream.as_ptr());
        drop(Box::from_raw(stream.data.cast::<StreamState>()));
    }
}

impl StreamState {
    pub(crate) fn reader(held: Held) -> Self {
        let reader = Reader { held, input: Input::Stdin, buf: vec![0; READ_BUFFER].into(), pos: 0, len: 0 };
        Self { kind: Kind::Reader(reader), owned_by_slot: true }
    }

    pub(crate) fn writer(held: Held, output: Output, cap: usize) -> Self {
        Self { kind: Kind::Writer(Writer { held, output, buf: Vec::with_capacity(cap), cap }), owned_by_slot: true }
    }
}

/// A stream's C struct and its state, from a pointer C passed in.
///
/// # Safety
/// `stream` is NULL or a live stream of this library used by no other thread (the crate's
/// contract), and the two references are not held past the export's call.
unsafe fn parts<'a>(stream: *mut FCGX_Stream) -> Option<(&'a mut FCGX_Stream, &'a mut StreamState)> {
    // SAFETY: per this function's contract; `data` is the separate allocation made by
    // `new_stream`, so the two references do not overlap.
    unsafe {
        let stream = stream.as_mut()?;
        let state = stream.data.cast::<StreamState>().as_mut()?;
        Some((stream, state))
    }
}

/// Records an error on the C struct: the first code stays, and the stream is closed.
fn set_error(stream: &mut FCGX_Stream, code: c_int) {
    if stream.FCGI_errno == 0 {
        stream.FCGI_errno = code;
    }
    stream.isClosed = 1;
}

/// Resets a slot's stream for the next request.
///
/// # Safety
/// As `parts`.
pub(crate) unsafe fn reset(stream: NonNull<FCGX_Stream>) {
    // SAFETY: the caller's contract.
    let Some((c, state)) = (unsafe { parts(stream.as_ptr()) }) else { return };
    c.isClosed = 0;
    c.wasFCloseCalled = 0;
    c.FCGI_errno = 0;
    match &mut state.kind {
        Kind::Reader(r) => {
            c.isReader = 1;
            (r.input, r.pos, r.len) = (Input::Stdin, 0, 0);
        }
        Kind::Writer(w) => w.buf.clear(),
        Kind::Raw(_) => {}
    }
}

/// Sends what a slot's writer buffered into `live`, at the end of the request.
///
/// # Safety
/// As `parts`.
pub(crate) unsafe fn flush_into(stream: NonNull<FCGX_Stream>, live: &mut Live) {
    // SAFETY: the caller's contract.
    let Some((c, state)) = (unsafe { parts(stream.as_ptr()) }) else { return };
    if let Kind::Writer(w) = &mut state.kind {
        if let Err(code) = drain(&mut w.buf, w.output, live) {
            set_error(c, code);
        }
    }
}

impl Reader {
    /// Refills the buffer: `Ok(0)` at the end of the stream.
    fn fill(&mut self) -> Result<usize, c_int> {
        let mut held = lock(&self.held);
        let live = held.as_mut().ok_or(FCGX_CALL_SEQ_ERROR)?;
        match live.request().read_into(self.input, &mut self.buf) {
            Ok(n) => {
                (self.pos, self.len) = (0, n);
                Ok(n)
            }
            Err(e) => Err(live.fail(e)),
        }
    }

    /// Reads straight into `dst` (a read larger than the buffer).
    fn read_direct(&mut self, dst: &mut [u8]) -> Result<usize, c_int> {
        let mut held = lock(&self.held);
        let live = held.as_mut().ok_or(FCGX_CALL_SEQ_ERROR)?;
        live.request().read_into(self.input, dst).map_err(|e| live.fail(e))
    }
}

impl Writer {
    /// Sends `data` (and the buffer before it) to the request.
    fn send(&mut self, data: &[u8]) -> Result<(), c_int> {
        let Self { held, output, buf, .. } = self;
        let mut held = lock(held);
        let live = held.as_mut().ok_or(FCGX_CALL_SEQ_ERROR)?;
        drain(buf, *output, live)?;
        write(*output, live, data)
    }

    fn put(&mut self, data: &[u8]) -> Result<(), c_int> {
        if data.len() <= self.cap - self.buf.len() {
            self.buf.extend_from_slice(data);
            return Ok(());
        }
        if data.len() >= self.cap {
            return self.send(data);
        }
        self.send(&[])?;
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// Sends the buffer, and the core's buffer to the socket when `to_socket`.
    fn flush(&mut self, to_socket: bool) -> Result<(), c_int> {
        let Self { held, output, buf, .. } = self;
        let mut held = lock(held);
        let live = held.as_mut().ok_or(FCGX_CALL_SEQ_ERROR)?;
        drain(buf, *output, live)?;
        if to_socket {
            live.request().flush().map_err(|e| live.fail(e))?;
        }
        Ok(())
    }
}

fn write(output: Output, live: &mut Live, data: &[u8]) -> Result<(), c_int> {
    let request = live.request();
    let written = match output {
        Output::Stdout => request.write_stdout(data),
        Output::Stderr => request.write_stderr(data),
    };
    written.map_err(|e| live.fail(e))
}

/// Empties `buf` into the request.
fn drain(buf: &mut Vec<u8>, output: Output, live: &mut Live) -> Result<(), c_int> {
    if buf.is_empty() {
        return Ok(());
    }
    let written = write(output, live, buf);
    buf.clear();
    written
}

impl RawWriter {
    fn put(&mut self, data: &[u8]) -> Result<(), c_int> {
        for piece in data.chunks(self.cap) {
            if piece.len() > self.cap - self.buf.len() {
                self.flush()?;
            }
            self.buf.extend_from_slice(piece);
        }
        Ok(())
    }

    /// Sends the buffer as one record.
    fn flush(&mut self) -> Result<(), c_int> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut wire = BytesMut::new();
        encode_record(self.record_type, self.request_id, &self.buf, &mut wire);
        self.buf.clear();
        send_all(self.fd, &wire)
    }

    /// Sends the buffer and the record that ends the stream.
    fn close(&mut self) -> Result<(), c_int> {
        self.flush()?;
        let mut wire = BytesMut::new();
        encode_stream_end(self.record_type, self.request_id, &mut wire);
        send_all(self.fd, &wire)
    }
}

/// Writes all of `bytes` to `fd`; SIGPIPE is never raised (send(2) with MSG_NOSIGNAL on a
/// socket).
fn send_all(fd: RawFd, mut bytes: &[u8]) -> Result<(), c_int> {
    while !bytes.is_empty() {
        // SAFETY: send(2)/write(2) read at most `bytes.len()` bytes from a valid slice.
        let mut n = unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL) };
        if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOTSOCK) {
            // SAFETY: as above.
            n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        }
        if n < 0 {
            let errno = io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO);
            if errno == libc::EINTR {
                continue;
            }
            return Err(errno);
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

// The operations, on a stream's two halves.

fn get_char(c: &mut FCGX_Stream, state: &mut StreamState) -> c_int {
    let Kind::Reader(r) = &mut state.kind else { return EOF };
    if r.pos == r.len {
        if c.isClosed != 0 {
            return EOF;
        }
        match r.fill() {
            Ok(0) => {
                c.isClosed = 1;
                return EOF;
            }
            Ok(_) => {}
            Err(code) => {
                set_error(c, code);
                return EOF;
            }
        }
    }
    let byte = r.buf[r.pos];
    r.pos += 1;
    c_int::from(byte)
}

fn get_str(c: &mut FCGX_Stream, state: &mut StreamState, dst: &mut [u8]) -> usize {
    let Kind::Reader(r) = &mut state.kind else { return 0 };
    let mut done = 0;
    while done < dst.len() {
        if r.pos < r.len {
            let n = (r.len - r.pos).min(dst.len() - done);
            dst[done..done + n].copy_from_slice(&r.buf[r.pos..r.pos + n]);
            r.pos += n;
            done += n;
            continue;
        }
        if c.isClosed != 0 {
            break;
        }
        // A read as large as the buffer goes straight to `dst`; a smaller one refills it.
        let direct = dst.len() - done >= r.buf.len();
        let got = if direct { r.read_direct(&mut dst[done..]) } else { r.fill() };
        match got {
            Ok(0) => c.isClosed = 1,
            Ok(n) if direct => done += n,
            Ok(_) => {}
            Err(code) => set_error(c, code),
        }
    }
    done
}

fn put(c: &mut FCGX_Stream, state: &mut StreamState, data: &[u8]) -> Result<(), ()> {
    if c.isClosed != 0 || c.wasFCloseCalled != 0 {
        return Err(());
    }
    let done = match &mut state.kind {
        Kind::Reader(_) => return Err(()),
        Kind::Writer(w) => w.put(data),
        Kind::Raw(w) => w.put(data),
    };
    done.map_err(|code| set_error(c, code))
}

// The exports.

/// The next byte, or EOF.
#[no_mangle]
pub unsafe extern "C" fn FCGX_GetChar(stream: *mut FCGX_Stream) -> c_int {
    boundary!(EOF, {
        // SAFETY: the crate's contract.
        let Some((c, state)) = (unsafe { parts(stream) }) else { return EOF };
        get_char(c, state)
    })
}

/// Pushes `ch` back onto the input.
#[no_mangle]
pub unsafe extern "C" fn FCGX_UnGetChar(ch: c_int, stream: *mut FCGX_Stream) -> c_int {
    boundary!(EOF, {
        // SAFETY: the crate's contract.
        let Some((c, state)) = (unsafe { parts(stream) }) else { return EOF };
        let Kind::Reader(r) = &mut state.kind else { return EOF };
        if ch == EOF || c.isClosed != 0 || r.pos == 0 {
            return EOF;
        }
        r.pos -= 1;
        r.buf[r.pos] = ch as u8;
        ch
    })
}

/// Reads up to `n` bytes into `str`.
#[no_mangle]
pub unsafe extern "C" fn FCGX_GetStr(str: *mut c_char, n: c_int, stream: *mut FCGX_Stream) -> c_int {
    boundary!(0, {
        let Ok(n) = usize::try_from(n) else { return 0 };
        if n == 0 || str.is_null() {
            return 0;
        }
        // SAFETY: the crate's contract.
        let Some((c, state)) = (unsafe { parts(stream) }) else { return 0 };
        // SAFETY: `str` is non-NULL and points to `n` writable bytes (the caller's contract).
        let dst = unsafe { std::slice::from_raw_parts_mut(str.cast::<u8>(), n) };
        get_str(c, state, dst) as c_int
    })
}

/// Reads a line of at most `n - 1` bytes, NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn FCGX_GetLine(str: *mut c_char, n: c_int, stream: *mut FCGX_Stream) -> *mut c_char {
    boundary!(std::ptr::null_mut(), {
        let Ok(n) = usize::try_from(n) else { return std::ptr::null_mut() };
        if n == 0 || str.is_null() {
            return std::ptr::null_mut();
        }
        // SAFETY: the crate's contract.
        let Some((c, state)) = (unsafe { parts(stream) }) else { return std::ptr::null_mut() };
        // SAFETY: `str` is non-NULL and points to `n` writable bytes (the caller's contract).
        let dst = unsafe { std::slice::from_raw_parts_mut(str.cast::<u8>(), n) };
        let mut len = 0;
        while len < n - 1 {
            let ch = get_char(c, state);
            if ch == EOF {
                if len == 0 {
                    return std::ptr::null_mut();
                }
                break;
            }
            dst[len] = ch as u8;
            len += 1;
            if ch == c_int::from(b'\n') {
                break;
            }
        }
        dst[len] = 0;
        str
    })
}

/// EOF once the end of the stream was met, else 0.
#[no_mangle]
pub unsafe extern "C" fn FCGX_HasSeenEOF(stream: *mut FCGX_Stream) -> c_int {
    boundary!(EOF, {
        // SAFETY: the crate's contract.
        let Some((c, _)) = (unsafe { parts(stream) }) else { return EOF };
        if c.isClosed != 0 {
            EOF
        } else {
            0
        }
    })
}

/// Writes one byte.
#[no_mangle]
pub unsafe extern "C" fn FCGX_PutChar(ch: c_int, stream: *mut FCGX_Stream) -> c_int {
    boundary!(EOF, {
        // SAFETY: the crate's contract.
        let Some((c, state)) = (unsafe { parts(stream) }) else { return EOF };
        let byte = ch as u8;
        match put(c, state, &[byte]) {
            Ok(()) => c_int::from(byte),
            Err(()) => EOF,
        }
    })
}

/// Writes `n` bytes of `str`.
#[no_mangle]
pub unsafe extern "C" fn FCGX_PutStr(str: *const c_char, n: c_int, stream: *mut FCGX_Stream) -> c_int {
    boundary!(-1, {
        let Ok(len) = usize::try_from(n) else { return -1 };
        // SAFETY: the crate's contract.
        let Some((c, state)) = (unsafe { parts(stream) }) else { return -1 };
        if len == 0 {
            return 0;
        }
        if str.is_null() {
            return -1;
        }
        // SAFETY: `str` is non-NULL and points to `n` readable bytes (the caller's contract).
        let data = unsafe { std::slice::from_raw_parts(str.cast::<u8>(), len) };
        match put(c, state, data) {
            Ok(()) => n,
            Err(()) => -1,
        }
    })
}

/// Writes a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn FCGX_PutS(str: *const c_char, stream: *mut FCGX_Stream) -> c_int {
    boundary!(-1, {
        if str.is_null() {
            return -1;
        }
        // SAFETY: a non-NULL `str` is NUL-terminated (the caller's contract).
        let data = unsafe { CStr::from_ptr(str) }.to_bytes();
        let Ok(n) = c_int::try_from(data.len()) else { return -1 };
        // SAFETY: the crate's contract.
        let Some((c, state)) = (unsafe { parts(stream) }) else { return -1 };
        match put(c, state, data) {
            Ok(()) => n,
            Err(()) => -1,
        }
    })
}

/// Sends what is buffered.
#[no_mangle]
pub unsafe extern "C" fn FCGX_FFlush(stream: *mut FCGX_Stream) -> c_int {
    boundary!(-1, {
        // SAFETY: the crate's contract.
        let Some((c, state)) = (unsafe { parts(stream) }) else { return -1 };
        if c.isClosed != 0 || c.isReader != 0 {
            return 0;
        }
        let flushed = match &mut state.kind {
            Kind::Reader(_) => Ok(()),
            Kind::Writer(w) => w.flush(true),
            Kind::Raw(w) => w.flush(),
        };
        match flushed {
            Ok(()) => 0,
            Err(code) => {
                set_error(c, code);
                -1
            }
        }
    })
}

/// Closes a stream: a writer sends its buffer and takes no more.
#[no_mangle]
pub unsafe extern "C" fn FCGX_FClose(stream: *mut FCGX_Stream) -> c_int {
    boundary!(-1, {
        // SAFETY: the crate's contract.
        let Some((c, state)) = (unsafe { parts(stream) }) else { return 0 };
        if c.wasFCloseCalled == 0 {
            let closed = match &mut state.kind {
                Kind::Reader(_) => Ok(()),
                Kind::Writer(w) if c.isClosed == 0 => w.flush(false),
                Kind::Raw(w) if c.isClosed == 0 => w.close(),
                _ => Ok(()),
            };
            if let Err(code) = closed {
                set_error(c, code);
            }
            c.wasFCloseCalled = 1;
            c.isClosed = 1;
        }
        if c.FCGI_errno == 0 {
            0
        } else {
            EOF
        }
    })
}

/// The stream's error code.
#[no_mangle]
pub unsafe extern "C" fn FCGX_GetError(stream: *mut FCGX_Stream) -> c_int {
    boundary!(FCGX_CALL_SEQ_ERROR, {
        // SAFETY: the crate's contract.
        match unsafe { parts(stream) } {
            Some((c, _)) => c.FCGI_errno,
            None => FCGX_CALL_SEQ_ERROR,
        }
    })
}

/// Forgets the stream's error code.
#[no_mangle]
pub unsafe extern "C" fn FCGX_ClearError(stream: *mut FCGX_Stream) {
    boundary!((), {
        // SAFETY: the crate's contract.
        if let Some((c, _)) = unsafe { parts(stream) } {
            c.FCGI_errno = 0;
        }
    })
}

/// A stream writing records of `stream_type` for `request_id` straight to `socket`.
#[no_mangle]
pub unsafe extern "C" fn FCGX_CreateWriter(
    socket: c_int,
    request_id: c_int,
    bufflen: c_int,
    stream_type: c_int,
) -> *mut FCGX_Stream {
    boundary!(std::ptr::null_mut(), {
        let (Ok(request_id), Ok(record_type)) = (u16::try_from(request_id), u8::try_from(stream_type)) else {
            return std::ptr::null_mut();
        };
        if socket < 0 {
            return std::ptr::null_mut();
        }
        let cap = usize::try_from(bufflen).unwrap_or(0).clamp(32, MAX_CONTENT_LEN);
        let writer = RawWriter {
            fd: socket,
            request_id,
            record_type: RecordType::from_byte(record_type),
            buf: Vec::with_capacity(cap),
            cap,
        };
        new_stream(StreamState { kind: Kind::Raw(writer), owned_by_slot: false }).as_ptr()
    })
}

/// Frees a stream of `FCGX_CreateWriter`; a request's stream is only forgotten.
#[no_mangle]
pub unsafe extern "C" fn FCGX_FreeStream(stream: *mut *mut FCGX_Stream) {
    boundary!((), {
        // SAFETY: a non-NULL `stream` points to a stream pointer the caller owns.
        let Some(slot) = (unsafe { stream.as_mut() }) else { return };
        if let Some(ptr) = NonNull::new(*slot) {
            // SAFETY: the crate's contract.
            let owned_by_slot = unsafe { parts(ptr.as_ptr()) }.is_none_or(|(_, state)| state.owned_by_slot);
            if !owned_by_slot {
                // SAFETY: a stream of FCGX_CreateWriter, freed once by this call.
                unsafe { free_stream(ptr) };
            }
        }
        *slot = std::ptr::null_mut();
    })
}

/// Sets the application status of the request `stream` belongs to.
#[no_mangle]
pub unsafe extern "C" fn FCGX_SetExitStatus(status: c_int, stream: *mut FCGX_Stream) {
    boundary!((), {
        // SAFETY: the crate's contract.
        let Some((_, state)) = (unsafe { parts(stream) }) else { return };
        let held = match &state.kind {
            Kind::Reader(r) => &r.held,
            Kind::Writer(w) => &w.held,
            Kind::Raw(_) => return,
        };
        if let Some(live) = lock(held).as_mut() {
            live.request().set_app_status(status as u32);
        }
    })
}

/// Switches a Filter request's in stream, at the end of stdin, to the data stream.
#[no_mangle]
pub unsafe extern "C" fn FCGX_StartFilterData(stream: *mut FCGX_Stream) -> c_int {
    boundary!(-1, {
        // SAFETY: the crate's contract.
        let Some((c, state)) = (unsafe { parts(stream) }) else { return -1 };
        let Kind::Reader(r) = &mut state.kind else {
            set_error(c, FCGX_CALL_SEQ_ERROR);
            return -1;
        };
        let is_filter = lock(&r.held).as_mut().is_some_and(|live| live.request().role() == Role::Filter);
        if !is_filter || r.input != Input::Stdin || r.pos < r.len || c.FCGI_errno != 0 {
            set_error(c, FCGX_CALL_SEQ_ERROR);
            return -1;
        }
        if c.isClosed == 0 {
            // Positioned at the end of stdin, only not told yet: look.
            match r.fill() {
                Ok(0) => {}
                Ok(_) => {
                    set_error(c, FCGX_CALL_SEQ_ERROR);
                    return -1;
                }
                Err(code) => {
                    set_error(c, code);
                    return -1;
                }
            }
        }
        (r.input, r.pos, r.len) = (Input::Data, 0, 0);
        c.isClosed = 0;
        0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_follow_libfcgi() {
        let code = |kind| code_of(&io::Error::from(kind));
        assert_eq!(code(io::ErrorKind::BrokenPipe), libc::EPIPE);
        assert_eq!(code(io::ErrorKind::ConnectionAborted), libc::ECONNABORTED);
        assert_eq!(code(io::ErrorKind::InvalidData), FCGX_PROTOCOL_ERROR);
        assert_eq!(code(io::ErrorKind::FileTooLarge), libc::EFBIG);
        assert_eq!(code_of(&io::Error::from_raw_os_error(libc::ETIMEDOUT)), libc::ETIMEDOUT);
    }

    #[test]
    fn a_raw_writer_frames_its_output_and_ends_the_stream() {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: the exports on a socket we own and a stream we free once.
        unsafe {
            let stream = FCGX_CreateWriter(ours.as_raw_fd(), 7, 40, 6);
            assert!(!stream.is_null());
            assert_eq!(FCGX_PutStr(b"hello ".as_ptr().cast(), 6, stream), 6);
            assert_eq!(FCGX_PutS(c"world".as_ptr(), stream), 5);
            assert_eq!(FCGX_FClose(stream), 0);
            assert_eq!(FCGX_PutS(c"late".as_ptr(), stream), -1, "no write after close");
            let mut stream = stream;
            FCGX_FreeStream(&mut stream);
            assert!(stream.is_null());
        }
        drop(ours);
        let mut wire = Vec::new();
        use std::io::Read;
        (&theirs).read_to_end(&mut wire).unwrap();
        let mut buf = BytesMut::from(&wire[..]);
        let first = fcgi_core::protocol::Record::decode(&mut buf).unwrap().unwrap();
        assert_eq!((first.header.record_type, first.header.request_id), (RecordType::Stdout, 7));
        assert_eq!(&first.content[..], b"hello world");
        let end = fcgi_core::protocol::Record::decode(&mut buf).unwrap().unwrap();
        assert!(end.content.is_empty() && buf.is_empty());
    }

    #[test]
    fn null_streams_are_errors_not_crashes() {
        // SAFETY: NULL is part of every export's contract.
        unsafe {
            let null = std::ptr::null_mut();
            assert_eq!(FCGX_GetChar(null), EOF);
            assert_eq!(FCGX_PutStr(b"x".as_ptr().cast(), 1, null), -1);
            assert_eq!(FCGX_GetError(null), FCGX_CALL_SEQ_ERROR);
            assert_eq!(FCGX_FClose(null), 0);
            assert!(FCGX_GetLine(std::ptr::null_mut(), 10, null).is_null());
            FCGX_FreeStream(std::ptr::null_mut());
        }
    }
}
