//! `fcgi_options`: how a server is set up, filled in by setters before `fcgi_server_open`.

use std::ffi::{c_char, CStr};

use fcgi_core::settings::Value;
use fcgi_core::{Bind, Roles, ServerConfig};

use crate::fcgi_result::{self, *};
use crate::log::fcgi_log_level;
use crate::panic::{ffi_boundary, try_mut};

/// Server options. Made by `fcgi_options_new`, freed by `fcgi_options_free`;
/// `fcgi_server_open` copies them, so they may be freed (or reused) right after.
pub struct fcgi_options {
    pub(crate) config: ServerConfig,
}

/// Makes options with the defaults: find the listener (fd 0, else `LISTEN_FDS`, else CGI
/// mode), workers chosen by the core, 1024 connections, 60 s read and write timeouts, 90 s idle
/// timeout, no body limit, no multiplexing, every role, signals handled. On success `*out` owns the options: free them with
/// `fcgi_options_free`.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_new(out: *mut *mut fcgi_options) -> fcgi_result {
    ffi_boundary!({
        let out = try_mut!(out);
        *out = Box::into_raw(Box::new(fcgi_options { config: ServerConfig::default() }));
        FCGI_OK
    })
}

/// Frees options made by `fcgi_options_new`. NULL is ignored. Free each exactly once.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_free(options: *mut fcgi_options) {
    ffi_boundary!((), {
        if !options.is_null() {
            // SAFETY: a non-NULL `options` came from Box::into_raw in fcgi_options_new and is
            // freed once, by this call (the caller's contract).
            drop(unsafe { Box::from_raw(options) });
        }
    })
}

/// Listens on `address` instead of looking for an inherited listener: `unix:/path`, `/path`,
/// `./path`, `host:port`, `[::1]:port`. A stale socket file is replaced; the file is removed
/// when the server stops. The empty string goes back to finding the listener.
/// FCGI_ERR_INVALID_ARG if the address does not parse.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_bind(options: *mut fcgi_options, address: *const c_char) -> fcgi_result {
    ffi_boundary!({
        let options = try_mut!(options);
        // SAFETY: the caller's contract, passed on.
        let address = match unsafe { text(address) } {
            Ok(Some(address)) => address,
            Ok(None) => return FCGI_ERR_NULL,
            Err(e) => return e,
        };
        if address.is_empty() {
            options.config.bind = None;
            return FCGI_OK;
        }
        match Bind::parse(&address) {
            Ok(bind) => {
                options.config.bind = Some(bind);
                FCGI_OK
            }
            Err(_) => FCGI_ERR_INVALID_ARG,
        }
    })
}

/// Logs a request (once, with its request line and thread) that runs past `slow_ms`
/// milliseconds, and counts it; the request goes on. 0 (the default) turns this off.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_slow_request_timeout(
    options: *mut fcgi_options,
    slow_ms: u32,
) -> fcgi_result {
    ffi_boundary!({ set(try_mut!(options), "slow_request_timeout", milliseconds(slow_ms)) })
}

/// Ends a request still running `timeout_ms` milliseconds after it started: its next read or
/// write fails with FCGI_ERR_TIMEOUT (`fcgi_request_is_aborted` says true), and if nothing was
/// written the client gets a 504. One still running `fcgi_options_set_timeout_grace` later has
/// its process replaced (re-executed on its socket once its other requests end, within the
/// graceful timeout). 0 (the default) turns this off.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_timeout(options: *mut fcgi_options, timeout_ms: u32) -> fcgi_result {
    ffi_boundary!({ set(try_mut!(options), "timeout", milliseconds(timeout_ms)) })
}

/// How long (milliseconds, above 0; default 5000) a request past its timeout may take to end
/// before its process is replaced.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_timeout_grace(options: *mut fcgi_options, grace_ms: u32) -> fcgi_result {
    ffi_boundary!({ set(try_mut!(options), "timeout_grace", milliseconds(grace_ms)) })
}

