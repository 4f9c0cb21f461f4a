//! The slow-request log (`slow_request_timeout`): a request running past it is logged once, as
//! a warning, with its request line, how long it has run, and what the face can say of the
//! thread serving it (Python: its stack), without stopping it. The watchdog finds them.

use std::time::Duration;

use super::lifecycle::Lifecycle;
use super::scoreboard::Worker;
use super::stats::Stats;

/// Logs `worker`'s request, running for `running`, past `timeout`, and counts it.
pub(crate) fn report(worker: &Worker, running: Duration, timeout: Duration, stats: &Stats, hooks: &dyn Lifecycle) {
    stats.slow_request();
    log::warn!(
        "slow request: {} has run for {:.3} s (past {timeout:?}), on thread {}{}",
        worker.line,
        running.as_secs_f64(),
        worker.tid,
        stack_of(worker, hooks)
    );
}

/// `; its stack:` and the stack of the thread serving `worker`, if the face can tell.
pub(crate) fn stack_of(worker: &Worker, hooks: &dyn Lifecycle) -> String {
    hooks
        .stack_of(worker.pthread, worker.slot)
        .map(|stack| format!("; its stack:\n{}", stack.trim_end()))
        .unwrap_or_default()
}
