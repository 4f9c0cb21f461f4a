//! The watchdog: a thread of each serving process that watches the process (its memory,
//! against `max_rss`) and the requests on its part of the scoreboard. One running past `slow_request_timeout` is logged (`slow_log`); one running
//! past `timeout` is ended: marked, so that its next read or write (and its abort check) fails,
//! and, where the face can, interrupted (Python raises `RequestTimeout` in its thread). One
//! still running `timeout_grace` later is stuck where nothing reaches it (a C call, a sleep):
//! its stack is logged and its process replaced (`Replace`), the process finishing its other
//! requests first, within the graceful timeout.

use std::time::{Duration, Instant};

use super::clock;
use super::context::Context;
use super::lifecycle::Lifecycle;
use super::scoreboard::{Mark, Worker};
use super::signals;
use super::slow_log;
use super::stats::Stats;

/// What the watchdog looks for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Watch {
    pub slow: Option<Duration>,
    pub timeout: Option<Duration>,
    pub grace: Duration,
    /// Resident bytes past which the process is recycled.
    pub max_rss: Option<u64>,
}

/// How often the process's memory is looked at.
const MEMORY_EVERY: Duration = Duration::from_secs(1);

impl Watch {
    /// Whether there is anything to watch.
    pub(crate) fn is_needed(&self) -> bool {
        self.slow.is_some() || self.timeout.is_some() || self.max_rss.is_some()
    }
}

/// Replaces this process, stuck on a request: a worker process of a pre-fork pool asks its
/// supervisor for another in its place and stops; a lone process re-executes on its listener
/// (the reload path), or stops when it does not handle signals (its program decides). Either
/// way its other requests end first, within the graceful timeout.
pub(crate) fn replace_process(ctx: &Context) {
    if !ctx.pool_worker && ctx.config.handle_signals {
        signals::request_reload();
    } else {
        ctx.retire();
    }
}

impl Watch {
    /// What `ctx`'s configuration asks to watch.
    pub(crate) fn of(ctx: &Context) -> Self {
        let config = &ctx.config;
        let (slow, timeout, grace) = (config.slow_request_timeout, config.timeout, config.timeout_grace);
        Self { slow, timeout, grace, max_rss: config.max_rss }
    }
}

/// Watches this process and its requests until `done` says serving is over; `replace` is
/// called once, when a timed-out request does not end within the grace or the process's
/// memory passes `max_rss`.
pub(crate) fn watch(watch: Watch, stats: &Stats, hooks: &dyn Lifecycle, done: &dyn Fn() -> bool, replace: &dyn Fn()) {
    let memory = watch.max_rss.map(|_| MEMORY_EVERY);
    let shortest = [watch.slow, watch.timeout, Some(watch.grace), memory].into_iter().flatten().min();
    let shortest = shortest.unwrap_or(MEMORY_EVERY);
    // Often enough that a request is acted on soon after its time, rarely enough to cost
    // nothing.
    let every = (shortest / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
    let (board, process) = (stats.scoreboard(), stats.process_index());
    let mut ending: Vec<(Worker, u64)> = Vec::new();
    let mut replaced = false;
    let mut memory_seen = Instant::now();
    while !done() {
        std::thread::sleep(every);
        // Each second, not each round: the rounds follow the shortest timeout.
        let memory_due = memory_seen.elapsed() >= MEMORY_EVERY;
        if let Some(max) = watch.max_rss.filter(|_| !replaced && memory_due) {
            memory_seen = Instant::now();
            if let Some(resident) = resident_bytes().filter(|&resident| resident > max) {
                log::warn!(
                    "resident memory {} MiB is past max_rss ({} MiB): recycling this process",
                    resident >> 20,
                    max >> 20
                );
                replaced = true;
                replace();
            }
        }
        let now = clock::monotonic_micros();
        let since = |d: Duration| now.saturating_sub(d.as_micros() as u64);
        if let Some(slow) = watch.slow {
            for worker in board.newly_past(process, since(slow), Mark::Reported) {
                slow_log::report(&worker, Duration::from_micros(now - worker.started_us), slow, stats, hooks);
            }
        }
        let Some(timeout) = watch.timeout else { continue };
        for worker in board.newly_past(process, since(timeout), Mark::Cut) {
            stats.timed_out();
            log::warn!(
                "request timeout: {} has run for {:.3} s (past {timeout:?}) on thread {}: ending it",
                worker.line,
                Duration::from_micros(now - worker.started_us).as_secs_f64(),
                worker.tid
            );
            hooks.interrupt(worker.pthread, worker.slot, &|| board.still_serving(process, &worker));
            ending.push((worker, now + watch.grace.as_micros() as u64));
        }
        ending.retain(|(worker, by)| {
            if !board.still_serving(process, worker) {
                return false;
            }
            if *by > now {
                return true;
            }
            log::error!(
                "request timeout: {} did not end {:?} after its timeout, on thread {}{}; replacing this process",
                worker.line,
                watch.grace,
                worker.tid,
                slow_log::stack_of(worker, hooks)
            );
            if !std::mem::replace(&mut replaced, true) {
                replace();
            }
            false
        });
    }
}

/// This process's resident memory in bytes, from /proc/self/statm.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf(3) only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}
