//! `fcgi_server`: the core's push-style `Server::serve` turned into pull-style accepting.
//!
//! `serve` runs on a background thread. Its handler, on a worker thread, lends the request it
//! was given to whichever C thread accepts next (through the queue below) and waits until that
//! thread finishes it; then the core ends the request on the wire as usual. So a worker serves
//! one C-held request at a time, and `workers` bounds the requests C holds at once.

use std::collections::{HashSet, VecDeque};
use std::ffi::c_int;
use std::io;
use std::ptr::NonNull;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use fcgi_core::{Request, Served, Server, ServerConfig, Stats, StopHandle};

use crate::fcgi_result::{self, *};
use crate::options::fcgi_options;
use crate::panic::{ffi_boundary, try_mut, try_ref};
use crate::request::fcgi_request;

/// A running FastCGI server (or the one CGI request of a CGI process). Opened by
/// `fcgi_server_open`, closed by `fcgi_server_close`.
pub struct fcgi_server {
    shared: Arc<Shared>,
    stop: StopHandle,
    stats: Arc<Stats>,
    serving: Option<JoinHandle<()>>,
}

/// What the serving thread, its workers, the accepting threads and the request handles share.
#[derive(Default)]
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Signalled when a request is queued, when serving ends, and at close.
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// Requests lent by workers, waiting for an accepting thread.
    queue: VecDeque<Lent>,
    /// Addresses of the request handles accepted and not finished yet (close finishes them).
    live: HashSet<usize>,
    /// Set by close: nothing more is lent; workers answer 503 themselves.
    closing: bool,
    /// How serving ended, once it has.
    ended: Option<Ended>,
}

#[derive(Debug, Clone, Copy)]
enum Ended {
    FastCgi,
    Cgi { app_status: u32 },
    Failed,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Forgets a finished handle.
    pub(crate) fn forget(&self, handle: *mut fcgi_request) {
        self.lock().live.remove(&(handle as usize));
    }
}

/// A worker's request, lent to C until finished.
pub(crate) struct Lent {
    pub(crate) request: RequestPtr,
    pub(crate) done: Arc<Completion>,
}

