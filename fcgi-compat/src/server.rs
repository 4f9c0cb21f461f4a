//! The process's server: `fcgi_core::Server::acceptor`, as `fcgi-capi` uses it. The thread
//! that calls `FCGX_Accept_r` takes the next request itself, and the request belongs to its
//! `FCGX_Request` until `FCGX_Finish_r`. What libfcgi programs need beyond that:
//!
//! - **A wait a signal can interrupt** (`FCGI_FAIL_ACCEPT_ON_INTR`): the core's
//!   [`Acceptor::accept_interruptible`]. The core's own threads block signals, so signals land
//!   on the program's threads, as with libfcgi.
//! - **One server per process, on the socket the program names.** fd 0 (a web server's
//!   socket, else systemd's, else CGI mode) is the core's own business; a socket from
//!   `FCGX_OpenSocket` is served as [`Bind::Fd`], which leaves the descriptor the program's. A
//!   forked child starts a server of its own on the shared socket.
//! - **An orderly exit.** At exit the request of `FCGX_Accept` is finished, then
//!   [`Acceptor::close`] answers the requests never accepted with a 503 and waits (up to 5 s)
//!   until the requests the program finished have ended on the wire; a reload (SIGHUP)
//!   re-executes the program then.

use std::ffi::c_int;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use fcgi_core::runtime::logging;
use fcgi_core::{Accepted, Acceptor, Bind, Request, Server, ServerConfig, Stats, StopHandle};

use crate::{config, socket};

/// How long the exit waits for the requests in flight to end on the wire.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// How long the exit waits for other threads to leave their accept before it lets the server
/// go (a reload re-executes the program then).
const ACCEPTS_LEFT_WAIT: Duration = Duration::from_secs(1);

/// Why an accept returned no request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AcceptError {
    /// The server stopped and no request is left (or was never started: shutdown pending).
    Stopped,
    /// A signal interrupted the wait (with `FCGI_FAIL_ACCEPT_ON_INTR`).
    Interrupted,
    /// The server could not start: this errno value.
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

/// The process's server.
pub(crate) struct ProcessServer {
    /// The process that started it: a forked child starts its own.
    pid: u32,
    /// The listening socket the program named (0, or a descriptor from FCGX_OpenSocket).
    listen_sock: c_int,
    acceptor: Acceptor,
    stats: Arc<Stats>,
}

impl ProcessServer {
    /// The next request, on the calling thread.
    pub(crate) fn accept(&self, interruptible: bool) -> Result<Request<'static>, AcceptError> {
        if !interruptible {
            return self.acceptor.accept().ok_or(AcceptError::Stopped);
        }
        match self.acceptor.accept_interruptible() {
            Accepted::Request(request) => Ok(request),
            Accepted::Stopped => Err(AcceptError::Stopped),
            Accepted::Interrupted => Err(AcceptError::Interrupted),
        }
    }

    /// The server's counters: connections accepted, requests served.
    pub(crate) fn stats(&self) -> (u64, u64) {
        (self.stats.connections(), self.stats.requests())
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
        log::error!(
            "cannot accept on fd {listen_sock}: this process already serves fd {} (one listening \
             socket per process)",
            server.listen_sock
        );
        return Err(AcceptError::Failed(libc::EINVAL));
    }
    if SHUTDOWN_PID.load(Ordering::SeqCst) == pid {
        return Err(AcceptError::Stopped);
    }
    let server = start(listen_sock).map_err(|e| {
        log::error!("cannot serve fd {listen_sock}: {e}");
        AcceptError::Failed(e.raw_os_error().unwrap_or(libc::EINVAL))
    })?;
    let server = Arc::new(server);
    // A forked child's copy of its parent's server is never dropped: dropping it would stop
    // the parent's server through the wake-up socket they share.
    std::mem::forget(slot.replace(server.clone()));
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

fn start(listen_sock: c_int) -> std::io::Result<ProcessServer> {
    let mut config = ServerConfig::default();
    let complaints = config::apply(&mut config, |name| std::env::var(name).ok());
    logging::install_default(config.log_level);
    for complaint in complaints {
        log::warn!("{complaint}");
    }
    if listen_sock != 0 || socket::is_created(listen_sock) {
        // The program's own socket, served like one the core binds; fd 0 from a web server
        // (mod_fcgid's one request at a time) or systemd's is found by the core itself.
        config.bind = Some(Bind::Fd(listen_sock));
    }
    config.handle_signals = !program_handles_signals();
    config.processes = Some(1);
    ignore_sigpipe_if_default();

    let server = Server::new(config);
    let stop = server.stop_handle();
    let acceptor = server.acceptor()?;

    let pid = std::process::id();
    let leaked = Box::into_raw(Box::new(stop.clone()));
    STOP.store(leaked, Ordering::SeqCst);
    STOP_PID.store(pid, Ordering::SeqCst);
    if SHUTDOWN_PID.load(Ordering::SeqCst) == pid {
        stop.stop();
    }
    register_at_exit();
    Ok(ProcessServer { pid, listen_sock, acceptor, stats: server.stats() })
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
        let server = SERVER.try_lock().ok().and_then(|mut slot| slot.take_if(|s| s.pid == std::process::id()));
        if let Some(server) = server {
            server.acceptor.close(Instant::now() + EXIT_GRACE);
            // Let the server go once no other thread is in its accept: dropping the acceptor
            // re-executes the program for a reload.
            let deadline = Instant::now() + ACCEPTS_LEFT_WAIT;
            let mut server = server;
            loop {
                match Arc::try_unwrap(server) {
                    Ok(alone) => {
                        drop(alone);
                        break;
                    }
                    Err(shared) if Instant::now() < deadline => {
                        server = shared;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => {
                        log::warn!("a thread is still in FCGX_Accept_r at exit: the server is left as is");
                        break;
                    }
                }
            }
        }
        socket::remove_files();
    });
}
