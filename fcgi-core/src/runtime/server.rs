//! The server: finds or binds its listener (or falls back to CGI), runs the worker threads (or
//! worker processes), and stops gracefully on a signal, on request, or after N requests.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::cgi;
use super::connection::FcgiConnection;
use super::listener::{Bind, Inherited, Listener};
use super::poller::{Alarm, Poller, Token};
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
    /// Connections open at once; the request of one more gets END_REQUEST(OVERLOADED).
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
    pub(crate) server: &'h Server,
    /// The server's configuration with the worker count resolved.
    pub(crate) config: ServerConfig,
    pub(crate) stats: Arc<Stats>,
    pub(crate) info: ServerInfo,
}

impl Context<'_> {
    /// Whether the server is stopping: finish what is in hand, take nothing new.
    pub(crate) fn is_stopping(&self) -> bool {
        self.server.is_stopping()
    }

    /// Whether the stop under way is a reload (the program re-executes on the same listener).
    pub(crate) fn is_reloading(&self) -> bool {
        self.server.is_reloading()
    }

    /// Counts a served request, and stops the server when `max_requests` is reached.
    pub(crate) fn note_request(&self) {
        let served = self.stats.requests.fetch_add(1, Ordering::Relaxed) + 1;
        if self.config.max_requests.is_some_and(|max| served >= max) {
            self.server.stop.stop();
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
        if result.is_ok() && self.is_reloading() {
            // Requests in flight are done; connections arriving meanwhile wait in the
            // listener's backlog for the new program.
            eprintln!("fcgi: reloading: re-executing the program on the same listening socket");
            return Err(listener.reexec());
        }
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
        let ctx = Context { handler, server: self, config, stats: self.stats.clone(), info };
        let result = serve_listener(&ctx, listener, wake_reader, workers);
        self.stop.wake_fd.store(-1, Ordering::SeqCst);
        result
    }

    /// A socket pair whose write end wakes this server's workers (or supervisor).
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

/// The longest time between two sweeps of the parked connections.
const SWEEP_AT_MOST_EVERY: Duration = Duration::from_millis(100);

/// Connections a worker accepts one after the other before it waits in epoll again.
const ACCEPT_RUN: usize = 16;

/// Connections one worker takes from the listener's queue when the server stops.
const DRAIN_AT_MOST: usize = 1024;

/// How long the listening worker may be away from the epoll set (serving) before the alarm
/// calls a standing-by worker in to listen meanwhile.
const STANDBY_ALARM: Duration = Duration::from_micros(500);

/// Kept-alive connections waiting in the poller, with the time each went idle.
type Parked = Mutex<HashMap<RawFd, (FcgiConnection, Instant)>>;

/// What the workers of one listener share: the epoll set they listen on, the connections
/// parked in it, when idle ones were last swept, and the standby set with its alarm.
struct Pool<'a> {
    ctx: &'a Context<'a>,
    listener: &'a Listener,
    poller: Poller,
    parked: Parked,
    last_sweep: Mutex<Instant>,
    sweep_every: Duration,
    /// Workers waiting in `poller` now.
    listening: AtomicUsize,
    /// Where the other workers wait: the alarm (one worker at a time) and the wake-up socket.
    standby: Poller,
    alarm: Alarm,
    alarm_set: AtomicBool,
    /// More than one worker: the standby applies.
    several: bool,
}

/// Serves `listener` with `workers` threads. There is no dispatcher: a worker waits on the
/// epoll set (the listener with EPOLLEXCLUSIVE, parked connections one-shot) and serves
/// whatever it is woken for itself, so a request costs no hand-off between threads.
///
/// One worker listens at a time; the others stand by. Waking a sleeping thread per request
/// costs more than the request (a context switch, cold caches): with four workers all listening,
/// a hello request cost 9.5 us of CPU against 6.5 us with one. So a worker that is done goes
/// back to listening only if nobody listens, and otherwise stands by; whenever the listener
/// leaves the epoll set to serve, an alarm is set: if nobody listens when it goes off (the
/// server is busy, or a request is slow), a standing-by worker comes in to listen. Short
/// requests thus run on one thread without hand-offs, and slow ones still run side by side,
/// each new one waiting at most the alarm's delay for a free worker.
fn serve_listener(ctx: &Context, listener: &Listener, wake: UnixStream, workers: usize) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let poller = Poller::new()?;
    poller.add_exclusive(listener.as_raw_fd(), Token::Listener)?;
    // Never drained: once written (stop), it wakes every worker, each time it waits.
    poller.add(wake.as_raw_fd(), Token::Wake)?;
    let standby = Poller::new()?;
    let alarm = Alarm::new()?;
    standby.add_exclusive(alarm.as_raw_fd(), Token::Alarm)?;
    standby.add(wake.as_raw_fd(), Token::Wake)?;
    let pool = Pool {
        ctx,
        listener,
        poller,
        listening: AtomicUsize::new(0),
        standby,
        alarm,
        alarm_set: AtomicBool::new(false),
        several: workers > 1,
        parked: Mutex::new(HashMap::new()),
        last_sweep: Mutex::new(Instant::now()),
        // Parked connections are swept a few times per idle timeout.
        sweep_every: ctx
            .config
            .idle_timeout
            .map_or(SWEEP_AT_MOST_EVERY, |t| t / 4)
            .clamp(Duration::from_millis(10), SWEEP_AT_MOST_EVERY),
    };
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| ctx.handler.run_thread(&mut || pool.work()));
        }
    });
    Ok(())
}

