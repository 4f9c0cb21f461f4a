//! The process's server: `fcgi_core::Server` on a thread of ours, turned into libfcgi's pull
//! model.
//!
//! The core's handler runs on a worker thread: it lends its request to whichever C thread
//! accepts next (through the queue below) and waits until that thread finishes it; then the
//! core ends the request on the wire as usual (the scheme of `fcgi-capi`'s server). What
//! libfcgi programs need beyond that is here too:
//!
//! - **A wait a signal can interrupt.** An accepting thread sleeps in poll(2) on a pipe that is
//!   written once per lent request and closed when serving ends, so a signal handler running
//!   on that thread makes `FCGX_Accept_r` return -EINTR when `FCGI_FAIL_ACCEPT_ON_INTR` asks.
//!   The core's worker threads block signals, so signals land on the program's threads, as
//!   with libfcgi (Linux gives a process's signal to its main thread first anyway).
//! - **One server per process, on the socket the program names.** fd 0 (a web server's
//!   socket, else systemd's, else CGI mode) is the core's own business. A socket from
//!   `FCGX_OpenSocket` is given to the core as fd 0 (dup2), the one way the core takes a
//!   listener it did not bind; so such a process gives up its stdin (unused by a FastCGI
//!   server). A forked child starts a server of its own on the shared socket.
//! - **An orderly exit.** At exit the request of `FCGX_Accept` is finished, the server stops,
//!   requests never accepted get a 503, and the exit waits (up to 5 s) until the requests
//!   finished by the program have ended on the wire.

use std::collections::VecDeque;
use std::ffi::c_int;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use fcgi_core::runtime::listener;
use fcgi_core::{Handler, Lifecycle, Request, Server, ServerConfig, Stats, StopHandle};

use crate::{config, socket};

/// How long the exit waits for the requests in flight to end on the wire.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// A worker's request, lent to a C thread until finished.
pub(crate) struct Lent {
    pub(crate) request: NonNull<Request<'static>>,
    pub(crate) done: Arc<Completion>,
}

// SAFETY: `Request` is `Send` (fcgi-core asserts it). The pointer moves to the accepting
// thread while the worker that lent it waits without touching the request, so one thread at a
// time uses it.
unsafe impl Send for Lent {}

/// How a lent request came back.
pub(crate) enum Outcome {
    /// The program finished it; the first I/O error it met, for the core's log and its error
    /// page when nothing was written.
    Finished(Option<io::Error>),
    /// The process is exiting and nobody accepted it: the worker answers 503.
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

/// Why an accept returned no request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AcceptError {
    /// The server stopped and no request is left (or was never started: shutdown pending).
    Stopped,
    /// A signal interrupted the wait (with `FCGI_FAIL_ACCEPT_ON_INTR`).
    Interrupted,
    /// The server could not start or failed: this errno value.
    Failed(c_int),
}