/// Sets the least severe of the server's own messages that is logged (default
/// FCGI_LOG_INFO); see `fcgi_log_set_callback` for where they go.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_log_level(options: *mut fcgi_options, level: fcgi_log_level) -> fcgi_result {
    ffi_boundary!({ set(try_mut!(options), "log_level", Value::Text(level.level().name().into())) })
}

/// Writes one access-log line per request to the file `path` (appended; `"-"` is stderr),
/// buffered and written within a second and when the server closes; NULL or `""`: no file.
/// FCGI_ERR_IO from `fcgi_server_open`'s accept if the file cannot be opened.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_access_logfile(
    options: *mut fcgi_options,
    path: *const c_char,
) -> fcgi_result {
    ffi_boundary!({
        let options = try_mut!(options);
        // SAFETY: the caller's contract, passed on.
        unsafe { set_text(options, "access_logfile", path, Some("")) }
    })
}

/// The access log's line, in gunicorn's atoms (`%(h)s %(t)s "%(r)s" %(s)s %(D)s`...; the
/// README lists them). FCGI_ERR_INVALID_ARG for an unknown atom or a stray `%`.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_access_logformat(
    options: *mut fcgi_options,
    format: *const c_char,
) -> fcgi_result {
    ffi_boundary!({
        let options = try_mut!(options);
        // SAFETY: the caller's contract, passed on.
        unsafe { set_text(options, "access_logformat", format, None) }
    })
}

/// Answers requests for `path` (SCRIPT_NAME + PATH_INFO, e.g. `"/fcgi-status"`) with the
/// status page, from the server itself, even while every thread is busy: plain text, or JSON,
/// OpenMetrics or HTML by the query (`?json`, `?openmetrics`, `?html`; `&full` lists every
/// thread). NULL or `""`: no status page (the default).
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_status_path(options: *mut fcgi_options, path: *const c_char) -> fcgi_result {
    ffi_boundary!({
        let options = try_mut!(options);
        // SAFETY: the caller's contract, passed on.
        unsafe { set_text(options, "status_path", path, Some("")) }
    })
}

/// Answers requests for `path` with `pong`, from the server itself. NULL or `""`: none.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_ping_path(options: *mut fcgi_options, path: *const c_char) -> fcgi_result {
    ffi_boundary!({
        let options = try_mut!(options);
        // SAFETY: the caller's contract, passed on.
        unsafe { set_text(options, "ping_path", path, Some("")) }
    })
}

/// The client addresses or networks (REMOTE_ADDR) that may see the status and ping pages,
/// comma-separated (`"10.0.0.0/8,::1"`); others get a 404. Default: loopback.
/// FCGI_ERR_INVALID_ARG for an entry that is not an address or a network.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_status_allow(
    options: *mut fcgi_options,
    networks: *const c_char,
) -> fcgi_result {
    ffi_boundary!({
        let options = try_mut!(options);
        // SAFETY: the caller's contract, passed on.
        unsafe { set_text(options, "status_allow", networks, None) }
    })
}

/// Sets the text setting `name` to the C string `value`; NULL means `null` (FCGI_ERR_NULL if
/// `None`).
///
/// # Safety
/// `value` is NULL or a NUL-terminated string, read only during this call.
unsafe fn set_text(options: &mut fcgi_options, name: &str, value: *const c_char, null: Option<&str>) -> fcgi_result {
    // SAFETY: the caller's contract, passed on.
    match (unsafe { text(value) }, null) {
        (Ok(Some(value)), _) => set(options, name, Value::Text(value)),
        (Ok(None), Some(null)) => set(options, name, Value::Text(null.to_owned())),
        (Ok(None), None) => FCGI_ERR_NULL,
        (Err(e), _) => e,
    }
}

