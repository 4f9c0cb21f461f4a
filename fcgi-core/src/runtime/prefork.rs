//! A pre-fork pool: processes sharing one listener, supervised by the process that bound it.
//! The supervisor restarts a worker process that dies (or recycles after `max_requests`) and,
//! when asked to stop, passes SIGTERM on and waits for every worker to finish its requests.

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::listener::Listener;
use super::request::{Handler, Transport};
use super::server::{Server, ServerConfig};
use super::signals::SignalGuard;

/// A worker that dies sooner than this after starting is restarted only after this long, so
/// an app that fails at start-up does not make the supervisor fork in a tight loop.
const MIN_LIFETIME: Duration = Duration::from_secs(1);
/// How often the supervisor looks for exited workers.
const REAP_EVERY: Duration = Duration::from_millis(100);

/// Runs `config.processes` worker processes on `listener` until the server is stopped.
pub(crate) fn supervise(
    server: &Server,
    handler: &dyn Handler,
    listener: &Arc<Listener>,
    config: &ServerConfig,
    transport: Transport,
) -> io::Result<()> {
    let (mut wake, wake_writer) = server.wake_pair()?;
    let signals = if config.handle_signals { Some(SignalGuard::install(wake_writer)?) } else { None };
    let mut workers: HashMap<i32, Instant> = HashMap::new();
    let mut restart_after = Instant::now();
    let mut passed_on = false;
    loop {
        let stopping = server.is_stopping();
        while !stopping && workers.len() < config.processes && Instant::now() >= restart_after {
            let pid = handler.fork()?;
            if pid == 0 {
                // The worker: serve with its own threads and signal handlers, then exit
                // without running the supervisor's caller's code a second time.
                drop(signals);
                handler.after_fork();
                let served = server
                    .renew_wake_after_fork()
                    .and_then(|()| server.serve_in_process(handler, listener, config.clone(), transport, false));
                if let Err(e) = &served {
                    eprintln!("fcgi: worker process {}: {e}", std::process::id());
                }
                std::process::exit(i32::from(served.is_err()));
            }
            workers.insert(pid, Instant::now());
        }
        if stopping && !passed_on {
            for pid in workers.keys() {
                // SAFETY: kill(2) on a child we started and have not reaped.
                unsafe { libc::kill(*pid, libc::SIGTERM) };
            }
            passed_on = true;
        }
        for (pid, status) in reap(workers.keys().copied().collect()) {
            let Some(started) = workers.remove(&pid) else { continue };
            if !stopping && started.elapsed() < MIN_LIFETIME {
                restart_after = Instant::now() + MIN_LIFETIME;
            }
            let clean_exit = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
            if !stopping && !clean_exit {
                eprintln!("fcgi: worker process {pid} died (wait status {status}); starting another");
            }
        }
        if stopping && workers.is_empty() {
            return Ok(());
        }
        wait_for_wake(&mut wake, REAP_EVERY);
    }
}

/// Those of `workers` that have exited, with their wait statuses, without blocking. Each is
/// waited for by its pid: waitpid(-1) would also take the exit status of a child the program
/// started itself (a Python app's `subprocess.run` in the supervisor), which its own waitpid
/// would then never see.
fn reap(workers: Vec<i32>) -> Vec<(i32, i32)> {
    workers
        .into_iter()
        .filter_map(|pid| {
            let mut status = 0;
            // SAFETY: waitpid(2) on a child we started, with a valid pointer for the status.
            let reaped = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if reaped == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
                // Reaped by someone else (the program's own waitpid(-1), or SIGCHLD ignored):
                // gone all the same, its status unknown.
                return Some((pid, 0));
            }
            (reaped == pid).then_some((pid, status))
        })
        .collect()
}

/// Sleeps until the wake-up socket is written to or `timeout` passes, then drains it.
fn wait_for_wake(wake: &mut std::os::unix::net::UnixStream, timeout: Duration) {
    let mut poll = libc::pollfd { fd: wake.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: poll(2) on one valid pollfd.
    unsafe { libc::poll(&mut poll, 1, timeout.as_millis() as libc::c_int) };
    while wake.read(&mut [0; 64]).is_ok_and(|n| n > 0) {}
}
