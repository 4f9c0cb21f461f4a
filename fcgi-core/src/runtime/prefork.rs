//! A pre-fork pool: processes sharing one listener, supervised by the process that bound it.
//! The supervisor restarts a worker process that dies (or recycles after `max_requests`) and,
//! when asked to stop, passes SIGTERM on and waits for every worker to finish its requests.
//!
//! A reload (SIGHUP) keeps serving. The supervisor holds no request, so it re-executes itself at
//! once on the same listener (same pid) after telling its workers to stop (SIGTERM: they stop
//! accepting and finish their requests, bounded by their own graceful timeout). They stay its
//! children across the exec, so the new program, told their pids in `FCGI_DRAINING_WORKERS`,
//! reaps them (by pid, as any worker) while the workers it forks at once take the new
//! connections. A stop during all this stops both generations and waits for both.
//!
//! The old workers are told to stop before the exec rather than by the new program once its
//! workers run (which would leave no moment without an accepting process): so every request
//! that arrives after the SIGHUP runs the new code, and the old workers end even if the exec
//! fails or the new program dies at start-up, instead of serving the old code for ever, orphaned.
//! The price is the new program's start-up (a Python app's imports), during which new
//! connections wait in the listener's backlog; none is refused.
//!
//! On fd 0 (mod_fcgid, whose process manager starts and stops the processes) a reload stays
//! what it is with one process: the workers finish, then the program re-executes.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::ServerConfig;
use super::lifecycle::Lifecycle;
use super::listener::Listener;
use super::pool_size::PoolSize;
use super::privileges::Identity;
use super::request::{Handler, Transport};
use super::server::Server;
use super::signals::{self, SignalGuard};

/// A worker that dies sooner than this after starting is restarted only after this long, so
/// an app that fails at start-up does not make the supervisor fork in a tight loop.
const MIN_LIFETIME: Duration = Duration::from_secs(1);
/// A worker process's exit status when it could not start serving (its privileges could not be
/// dropped, or the app failed to load): gunicorn's `WORKER_BOOT_ERROR`.
const BOOT_FAILED: i32 = 3;
/// How often the supervisor looks for exited workers.
const REAP_EVERY: Duration = Duration::from_millis(100);
/// Names, across a reload's exec, the worker processes of the generation before
/// (`SUPERVISOR_PID:PID,PID,...`): told to stop, finishing their requests, still children of
/// the supervisor, which the new program reaps.
const DRAINING_ENV: &str = "FCGI_DRAINING_WORKERS";