/// A C string as UTF-8 text; `None` for NULL; FCGI_ERR_INVALID_ARG if it is not UTF-8.
///
/// # Safety
/// `text` is NULL or a NUL-terminated string, read only during this call.
unsafe fn text(text: *const c_char) -> Result<Option<String>, fcgi_result> {
    if text.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL and NUL-terminated (the caller's contract).
    let text = unsafe { CStr::from_ptr(text) };
    text.to_str().map(|t| Some(t.to_owned())).map_err(|_| FCGI_ERR_INVALID_ARG)
}

/// Sets a setting of the core's table (`fcgi_core::settings`), which gives 0 and every value
/// the same meaning as on the other faces; one it refuses is FCGI_ERR_INVALID_ARG.
fn set(options: &mut fcgi_options, name: &str, value: Value) -> fcgi_result {
    match options.config.set(name, value) {
        Ok(()) => FCGI_OK,
        Err(_) => FCGI_ERR_INVALID_ARG,
    }
}

/// Milliseconds as the table's seconds.
fn milliseconds(ms: u32) -> Value {
    Value::Seconds(f64::from(ms) / 1000.0)
}

/// How many requests the program serves at once, as the web server learns it from
/// FCGI_GET_VALUES (FCGI_MAX_REQS, times the multiplexing factor): accept on this many threads
/// (each accepting thread serves one request at a time). 0 lets the core choose: 1 on an
/// inherited fd 0 (mod_fcgid sends one request at a time), else twice the cores, between 4
/// and 32.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_workers(options: *mut fcgi_options, workers: usize) -> fcgi_result {
    ffi_boundary!({ set(try_mut!(options), "workers", Value::Number(workers as u64)) })
}

/// Stop after serving this many requests (mod_fcgid's `FcgidMaxRequestsPerProcess`); 0 means
/// no limit.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_max_requests(options: *mut fcgi_options, max_requests: u64) -> fcgi_result {
    ffi_boundary!({ set(try_mut!(options), "max_requests", Value::Number(max_requests)) })
}

/// Adds a random 0 to `jitter` requests to `max_requests` (0: none), so that processes started
/// together do not all stop at once.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_max_requests_jitter(options: *mut fcgi_options, jitter: u64) -> fcgi_result {
    ffi_boundary!({ set(try_mut!(options), "max_requests_jitter", Value::Number(jitter)) })
}

/// Recycles the process once its resident memory passes `max_rss_mib` MiB (checked each
/// second): it stops taking requests and ends those it holds (a program that does not handle
/// signals itself sees its accept return NULL); 0 (the default): no limit.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_max_rss(options: *mut fcgi_options, max_rss_mib: u64) -> fcgi_result {
    ffi_boundary!({ set(try_mut!(options), "max_rss", Value::Number(max_rss_mib)) })
}

/// Connections open at once (default 1024); more are closed with a log line.
/// FCGI_ERR_INVALID_ARG for 0.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_max_conns(options: *mut fcgi_options, max_conns: usize) -> fcgi_result {
    ffi_boundary!({ set(try_mut!(options), "max_connections", Value::Number(max_conns as u64)) })
}

/// Bounds on one request's params: the whole PARAMS stream in bytes (default 1 MiB), one
/// name-value pair (default 256 KiB), the number of pairs (default 4096). A request over a
/// bound gets a 431 (or 400) page without reaching the application.
/// FCGI_ERR_INVALID_ARG if any is 0.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_params_limits(
    options: *mut fcgi_options,
    max_total_bytes: usize,
    max_pair_len: usize,
    max_pairs: usize,
) -> fcgi_result {
    ffi_boundary!({
        let options = try_mut!(options);
        // All three or none: a refused one leaves the options as they were.
        let mut config = options.config.clone();
        for (name, n) in
            [("max_params_bytes", max_total_bytes), ("max_param_bytes", max_pair_len), ("max_params", max_pairs)]
        {
            if config.set(name, Value::Number(n as u64)).is_err() {
                return FCGI_ERR_INVALID_ARG;
            }
        }
        options.config = config;
        FCGI_OK
    })
}

