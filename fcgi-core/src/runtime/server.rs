//! The server: finds or binds its listener (or falls back to CGI), runs the worker threads (or
//! worker processes), and stops gracefully on a signal, on request, or after N requests.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::cgi;
use super::graceful;
use super::lifecycle::{Lifecycle, NoHooks};
use super::listener::{Bind, Inherited, Listener};
use super::pool::Pool;
use super::prefork;
use super::request::{run_handler, Handler, Request, ServerInfo, Transport};
use super::signals::{self, SignalGuard};
use crate::protocol::{Capabilities, ConnectionConfig};

/// How the server is set up. `Default` is right for mod_fcgid, nginx and friends alike.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen; `None` means fd 0 if it is a listening socket, else `LISTEN_FDS`,
    /// else CGI mode.
    pub bind: Option<Bind>,
    /// Serve one CGI request even if a listener is there (also `FCGI_FORCE_CGI=1`).
    pub force_cgi: bool,
    /// Worker threads serving requests at once. `None`: 1 on an inherited fd 0 (mod_fcgid sends
    /// one request at a time to each process), else twice the cores, between 4 and 32.
    pub workers: Option<usize>,
    /// Stop after serving this many requests (mod_fcgid's `FcgidMaxRequestsPerProcess`).
    pub max_requests: Option<u64>,
    /// Connections open at once; the request of one more gets END_REQUEST(OVERLOADED).
    pub max_connections: usize,
    /// How long a read may wait for the web server in the middle of a request.
    pub read_timeout: Option<Duration>,
    /// How long a write may wait for the web server to read.
    pub write_timeout: Option<Duration>,
    /// How long a kept-alive connection may sit idle before it is closed.
    pub idle_timeout: Option<Duration>,
    /// How long a request's head (BEGIN_REQUEST and the whole PARAMS stream) may take to
    /// arrive, from the connection's accept or the head's first byte. Until it is whole the
    /// connection waits in the poller, holding no worker; then it is closed.
    pub head_timeout: Option<Duration>,
    /// How long a stop or a reload waits for the requests in flight; then a reload
    /// re-executes the program anyway and a stop ends the process (as a supervisor's SIGKILL
    /// would, but with the socket file removed and a log line).
    pub graceful_timeout: Option<Duration>,
    /// Largest request body accepted (413 beyond); `None`: the web server's limit alone.
    pub max_body_bytes: Option<u64>,
    /// Params limits, roles accepted and multiplexing.
    pub connection: ConnectionConfig,
    /// Install handlers for SIGTERM, SIGINT, SIGUSR1 (stop) and SIGHUP (reload) while serving.
    pub handle_signals: bool,
    /// Processes sharing the listener (pre-fork); with more than 1 this process supervises
    /// them: it restarts one that dies and stops them all on a stop signal.
    pub processes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: None,
            force_cgi: false,
            workers: None,
            max_requests: None,
            max_connections: 1024,
            read_timeout: Some(Duration::from_secs(60)),
            write_timeout: Some(Duration::from_secs(60)),
            idle_timeout: Some(Duration::from_secs(90)),
            head_timeout: Some(Duration::from_secs(10)),
            graceful_timeout: Some(Duration::from_secs(30)),
            max_body_bytes: None,
            connection: ConnectionConfig::default(),
            handle_signals: true,
            processes: 1,
        }
    }
}

/// How a [`Server::serve`] call served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// As a FastCGI server, until asked to stop.
    FastCgi,
    /// One CGI request, with this app status (the exit status a CGI program should return).
    Cgi { app_status: u32 },
}

/// Counters a handler or a test can read while the server runs.
#[derive(Debug, Default)]
pub struct Stats {
    connections: AtomicU64,
    requests: AtomicU64,
    open: AtomicUsize,
    in_flight: AtomicUsize,
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

