//! The pull model: the program's own threads take the requests ([`Server::acceptor`](super::Server::acceptor)).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::listener::Listener;
use super::pid_file::{self, PidFile};
use super::pool::{Next, Pool};
use super::request::{Request, SERVICE_UNAVAILABLE};
use super::signals::{self, SignalGuard};
use super::stop::StopHandle;

/// How often [`Acceptor::close`] looks whether the requests in flight have ended.
const LOOK_EVERY: Duration = Duration::from_millis(5);

/// How a [`Server::serve`](super::Server::serve) call (or an [`Acceptor`]) served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// As a FastCGI server, until asked to stop.
    FastCgi,
    /// One CGI request, with this app status (the exit status a CGI program should return).
    Cgi { app_status: u32 },
}

/// What [`Acceptor::accept_interruptible`] came to.
// A request is what nearly every call returns: boxing it would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
pub enum Accepted {
    /// The next request: the caller's until [`Request::finish`] (or its drop).
    Request(Request<'static>),
    /// The server is stopping and every request that was under way has been handed out.
    Stopped,
    /// A signal handler ran on the calling thread while it waited.
    Interrupted,
}

/// Requests for the program's own threads to take: see [`Server::acceptor`](super::Server::acceptor). Dropping it stops
/// the server; requests taken and not finished yet still end normally.
pub struct Acceptor {
    pub(super) source: Source,
}

pub(super) enum Source {
    FastCgi {
        /// First, so the signal handlers forget the wake-up socket before anything closes.
        _signals: Option<SignalGuard>,
        pool: Arc<Pool>,
        listener: Arc<Listener>,
        stop: StopHandle,
        /// Set by [`Acceptor::close`]'s first call: whether its thread answering the requests
        /// nobody accepted is done.
        drained: OnceLock<Arc<AtomicBool>>,
        /// Removed by [`Acceptor::close`] (or when the acceptor is dropped).
        _pid_file: Option<PidFile>,
    },
    Cgi {
        /// The one request, until taken (boxed: a request is large beside the other variant).
        request: Box<Mutex<Option<Request<'static>>>>,
        /// Its app status once it has ended.
        app_status: Arc<Mutex<Option<u32>>>,
    },
}

impl Acceptor {
    /// The next request, waiting as long as it takes; `None` once the server is stopping (a
    /// signal, [`StopHandle::stop`], `max_requests`, or after the one CGI request) and every
    /// request that was under way has been handed out. Any number of threads may accept at
    /// once; each request is served by the thread that took it (or one it hands it to) and
    /// ends with [`Request::finish`]. A signal does not end the wait.
    pub fn accept(&self) -> Option<Request<'static>> {
        match &self.source {
            Source::FastCgi { pool, .. } => pool.next(),
            Source::Cgi { request, .. } => request.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take(),
        }
    }

    /// [`accept`](Self::accept), except that a signal handler running on the calling thread
    /// while it waits for a connection or a request ends the wait: [`Accepted::Interrupted`]
    /// (libfcgi's `FCGI_FAIL_ACCEPT_ON_INTR`). Only a thread that does not block the signal
    /// can be interrupted by it; the threads the library starts itself block them all. Once a
    /// connection has been taken, reading it up to its request is not interrupted.
    pub fn accept_interruptible(&self) -> Accepted {
        match &self.source {
            Source::FastCgi { pool, .. } => match pool.next_or_interrupted(true) {
                Next::Request(request) => Accepted::Request(request),
                Next::Stopped => Accepted::Stopped,
                Next::Interrupted => Accepted::Interrupted,
            },
            Source::Cgi { .. } => self.accept().map_or(Accepted::Stopped, Accepted::Request),
        }
    }

    /// How this acceptor serves: FastCGI, or CGI with the app status of its request (0 until
    /// it has ended).
    pub fn served(&self) -> Served {
        match &self.source {
            Source::FastCgi { .. } => Served::FastCgi,
            Source::Cgi { app_status, .. } => {
                let app_status = *app_status.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                Served::Cgi { app_status: app_status.unwrap_or(0) }
            }
        }
    }