/// Which roles are accepted (default: all three); others get END_REQUEST(UNKNOWN_ROLE) and
/// never reach the application. FCGI_ERR_INVALID_ARG if none is.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_roles(
    options: *mut fcgi_options,
    responder: bool,
    authorizer: bool,
    filter: bool,
) -> fcgi_result {
    ffi_boundary!({
        let options = try_mut!(options);
        if !(responder || authorizer || filter) {
            return FCGI_ERR_INVALID_ARG;
        }
        options.config.connection.roles = Roles { responder, authorizer, filter };
        FCGI_OK
    })
}

/// Requests served at once on one connection: 1 (the default) refuses a second with
/// CANT_MPX_CONN, as every mainstream web server expects; more multiplexes. The requests of a
/// multiplexed connection share its reader (a thread of the library's), so keep an accepting
/// thread free for each of up to `workers × requests_per_conn` requests (or hand each
/// accepted request to a thread of its own; `fcgi_server_close` waits for the requests those
/// threads still hold): an unaccepted request can otherwise hold up the others.
/// FCGI_ERR_INVALID_ARG for 0.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_multiplex(options: *mut fcgi_options, requests_per_conn: u16) -> fcgi_result {
    ffi_boundary!({ set(try_mut!(options), "multiplex", Value::Number(u64::from(requests_per_conn))) })
}

/// How long a read may wait for the web server in the middle of a request, in milliseconds
/// (default 60000); 0 means no limit. A stalled web server's connection is then closed.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_read_timeout(options: *mut fcgi_options, read_ms: u32) -> fcgi_result {
    ffi_boundary!({ set(try_mut!(options), "read_timeout", milliseconds(read_ms)) })
}

/// How long a write may wait for the web server to read, in milliseconds (default 60000); 0
/// means no limit. A write that times out returns FCGI_ERR_TIMEOUT.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_write_timeout(options: *mut fcgi_options, write_ms: u32) -> fcgi_result {
    ffi_boundary!({ set(try_mut!(options), "write_timeout", milliseconds(write_ms)) })
}

/// How long a kept-alive connection may sit idle (no request in progress) before it is closed,
/// in milliseconds (default 90000); 0 means no limit.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_idle_timeout(options: *mut fcgi_options, idle_ms: u32) -> fcgi_result {
    ffi_boundary!({ set(try_mut!(options), "idle_timeout", milliseconds(idle_ms)) })
}

/// How long a request's head (BEGIN_REQUEST and all its params) may take to arrive, from the
/// connection's accept or the head's first byte, in milliseconds (default 10000); 0 means no
/// limit. Until the head is whole the connection waits in the poller, holding no accepting
/// thread; then it is closed.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_head_timeout(options: *mut fcgi_options, head_ms: u32) -> fcgi_result {
    ffi_boundary!({ set(try_mut!(options), "head_timeout", milliseconds(head_ms)) })
}

/// How long `fcgi_server_close` waits for the requests the program still holds, in
/// milliseconds (default 30000); 0 means no limit. Past it close ends them itself (see
/// `fcgi_server_close`).
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_graceful_timeout(
    options: *mut fcgi_options,
    graceful_ms: u32,
) -> fcgi_result {
    ffi_boundary!({ set(try_mut!(options), "graceful_timeout", milliseconds(graceful_ms)) })
}

/// The largest request body accepted, in bytes; 0 (the default) leaves it to the web server.
/// A larger CONTENT_LENGTH gets a 413 page without reaching the application; a body that grows
/// past the limit anyway makes `fcgi_request_read` return FCGI_ERR_TOO_LARGE (and the web
/// server gets a 413 if nothing was written).
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_max_body_bytes(options: *mut fcgi_options, max_bytes: u64) -> fcgi_result {
    ffi_boundary!({ set(try_mut!(options), "max_body_bytes", Value::Number(max_bytes)) })
}

