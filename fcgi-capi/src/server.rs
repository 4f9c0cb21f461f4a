//! `fcgi_server`: the core's `Acceptor`, so that the C threads that accept requests serve them
//! where they are: a request costs no hand-off between threads.

use std::ffi::c_int;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fcgi_core::{Acceptor, Served, Server, ServerConfig, Stats, StopHandle};

use crate::fcgi_result::{self, *};
use crate::held::Held;
use crate::options::fcgi_options;
use crate::panic::{ffi_boundary, try_mut, try_ref};
use crate::request::fcgi_request;

/// How long `fcgi_server_close` waits for held requests with a graceful timeout of 0 (no
/// limit): long enough never to come.
const NO_LIMIT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A running FastCGI server (or the one CGI request of a CGI process). Opened by
/// `fcgi_server_open`, closed by `fcgi_server_close`.
pub struct fcgi_server {
    /// `None` if the server could not start (the error was logged).
    acceptor: Option<Acceptor>,
    stop: StopHandle,
    stats: Arc<Stats>,
    /// The requests lent to the program, shared with their handles.
    held: Arc<Held>,
    /// How long close waits for them: the graceful timeout.
    close_deadline: Duration,
}

impl fcgi_server {
    /// Sets how long close waits for held requests (tests; C programs set the graceful timeout).
    #[doc(hidden)]
    pub fn set_close_deadline(&mut self, deadline: Duration) {
        self.close_deadline = deadline;
    }
}

/// Starts a server with `options` (NULL: the defaults of `fcgi_options_new`), which are copied.
/// Without a bind address it serves the listening socket on fd 0 if there is one (mod_fcgid,
/// spawn-fcgi, lighttpd), else a systemd socket (`LISTEN_FDS`), else the process is a CGI
/// program: the first accept returns the one CGI request (environment and stdin in, stdout
/// out) and the next returns FCGI_ERR_STOPPED. A failure to find or bind the listener is
/// logged on stderr and makes accept return FCGI_ERR_IO. On success `*out` owns the server:
/// close it with `fcgi_server_close`.
#[no_mangle]
pub unsafe extern "C" fn fcgi_server_open(options: *const fcgi_options, out: *mut *mut fcgi_server) -> fcgi_result {
    ffi_boundary!({
        let out = try_mut!(out);
        *out = std::ptr::null_mut();
        let config = match NonNull::new(options.cast_mut()) {
            // SAFETY: a non-NULL `options` is a live handle from fcgi_options_new (the caller's
            // contract), only read here.
            Some(options) => unsafe { options.as_ref() }.config.clone(),
            None => ServerConfig::default(),
        };
        let close_deadline = config.graceful_timeout.unwrap_or(NO_LIMIT);
        crate::log::set_level(config.log_level);
        let server = Server::new(config);
        let acceptor = match server.acceptor() {
            Ok(acceptor) => Some(acceptor),
            Err(e) => {
                log::error!("the server could not start: {e}");
                None
            }
        };
        let server = fcgi_server {
            acceptor,
            stop: server.stop_handle(),
            stats: server.stats(),
            held: Arc::default(),
            close_deadline,
        };
        *out = Box::into_raw(Box::new(server));
        FCGI_OK
    })
}

/// Waits for the next request and sets `*out` to it (NULL on failure). Any number of threads
/// may accept on one server at once, each getting its own requests, so several connections are
/// served at once; the thread that accepts a request reads its connection, and no other
/// thread is involved. Returns
/// FCGI_ERR_STOPPED once the server is stopping (signal, `fcgi_server_shutdown`, max requests,
/// or after the one CGI request) and no request is left, so `while (fcgi_server_accept(s, &r)
/// == FCGI_OK)` ends cleanly; FCGI_ERR_IO if the server could not start or failed. Each request
/// must be ended with `fcgi_request_finish`, on any thread, which frees its handle; the handle
/// stays valid until then, even past `fcgi_server_close`.
#[no_mangle]
pub unsafe extern "C" fn fcgi_server_accept(server: *const fcgi_server, out: *mut *mut fcgi_request) -> fcgi_result {
    ffi_boundary!({
        let server = try_ref!(server);
        let out = try_mut!(out);
        *out = std::ptr::null_mut();
        let Some(acceptor) = &server.acceptor else { return FCGI_ERR_IO };
        let Some(request) = acceptor.accept() else { return FCGI_ERR_STOPPED };
        *out = Box::into_raw(Box::new(fcgi_request::lend(request, &server.held)));
        FCGI_OK
    })
}