impl Pool<'_> {
    /// A worker thread's life: listen (or stand by while another listens), serve what comes,
    /// until the server stops.
    fn work(&self) {
        loop {
            if self.ctx.is_stopping() {
                return self.drain();
            }
            if self.several && self.listening.load(Ordering::SeqCst) > 0 {
                self.stand_by();
                continue;
            }
            self.listening.fetch_add(1, Ordering::SeqCst);
            let ready = self.poller.wait_one(Some(self.sweep_every));
            if self.listening.fetch_sub(1, Ordering::SeqCst) == 1 && self.several {
                self.set_alarm();
            }
            let ready = match ready {
                Ok(ready) => ready,
                Err(e) => {
                    eprintln!("fcgi: waiting for connections: {e}");
                    return;
                }
            };
            self.sweep_idle();
            match ready {
                Some(Token::Listener) => {
                    // Under load more connections wait in the backlog: taking them straight
                    // away saves a trip through epoll (and a sleep and wake-up) for each. A
                    // bounded run, so that parked connections get their turn.
                    for _ in 0..ACCEPT_RUN {
                        match self.accept() {
                            Some(conn) => self.serve(conn),
                            None => break,
                        }
                        if self.ctx.is_stopping() {
                            break;
                        }
                    }
                }
                Some(Token::Connection(fd)) => {
                    let parked = lock_parked(&self.parked).remove(&fd);
                    if let Some((conn, _)) = parked {
                        self.serve(conn);
                    }
                }
                Some(Token::Wake | Token::Alarm) | None => {}
            }
        }
    }

    /// Waits until the alarm goes off (or the server stops); then the caller listens if nobody
    /// else does.
    fn stand_by(&self) {
        match self.standby.wait_one(Some(SWEEP_AT_MOST_EVERY)) {
            Ok(Some(Token::Alarm)) => {
                if self.alarm.clear() {
                    self.alarm_set.store(false, Ordering::SeqCst);
                }
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("fcgi: standing by: {e}");
                std::thread::sleep(SWEEP_AT_MOST_EVERY);
            }
        }
    }

    /// Sets the alarm that calls a standing-by worker in, unless it is already set.
    fn set_alarm(&self) {
        if !self.alarm_set.swap(true, Ordering::SeqCst) {
            if let Err(e) = self.alarm.set(STANDBY_ALARM) {
                eprintln!("fcgi: setting the standby alarm: {e}");
                self.alarm_set.store(false, Ordering::SeqCst);
            }
        }
    }

    /// Serves what `conn` has ready, then parks it if it is kept alive.
    fn serve(&self, conn: FcgiConnection) {
        let Some(conn) = conn.serve(self.ctx) else { return };
        let fd = conn.socket().as_raw_fd();
        let mut parked = lock_parked(&self.parked);
        if self.ctx.is_stopping() {
            return;
        }
        parked.insert(fd, (conn, Instant::now()));
        if let Err(e) = self.poller.arm_once(fd, Token::Connection(fd)) {
            eprintln!("fcgi: cannot watch a kept connection: {e}");
            parked.remove(&fd);
        }
    }

    /// The stop: connections the kernel already accepted, new ones that have not sent their
    /// request yet, and kept ones whose next request already arrived were made by a web server
    /// that expects an answer: serve them. Idle kept connections close. A reload leaves the
    /// listener's backlog to the new program.
    fn drain(&self) {
        if !self.ctx.is_reloading() {
            // Only what is queued now: serving while accepting would go on for as long as
            // clients keep connecting.
            let mut queued = Vec::new();
            while queued.len() < DRAIN_AT_MOST {
                match self.accept() {
                    Some(conn) => queued.push(conn),
                    None => break,
                }
            }
            for conn in queued {
                self.serve(conn);
            }
        }
        loop {
            let next = {
                let mut parked = lock_parked(&self.parked);
                let fd = parked.iter().find(|(_, (conn, since))| conn.expects_request(*since)).map(|(fd, _)| *fd);
                match fd {
                    Some(fd) => parked.remove(&fd),
                    None => {
                        parked.clear();
                        None
                    }
                }
            };
            match next {
                Some((conn, _)) => self.serve(conn),
                None => return,
            }
        }
    }

    /// Closes kept connections idle for longer than the idle timeout.
    fn sweep_idle(&self) {
        {
            let mut last_sweep = self.last_sweep.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if last_sweep.elapsed() < self.sweep_every {
                return;
            }
            *last_sweep = Instant::now();
        }
        if let Some(idle_timeout) = self.ctx.config.idle_timeout {
            lock_parked(&self.parked).retain(|_, (_, since)| since.elapsed() < idle_timeout);
        }
    }

    /// Accepts one connection, if one is waiting.
    fn accept(&self) -> Option<FcgiConnection> {
        let ctx = self.ctx;
        loop {
            let socket = match self.listener.accept() {
                Ok(Some(socket)) => socket,
                Ok(None) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: log, and give the other workers a moment to free
                    // descriptors.
                    eprintln!("fcgi: accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                    return None;
                }
            };
            ctx.stats.connections.fetch_add(1, Ordering::Relaxed);
            let open = ctx.stats.open.fetch_add(1, Ordering::Relaxed) + 1;
            if open > ctx.config.max_connections {
                log_overloaded(ctx.config.max_connections);
                return Some(FcgiConnection::overloaded(socket, ctx));
            }
            return Some(FcgiConnection::new(socket, ctx));
        }
    }
}

/// Logs that connections are refused, at most once a second (a flood must not flood the log).
fn log_overloaded(max_connections: usize) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if LAST.swap(now, Ordering::Relaxed) != now {
        eprintln!("fcgi: over {max_connections} connections: refusing with OVERLOADED");
    }
}

fn lock_parked(parked: &Parked) -> MutexGuard<'_, HashMap<RawFd, (FcgiConnection, Instant)>> {
    parked.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