    /// Counts an accepted connection; returns how many are open now.
    pub(crate) fn connection_opened(&self) -> usize {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn connection_closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Stops a serving server from another thread (or a signal handler: it is async-signal-safe).
#[derive(Debug, Clone)]
pub struct StopHandle {
    stopping: Arc<AtomicBool>,
    /// The server's wake-up socket, made by its first serve; shared, so that it stays open as
    /// long as any handle can write to it.
    wake: Arc<OnceLock<Wake>>,
}

/// A server's wake-up socket: a byte written to `writer` wakes whatever waits on `reader` (the
/// worker threads, or a pre-fork supervisor). Made once and kept until the server and every
/// [`StopHandle`] are gone, so the descriptor a stop writes to is always this socket: never one
/// closed when serving ended, whose number a file opened since may have taken.
#[derive(Debug)]
struct Wake {
    reader: UnixStream,
    writer: UnixStream,
}

impl Wake {
    fn new() -> io::Result<Self> {
        let (reader, writer) = UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        Ok(Self { reader, writer })
    }

    /// Puts a fresh socket pair behind the same two descriptor numbers, atomically (dup3), so a
    /// forked worker process wakes on its own socket, not on its supervisor's.
    fn renew(&self) -> io::Result<()> {
        let fresh = Self::new()?;
        for (new, old) in [(&fresh.reader, &self.reader), (&fresh.writer, &self.writer)] {
            // SAFETY: dup3 onto a descriptor this Wake owns: the number stays open throughout,
            // now for the fresh socket (close-on-exec, as it was); `fresh` closes its own copies.
            if unsafe { libc::dup3(new.as_raw_fd(), old.as_raw_fd(), libc::O_CLOEXEC) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

impl StopHandle {
    /// Stops accepting, lets in-flight requests finish, and makes `serve` return.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        // OnceLock::get is one atomic load; the socket outlives this handle.
        if let Some(wake) = self.wake.get() {
            signals::wake(wake.writer.as_raw_fd());
        }
    }

    /// Whether a stop was asked for: by this handle, or by a signal when the server handles
    /// them.
    fn is_stopping(&self, signals_too: bool) -> bool {
        self.stopping.load(Ordering::SeqCst) || (signals_too && signals::stop_requested())
    }
}

/// A FastCGI server.
pub struct Server {
    config: ServerConfig,
    stats: Arc<Stats>,
    stop: StopHandle,
}

/// What the threads serving a listener need to know of their server.
pub(crate) struct Context {
    /// The server's configuration with the worker count resolved.
    pub(crate) config: ServerConfig,
    pub(crate) stats: Arc<Stats>,
    pub(crate) info: ServerInfo,
    /// When a new connection last stayed silent.
    pub(crate) silence: Moment,
    stop: StopHandle,
}

/// A moment noted by any thread, cheaply: milliseconds since a base instant, 0 for never.
pub(crate) struct Moment {
    base: Instant,
    at_ms: AtomicU64,
}

impl Moment {
    fn new() -> Self {
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
        let served = self.stats.requests.fetch_add(1, Ordering::Relaxed) + 1;
        if self.config.max_requests.is_some_and(|max| served >= max) {
            self.stop.stop();
        }
    }
}

impl Server {
    /// A server with `config`.
    pub fn new(config: ServerConfig) -> Self {
        Self { config, stats: Arc::default(), stop: StopHandle { stopping: Arc::default(), wake: Arc::default() } }
    }

    /// The server's counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// A handle that stops the server.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Serves `handler` until stopped (FastCGI) or for one request (CGI).
    pub fn serve(&self, handler: &dyn Handler) -> io::Result<Served> {
        self.serve_with(handler, &NoHooks)
    }

    /// [`serve`](Self::serve), with `lifecycle`'s hooks around the worker threads and processes.
    pub fn serve_with(&self, handler: &dyn Handler, lifecycle: &dyn Lifecycle) -> io::Result<Served> {
        let (listener, on_fd0, transport) = match self.listener()? {
            Some(found) => found,
            None => {
                let app_status = cgi::serve_once(handler, self.config.max_body_bytes)?;
                return Ok(Served::Cgi { app_status });
            }
        };
        let listener = Arc::new(listener);
        let config = self.resolved_config(on_fd0);
        // Each connection is a descriptor: make room for the connection limit, and some more.
        raise_fd_limit(config.max_connections as u64 + 64);
        let result = if config.processes > 1 {
            prefork::supervise(self, handler, lifecycle, &listener, &config, transport)
        } else {
            self.serve_in_process(handler, lifecycle, &listener, config, transport, true)
        };
        if result.is_ok() && self.is_reloading() {
            // Requests in flight are done; connections arriving meanwhile wait in the
            // listener's backlog for the new program.
            eprintln!("fcgi: reloading: re-executing the program on the same listening socket");
            return Err(listener.reexec());
        }
        listener.remove_socket_file();
        result.map(|()| Served::FastCgi)
    }

    /// Starts serving without a handler: the program's own threads take the requests with
    /// [`Acceptor::accept`] and serve them where they are, so a request costs no hand-off
    /// between threads (the C API's model). Without a listener (CGI mode) the first accept gives
    /// the one CGI request. `workers` only says how many requests GET_VALUES reports; each
    /// accepting thread serves one request at a time. `processes` does not apply: a program
    /// that wants several forks itself.
    pub fn acceptor(&self) -> io::Result<Acceptor> {
        let Some((listener, on_fd0, transport)) = self.listener()? else {
            let (request, app_status) = cgi::request(self.config.max_body_bytes);
            return Ok(Acceptor { source: Source::Cgi { request: Mutex::new(request), app_status } });
        };
        let listener = Arc::new(listener);
        let config = self.resolved_config(on_fd0);
        raise_fd_limit(config.max_connections as u64 + 64);
        let (wake_reader, wake_writer) = self.wake_pair()?;
        let signals = if config.handle_signals { Some(SignalGuard::install(wake_writer)?) } else { None };
        let graceful_timeout = config.graceful_timeout;
        let watch = wake_reader.try_clone()?;
        let pool = Pool::new(self.context(config, transport), listener.clone(), wake_reader, true)?;
        if let Some(timeout) = graceful_timeout {
            // The program's threads hold the requests: past the graceful timeout after a stop,
            // the requests still in flight are cut as `serve`'s are.
            let (watched_pool, watched_listener) = (pool.clone(), listener.clone());
            std::thread::Builder::new().name("fcgi-graceful".into()).spawn(move || {
                let ctx = watched_pool.context();
                let finished = || ctx.stats.in_flight() == 0;
                graceful::enforce(&watch, timeout, &finished, ctx, &watched_listener, true);
            })?;
        }
        Ok(Acceptor { source: Source::FastCgi { _signals: signals, pool, listener, stop: self.stop.clone() } })
    }

    /// The configuration with the worker count and what GET_VALUES reports filled in.
    fn resolved_config(&self, on_fd0: bool) -> ServerConfig {
        let mut config = self.config.clone();
        let workers = config.workers.unwrap_or_else(|| default_workers(on_fd0)).max(1);
        config.workers = Some(workers);
        config.connection.capabilities = Capabilities {
            max_conns: u32::try_from(config.max_connections).unwrap_or(u32::MAX),
            // HAProxy, the one web server that multiplexes, reads FCGI_MAX_REQS as the requests
            // it may send on one connection: past `multiplex` they would be refused OVERLOADED.
            max_reqs: u32::try_from(if config.connection.max_requests_per_conn > 1 {
                usize::from(config.connection.max_requests_per_conn)
            } else {
                workers
            })
            .unwrap_or(u32::MAX),
            mpxs_conns: config.connection.max_requests_per_conn > 1,
        };
        config
    }

    /// Serves `listener` in this process until stopped, with `config.workers` threads.
    pub(crate) fn serve_in_process(
        &self,
        handler: &dyn Handler,
        lifecycle: &dyn Lifecycle,
        listener: &Arc<Listener>,
        config: ServerConfig,
        transport: Transport,
        owns_listener: bool,
    ) -> io::Result<()> {
        let workers = config.workers.unwrap_or(1);
        let graceful_timeout = config.graceful_timeout;
        let (wake_reader, wake_writer) = self.wake_pair()?;
        let watch = wake_reader.try_clone()?;
        let _signals = if config.handle_signals { Some(SignalGuard::install(wake_writer)?) } else { None };
        let pool = Pool::new(self.context(config, transport), listener.clone(), wake_reader, workers > 1)?;
        let running = AtomicUsize::new(workers);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    lifecycle.run_thread(&mut || {
                        while let Some(request) = pool.next() {
                            run_handler(handler, request);
                        }
                    });
                    // The last one out wakes the watch below, should serving end without a stop.
                    if running.fetch_sub(1, Ordering::SeqCst) == 1 {
                        signals::wake(wake_writer);
                    }
                });
            }
            if let Some(timeout) = graceful_timeout {
                let (pool, running, watch) = (&pool, &running, &watch);
                scope.spawn(move || {
                    let finished = || running.load(Ordering::SeqCst) == 0;
                    graceful::enforce(watch, timeout, &finished, pool.context(), listener, owns_listener)
                });
            }
        });
        Ok(())
    }