/// Asks the server to stop gracefully: no new connections; requests already accepted by the
/// kernel and those in flight are still served; then accept returns FCGI_ERR_STOPPED.
/// Async-signal-safe: a program's own signal handler may call it. Safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn fcgi_server_shutdown(server: *const fcgi_server) -> fcgi_result {
    ffi_boundary!({
        try_ref!(server).stop.stop();
        FCGI_OK
    })
}

/// Counters: FastCGI connections accepted so far, and requests served (finished) so far; the
/// request being served by the caller is not counted yet. Safe from any thread.
#[no_mangle]
pub unsafe extern "C" fn fcgi_server_stats(
    server: *const fcgi_server,
    connections: *mut u64,
    requests: *mut u64,
) -> fcgi_result {
    ffi_boundary!({
        let server = try_ref!(server);
        let connections = try_mut!(connections);
        let requests = try_mut!(requests);
        *connections = server.stats.connections();
        *requests = server.stats.requests();
        FCGI_OK
    })
}

/// The status the program should exit with, once accept has returned FCGI_ERR_STOPPED or
/// FCGI_ERR_IO: in CGI mode the request's app status (`fcgi_request_set_status`; 1 if over
/// 255), 1 if the server could not start, else 0. 0 while the server still serves.
#[no_mangle]
pub unsafe extern "C" fn fcgi_server_exit_code(server: *const fcgi_server, out: *mut c_int) -> fcgi_result {
    ffi_boundary!({
        let server = try_ref!(server);
        let out = try_mut!(out);
        *out = match server.acceptor.as_ref().map(Acceptor::served) {
            None => 1,
            Some(Served::FastCgi) => 0,
            Some(Served::Cgi { app_status }) => u8::try_from(app_status).map_or(1, c_int::from),
        };
        FCGI_OK
    })
}

/// Stops the server (as `fcgi_server_shutdown`), answers the requests never accepted with a
/// 503, waits for the requests still held by the program's threads to be finished (at most
/// the graceful timeout, 30 s by default), waits for the connections in flight to end, and frees the server. NULL is ignored.
/// Call it once, after every other thread is done with the server itself (their accept
/// returned FCGI_ERR_STOPPED); threads may go on using the requests they hold, during close
/// and after it. Close never frees a request handle: each is freed by its
/// `fcgi_request_finish`. A request still held when the graceful timeout is up is ended by close (the
/// web server gets a 500 page and END_REQUEST if nothing was written, else what was written
/// and the connection closes without END_REQUEST, so the response is seen cut short; a line is
/// logged), and
/// its handle's calls return FCGI_ERR_CLOSED from then on.
#[no_mangle]
pub unsafe extern "C" fn fcgi_server_close(server: *mut fcgi_server) {
    ffi_boundary!((), {
        if server.is_null() {
            return;
        }
        // SAFETY: a non-NULL `server` came from Box::into_raw in fcgi_server_open and is closed
        // once, by this call, with no other thread using it (the caller's contract). The request
        // handles do not point into it: they share `held` through an Arc of their own.
        let server = unsafe { Box::from_raw(server) };
        server.stop.stop();
        let deadline = Instant::now() + server.close_deadline;
        let Some(acceptor) = &server.acceptor else {
            end_held(&server.held, deadline, server.close_deadline);
            return;
        };
        // The core answers what nobody accepted while the held requests finish; past the
        // deadline those still held are ended here, and then the 503s are waited for.
        if !acceptor.close(deadline) {
            end_held(&server.held, deadline, server.close_deadline);
            acceptor.wait_refused();
        }
    })
}

/// Waits until `deadline` for the held requests to be finished; ends those still held.
fn end_held(held: &Held, deadline: Instant, waited: Duration) {
    let left = held.wait(deadline);
    if left > 0 {
        log::error!(
            "fcgi_server_close: {left} request(s) still held after {} s were ended; \
             their handles now return FCGI_ERR_CLOSED until fcgi_request_finish",
            waited.as_secs_f32()
        );
        held.close();
    }
}
