//! Signals that ask the server to stop: SIGTERM, SIGINT and SIGUSR1 (stop; mod_fcgid and Apache
//! use SIGTERM and SIGUSR1), and SIGHUP (reload: stop, then re-execute the program on the same
//! listening socket, flup's convention). All of them let in-flight requests finish.
//!
//! A reload is the one moment the process has no handler of its own: an exec resets a handled
//! signal to its default action (for SIGHUP, the end of the process) until the new program
//! installs its handlers again, which for a Python app comes after its imports. So SIGHUP is
//! ignored across the exec (an ignored signal stays ignored through execve): a SIGHUP that comes
//! while the old program drains, while it re-executes, or while the new one starts is a reload
//! already under way, not a death. The new program's handlers replace the ignoring as they
//! install, and restore, when it stops serving, what SIGHUP did before the first program took it.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Mutex;

/// Set by a signal handler; read by every server in the process.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);
/// Set with STOP_REQUESTED when the stop is a reload.
static RELOAD_REQUESTED: AtomicBool = AtomicBool::new(false);
/// The write end of the serving server's wake-up socket, or -1.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

/// What SIGHUP did before the serving server's handler took it (the action to give back).
static SIGHUP_BEFORE: Mutex<Option<libc::sigaction>> = Mutex::new(None);

const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGUSR1];

/// Names, across a reload's exec, what SIGHUP did before the first program's server took it
/// (`PID:default` or `PID:ignore`): the new program finds it ignored, by us, not by its caller.
const SIGHUP_BEFORE_ENV: &str = "FCGI_SIGHUP_BEFORE_RELOAD";

extern "C" fn on_stop_signal(_signal: libc::c_int) {
    let _errno = SavedErrno::save();
    STOP_REQUESTED.store(true, Ordering::SeqCst);
    wake(WAKE_FD.load(Ordering::SeqCst));
}

extern "C" fn on_reload_signal(_signal: libc::c_int) {
    let _errno = SavedErrno::save();
    RELOAD_REQUESTED.store(true, Ordering::SeqCst);
    on_stop_signal(0);
}

/// The interrupted code's errno, given back when the handler returns: the handler's write(2)
/// may set it, and the code the signal interrupted may be about to read it.
struct SavedErrno(libc::c_int);

impl SavedErrno {
    fn save() -> Self {
        // SAFETY: __errno_location returns this thread's errno, valid for the thread's life.
        Self(unsafe { *libc::__errno_location() })
    }
}

impl Drop for SavedErrno {
    fn drop(&mut self) {
        // SAFETY: as in `save`.
        unsafe { *libc::__errno_location() = self.0 };
    }
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

/// Blocks, on the calling thread, every signal but those a fault raises: for the threads the
/// library starts beside a program's own (the acceptor's helpers, multiplexed readers), so that
/// a signal lands on a thread of the program, where its handler can interrupt an accept.
pub(crate) fn block_on_this_thread() {
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
        let mut before = set_action(libc::SIGHUP, on_reload_signal as *const () as libc::sighandler_t)?;
        if before.sa_sigaction == libc::SIG_IGN && ignored_by_a_reload() == Some(false) {
            // Ignored by the reload that started this program, not by whoever started the first.
            before.sa_sigaction = libc::SIG_DFL;
        }
        *SIGHUP_BEFORE.lock().unwrap_or_else(|p| p.into_inner()) = Some(before);
        previous.push((libc::SIGHUP, before));
        previous.push((libc::SIGPIPE, set_action(libc::SIGPIPE, libc::SIG_IGN)?));
        Ok(Self { previous })
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        WAKE_FD.store(-1, Ordering::SeqCst);
        let reloading = reload_requested();
        for (signal, action) in &self.previous {
            if *signal == libc::SIGHUP && reloading {
                // The handler stays (it only sets flags now): until the exec, which ignores
                // SIGHUP (`prepare_reexec`), another SIGHUP is the same reload, not a death.
                continue;
            }
            // SAFETY: restores an action previously returned by sigaction for the same signal.
            unsafe { libc::sigaction(*signal, action, std::ptr::null_mut()) };
        }
    }
}

/// Whether the SIGHUP this program found ignored was ignored by the reload that executed it:
/// `Some(false)` if SIGHUP did its default before the first program's server took it,
/// `Some(true)` if it was ignored then too, `None` if this program is not a reload.
fn ignored_by_a_reload() -> Option<bool> {
    let value = std::env::var(SIGHUP_BEFORE_ENV).ok()?;
    let (pid, before) = value.split_once(':')?;
    // A child of this program inherits the variable, but not the pid.
    if pid.parse::<u32>().ok()? != std::process::id() {
        return None;
    }
    Some(before == "ignore")
}

/// Just before a reload's exec: ignores SIGHUP, so that it stays ignored through the exec until
/// the new program's server installs its handler, and returns the variable that tells the new
/// program what SIGHUP did before (see [`SignalGuard::install`]). [`reexec_failed`] undoes it.
pub(crate) fn prepare_reexec() -> io::Result<(&'static str, String)> {
    let before = *SIGHUP_BEFORE.lock().unwrap_or_else(|p| p.into_inner());
    // A handler does not survive an exec: the default action is what the new program would get.
    let ignored = before.is_some_and(|action| action.sa_sigaction == libc::SIG_IGN);
    set_action(libc::SIGHUP, libc::SIG_IGN)?;
    let value = format!("{}:{}", std::process::id(), if ignored { "ignore" } else { "default" });
    Ok((SIGHUP_BEFORE_ENV, value))
}

/// After a failed exec: SIGHUP does again what it did before the server took it.
pub(crate) fn reexec_failed() {
    if let Some(action) = *SIGHUP_BEFORE.lock().unwrap_or_else(|p| p.into_inner()) {
        // SAFETY: an action previously returned by sigaction for SIGHUP.
        unsafe { libc::sigaction(libc::SIGHUP, &action, std::ptr::null_mut()) };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handlers_keep_the_interrupted_codes_errno() {
        // write(2) to a number no descriptor has fails with EBADF: the handler's own errno.
        WAKE_FD.store(i32::MAX, Ordering::SeqCst);
        for handler in [on_stop_signal, on_reload_signal] {
            // SAFETY: sets this thread's errno, as an interrupted syscall would have.
            unsafe { *libc::__errno_location() = libc::EINTR };
            handler(libc::SIGTERM);
            assert_eq!(io::Error::last_os_error().raw_os_error(), Some(libc::EINTR));
        }
        WAKE_FD.store(-1, Ordering::SeqCst);
        STOP_REQUESTED.store(false, Ordering::SeqCst);
        RELOAD_REQUESTED.store(false, Ordering::SeqCst);
    }
}