/// The lent request, with its lifetime erased.
pub(crate) struct RequestPtr(pub(crate) NonNull<Request<'static>>);

// SAFETY: `Request` is `Send` (fcgi-core asserts it); the pointer moves to the accepting thread
// while the worker that lent it waits without touching the request, so one thread at a time
// uses it.
unsafe impl Send for RequestPtr {}

/// How a lent request came back.
pub(crate) enum Outcome {
    /// `fcgi_request_finish` (or close) ended it; the first error C met, for the core's log and
    /// its 500 page when nothing was written.
    Finished(Option<io::Error>),
    /// The server closed before anyone accepted it.
    Refused,
}

/// Where a worker waits for the outcome of the request it lent.
#[derive(Default)]
pub(crate) struct Completion {
    outcome: Mutex<Option<Outcome>>,
    returned: Condvar,
}

impl Completion {
    pub(crate) fn complete(&self, outcome: Outcome) {
        *self.outcome.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(outcome);
        self.returned.notify_one();
    }

    fn wait(&self) -> Outcome {
        let mut outcome = self.outcome.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        loop {
            if let Some(outcome) = outcome.take() {
                return outcome;
            }
            outcome = self.returned.wait(outcome).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

/// The page a worker sends for a request that arrived while the server was closing.
const CLOSING: &[u8] =
    b"Status: 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\nThe application is stopping.\n";

fn refuse(request: &mut Request<'_>) -> io::Result<()> {
    request.set_app_status(1);
    request.write_stdout(CLOSING)
}

/// The handler: lends `request` to the next accepting thread and waits until it comes back.
fn lend(shared: &Shared, request: &mut Request<'_>) -> io::Result<()> {
    let done = Arc::new(Completion::default());
    {
        let mut state = shared.lock();
        if state.closing {
            drop(state);
            return refuse(request);
        }
        // The raw pointer is the FFI boundary: the borrow checker cannot follow the request
        // into C. It stays valid because this worker waits below, without touching `request`,
        // until the handle is finished.
        let ptr = NonNull::from(&mut *request).cast::<Request<'static>>();
        state.queue.push_back(Lent { request: RequestPtr(ptr), done: done.clone() });
    }
    shared.changed.notify_one();
    match done.wait() {
        Outcome::Finished(None) => Ok(()),
        Outcome::Finished(Some(error)) => Err(error),
        Outcome::Refused => refuse(request),
    }
}

/// The serving thread.
fn serve(server: Server, shared: Arc<Shared>) {
    let lender = shared.clone();
    let handler = move |request: &mut Request<'_>| lend(&lender, request);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.serve(&handler)));
    let ended = match outcome {
        Ok(Ok(Served::FastCgi)) => Ended::FastCgi,
        Ok(Ok(Served::Cgi { app_status })) => Ended::Cgi { app_status },
        Ok(Err(e)) => {
            eprintln!("fcgi: the server stopped: {e}");
            Ended::Failed
        }
        Err(_) => Ended::Failed,
    };
    shared.lock().ended = Some(ended);
    shared.changed.notify_all();
}

/// Starts a server with `options` (NULL: the defaults of `fcgi_options_new`), which are copied.
/// Without a bind address it serves the listening socket on fd 0 if there is one (mod_fcgid,
/// spawn-fcgi, lighttpd), else a systemd socket (`LISTEN_FDS`), else the process is a CGI
/// program: the first accept returns the one CGI request (environment and stdin in, stdout
/// out) and the next returns FCGI_ERR_STOPPED. The listener is found or bound on a background
/// thread: a bind failure is logged on stderr and makes accept return FCGI_ERR_IO. On success
/// `*out` owns the server: close it with `fcgi_server_close`.
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
        let server = Server::new(config);
        let stop = server.stop_handle();
        let stats = server.stats();
        let shared = Arc::new(Shared::default());
        let serving = {
            let shared = shared.clone();
            std::thread::Builder::new().name("fcgi-serve".into()).spawn(move || serve(server, shared))
        };
        let Ok(serving) = serving else { return FCGI_ERR_IO };
        *out = Box::into_raw(Box::new(fcgi_server { shared, stop, stats, serving: Some(serving) }));
        FCGI_OK
    })
}

/// Waits for the next request and sets `*out` to it (NULL on failure). Any number of threads
/// may accept on one server at once, each getting its own requests, so several connections are
/// served at once (up to `workers` requests held, see `fcgi_options_set_workers`). Returns
/// FCGI_ERR_STOPPED once the server is stopping (signal, `fcgi_server_shutdown`, max requests,
/// or after the one CGI request) and no request is left, so `while (fcgi_server_accept(s, &r)
/// == FCGI_OK)` ends cleanly; FCGI_ERR_IO if the server could not start or failed. Each request
/// must be ended with `fcgi_request_finish`, on any thread.
#[no_mangle]
pub unsafe extern "C" fn fcgi_server_accept(server: *const fcgi_server, out: *mut *mut fcgi_request) -> fcgi_result {
    ffi_boundary!({
        let server = try_ref!(server);
        let out = try_mut!(out);
        *out = std::ptr::null_mut();
        let shared = &server.shared;
        let mut state = shared.lock();
        loop {
            if let Some(lent) = state.queue.pop_front() {
                let handle = Box::into_raw(Box::new(fcgi_request::new(lent, shared.clone())));
                state.live.insert(handle as usize);
                *out = handle;
                return FCGI_OK;
            }
            if state.closing {
                return FCGI_ERR_STOPPED;
            }
            match state.ended {
                Some(Ended::Failed) => return FCGI_ERR_IO,
                Some(_) => return FCGI_ERR_STOPPED,
                None => {}
            }
            state = shared.changed.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
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
/// 255), 1 if the server failed, else 0. 0 while the server still serves.
#[no_mangle]
pub unsafe extern "C" fn fcgi_server_exit_code(server: *const fcgi_server, out: *mut c_int) -> fcgi_result {
    ffi_boundary!({
        let server = try_ref!(server);
        let out = try_mut!(out);
        *out = match server.shared.lock().ended {
            None | Some(Ended::FastCgi) => 0,
            Some(Ended::Cgi { app_status }) => u8::try_from(app_status).map_or(1, c_int::from),
            Some(Ended::Failed) => 1,
        };
        FCGI_OK
    })
}

/// Stops the server (as `fcgi_server_shutdown`), finishes every request still held (their
/// handles become invalid), answers those never accepted with a 503, waits for the connections
/// in flight to end, and frees the server. NULL is ignored. Call it once, after every other
/// thread is done with the server (their accept returned FCGI_ERR_STOPPED).
#[no_mangle]
pub unsafe extern "C" fn fcgi_server_close(server: *mut fcgi_server) {
    ffi_boundary!((), {
        if server.is_null() {
            return;
        }
        // SAFETY: a non-NULL `server` came from Box::into_raw in fcgi_server_open and is closed
        // once, by this call, with no other thread using it (the caller's contract).
        let mut server = unsafe { Box::from_raw(server) };
        server.stop.stop();
        let (queued, live) = {
            let mut state = server.shared.lock();
            state.closing = true;
            (std::mem::take(&mut state.queue), std::mem::take(&mut state.live))
        };
        server.shared.changed.notify_all();
        for lent in queued {
            lent.done.complete(Outcome::Refused);
        }
        for handle in live {
            let address = handle as *mut fcgi_request;
            // SAFETY: `live` holds the handles accepted and not finished: each came from
            // Box::into_raw in fcgi_server_accept, and the caller no longer uses them.
            let handle = unsafe { Box::from_raw(address) };
            handle.finish(address);
        }
        if let Some(serving) = server.serving.take() {
            let _ = serving.join();
        }
    })
}
