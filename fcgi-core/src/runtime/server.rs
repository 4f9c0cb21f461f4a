//! The server: finds or binds its listener (or falls back to CGI), runs the poller and the
//! worker threads, and stops gracefully on a signal, on request, or after N requests.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::cgi;
use super::connection::FcgiConnection;
use super::listener::{Bind, Inherited, Listener};
use super::poller::{Poller, Token};
use super::prefork;
use super::request::{Handler, ServerInfo, Transport};
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
    /// Connections open at once; more are closed at once with a log line.
    pub max_connections: usize,
    /// How long a read may wait for the web server in the middle of a request.
    pub read_timeout: Option<Duration>,
    /// How long a write may wait for the web server to read.
    pub write_timeout: Option<Duration>,
    /// How long a kept-alive connection may sit idle before it is closed.
    pub idle_timeout: Option<Duration>,
    /// Largest request body accepted (413 beyond); `None`: the web server's limit alone.
    pub max_body_bytes: Option<u64>,
    /// Params limits, roles accepted and multiplexing.
    pub connection: ConnectionConfig,
    /// Install handlers for SIGTERM, SIGINT, SIGUSR1 and SIGHUP while serving.
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

    pub(crate) fn connection_closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Stops a serving server from another thread (or a signal handler: it is async-signal-safe).
#[derive(Debug, Clone)]
pub struct StopHandle {
    stopping: Arc<AtomicBool>,
    wake_fd: Arc<AtomicI32>,
}

impl StopHandle {
    /// Stops accepting, lets in-flight requests finish, and makes `serve` return.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        signals::wake(self.wake_fd.load(Ordering::SeqCst));
    }
}

/// A FastCGI server.
pub struct Server {
    config: ServerConfig,
    stats: Arc<Stats>,
    stop: StopHandle,
}

/// What the worker threads share.
pub(crate) struct Context<'h> {
    pub(crate) handler: &'h dyn Handler,
    pub(crate) config: ServerConfig,
    pub(crate) stats: Arc<Stats>,
    pub(crate) info: ServerInfo,
    stop: StopHandle,
}

impl Context<'_> {
    /// Whether the server is stopping: finish what is in hand, take nothing new.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stop.stopping.load(Ordering::SeqCst) || (self.config.handle_signals && signals::stop_requested())
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
        Self {
            config,
            stats: Arc::default(),
            stop: StopHandle { stopping: Arc::default(), wake_fd: Arc::new(AtomicI32::new(-1)) },
        }
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
        let (listener, on_fd0, transport) = match self.listener()? {
            Some(found) => found,
            None => {
                let app_status = cgi::serve_once(handler, self.config.max_body_bytes)?;
                return Ok(Served::Cgi { app_status });
            }
        };
        let config = self.resolved_config(on_fd0);
        // Each connection is a descriptor: make room for the connection limit, and some more.
        raise_fd_limit(config.max_connections as u64 + 64);
        let result = if config.processes > 1 {
            prefork::supervise(self, handler, &listener, &config, transport)
        } else {
            self.serve_in_process(handler, &listener, config, transport)
        };
        listener.remove_socket_file();
        result.map(|()| Served::FastCgi)
    }

    /// The configuration with the worker count and what GET_VALUES reports filled in.
    fn resolved_config(&self, on_fd0: bool) -> ServerConfig {
        let mut config = self.config.clone();
        let workers = config.workers.unwrap_or_else(|| default_workers(on_fd0)).max(1);
        config.workers = Some(workers);
        config.connection.capabilities = Capabilities {
            max_conns: u32::try_from(config.max_connections).unwrap_or(u32::MAX),
            max_reqs: u32::try_from(workers * usize::from(config.connection.max_requests_per_conn.max(1)))
                .unwrap_or(u32::MAX),
            mpxs_conns: config.connection.max_requests_per_conn > 1,
        };
        config
    }

    /// Serves `listener` in this process until stopped.
    pub(crate) fn serve_in_process(
        &self,
        handler: &dyn Handler,
        listener: &Listener,
        config: ServerConfig,
        transport: Transport,
    ) -> io::Result<()> {
        let workers = config.workers.unwrap_or(1);
        let (wake_reader, wake_writer) = self.wake_pair()?;
        let _signals = if config.handle_signals { Some(SignalGuard::install(wake_writer.as_raw_fd())?) } else { None };
        let info = ServerInfo { transport, workers, max_body_bytes: config.max_body_bytes };
        let ctx = Context { handler, config, stats: self.stats.clone(), info, stop: self.stop.clone() };
        let result = serve_listener(&ctx, listener, wake_reader, workers);
        self.stop.wake_fd.store(-1, Ordering::SeqCst);
        result
    }

    /// A socket pair whose write end wakes this server's poller (or supervisor).
    pub(crate) fn wake_pair(&self) -> io::Result<(UnixStream, UnixStream)> {
        let (wake_reader, wake_writer) = UnixStream::pair()?;
        wake_reader.set_nonblocking(true)?;
        wake_writer.set_nonblocking(true)?;
        self.stop.wake_fd.store(wake_writer.as_raw_fd(), Ordering::SeqCst);
        Ok((wake_reader, wake_writer))
    }

    /// Whether this server was asked to stop (by its handle, a signal or `max_requests`).
    pub(crate) fn is_stopping(&self) -> bool {
        self.stop.stopping.load(Ordering::SeqCst) || (self.config.handle_signals && signals::stop_requested())
    }

    /// The listener to serve, whether it is fd 0, and how it came; `None` for CGI mode.
    fn listener(&self) -> io::Result<Option<(Listener, bool, Transport)>> {
        if let Some(bind) = &self.config.bind {
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

/// Connections ready to be served, for the workers.
struct ReadyQueue {
    jobs: Mutex<(VecDeque<FcgiConnection>, bool)>,
    available: Condvar,
}

impl ReadyQueue {
    fn lock(&self) -> MutexGuard<'_, (VecDeque<FcgiConnection>, bool)> {
        self.jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, conn: FcgiConnection) {
        self.lock().0.push_back(conn);
        self.available.notify_one();
    }

    /// The next connection; `None` once closed and empty.
    fn pop(&self) -> Option<FcgiConnection> {
        let mut jobs = self.lock();
        loop {
            if let Some(conn) = jobs.0.pop_front() {
                return Some(conn);
            }
            if jobs.1 {
                return None;
            }
            jobs = self.available.wait(jobs).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn close(&self) {
        self.lock().1 = true;
        self.available.notify_all();
    }
}

/// Kept-alive connections waiting in the poller, with the time each went idle.
type Parked = Mutex<HashMap<RawFd, (FcgiConnection, Instant)>>;

fn serve_listener(ctx: &Context, listener: &Listener, wake: UnixStream, workers: usize) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let poller = Poller::new()?;
    poller.add(listener.as_raw_fd(), Token::Listener)?;
    poller.add(wake.as_raw_fd(), Token::Wake)?;
    let queue = ReadyQueue { jobs: Mutex::new((VecDeque::new(), false)), available: Condvar::new() };
    let parked: Parked = Mutex::new(HashMap::new());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| ctx.handler.run_thread(&mut || work(ctx, &queue, &parked, &poller)));
        }
        let result = poll(ctx, listener, &wake, &poller, &queue, &parked);
        queue.close();
        result
    })
}