/// Runs `config.process_count()` worker processes on `listener` until the server is stopped. For a
/// reload on a listener other than fd 0 it re-executes the program itself (see the module
/// doc), and returns only if that failed.
pub(crate) fn supervise(
    server: &Server,
    handler: &dyn Handler,
    lifecycle: &dyn Lifecycle,
    listener: &Arc<Listener>,
    config: &ServerConfig,
    transport: Transport,
    identity: &Identity,
) -> io::Result<()> {
    let (mut wake, wake_writer) = server.wake_pair()?;
    let signals = if config.handle_signals { Some(SignalGuard::install(wake_writer)?) } else { None };
    // Each worker process by pid: when it started, and its block of the scoreboard.
    let mut workers: HashMap<i32, (Instant, usize)> = HashMap::new();
    let board = server.stats().scoreboard().clone();
    // Made before the first fork: every worker process can set every other's.
    let alarms = server.alarms()?;
    // The supervisor serves nothing: the scoreboard shows the worker processes only.
    board.leave_process(0);
    // The workers of the generation before a reload, finishing their requests.
    let mut draining = draining_from_env();
    let reload_at_once = listener.as_raw_fd() != 0;
    let mut restart_after = Instant::now();
    let mut passed_on = false;
    let mut size = PoolSize::new(config, listener.as_raw_fd());
    // Idle processes of a dynamic pool told to stop: on their way out, not replaced.
    let mut leaving: HashSet<i32> = HashSet::new();
    // Whether a worker process has been seen serving (its threads in the pool): until one has,
    // a worker that fails before serving stops the pool (`halted`: its pid).
    let mut booted_once = false;
    let mut halted: Option<i32> = None;
    loop {
        booted_once = booted_once || workers.values().any(|(_, index)| board.process(*index).is_serving());
        let stopping = server.is_stopping();
        if stopping && reload_at_once && server.is_reloading() {
            return Err(reload(listener, signals, workers.keys().chain(&draining).copied().collect()));
        }
        // A worker that retires (recycled, or stuck on a request past its timeout) gets another
        // in its place before it ends, so capacity never drops.
        let live: Vec<(i32, usize)> = workers
            .iter()
            .filter(|(pid, (_, index))| {
                board.process(*index).retiring.load(Ordering::Relaxed) == 0 && !leaving.contains(pid)
            })
            .map(|(pid, (_, index))| (*pid, *index))
            .collect();
        let wanted = if config.has_dynamic_pool() && !stopping {
            let idle = size.adjust(&board, &live);
            stop_workers(&idle);
            leaving.extend(idle);
            size.wanted()
        } else {
            config.process_count()
        };
        let mut running = live.len().min(wanted);
        while !stopping && running < wanted && Instant::now() >= restart_after {
            let Some(index) = (0..board.processes()).find(|i| workers.values().all(|(_, taken)| taken != i)) else {
                break;
            };
            let pid = lifecycle.fork()?;
            if pid == 0 {
                // The worker: serve with its own threads and signal handlers, then exit
                // without running the supervisor's caller's code a second time.
                drop(signals);
                // A stop signal that came between the fork and here ran the supervisor's handler
                // in this process (and a stop may have come just before the fork): the worker's
                // own handlers would forget it as they install, and it would serve on, holding
                // its supervisor's stop for ever. From here SIGTERM does what it did before (ends it).
                if config.handle_signals && signals::stop_requested() {
                    std::process::exit(0);
                }
                server.stats().enter_process(index);
                lifecycle.after_fork();
                let serve = || {
                    server.renew_wake_after_fork()?;
                    server.serve_in_process(handler, lifecycle, listener, config.clone(), transport, false)
                };
                let (status, failure) = match identity.drop_privileges().and_then(|()| lifecycle.before_serving()) {
                    Err(e) => (BOOT_FAILED, Some(e)),
                    Ok(()) => serve().map_or_else(|e| (1, Some(e)), |_| (0, None)),
                };
                lifecycle.process_exit();
                if let Some(e) = failure {
                    log::error!("worker process {}: {e}", std::process::id());
                }
                std::process::exit(status);
            }
            workers.insert(pid, (Instant::now(), index));
            size.started_one();
            running += 1;
        }
        if stopping && !passed_on {
            // The draining workers were told at the reload; telling them again costs nothing.
            stop_workers(workers.keys().chain(&draining));
            passed_on = true;
        }
        let reaped = reap(workers.keys().chain(&draining).copied().collect());
        let any_reaped = !reaped.is_empty();
        for (pid, status) in reaped {
            let clean_exit = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
            let boot_failed = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == BOOT_FAILED;
            if draining.remove(&pid) {
                if !clean_exit {
                    log::warn!("worker process {pid} of the generation before the reload ended (wait status {status})");
                }
                continue;
            }
            let Some((started, index)) = workers.remove(&pid) else { continue };
            leaving.remove(&pid);
            board.leave_process(index);
            if !stopping && !clean_exit && started.elapsed() < MIN_LIFETIME {
                restart_after = Instant::now() + MIN_LIFETIME;
            }
            if boot_failed && !booted_once && halted.is_none() {
                // Another would fail alike (a typo in the app's name, a missing module): stop
                // rather than restart for ever, as gunicorn does.
                log::error!("worker process {pid} could not start serving, and none has yet; stopping");
                halted = Some(pid);
                server.stop_handle().stop();
            } else if !stopping && halted.is_none() && !clean_exit {
                log::error!("worker process {pid} died (wait status {status}); starting another");
            }
        }
        if any_reaped {
            // One may have been listening while the others stood by: they look again, now
            // that its block is free.
            alarms.ring_all();
        }
        if stopping && workers.is_empty() && draining.is_empty() {
            return match halted {
                Some(pid) => Err(io::Error::other(format!(
                    "worker process {pid} could not start serving (see the error before): the pool stopped"
                ))),
                None => Ok(()),
            };
        }
        wait_for_wake(&mut wake, REAP_EVERY);
    }
}

/// A reload that keeps serving: tells every worker to stop, then re-executes the program on
/// `listener`, naming them in [`DRAINING_ENV`]. Returns only if the exec failed; the workers
/// then finish their requests and end all the same.
fn reload(listener: &Listener, signals: Option<SignalGuard>, workers: Vec<i32>) -> io::Error {
    stop_workers(&workers);
    // The handlers go back to what they were, but SIGHUP's, which is ignored through the exec.
    drop(signals);
    log::info!(
        "reloading: re-executing the supervisor on the same listening socket; {} worker process(es) finish their requests meanwhile",
        workers.len()
    );
    let pids: Vec<String> = workers.iter().map(i32::to_string).collect();
    let value = format!("{}:{}", std::process::id(), pids.join(","));
    let e = listener.reexec_with(&[(DRAINING_ENV, value)]);
    log::error!("the reload failed: {e}");
    e
}

/// Sends SIGTERM to each of `workers`: they stop accepting and finish their requests.
fn stop_workers<'a>(workers: impl IntoIterator<Item = &'a i32>) {
    for pid in workers {
        // SAFETY: kill(2) on a child we started (or were told of by the program before a
        // reload, and checked) and have not reaped; never 0 or negative (a process group).
        unsafe { libc::kill(*pid, libc::SIGTERM) };
    }
}

/// The workers of the generation before, as the reload that executed this program named them
/// in [`DRAINING_ENV`] (then removed, so the program's own children do not read it). Only
/// this process's children count: the variable of another process, or a pid that is no child
/// of ours, is ignored.
fn draining_from_env() -> HashSet<i32> {
    let Ok(value) = std::env::var(DRAINING_ENV) else { return HashSet::new() };
    std::env::remove_var(DRAINING_ENV);
    let Some((supervisor, pids)) = value.split_once(':') else { return HashSet::new() };
    if supervisor.parse::<u32>().ok() != Some(std::process::id()) {
        return HashSet::new();
    }
    pids.split(',').filter_map(|pid| pid.parse::<i32>().ok()).filter(|pid| *pid > 0 && is_our_child(*pid)).collect()
}

/// Whether `pid` is a child of this process (running or exited, not reaped yet), from
/// /proc/PID/stat.
fn is_our_child(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'.
    let parent = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
    parent == Some(std::process::id())
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