/// Serve one CGI request from the environment and stdin even if a listener is there (the
/// environment variable `FCGI_FORCE_CGI=1` does the same).
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_force_cgi(options: *mut fcgi_options, force_cgi: bool) -> fcgi_result {
    ffi_boundary!({ set(try_mut!(options), "force_cgi", Value::Flag(force_cgi)) })
}

/// Whether the server installs handlers for SIGTERM, SIGINT and SIGUSR1 (each stops it
/// gracefully: no new requests, those in flight finish) and SIGHUP (the same, then the program
/// is re-executed on the same listening socket: a reload), and ignores SIGPIPE while serving;
/// the previous handlers come back when it stops. Default true. With false, stop the server from
/// your own handler with `fcgi_server_shutdown`.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_handle_signals(
    options: *mut fcgi_options,
    handle_signals: bool,
) -> fcgi_result {
    ffi_boundary!({ set(try_mut!(options), "handle_signals", Value::Flag(handle_signals)) })
}

/// Once the socket is bound (`fcgi_server_open`), run as `user` (a name or a uid; with its
/// supplementary groups) and `group` (a name or a gid; then that group alone); either may be
/// NULL or `""` to leave it. Needs root, unless the process runs as them already: otherwise
/// `fcgi_server_open` fails with FCGI_ERR_IO. FCGI_ERR_INVALID_ARG for a name with no entry.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_user(
    options: *mut fcgi_options,
    user: *const c_char,
    group: *const c_char,
) -> fcgi_result {
    ffi_boundary!({
        let options = try_mut!(options);
        // Both or neither: a refused one leaves the options as they were.
        let mut both = fcgi_options { config: options.config.clone() };
        // SAFETY: the caller's contract, passed on.
        let result = unsafe { set_text(&mut both, "user", user, Some("")) };
        if result != FCGI_OK {
            return result;
        }
        // SAFETY: the caller's contract, passed on.
        let result = unsafe { set_text(&mut both, "group", group, Some("")) };
        if result == FCGI_OK {
            options.config = both.config;
        }
        result
    })
}

/// The permissions of a Unix socket the server binds (`fcgi_options_set_bind`), e.g. 0660: the
/// socket file never has wider ones, even for a moment. FCGI_ERR_INVALID_ARG for 0 or more than
/// 07777.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_socket_mode(options: *mut fcgi_options, mode: u32) -> fcgi_result {
    ffi_boundary!({ set(try_mut!(options), "socket_mode", Value::Number(u64::from(mode))) })
}

/// The owner of a Unix socket the server binds: `"USER:GROUP"`, `"USER"` or `":GROUP"` (names or
/// ids), given before the user changes; NULL or `""`: the binding user's.
/// FCGI_ERR_INVALID_ARG for a name with no entry.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_socket_owner(
    options: *mut fcgi_options,
    owner: *const c_char,
) -> fcgi_result {
    ffi_boundary!({
        let options = try_mut!(options);
        // SAFETY: the caller's contract, passed on.
        unsafe { set_text(options, "socket_owner", owner, Some("")) }
    })
}

/// The listen(2) backlog of a socket the server binds (default 1024; the kernel caps it at
/// net.core.somaxconn). FCGI_ERR_INVALID_ARG for 0.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_backlog(options: *mut fcgi_options, backlog: u32) -> fcgi_result {
    ffi_boundary!({ set(try_mut!(options), "backlog", Value::Number(u64::from(backlog))) })
}

/// Writes the process's pid to the file `path` while the server runs (whole: a temporary file
/// renamed into place) and removes it at `fcgi_server_close`; NULL or `""`: no file.
/// `fcgi_server_open` fails with FCGI_ERR_IO if the file names another running process.
#[no_mangle]
pub unsafe extern "C" fn fcgi_options_set_pid_file(options: *mut fcgi_options, path: *const c_char) -> fcgi_result {
    ffi_boundary!({
        let options = try_mut!(options);
        // SAFETY: the caller's contract, passed on.
        unsafe { set_text(options, "pid_file", path, Some("")) }
    })
}
