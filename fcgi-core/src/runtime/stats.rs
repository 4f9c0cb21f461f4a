//! The counters a server keeps while it runs.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Counters a handler or a test can read while the server runs.
#[derive(Debug, Default)]
pub struct Stats {
    connections: AtomicU64,
    requests: AtomicU64,
    open: AtomicUsize,
    in_flight: AtomicUsize,
    slow: AtomicU64,
}

/// Counts one request in flight for as long as it lives (held by the request's exchange).
pub(crate) struct InFlight(Arc<Stats>);

impl InFlight {
    pub(crate) fn new(stats: &Arc<Stats>) -> Self {
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(stats.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Stats {
    /// FastCGI connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Requests served so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Requests read and not ended yet: being served, or queued for a thread to take.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts an accepted connection; returns its number (from 1) and how many are open now.
    pub(crate) fn connection_opened(&self) -> (u64, usize) {
        let number = self.connections.fetch_add(1, Ordering::Relaxed) + 1;
        (number, self.open.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Counts a request that ended; returns how many have.
    pub(crate) fn request_ended(&self) -> u64 {
        self.requests.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Requests that ran past the slow-request timeout so far.
    pub fn slow_requests(&self) -> u64 {
        self.slow.load(Ordering::Relaxed)
    }

    /// Counts a request that ran past the slow-request timeout.
    pub(crate) fn slow_request(&self) {
        self.slow.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}
