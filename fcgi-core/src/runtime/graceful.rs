//! The graceful timeout: how long a stop or a reload waits for the requests in flight. Past
//! it a reload re-executes the program anyway and a stop ends the process, as a supervisor's
//! SIGKILL would (PHP-FPM's `process_control_timeout`, gunicorn's `graceful_timeout`), but
//! with a log line saying how many requests were cut.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::listener::Listener;
use super::server::Context;

/// The worker threads of one serve that are still running.
pub(crate) struct Running {
    count: Mutex<usize>,
    changed: Condvar,
}

impl Running {
    pub(crate) fn new(workers: usize) -> Self {
        Self { count: Mutex::new(workers), changed: Condvar::new() }
    }

    /// A worker thread is done; says whether it was the last.
    pub(crate) fn done(&self) -> bool {
        let mut count = self.count.lock().unwrap_or_else(|p| p.into_inner());
        *count -= 1;
        self.changed.notify_all();
        *count == 0
    }

    /// Waits up to `timeout` for every worker thread to be done; the number still running.
    fn wait_all(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut count = self.count.lock().unwrap_or_else(|p| p.into_inner());
        while *count > 0 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { break };
            count = self.changed.wait_timeout(count, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        *count
    }
}

/// Watches one serve: waits for its stop (the wake-up socket `wake` turns readable, and stays
/// so), then up to `timeout` for the worker threads; past it, re-executes the program for a
/// reload (unless this is a pre-fork worker process: `owns_listener` is false), or ends the
/// process (removing the socket file first if `owns_listener`). Returns when every worker is
/// done in time.
pub(crate) fn enforce(
    wake: &UnixStream,
    timeout: Duration,
    running: &Running,
    ctx: &Context,
    listener: &Listener,
    owns_listener: bool,
) {
    wait_readable(wake);
    let left = running.wait_all(timeout);
    if left == 0 {
        return;
    }
    // A worker process (which does not own the listener) never re-executes: the program is its
    // supervisor's to re-execute, and the supervisor does not wait for a worker to do so.
    if ctx.is_reloading() && owns_listener {
        eprintln!("fcgi: {left} request(s) still in flight {timeout:?} after the reload began: re-executing anyway");
        let e = listener.reexec();
        eprintln!("fcgi: the reload failed: {e}");
    } else {
        eprintln!("fcgi: {left} request(s) still in flight {timeout:?} after the stop: ending the process");
    }
    if owns_listener {
        listener.remove_socket_file();
    }
    std::process::exit(1);
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