    fn context(&self, config: ServerConfig, transport: Transport) -> Context {
        let info =
            ServerInfo { transport, workers: config.workers.unwrap_or(1), max_body_bytes: config.max_body_bytes };
        Context { config, stats: self.stats.clone(), info, silence: Moment::new(), stop: self.stop.clone() }
    }

    /// For one serve: a read end of the server's wake-up socket (a new descriptor of it, emptied
    /// of an earlier serve's bytes) and its write end (open as long as the server is).
    pub(crate) fn wake_pair(&self) -> io::Result<(UnixStream, RawFd)> {
        let wake = match self.stop.wake.get() {
            Some(wake) => wake,
            None => {
                // Only a serve makes it, and serves do not run side by side on one server.
                let _ = self.stop.wake.set(Wake::new()?);
                self.stop.wake.get().expect("just set")
            }
        };
        while (&wake.reader).read(&mut [0; 64]).is_ok_and(|n| n > 0) {}
        Ok((wake.reader.try_clone()?, wake.writer.as_raw_fd()))
    }

    /// In a forked worker process: a wake-up socket of its own, behind the same descriptors
    /// (the stop handles it inherited write to them).
    pub(crate) fn renew_wake_after_fork(&self) -> io::Result<()> {
        self.stop.wake.get().map_or(Ok(()), Wake::renew)
    }

