//! [`ServerConfig`]: how a server is set up, every face's settings (see `settings.rs`) in
//! one struct.

use std::path::PathBuf;
use std::time::Duration;

use super::access_log::AccessFormat;
use super::allow_list::AllowList;
use super::listener::Bind;
use super::logging::Level;
use crate::protocol::ConnectionConfig;

/// How the server is set up. `Default` is right for mod_fcgid, nginx and friends alike.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen; `None` means fd 0 if it is a listening socket, else `LISTEN_FDS`,
    /// else CGI mode.
    pub bind: Option<Bind>,
    /// Serve one CGI request even if a listener is there (also `FCGI_FORCE_CGI=1`).
    pub force_cgi: bool,
    /// Worker threads serving requests at once in a process. `None`: 1 on an inherited fd 0
    /// (mod_fcgid sends one request at a time to each process), else `default_workers`, else
    /// twice the cores, between 4 and 32.
    pub workers: Option<usize>,
    /// The face's own default for `workers` where the web server may send many requests at
    /// once (a bound or systemd socket): an ASGI app's requests each hold a parked thread; a
    /// Python WSGI app's take turns on the GIL, so 2 (one waits while one runs). Not a setting;
    /// on mod_fcgid's fd 0 the default stays 1.
    pub default_workers: Option<usize>,
    /// Stop after serving this many requests (mod_fcgid's `FcgidMaxRequestsPerProcess`).
    pub max_requests: Option<u64>,
    /// A random 0 to this many requests added to `max_requests` in each process.
    pub max_requests_jitter: u64,
    /// A process whose resident memory passes this many bytes is recycled.
    pub max_rss: Option<u64>,
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
    /// them: it restarts one that dies and stops them all on a stop signal. `None`: 1 on an
    /// inherited fd 0 (mod_fcgid runs the processes), else `default_processes`, else 1.
    pub processes: Option<usize>,
    /// The face's own default for `processes` on a bound or systemd socket: the cores for a
    /// Python WSGI app, which runs one thread at a time per process (the GIL). Not a setting.
    pub default_processes: Option<usize>,
    /// A dynamic pool grows up to this many processes when every worker is busy and requests
    /// wait; 0 (or `processes`): a fixed pool.
    pub max_processes: usize,
    /// A process of a dynamic pool idle this long is stopped (while more than `processes` run).
    pub process_idle_timeout: Option<Duration>,
    /// Processes a dynamic pool starts per second, at most.
    pub max_spawn_rate: usize,
    /// A request running past this is logged (once) with what its thread is doing.
    pub slow_request_timeout: Option<Duration>,
    /// A request running past this is ended (see the `timeout` setting).
    pub timeout: Option<Duration>,
    /// How long a timed-out request may take to end before its process is replaced.
    pub timeout_grace: Duration,
    /// The least severe of the server's own messages that is logged.
    pub log_level: Level,
    /// Where the access log goes (`-`: stderr); `None`: only to a logger that asks for it.
    pub access_logfile: Option<PathBuf>,
    /// The access log's line.
    pub access_logformat: AccessFormat,
    /// The path (SCRIPT_NAME + PATH_INFO) the server answers with its status page itself.
    pub status_path: Option<String>,
    /// The path the server answers with `pong` itself.
    pub ping_path: Option<String>,
    /// Who may see the status and ping pages (REMOTE_ADDR).
    pub status_allow: AllowList,
    // Privileges and the socket: see `privileges.rs` and `pid_file.rs`.
    /// Run as this user (name or uid) once the socket is bound (needs root).
    pub user: Option<String>,
    /// Run as this group (name or gid); else the user's own.
    pub group: Option<String>,
    /// The file-creation mask, set before binding.
    pub umask: Option<u32>,
    /// The permissions of a Unix socket the server binds (`Bind::Unix`'s `mode` when it has none).
    pub socket_mode: Option<u32>,
    /// `USER:GROUP`, `USER` or `:GROUP`: the owner given to a Unix socket the server binds.
    pub socket_owner: Option<String>,
    /// The listen(2) backlog of a socket the server binds.
    pub backlog: u32,
    /// Where the server writes its pid while it serves.
    pub pid_file: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: None,
            force_cgi: false,
            workers: None,
            default_workers: None,
            max_requests: None,
            max_requests_jitter: 0,
            max_rss: None,
            max_connections: 1024,
            read_timeout: Some(Duration::from_secs(60)),
            write_timeout: Some(Duration::from_secs(60)),
            idle_timeout: Some(Duration::from_secs(90)),
            head_timeout: Some(Duration::from_secs(10)),
            graceful_timeout: Some(Duration::from_secs(30)),
            max_body_bytes: None,
            connection: ConnectionConfig::default(),
            handle_signals: true,
            processes: None,
            default_processes: None,
            max_processes: 0,
            process_idle_timeout: Some(Duration::from_secs(10)),
            max_spawn_rate: 8,
            slow_request_timeout: None,
            timeout: None,
            timeout_grace: Duration::from_secs(5),
            log_level: Level::Info,
            access_logfile: None,
            access_logformat: AccessFormat::default(),
            status_path: None,
            ping_path: None,
            status_allow: AllowList::loopback(),
            user: None,
            group: None,
            umask: None,
            socket_mode: None,
            socket_owner: None,
            backlog: 1024,
            pid_file: None,
        }
    }
}

impl ServerConfig {
    /// Whether the process pool grows and shrinks with the load (`max_processes` above
    /// `processes`).
    pub fn has_dynamic_pool(&self) -> bool {
        self.max_processes > self.process_count()
    }

    /// The processes a fixed pool runs (the least of a dynamic one): `processes`, else 1. The
    /// server fills it in with the face's default once it knows its socket.
    pub fn process_count(&self) -> usize {
        self.processes.unwrap_or(1)
    }
}
