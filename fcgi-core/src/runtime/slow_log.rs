//! The slow-request log (`slow_request_timeout`): the requests this process is serving, each
//! with its request line, start and thread, watched by a thread that logs one warning per
//! request once it runs past the timeout, with what the face can say of the thread serving it
//! (Python: its stack), without stopping it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::access_log::push_escaped;
use super::lifecycle::Lifecycle;
use super::stats::Stats;
use super::thread_id;
use crate::protocol::Params;

/// The requests being served, by a key of their own, and how long one may run before it is
/// logged.
pub(crate) struct Board {
    timeout: Duration,
    entries: Mutex<HashMap<u64, Entry>>,
    next_key: AtomicU64,
}

struct Entry {
    /// `GET /path?query`.
    line: String,
    started: Instant,
    /// The serving thread as pthread_self(3) gives it (Python's thread ident).
    thread: u64,
    /// The serving thread's kernel id (what `top -H` shows).
    tid: i64,
    logged: bool,
}

/// A request's place on the board; it leaves when this is dropped.
pub(crate) struct Seat {
    board: Arc<Board>,
    key: u64,
}

impl Board {
    /// An empty board whose requests are slow past `timeout`.
    pub(crate) fn new(timeout: Duration) -> Self {
        Self { timeout, entries: Mutex::default(), next_key: AtomicU64::new(0) }
    }

    /// Seats a request with `params`, started at `started`, served by the calling thread.
    pub(crate) fn seat(self: &Arc<Self>, params: &Params, started: Instant) -> Seat {
        let param = |name: &[u8]| params.get(name).unwrap_or_default();
        // Escaped as the access log escapes: a client must not write lines of its own.
        let mut line = String::new();
        push_escaped(&mut line, param(b"REQUEST_METHOD"));
        line.push(' ');
        match params.get(b"REQUEST_URI") {
            Some(uri) => push_escaped(&mut line, uri),
            None => {
                push_escaped(&mut line, param(b"SCRIPT_NAME"));
                push_escaped(&mut line, param(b"PATH_INFO"));
            }
        }
        let (thread, tid) = thread_id::current();
        let entry = Entry { line, started, thread, tid, logged: false };
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).insert(key, entry);
        Seat { board: self.clone(), key }
    }

    /// The requests past the timeout not logged yet, marked logged: (line, running for, thread,
    /// tid).
    fn newly_slow(&self) -> Vec<(String, Duration, u64, i64)> {
        let timeout = self.timeout;
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .values_mut()
            .filter(|entry| !entry.logged && entry.started.elapsed() >= timeout)
            .map(|entry| {
                entry.logged = true;
                (entry.line.clone(), entry.started.elapsed(), entry.thread, entry.tid)
            })
            .collect()
    }
}

impl Seat {
    /// The calling thread serves the request from now on (a multiplexed request is read by
    /// one thread and served by another).
    pub(crate) fn taken_here(&self) {
        let (thread, tid) = thread_id::current();
        if let Some(entry) = self.board.entries.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&self.key) {
            (entry.thread, entry.tid) = (thread, tid);
        }
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.board.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.key);
    }
}

/// Watches `board` until `done` says serving is over (or the board is gone): each request past
/// the board's timeout is logged
/// once, with `hooks`' account of its thread, and counted in `stats`.
pub(crate) fn watch(board: Weak<Board>, stats: &Stats, hooks: &dyn Lifecycle, done: &dyn Fn() -> bool) {
    let Some(timeout) = board.upgrade().map(|board| board.timeout) else { return };
    // Often enough that a request is logged soon after it passes the timeout, rarely enough to
    // cost nothing.
    let every = (timeout / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
    while !done() {
        std::thread::sleep(every);
        let Some(board) = board.upgrade() else { return };
        for (line, running, thread, tid) in board.newly_slow() {
            stats.slow_request();
            let stack =
                hooks.stack_of(thread).map(|stack| format!("; its stack:\n{}", stack.trim_end())).unwrap_or_default();
            log::warn!(
                "slow request: {line} has run for {:.3} s (past {timeout:?}), on thread {tid}{stack}",
                running.as_secs_f64()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seated_request_is_reported_once_with_its_line_escaped_and_leaves_when_it_ends() {
        let board = Arc::new(Board::new(Duration::ZERO));
        let params =
            Params::from_pairs([(&b"REQUEST_METHOD"[..], &b"GET"[..]), (b"REQUEST_URI", b"/a\n[ERROR] forged")]);
        let seat = board.seat(&params, Instant::now());
        let slow = board.newly_slow();
        assert_eq!(slow.len(), 1);
        assert_eq!(slow[0].0, "GET /a\\x0a[ERROR] forged");
        assert!(board.newly_slow().is_empty(), "reported once");
        drop(seat);
        assert!(board.entries.lock().unwrap().is_empty());
    }
}