    /// Stops the server and answers, with a 503 page and app status 1, every request it reads
    /// from then on that no thread accepts: those of connections already made, queued in the
    /// listener's backlog or kept alive with a request already sent (the stop serves them, see
    /// [`accept`](Self::accept)). That runs on a thread of its own, started by the first call,
    /// until nothing is left; in CGI mode the one request, if not taken yet, is answered so at
    /// once. Then waits until `deadline` for the requests the program's threads hold to end.
    /// Returns true once nothing is in flight any more (every request ended:
    /// [`Stats::in_flight`](super::Stats::in_flight) is 0, and the 503s are done), false if the
    /// deadline came first: a caller that then ends what it still holds may wait for the 503s
    /// with [`wait_refused`](Self::wait_refused). Safe to call from any thread, and more than
    /// once; other threads' accepts return `None` (or `Stopped`) as the stop goes on.
    pub fn close(&self, deadline: Instant) -> bool {
        match &self.source {
            Source::FastCgi { pool, stop, drained, .. } => {
                stop.stop();
                // A C program may exit right after closing, without dropping the acceptor.
                pid_file::remove_ours();
                let drained = drained.get_or_init(|| start_draining(pool));
                let stats = &pool.context().stats;
                loop {
                    if drained.load(Ordering::SeqCst) && stats.in_flight() == 0 {
                        return true;
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    std::thread::sleep(LOOK_EVERY.min(deadline - now));
                }
            }
            Source::Cgi { request, app_status } => {
                if let Some(request) = request.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take() {
                    refuse(request);
                }
                loop {
                    if app_status.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).is_some() {
                        return true;
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    std::thread::sleep(LOOK_EVERY.min(deadline - now));
                }
            }
        }
    }
}

impl Acceptor {
    /// After [`close`](Self::close) gave up at its deadline: waits until every request nobody
    /// accepted has been answered, without waiting for the requests the program's threads hold
    /// (except as a multiplexed connection's reader waits for its running requests). Returns at
    /// once if close was never called.
    pub fn wait_refused(&self) {
        let Source::FastCgi { drained, .. } = &self.source else { return };
        let Some(drained) = drained.get() else { return };
        while !drained.load(Ordering::SeqCst) {
            std::thread::sleep(LOOK_EVERY);
        }
    }
}

/// Answers what `pool` still hands out, on a thread of its own (the wait may be long: a
/// multiplexed connection's reader ends only when its requests held by the program end); the
/// flag says when it is done.
fn start_draining(pool: &Arc<Pool>) -> Arc<AtomicBool> {
    let done = Arc::new(AtomicBool::new(false));
    let (pool, flag) = (pool.clone(), done.clone());
    let drain = move || {
        while let Some(request) = pool.next() {
            refuse(request);
        }
        flag.store(true, Ordering::SeqCst);
    };
    let thread = std::thread::Builder::new().name("fcgi-close".into());
    let spawned = thread.spawn({
        let drain = drain.clone();
        move || {
            signals::block_on_this_thread();
            drain()
        }
    });
    if let Err(e) = spawned {
        log::error!("cannot start a thread to answer the requests left at close ({e}): answering them here");
        drain();
    }
    done
}

/// Answers a request nobody accepted before the close.
fn refuse(mut request: Request<'static>) {
    request.set_app_status(1);
    let _ = request.write_stdout(SERVICE_UNAVAILABLE);
    request.finish(Ok(()));
}

impl Drop for Acceptor {
    /// Stops the server and lets the listener go: re-executes the program on it for a reload
    /// (SIGHUP), else removes the socket file this process created.
    fn drop(&mut self) {
        let Source::FastCgi { pool, listener, stop, .. } = &self.source else { return };
        stop.stop();
        pool.context().flush_logs();
        if pool.context().is_reloading() {
            log::info!("reloading: re-executing the program on the same listening socket");
            let e = listener.reexec();
            log::error!("the reload failed: {e}");
        }
        listener.remove_socket_file();
    }
}
