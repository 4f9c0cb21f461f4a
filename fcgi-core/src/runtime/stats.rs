//! The counters a server keeps while it runs: this process's block of the scoreboard, plus the
//! server-wide totals it adds to.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::scoreboard::{ProcessBlock, Scoreboard};

/// Counters a handler or a test can read while the server runs: this process's.
pub struct Stats {
    board: Arc<Scoreboard>,
    /// This process's block (a worker process of a pre-fork pool gets its own).
    process: AtomicUsize,
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stats")
            .field("connections", &self.connections())
            .field("requests", &self.requests())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

/// Counts one request in flight for as long as it lives (held by the request's exchange).
pub(crate) struct InFlight(Arc<Stats>);

impl InFlight {
    pub(crate) fn new(stats: &Arc<Stats>) -> Self {
        stats.block().in_flight.fetch_add(1, Ordering::Relaxed);
        Self(stats.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.block().in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Stats {
    /// Counters on a new scoreboard with room for `processes` processes of `workers` threads.
    pub(crate) fn new(processes: usize, workers: usize) -> Self {
        let board = Arc::new(Scoreboard::new(processes, workers));
        board.enter_process(0);
        Self { board, process: AtomicUsize::new(0) }
    }

    fn block(&self) -> &ProcessBlock {
        self.board.process(self.process.load(Ordering::Relaxed))
    }

    /// The scoreboard these counters live on.
    pub(crate) fn scoreboard(&self) -> &Arc<Scoreboard> {
        &self.board
    }

    /// The scoreboard block of this process.
    pub(crate) fn process_index(&self) -> usize {
        self.process.load(Ordering::Relaxed)
    }

    /// In a worker process just forked: counts go to block `index` from now on.
    pub(crate) fn enter_process(&self, index: usize) {
        self.board.enter_process(index);
        self.process.store(index, Ordering::Relaxed);
    }

    /// FastCGI connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.block().connections.load(Ordering::Relaxed)
    }

    /// Requests served so far.
    pub fn requests(&self) -> u64 {
        self.block().requests.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.block().open.load(Ordering::Relaxed) as usize
    }

    /// Requests read and not ended yet: being served, or queued for a thread to take.
    pub fn in_flight(&self) -> usize {
        self.block().in_flight.load(Ordering::Relaxed) as usize
    }

    /// Requests a thread is serving now.
    pub fn active(&self) -> usize {
        self.block().active.load(Ordering::Relaxed) as usize
    }

    /// Counts an accepted connection; returns its number (from 1) and how many are open now.
    pub(crate) fn connection_opened(&self) -> (u64, usize) {
        self.board.totals().connections.fetch_add(1, Ordering::Relaxed);
        let block = self.block();
        let number = block.connections.fetch_add(1, Ordering::Relaxed) + 1;
        (number, block.open.fetch_add(1, Ordering::Relaxed) as usize + 1)
    }

    /// Counts a connection refused at the connection limit.
    pub(crate) fn connection_refused(&self) {
        self.board.totals().limit_hits.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request that ended; returns how many have in this process.
    pub(crate) fn request_ended(&self) -> u64 {
        self.board.totals().requests.fetch_add(1, Ordering::Relaxed);
        self.block().requests.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Counts a response with `status` (if known) for a request that read `bytes_in` and
    /// wrote `bytes_out`.
    pub(crate) fn response(&self, status: Option<u16>, bytes_in: u64, bytes_out: u64) {
        let totals = self.board.totals();
        if let Some(class) = status.map(|s| usize::from(s / 100)).filter(|c| (1..=5).contains(c)) {
            totals.by_class[class - 1].fetch_add(1, Ordering::Relaxed);
        }
        totals.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        totals.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
    }

    /// Requests that ran past the slow-request timeout so far.
    pub fn slow_requests(&self) -> u64 {
        self.block().slow.load(Ordering::Relaxed)
    }

    /// Counts a request that ran past the slow-request timeout.
    pub(crate) fn slow_request(&self) {
        self.board.totals().slow.fetch_add(1, Ordering::Relaxed);
        self.block().slow.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests ended because they ran past the request timeout, in every process.
    pub fn timed_out_requests(&self) -> u64 {
        self.board.totals().timed_out.load(Ordering::Relaxed)
    }

    /// Counts a request that ran past the request timeout.
    pub(crate) fn timed_out(&self) {
        self.board.totals().timed_out.fetch_add(1, Ordering::Relaxed);
    }

    /// This process is stuck on a request: the supervisor (if any) starts another in its place.
    pub(crate) fn retire(&self) {
        self.block().retiring.store(1, Ordering::Relaxed);
    }

    /// Whether this process retires (its supervisor starts another in its place).
    pub(crate) fn is_retiring(&self) -> bool {
        self.block().retiring.load(Ordering::Relaxed) != 0
    }

    /// Counts a request read while every worker was busy (`true`), or taken by one (`false`).
    pub(crate) fn waiting(&self, queued: bool) {
        let block = self.block();
        if queued {
            block.waiting.fetch_add(1, Ordering::Relaxed);
            let waiting = self.board.sum(|block| &block.waiting);
            self.board.totals().max_waiting.fetch_max(waiting, Ordering::Relaxed);
        } else {
            block.waiting.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn connection_closed(&self) {
        self.block().open.fetch_sub(1, Ordering::Relaxed);
    }
}
