//! The server: finds or binds its listener (or falls back to CGI), runs the worker threads (or
//! worker processes), and stops gracefully on a signal, on request, or after N requests.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::acceptor::{Acceptor, Served, Source};
use super::access_log::AccessLog;
use super::cgi;
use super::config::ServerConfig;
use super::context::{Context, Moment};
use super::duty::Alarms;
use super::graceful;
use super::lifecycle::{Lifecycle, NoHooks};
use super::listener::{Bind, Inherited, Listener};
use super::logging;
use super::pid_file::PidFile;
use super::pool::Pool;
use super::prefork;
use super::privileges::{self, Identity};
use super::request::{run_handler, Handler, ServerInfo, Transport};
use super::signals::{self, SignalGuard};
use super::stats::Stats;
use super::stop::{StopHandle, Wake};
use super::watchdog::{self, Watch};
use crate::protocol::Capabilities;

/// A FastCGI server.
pub struct Server {
    config: ServerConfig,
    stats: Arc<Stats>,
    stop: StopHandle,
    /// The standby alarms, one per block of the scoreboard (made by the first serve).
    alarms: OnceLock<Arc<Alarms>>,
}

impl Server {
    /// A server with `config`.
    pub fn new(config: ServerConfig) -> Self {
        // A slot on the scoreboard for each worker thread; the C API's program threads are not
        // counted in advance, so some room is left for them.
        let slots = config.workers.or(config.default_workers).unwrap_or(0).max(32);
        // Worker processes of a pool each get a block, and so does the one that takes the place
        // of a process retiring (stuck past the request timeout) while it ends.
        let processes = config.processes.or(config.default_processes).unwrap_or(1).max(config.max_processes);
        let blocks = if processes > 1 { processes * 2 } else { 1 };
        let stats = Arc::new(Stats::new(blocks, slots));
        let stop = StopHandle { stopping: Arc::default(), wake: Arc::default() };
        Self { config, stats, stop, alarms: OnceLock::new() }
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
        logging::install_default(self.config.log_level);
        if self.config.processes == Some(0) && self.config.max_processes == 0 {
            // Refused before anything is bound or written.
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "processes 0 needs max_processes (a dynamic pool)",
            ));
        }
        let identity = self.identity()?;
        let (listener, on_fd0, transport) = match self.listener()? {
            Some(found) => found,
            None => {
                identity.drop_privileges()?;
                let app_status = cgi::serve_once(handler, self.config.max_body_bytes)?;
                return Ok(Served::Cgi { app_status });
            }
        };
        let listener = Arc::new(listener);
        let pid_file = match self.config.pid_file.as_deref().map(PidFile::create).transpose() {
            Ok(pid_file) => pid_file,
            Err(e) => {
                listener.remove_socket_file();
                return Err(e);
            }
        };
        let config = self.resolved_config(on_fd0);
        // Each connection is a descriptor: make room for the connection limit, and some more.
        raise_fd_limit(config.max_connections as u64 + 64);
        let result = if config.process_count() > 1 || config.has_dynamic_pool() {
            // The supervisor keeps its user: it runs no request, and removes the pid and socket
            // files at the end and re-executes itself for a reload. Each worker drops.
            prefork::supervise(self, handler, lifecycle, &listener, &config, transport, &identity)
        } else {
            let served = identity
                .drop_privileges()
                .and_then(|()| lifecycle.before_serving())
                .and_then(|()| self.serve_in_process(handler, lifecycle, &listener, config, transport, true));
            lifecycle.process_exit();
            served
        };
        if result.is_ok() && self.is_reloading() {
            // Requests in flight are done; connections arriving meanwhile wait in the
            // listener's backlog for the new program. The pid file stays: the pid does too.
            log::info!("reloading: re-executing the program on the same listening socket");
            let e = listener.reexec();
            drop(pid_file);
            return Err(e);
        }
        listener.remove_socket_file();
        drop(pid_file);
        result.map(|()| Served::FastCgi)
    }

    /// Starts serving without a handler: the program's own threads take the requests with
    /// [`Acceptor::accept`] and serve them where they are, so a request costs no hand-off
    /// between threads (the C API's model). Without a listener (CGI mode) the first accept gives
    /// the one CGI request. `workers` only says how many requests GET_VALUES reports; each
    /// accepting thread serves one request at a time. `processes` does not apply: a program
    /// that wants several forks itself.
    pub fn acceptor(&self) -> io::Result<Acceptor> {
        logging::install_default(self.config.log_level);
        let identity = self.identity()?;
        let Some((listener, on_fd0, transport)) = self.listener()? else {
            identity.drop_privileges()?;
            let (request, app_status) = cgi::request(self.config.max_body_bytes);
            return Ok(Acceptor { source: Source::Cgi { request: Box::new(Mutex::new(request)), app_status } });
        };
        let listener = Arc::new(listener);
        let pid_file = self.config.pid_file.as_deref().map(PidFile::create).transpose();
        let pid_file = pid_file.and_then(|pid_file| identity.drop_privileges().map(|()| pid_file));
        let pid_file = match pid_file {
            Ok(pid_file) => pid_file,
            Err(e) => {
                listener.remove_socket_file();
                return Err(e);
            }
        };
        let config = self.resolved_config(on_fd0);
        raise_fd_limit(config.max_connections as u64 + 64);
        let (wake_reader, wake_writer) = self.wake_pair()?;
        let signals = if config.handle_signals { Some(SignalGuard::install(wake_writer)?) } else { None };
        let graceful_timeout = config.graceful_timeout;
        let watch = wake_reader.try_clone()?;
        let ctx = self.context(config, transport, false)?;
        let pool = Pool::new(ctx, listener.clone(), wake_reader, true, self.alarms()?)?;
        let ctx = pool.context();
        let watched_requests = Watch::of(ctx);
        if watched_requests.is_needed() {
            // Until the acceptor (and with it the pool) is gone.
            let watched = Arc::downgrade(&pool);
            let stats = ctx.stats.clone();
            std::thread::Builder::new().name("fcgi-watchdog".into()).spawn(move || {
                signals::block_on_this_thread();
                let done = || watched.strong_count() == 0;
                let replace = || {
                    if let Some(pool) = watched.upgrade() {
                        watchdog::replace_process(pool.context());
                    }
                };
                watchdog::watch(watched_requests, &stats, &NoHooks, &done, &replace);
            })?;
        }
        if pool.has_front_desk() {
            // Until the stop, or until the acceptor (and with it the pool) is gone.
            let kept = Arc::downgrade(&pool);
            std::thread::Builder::new().name("fcgi-front-desk".into()).spawn(move || {
                signals::block_on_this_thread();
                while kept.upgrade().is_some_and(|pool| pool.front_desk_round()) {}
            })?;
        }
        if let Some(timeout) = graceful_timeout {
            // The program's threads hold the requests: past the graceful timeout after a stop,
            // the requests still in flight are cut as `serve`'s are.
            let (watched_pool, watched_listener) = (pool.clone(), listener.clone());
            std::thread::Builder::new().name("fcgi-graceful".into()).spawn(move || {
                signals::block_on_this_thread();
                let ctx = watched_pool.context();
                let finished = || ctx.stats.in_flight() == 0;
                graceful::enforce(&watch, timeout, &finished, ctx, &watched_listener, true);
            })?;
        }
        Ok(Acceptor {
            source: Source::FastCgi {
                _signals: signals,
                pool,
                listener,
                stop: self.stop.clone(),
                drained: OnceLock::new(),
                _pid_file: pid_file,
            },
        })
    }

    /// The configuration with the worker and process counts and what GET_VALUES reports filled
    /// in. On mod_fcgid's fd 0 the face's defaults do not apply: one request at a time, one
    /// process.
    fn resolved_config(&self, on_fd0: bool) -> ServerConfig {
        let mut config = self.config.clone();
        let face_default = config.default_workers.filter(|_| !on_fd0);
        let workers = config.workers.or(face_default).unwrap_or_else(|| default_workers(on_fd0)).max(1);
        config.workers = Some(workers);
        config.processes = Some(config.processes.or(config.default_processes.filter(|_| !on_fd0)).unwrap_or(1));
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
        let ctx = self.context(config, transport, !owns_listener)?;
        // A handler that takes requests whole needs one thread to take them.
        let takes = handler.takes_requests();
        let threads = if takes { 1 } else { workers };
        // A worker process of a pool stands by for the others too, even with one thread.
        let pool = Pool::new(ctx, listener.clone(), wake_reader, threads > 1 || !owns_listener, self.alarms()?)?;
        let running = AtomicUsize::new(threads);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    lifecycle.run_thread(&mut || {
                        let ctx = pool.context();
                        if ctx.seats_requests() {
                            ctx.stats.scoreboard().enroll(ctx.stats.process_index());
                        }
                        while let Some(request) = pool.next() {
                            if takes {
                                handler.take(request);
                            } else {
                                run_handler(handler, request);
                            }
                        }
                        // Serving ends with the last request taken (the graceful timeout cuts
                        // it short).
                        while takes && ctx.stats.in_flight() > 0 {
                            std::thread::sleep(IN_FLIGHT_LOOK_EVERY);
                        }
                    });
                    // The last one out wakes the watch below, should serving end without a stop.
                    if running.fetch_sub(1, Ordering::SeqCst) == 1 {
                        signals::wake(wake_writer);
                    }
                });
            }
            let ctx = pool.context();
            let watched_requests = Watch::of(ctx);
            if watched_requests.is_needed() {
                let running = &running;
                scope.spawn(move || {
                    signals::block_on_this_thread();
                    let done = || running.load(Ordering::SeqCst) == 0;
                    let replace = || watchdog::replace_process(ctx);
                    watchdog::watch(watched_requests, &ctx.stats, lifecycle, &done, &replace);
                });
            }
            if pool.has_front_desk() {
                let (pool, running) = (&pool, &running);
                scope.spawn(move || {
                    signals::block_on_this_thread();
                    while running.load(Ordering::SeqCst) > 0 && pool.front_desk_round() {}
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
        // Readers of multiplexed connections may still hold the pool (and its log) a moment.
        pool.context().flush_logs();
        Ok(())
    }

    /// What the threads serving one listener know; `pool_worker`: this is a worker process of a
    /// pre-fork pool (its supervisor replaces it).
    fn context(&self, config: ServerConfig, transport: Transport, pool_worker: bool) -> io::Result<Context> {
        let info = ServerInfo {
            transport,
            workers: config.workers.unwrap_or(1),
            pool_worker,
            max_body_bytes: config.max_body_bytes,
        };
        let access_log = AccessLog::open(config.access_logfile.as_deref(), &config.access_logformat)?;
        let request_limit = config.max_requests.map(|max| max + jitter(config.max_requests_jitter));
        Ok(Context {
            config,
            stats: self.stats.clone(),
            info,
            silence: Moment::new(),
            stop: self.stop.clone(),
            access_log,
            pool_worker,
            request_limit,
        })
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

    /// The standby alarms of the pool's threads. A supervisor makes them before it forks, so
    /// that its worker processes share them (see `duty.rs`).
    pub(crate) fn alarms(&self) -> io::Result<Arc<Alarms>> {
        if let Some(alarms) = self.alarms.get() {
            return Ok(alarms.clone());
        }
        let made = Arc::new(Alarms::new(self.stats.scoreboard().processes())?);
        Ok(self.alarms.get_or_init(|| made).clone())
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

    /// The `user` and `group` to drop to, looked up, and refused at once (before anything is
    /// bound) if this process may not take them.
    fn identity(&self) -> io::Result<Identity> {
        let identity = Identity::resolve(self.config.user.as_deref(), self.config.group.as_deref())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        identity.check_permitted()?;
        Ok(identity)
    }

    /// The listener to serve, whether it is fd 0, and how it came; `None` for CGI mode. The
    /// umask is set first, so that a socket file (and every file after it) is created under it.
    fn listener(&self) -> io::Result<Option<(Listener, bool, Transport)>> {
        if let Some(mask) = self.config.umask {
            privileges::set_umask(mask);
        }
        if let Some(bind) = &self.config.bind {
            if let Bind::Fd(_) = bind {
                // The program's own socket: it picked it (from systemd's too, if it wanted).
                self.warn_socket_settings_unused("the program's own socket");
                return Ok(Some((Listener::bind(bind)?, false, Transport::Bound)));
            }
            // A reload (or systemd) passes the socket bound before: keep serving that one.
            if let Some(mut listener) = Listener::systemd()? {
                listener.adopt_socket_file(bind);
                return Ok(Some((listener, false, Transport::Bound)));
            }
            return Ok(Some((self.bind(bind)?, false, Transport::Bound)));
        }
        let forced = std::env::var("FCGI_FORCE_CGI").is_ok_and(|v| !v.is_empty() && v != "0");
        if self.config.force_cgi || forced {
            return Ok(None);
        }
        let found = match Listener::inherited()? {
            Inherited::Fd0(listener) => Some((listener, true, Transport::Inherited)),
            Inherited::Systemd(listener) => Some((listener, false, Transport::Inherited)),
            Inherited::None => None,
        };
        if found.is_some() {
            self.warn_socket_settings_unused("a socket handed over (fd 0 or systemd's)");
        }
        Ok(found)
    }

    /// Binds `bind` with the socket settings: `socket_mode` (unless the address gives a mode),
    /// `socket_owner` and `backlog`.
    fn bind(&self, bind: &Bind) -> io::Result<Listener> {
        let bind = match bind {
            Bind::Unix { path, mode: None } => Bind::Unix { path: path.clone(), mode: self.config.socket_mode },
            other => other.clone(),
        };
        let listener = Listener::bind(&bind)?;
        let set_up = listener.set_backlog(self.config.backlog).and_then(|()| {
            match (listener.socket_file(), &self.config.socket_owner) {
                (Some(path), Some(owner)) => privileges::chown_socket(path, owner),
                _ => Ok(()),
            }
        });
        if let Err(e) = set_up {
            listener.remove_socket_file();
            return Err(e);
        }
        if let Bind::Tcp(_) = bind {
            self.warn_socket_settings_unused("a TCP socket");
        }
        Ok(listener)
    }

    fn warn_socket_settings_unused(&self, socket: &str) {
        if self.config.socket_mode.is_some() || self.config.socket_owner.is_some() {
            log::warn!(
                "socket_mode and socket_owner apply to a Unix socket the server binds, not to {socket}: ignored"
            );
        }
    }
}

/// How often, once a handler that takes requests whole has taken its last, the server looks
/// whether they have ended.
const IN_FLIGHT_LOOK_EVERY: Duration = Duration::from_millis(5);

/// A random whole number from 0 to `most` (gunicorn's `max_requests_jitter`: processes started
/// together do not all recycle at once).
fn jitter(most: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    if most == 0 {
        return 0;
    }
    // The standard library's randomly keyed hasher: random enough to spread recycles.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish() % (most + 1)
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
