//! The graceful timeout: how long a stop or a reload waits for the requests in flight. Past
//! it a reload re-executes the program anyway and a stop ends the process, as a supervisor's
//! SIGKILL would (PHP-FPM's `process_control_timeout`, gunicorn's `graceful_timeout`), but
//! with a log line saying how many requests were cut.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::context::Context;
use super::listener::Listener;
use super::pid_file;

/// How often, once stopping, the watch looks whether the requests in flight are done.
const LOOK_EVERY: Duration = Duration::from_millis(20);

/// Watches one serve (or one acceptor): waits for its stop (the wake-up socket `wake` turns
/// readable, and stays so), then up to `timeout` for `finished` to say so; past it, re-executes
/// the program for a reload (unless this is a pre-fork worker process: `owns_listener` is
/// false), or ends the process (removing the socket file first if `owns_listener`). Returns
/// when `finished` said so in time.
pub(crate) fn enforce(
    wake: &UnixStream,
    timeout: Duration,
    finished: &dyn Fn() -> bool,
    ctx: &Context,
    listener: &Listener,
    owns_listener: bool,
) {
    wait_readable(wake);
    let deadline = Instant::now() + timeout;
    while !finished() {
        if Instant::now() >= deadline {
            cut(ctx, listener, owns_listener, timeout);
        }
        std::thread::sleep(LOOK_EVERY);
    }
}

/// The graceful timeout passed with requests in flight.
fn cut(ctx: &Context, listener: &Listener, owns_listener: bool, timeout: Duration) -> ! {
    let left = ctx.stats.in_flight();
    ctx.flush_logs();
    // A worker process (which does not own the listener) never re-executes: the program is its
    // supervisor's to re-execute, and the supervisor does not wait for a worker to do so.
    if ctx.is_reloading() && owns_listener {
        log::error!("{left} request(s) still in flight {timeout:?} after the reload began: re-executing anyway");
        let e = listener.reexec();
        log::error!("the reload failed: {e}");
    } else {
        log::error!("{left} request(s) still in flight {timeout:?} after the stop: ending the process");
    }
    if owns_listener {
        listener.remove_socket_file();
        pid_file::remove_ours();
    }
    // _exit, not exit: the program's own exit may be under way on another thread (a libfcgi
    // program returning from main while its last request runs), and exit(3) run twice at
    // once is undefined; the access log, the one thing this library buffers, was flushed first.
    // SAFETY: _exit(2) ends the process at once; it takes no pointer and cannot fail.
    unsafe { libc::_exit(1) }
}

/// Waits until `socket` is readable (or polling it fails).
fn wait_readable(socket: &UnixStream) {
    let mut poll = libc::pollfd { fd: socket.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    loop {
        // SAFETY: poll(2) on one valid pollfd, for ever.
        match unsafe { libc::poll(&mut poll, 1, -1) } {
            n if n > 0 => return,
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            _ => return,
        }
    }
}
