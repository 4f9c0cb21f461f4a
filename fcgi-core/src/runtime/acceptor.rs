//! The pull model: the program's own threads take the requests ([`Server::acceptor`](super::Server::acceptor)).

use std::sync::{Arc, Mutex};

use super::listener::Listener;
use super::pool::Pool;
use super::request::Request;
use super::signals::SignalGuard;
use super::stop::StopHandle;

/// How a [`Server::serve`](super::Server::serve) call (or an [`Acceptor`]) served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// As a FastCGI server, until asked to stop.
    FastCgi,
    /// One CGI request, with this app status (the exit status a CGI program should return).
    Cgi { app_status: u32 },
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
    },
    Cgi {
        /// The one request, until taken.
        request: Mutex<Option<Request<'static>>>,
        /// Its app status once it has ended.
        app_status: Arc<Mutex<Option<u32>>>,
    },
}

impl Acceptor {
    /// The next request, waiting as long as it takes; `None` once the server is stopping (a
    /// signal, [`StopHandle::stop`], `max_requests`, or after the one CGI request) and every
    /// request that was under way has been handed out. Any number of threads may accept at
    /// once; each request is served by the thread that took it (or one it hands it to) and
    /// ends with [`Request::finish`].
    pub fn accept(&self) -> Option<Request<'static>> {
        match &self.source {
            Source::FastCgi { pool, .. } => pool.next(),
            Source::Cgi { request, .. } => request.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take(),
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
}

impl Drop for Acceptor {
    /// Stops the server and lets the listener go: re-executes the program on it for a reload
    /// (SIGHUP), else removes the socket file this process created.
    fn drop(&mut self) {
        let Source::FastCgi { pool, listener, stop, .. } = &self.source else { return };
        stop.stop();
        if pool.context().is_reloading() {
            eprintln!("fcgi: reloading: re-executing the program on the same listening socket");
            let e = listener.reexec();
            eprintln!("fcgi: the reload failed: {e}");
        }
        listener.remove_socket_file();
    }
}