impl AcceptError {
    /// `FCGX_Accept_r`'s return value.
    pub(crate) fn code(self) -> c_int {
        match self {
            Self::Stopped => -1,
            Self::Interrupted => -libc::EINTR,
            Self::Failed(errno) => -errno.max(1),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Ended {
    Served,
    Failed(c_int),
}

/// What the serving thread, its workers and the accepting threads share.
struct Shared {
    state: Mutex<State>,
    /// The read end of the doorbell: a byte per lent request; end of file once serving ended.
    bell: OwnedFd,
    /// Signalled when serving ends.
    ended: Condvar,
}

struct State {
    queue: VecDeque<Lent>,
    /// The write end of the doorbell, dropped when serving ends or the process exits.
    ring: Option<OwnedFd>,
    /// Set at exit: nothing more is lent; workers answer 503 themselves.
    closing: bool,
    ended: Option<Ended>,
}

impl Shared {
    fn new() -> io::Result<Self> {
        let mut fds = [0; 2];
        // SAFETY: pipe2(2) writes two descriptors into `fds`, which we then own.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just made by pipe2 and belong to nothing else.
        let (bell, ring) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Self {
            state: Mutex::new(State { queue: VecDeque::new(), ring: Some(ring), closing: false, ended: None }),
            bell,
            ended: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records how serving ended and wakes every waiter for good.
    fn end(&self, how: Ended) {
        let mut state = self.lock();
        state.ended = Some(how);
        state.ring = None;
        drop(state);
        self.ended.notify_all();
    }
}

impl State {
    /// One byte on the doorbell: an accepting thread wakes. A full pipe means waiters are
    /// awake already.
    fn ring(&self) {
        if let Some(ring) = &self.ring {
            let byte = 1u8;
            // SAFETY: write(2) of one byte from a valid pointer to a pipe we own.
            unsafe { libc::write(ring.as_raw_fd(), (&byte as *const u8).cast(), 1) };
        }
    }
}

/// The page a worker sends for a request nobody accepted before the process exited.
const CLOSING: &[u8] =
    b"Status: 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\nThe application is stopping.\n";

fn refuse(request: &mut Request<'_>) -> io::Result<()> {
    request.set_app_status(1);
    request.write_stdout(CLOSING)
}

/// The core's handler: lends `request` to the next accepting thread and waits until it comes
/// back.
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
        // until the program finishes it.
        let ptr = NonNull::from(&mut *request).cast::<Request<'static>>();
        state.queue.push_back(Lent { request: ptr, done: done.clone() });
        state.ring();
    }
    match done.wait() {
        Outcome::Finished(None) => Ok(()),
        Outcome::Finished(Some(error)) => Err(error),
        Outcome::Refused => refuse(request),
    }
}

/// The process's server.
pub(crate) struct ProcessServer {
    /// The process that started it: a forked child starts its own.
    pid: u32,
    /// The listening socket the program named (0, or a descriptor from FCGX_OpenSocket).
    listen_sock: c_int,
    shared: Arc<Shared>,
    stop: StopHandle,
    stats: Arc<Stats>,
}

impl ProcessServer {
    /// Waits for the next lent request.
    pub(crate) fn accept(&self, interruptible: bool) -> Result<Lent, AcceptError> {
        loop {
            {
                let mut state = self.shared.lock();
                if let Some(lent) = state.queue.pop_front() {
                    return Ok(lent);
                }
                if state.closing {
                    return Err(AcceptError::Stopped);
                }
                match state.ended {
                    Some(Ended::Served) => return Err(AcceptError::Stopped),
                    Some(Ended::Failed(errno)) => return Err(AcceptError::Failed(errno)),
                    None => {}
                }
            }
            let mut ready = libc::pollfd { fd: self.shared.bell.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: poll(2) on one valid pollfd.
            if unsafe { libc::poll(&mut ready, 1, -1) } < 0 {
                let error = io::Error::last_os_error();
                match error.raw_os_error() {
                    Some(libc::EINTR) if interruptible => return Err(AcceptError::Interrupted),
                    Some(libc::EINTR) => continue,
                    other => return Err(AcceptError::Failed(other.unwrap_or(libc::EIO))),
                }
            }
            // Take one byte if it is still there (another thread may have been quicker); the
            // queue, checked above, is what counts.
            let mut byte = 0u8;
            // SAFETY: read(2) of at most one byte into a valid buffer from a pipe we own.
            unsafe { libc::read(self.shared.bell.as_raw_fd(), (&mut byte as *mut u8).cast(), 1) };
        }
    }

    /// The server's counters: connections accepted, requests served.
    pub(crate) fn stats(&self) -> (u64, u64) {
        (self.stats.connections(), self.stats.requests())
    }

    /// At exit: stops serving, answers what nobody accepted, and waits up to `grace` for the
    /// requests in flight to end.
    fn close(&self, grace: Duration) {
        self.stop.stop();
        let queued = {
            let mut state = self.shared.lock();
            state.closing = true;
            state.ring = None;
            std::mem::take(&mut state.queue)
        };
        for lent in queued {
            lent.done.complete(Outcome::Refused);
        }
        let deadline = Instant::now() + grace;
        let mut state = self.shared.lock();
        while state.ended.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            state = self.shared.ended.wait_timeout(state, left).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
        }
    }
}

static SERVER: Mutex<Option<Arc<ProcessServer>>> = Mutex::new(None);

/// The process that called `FCGX_ShutdownPending`, or 0.
static SHUTDOWN_PID: AtomicU32 = AtomicU32::new(0);
/// The stop handle of the latest server, leaked so a signal handler can always use it, and
/// the process it belongs to.
static STOP: AtomicPtr<StopHandle> = AtomicPtr::new(std::ptr::null_mut());
static STOP_PID: AtomicU32 = AtomicU32::new(0);

fn server_slot() -> MutexGuard<'static, Option<Arc<ProcessServer>>> {
    SERVER.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The server for `listen_sock`, started on first use in this process.
pub(crate) fn for_socket(listen_sock: c_int) -> Result<Arc<ProcessServer>, AcceptError> {
    let mut slot = server_slot();
    let pid = std::process::id();
    if let Some(server) = slot.as_ref().filter(|s| s.pid == pid) {
        if server.listen_sock == listen_sock {
            return Ok(server.clone());
        }
        eprintln!(
            "fcgi-compat: cannot accept on fd {listen_sock}: this process already serves fd {} (one listening \
             socket per process)",
            server.listen_sock
        );
        return Err(AcceptError::Failed(libc::EINVAL));
    }
    if SHUTDOWN_PID.load(Ordering::SeqCst) == pid {
        return Err(AcceptError::Stopped);
    }
    let server = start(listen_sock).map_err(|e| {
        eprintln!("fcgi-compat: cannot serve fd {listen_sock}: {e}");
        AcceptError::Failed(e.raw_os_error().unwrap_or(libc::EINVAL))
    })?;
    let server = Arc::new(server);
    *slot = Some(server.clone());
    Ok(server)
}

/// The counters of this process's server, if it has one.
pub(crate) fn stats() -> Option<(u64, u64)> {
    server_slot().as_ref().filter(|s| s.pid == std::process::id()).map(|s| s.stats())
}

/// Stops the server gracefully, or makes the first accept return -1. Async-signal-safe: only
/// atomics, getpid(2) and the stop handle's write(2).
pub(crate) fn shutdown_pending() {
    let pid = std::process::id();
    SHUTDOWN_PID.store(pid, Ordering::SeqCst);
    let handle = STOP.load(Ordering::SeqCst);
    if STOP_PID.load(Ordering::SeqCst) == pid {
        // SAFETY: STOP holds NULL or a handle leaked by `start`, never freed.
        if let Some(handle) = unsafe { handle.as_ref() } {
            handle.stop();
        }
    }
}

fn start(listen_sock: c_int) -> io::Result<ProcessServer> {
    let mut config = ServerConfig::default();
    for complaint in config::apply(&mut config, |name| std::env::var(name).ok()) {
        eprintln!("fcgi-compat: {complaint}");
    }
    if listen_sock != 0 {
        if !listener::is_listening_socket(listen_sock) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a listening socket"));
        }
        // SAFETY: dup2(2) between two descriptor numbers: fd 0 becomes the listening socket,
        // which the core then takes over as a web server's socket on fd 0.
        if unsafe { libc::dup2(listen_sock, 0) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    if (listen_sock != 0 || socket::is_created(listen_sock)) && config.workers.is_none() {
        // The core sees fd 0 and would serve one request at a time, as for mod_fcgid; a
        // socket the program bound itself is served like one the core binds.
        config.workers = Some(config::bound_workers());
    }
    config.handle_signals = !program_handles_signals();
    config.processes = 1;
    ignore_sigpipe_if_default();

    let server = Server::new(config);
    let stop = server.stop_handle();
    let stats = server.stats();
    let shared = Arc::new(Shared::new()?);
    let serving = shared.clone();
    std::thread::Builder::new().name("fcgi-compat".into()).spawn(move || serve(server, serving))?;

    let pid = std::process::id();
    let leaked = Box::into_raw(Box::new(stop.clone()));
    STOP.store(leaked, Ordering::SeqCst);
    STOP_PID.store(pid, Ordering::SeqCst);
    if SHUTDOWN_PID.load(Ordering::SeqCst) == pid {
        stop.stop();
    }
    register_at_exit();
    Ok(ProcessServer { pid, listen_sock, shared, stop, stats })
}

/// The core's handler.
struct Lender(Arc<Shared>);

impl Handler for Lender {
    fn handle(&self, request: &mut Request<'_>) -> io::Result<()> {
        lend(&self.0, request)
    }
}

impl Lifecycle for Lender {
    fn run_thread(&self, work: &mut (dyn FnMut() + Send)) {
        block_signals();
        work()
    }
}

/// The serving thread. It keeps the mask of the thread that started it (the program's): the
/// core re-executes the program from this thread on SIGHUP, and exec keeps the mask.
fn serve(server: Server, shared: Arc<Shared>) {
    let handler = Lender(shared.clone());
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.serve_with(&handler, &handler)));
    let ended = match outcome {
        Ok(Ok(_)) => Ended::Served,
        Ok(Err(e)) => {
            eprintln!("fcgi-compat: the server stopped: {e}");
            Ended::Failed(e.raw_os_error().unwrap_or(libc::EIO))
        }
        Err(_) => Ended::Failed(libc::EIO),
    };
    socket::remove_files();
    shared.end(ended);
}

/// Whether the program installed a handler of its own for a signal the core would take over:
/// then the program keeps them all, as it had them with libfcgi.
fn program_handles_signals() -> bool {
    [libc::SIGTERM, libc::SIGINT, libc::SIGUSR1, libc::SIGHUP].into_iter().any(|signal| {
        // SAFETY: sigaction(2) with a NULL new action only reads the current one into `old`,
        // a plain struct for which zeroes are valid.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(signal, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction != libc::SIG_DFL
                && old.sa_sigaction != libc::SIG_IGN
        }
    })
}

/// A web server that goes away must be a write error, not the end of the process (libfcgi
/// ignores SIGPIPE the same way when the program left it at its default).
fn ignore_sigpipe_if_default() {
    // SAFETY: sigaction(2) reads the current action into a zeroed plain struct; signal(2) sets
    // SIG_IGN, which runs no code.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_DFL {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
    }
}

/// Blocks, on the calling thread, every signal but those a fault raises, so that signals go
/// to the program's threads.
fn block_signals() {
    // SAFETY: sigset_t is plain data; sigfillset/sigdelset initialise it; pthread_sigmask only
    // changes the calling thread's mask.
    unsafe {
        let mut blocked: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut blocked);
        for fault in [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE, libc::SIGABRT, libc::SIGTRAP] {
            libc::sigdelset(&mut blocked, fault);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &blocked, std::ptr::null_mut());
    }
}

/// Registers the exit handler once per process image (a forked child inherits it).
pub(crate) fn register_at_exit() {
    static REGISTERED: Once = Once::new();
    REGISTERED.call_once(|| {
        // SAFETY: atexit(3) with an extern "C" function that never unwinds.
        unsafe { libc::atexit(at_exit) };
    });
}

extern "C" fn at_exit() {
    let _ = std::panic::catch_unwind(|| {
        crate::request::finish_global_at_exit();
        // try_lock: a child forked while another thread held the lock must still exit.
        let server = SERVER.try_lock().ok().and_then(|slot| slot.clone());
        if let Some(server) = server.filter(|s| s.pid == std::process::id()) {
            server.close(EXIT_GRACE);
        }
        socket::remove_files();
    });
}