/// The poller thread: accepts connections and wakes parked ones, until the server stops.
fn poll(
    ctx: &Context,
    listener: &Listener,
    mut wake: &UnixStream,
    poller: &Poller,
    queue: &ReadyQueue,
    parked: &Parked,
) -> io::Result<()> {
    let mut ready = Vec::new();
    // Idle connections are swept a few times per idle timeout.
    let sweep_every = ctx.config.idle_timeout.map(|t| (t / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)));
    let mut last_sweep = Instant::now();
    loop {
        if ctx.is_stopping() {
            // Connections the kernel already accepted were sent by a web server that expects
            // an answer: serve them too.
            accept_all(ctx, listener, queue);
            // A kept connection whose next request already arrived is served; idle ones close.
            for (_, (conn, _)) in lock_parked(parked).drain() {
                if conn.has_pending_input() {
                    queue.push(conn);
                }
            }
            return Ok(());
        }
        ready.clear();
        poller.wait(&mut ready, sweep_every)?;
        if let (Some(idle_timeout), Some(every)) = (ctx.config.idle_timeout, sweep_every) {
            if last_sweep.elapsed() >= every {
                last_sweep = Instant::now();
                lock_parked(parked).retain(|_, (_, since)| since.elapsed() < idle_timeout);
            }
        }
        for token in &ready {
            match *token {
                Token::Listener => accept_all(ctx, listener, queue),
                Token::Wake => while wake.read(&mut [0; 64]).is_ok_and(|n| n > 0) {},
                Token::Connection(fd) => {
                    if let Some((conn, _)) = lock_parked(parked).remove(&fd) {
                        queue.push(conn);
                    }
                }
            }
        }
    }
}

fn accept_all(ctx: &Context, listener: &Listener, queue: &ReadyQueue) {
    loop {
        match listener.accept() {
            Ok(Some(socket)) => {
                ctx.stats.connections.fetch_add(1, Ordering::Relaxed);
                let open = ctx.stats.open.fetch_add(1, Ordering::Relaxed) + 1;
                if let Err(e) = socket
                    .set_read_timeout(ctx.config.read_timeout)
                    .and_then(|()| socket.set_write_timeout(ctx.config.write_timeout))
                {
                    eprintln!("fcgi: setting up a connection: {e}");
                    ctx.stats.connection_closed();
                    continue;
                }
                if open > ctx.config.max_connections {
                    eprintln!("fcgi: over {} connections: refusing with OVERLOADED", ctx.config.max_connections);
                    queue.push(FcgiConnection::overloaded(socket, ctx));
                } else {
                    queue.push(FcgiConnection::new(socket, ctx));
                }
            }
            Ok(None) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // EMFILE and friends: log, and give the workers a moment to free descriptors.
                eprintln!("fcgi: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
                return;
            }
        }
    }
}

/// A worker thread: serves ready connections, and parks kept-alive ones in the poller.
fn work(ctx: &Context, queue: &ReadyQueue, parked: &Parked, poller: &Poller) {
    while let Some(conn) = queue.pop() {
        let Some(conn) = conn.serve(ctx) else { continue };
        let fd = conn.socket().as_raw_fd();
        let mut parked = lock_parked(parked);
        if ctx.is_stopping() {
            continue;
        }
        parked.insert(fd, (conn, Instant::now()));
        if let Err(e) = poller.arm_once(fd, Token::Connection(fd)) {
            eprintln!("fcgi: cannot watch a kept connection: {e}");
            parked.remove(&fd);
        }
    }
}

fn lock_parked(parked: &Parked) -> MutexGuard<'_, HashMap<RawFd, (FcgiConnection, Instant)>> {
    parked.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
