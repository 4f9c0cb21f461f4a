//! What the threads serving a listener know of their server: its configuration, counters and
//! stop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::access_log::{AccessLog, AccessRecord};
use super::config::ServerConfig;
use super::request::{Origin, ServerInfo};
use super::signals;
use super::stats::Stats;
use super::stop::StopHandle;
use crate::protocol::ParamsError;

/// What the threads serving a listener need to know of their server.
pub(crate) struct Context {
    /// The server's configuration with the worker count resolved.
    pub(crate) config: ServerConfig,
    pub(crate) stats: Arc<Stats>,
    pub(crate) info: ServerInfo,
    /// When a new connection last stayed silent.
    pub(crate) silence: Moment,
    pub(super) stop: StopHandle,
    /// Where each request's line goes, if anywhere.
    pub(crate) access_log: Option<Arc<AccessLog>>,
    /// This is a worker process of a pre-fork pool: its supervisor replaces it when it retires.
    pub(crate) pool_worker: bool,
    /// The requests this process serves before it is recycled: `max_requests` plus its jitter.
    pub(crate) request_limit: Option<u64>,
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

    /// The origin of request `id` on connection number `connection`.
    pub(crate) fn origin(&self, id: u16, connection: u64) -> Origin {
        let counted = self.config.status_path.is_some().then(|| self.stats.clone());
        Origin { id, connection, access_log: self.access_log.clone(), counted }
    }

    /// Whether requests are seated on the scoreboard: the status page or the slow-request log
    /// shows them, the watchdog times them, or the front desk (ping too) must know when every
    /// worker is busy.
    pub(crate) fn seats_requests(&self) -> bool {
        let config = &self.config;
        config.status_path.is_some()
            || config.ping_path.is_some()
            || config.slow_request_timeout.is_some()
            || config.timeout.is_some()
            || config.has_dynamic_pool()
    }

    /// Logs request `id` of connection `connection`, refused for `error` before it had params.
    pub(crate) fn refused(&self, id: u16, connection: u64, error: &ParamsError) {
        log::warn!("request {id} refused: {error}");
        if let Some(log) = &self.access_log {
            log.log(&AccessRecord {
                params: None,
                head: None,
                status: Some(error.http_status().0),
                started: Instant::now(),
                bytes_out: 0,
                bytes_in: 0,
                request_id: id,
                connection,
            });
        }
    }

    /// Writes out what the access log holds (before the process ends or re-executes).
    pub(crate) fn flush_logs(&self) {
        if let Some(access_log) = &self.access_log {
            access_log.flush();
        }
    }

    /// Stops the server.
    pub(crate) fn stop(&self) {
        self.stop.stop();
    }

    /// Counts a served request; at `max_requests` (plus its jitter) the process is recycled: a
    /// pool worker retires (its supervisor starts another first), a lone process stops.
    pub(crate) fn note_request(&self) {
        let served = self.stats.request_ended();
        if self.request_limit.is_some_and(|max| served == max) {
            log::info!("served {served} requests (max_requests): recycling this process");
            self.retire();
        }
    }

    /// Ends this process's service: a pool worker asks its supervisor for another in its place
    /// first; all stop taking requests and end the ones they hold.
    pub(crate) fn retire(&self) {
        if self.pool_worker {
            self.stats.retire();
        }
        self.stop.stop();
    }
}
