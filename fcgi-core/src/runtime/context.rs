//! What the threads serving a listener know of their server: its configuration, counters and
//! stop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::ServerConfig;
use super::request::ServerInfo;
use super::signals;
use super::stats::Stats;
use super::stop::StopHandle;

/// What the threads serving a listener need to know of their server.
pub(crate) struct Context {
    /// The server's configuration with the worker count resolved.
    pub(crate) config: ServerConfig,
    pub(crate) stats: Arc<Stats>,
    pub(crate) info: ServerInfo,
    /// When a new connection last stayed silent.
    pub(crate) silence: Moment,
    pub(super) stop: StopHandle,
}

/// A moment noted by any thread, cheaply: milliseconds since a base instant, 0 for never.
pub(crate) struct Moment {
    base: Instant,
    at_ms: AtomicU64,
}

impl Moment {
    pub(super) fn new() -> Self {
        Self { base: Instant::now(), at_ms: AtomicU64::new(0) }
    }

    /// Notes now.
    pub(crate) fn note(&self) {
        let now = self.base.elapsed().as_millis() as u64 + 1;
        self.at_ms.store(now, Ordering::Relaxed);
    }

    /// Whether the moment was noted within `span` of now.
    pub(crate) fn heard_within(&self, span: Duration) -> bool {
        let at = self.at_ms.load(Ordering::Relaxed);
        at != 0 && (self.base.elapsed().as_millis() as u64 + 1).saturating_sub(at) < span.as_millis() as u64
    }
}

impl Context {
    /// Whether the server is stopping: finish what is in hand, take nothing new.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stop.is_stopping(self.config.handle_signals)
    }

    /// Whether the stop under way is a reload (the program re-executes on the same listener).
    pub(crate) fn is_reloading(&self) -> bool {
        self.config.handle_signals && signals::reload_requested()
    }

    /// Stops the server.
    pub(crate) fn stop(&self) {
        self.stop.stop();
    }

    /// Counts a served request, and stops the server when `max_requests` is reached.
    pub(crate) fn note_request(&self) {
        let served = self.stats.request_ended();
        if self.config.max_requests.is_some_and(|max| served >= max) {
            self.stop.stop();
        }
    }
}
