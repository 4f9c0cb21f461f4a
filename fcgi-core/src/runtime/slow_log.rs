//! The slow-request log (`slow_request_timeout`): the requests this process is serving, each
//! with its request line, start and thread, watched by a thread that logs one warning per
//! request once it runs past the timeout, with what the face can say of the thread serving it
//! (Python: its stack), without stopping it.

use std::time::Duration;

use super::clock;
use super::lifecycle::Lifecycle;
use super::stats::Stats;

/// Watches this process's workers on the scoreboard until `done` says serving is over: each
/// request running past `timeout` is logged once, with `hooks`' account of its thread, and
/// counted in `stats`.
pub(crate) fn watch(timeout: Duration, stats: &Stats, hooks: &dyn Lifecycle, done: &dyn Fn() -> bool) {
    // Often enough that a request is logged soon after it passes the timeout, rarely enough to
    // cost nothing.
    let every = (timeout / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
    while !done() {
        std::thread::sleep(every);
        let now = clock::monotonic_micros();
        let since = now.saturating_sub(timeout.as_micros() as u64);
        for worker in stats.scoreboard().newly_slow(stats.process_index(), since) {
            stats.slow_request();
            let running = Duration::from_micros(now.saturating_sub(worker.started_us));
            let stack = hooks
                .stack_of(worker.pthread)
                .map(|stack| format!("; its stack:\n{}", stack.trim_end()))
                .unwrap_or_default();
            log::warn!(
                "slow request: {} has run for {:.3} s (past {timeout:?}), on thread {}{stack}",
                worker.line,
                running.as_secs_f64(),
                worker.tid
            );
        }
    }
}
