//! Signals that ask the server to stop: SIGTERM, SIGINT and SIGUSR1 (stop; mod_fcgid and Apache
//! use SIGTERM and SIGUSR1), and SIGHUP (reload: stop, then re-execute the program on the same
//! listening socket, flup's convention). All of them let in-flight requests finish.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// Set by a signal handler; read by every server in the process.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);
/// Set with STOP_REQUESTED when the stop is a reload.
static RELOAD_REQUESTED: AtomicBool = AtomicBool::new(false);
/// The write end of the serving server's wake-up socket, or -1.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGUSR1];

extern "C" fn on_stop_signal(_signal: libc::c_int) {
    STOP_REQUESTED.store(true, Ordering::SeqCst);
    wake(WAKE_FD.load(Ordering::SeqCst));
}

extern "C" fn on_reload_signal(_signal: libc::c_int) {
    RELOAD_REQUESTED.store(true, Ordering::SeqCst);
    on_stop_signal(0);
}

/// Writes one byte to `fd` (async-signal-safe).
pub(crate) fn wake(fd: RawFd) {
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: write(2) on a valid pointer to one byte; a bad or full fd only makes it fail,
        // which is harmless since the stop flag is already set.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

/// Whether a stop signal arrived.
pub fn stop_requested() -> bool {
    STOP_REQUESTED.load(Ordering::SeqCst)
}

/// Asks a serving server to stop, as a signal would. Async-signal-safe, so a program's own
/// signal handler may call it.
pub fn request_stop() {
    on_stop_signal(0);
}

/// Asks a serving server to reload, as SIGHUP would: finish the requests in flight, then
/// re-execute the program with the listening socket kept open. Async-signal-safe.
pub fn request_reload() {
    on_reload_signal(0);
}

/// Whether the stop under way is a reload.
pub fn reload_requested() -> bool {
    RELOAD_REQUESTED.load(Ordering::SeqCst)
}

/// The handlers installed while a server runs; dropping it restores the previous ones.
pub(crate) struct SignalGuard {
    previous: Vec<(libc::c_int, libc::sigaction)>,
}

impl SignalGuard {
    /// Installs the stop handlers (without SA_RESTART, so blocking calls see EINTR) and ignores
    /// SIGPIPE, so a vanished web server is an error on write, not the end of the process.
    pub(crate) fn install(wake_fd: RawFd) -> io::Result<Self> {
        STOP_REQUESTED.store(false, Ordering::SeqCst);
        RELOAD_REQUESTED.store(false, Ordering::SeqCst);
        WAKE_FD.store(wake_fd, Ordering::SeqCst);
        let mut previous = Vec::new();
        for signal in STOP_SIGNALS {
            previous.push((signal, set_action(signal, on_stop_signal as *const () as libc::sighandler_t)?));
        }
        previous.push((libc::SIGHUP, set_action(libc::SIGHUP, on_reload_signal as *const () as libc::sighandler_t)?));
        previous.push((libc::SIGPIPE, set_action(libc::SIGPIPE, libc::SIG_IGN)?));
        Ok(Self { previous })
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        WAKE_FD.store(-1, Ordering::SeqCst);
        for (signal, action) in &self.previous {
            // SAFETY: restores an action previously returned by sigaction for the same signal.
            unsafe { libc::sigaction(*signal, action, std::ptr::null_mut()) };
        }
    }
}

fn set_action(signal: libc::c_int, handler: libc::sighandler_t) -> io::Result<libc::sigaction> {
    // SAFETY: sigaction structs are plain data; zeroed is a valid empty mask and flag set, and
    // the handler is either SIG_IGN or an extern "C" fn that only touches atomics and write(2).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        libc::sigemptyset(&mut action.sa_mask);
        let mut previous: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(signal, &action, &mut previous) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(previous)
    }
}