    /// Whether this server was asked to stop (by its handle, a signal or `max_requests`).
    pub(crate) fn is_stopping(&self) -> bool {
        self.stop.is_stopping(self.config.handle_signals)
    }

    /// Whether the stop under way is a reload (SIGHUP or `signals::request_reload`).
    pub(crate) fn is_reloading(&self) -> bool {
        self.config.handle_signals && signals::reload_requested()
    }

    /// The listener to serve, whether it is fd 0, and how it came; `None` for CGI mode.
    fn listener(&self) -> io::Result<Option<(Listener, bool, Transport)>> {
        if let Some(bind) = &self.config.bind {
            // A reload (or systemd) passes the socket bound before: keep serving that one.
            if let Some(mut listener) = Listener::systemd()? {
                listener.adopt_socket_file(bind);
                return Ok(Some((listener, false, Transport::Bound)));
            }
            return Ok(Some((Listener::bind(bind)?, false, Transport::Bound)));
        }
        let forced = std::env::var("FCGI_FORCE_CGI").is_ok_and(|v| !v.is_empty() && v != "0");
        if self.config.force_cgi || forced {
            return Ok(None);
        }
        Ok(match Listener::inherited()? {
            Inherited::Fd0(listener) => Some((listener, true, Transport::Inherited)),
            Inherited::Systemd(listener) => Some((listener, false, Transport::Inherited)),
            Inherited::None => None,
        })
    }
}

/// Requests for the program's own threads to take: see [`Server::acceptor`]. Dropping it stops
/// the server; requests taken and not finished yet still end normally.
pub struct Acceptor {
    source: Source,
}

enum Source {
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

/// Raises the soft limit on open files towards `wanted`, as far as the hard limit allows.
fn raise_fd_limit(wanted: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write one valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < wanted {
            limit.rlim_cur = wanted.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn default_workers(on_fd0: bool) -> usize {
    if on_fd0 {
        return 1;
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (2 * cores).clamp(4, 32)
}
