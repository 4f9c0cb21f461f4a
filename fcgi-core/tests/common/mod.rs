//! A raw FastCGI test client, and the app under test started on a Unix socket.
//!
//! The app is the echo example unless `FCGI_TEST_APP` names another command (the Python and C
//! faces run this same suite); `--bind unix:PATH` and any extra arguments are appended.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use fcgi_core::protocol::header::RecordType;
use fcgi_core::protocol::params::encode_pair;
use fcgi_core::protocol::record::{encode_record, encode_stream, encode_stream_end};
use fcgi_core::protocol::{BeginRequest, EndRequest, Header, Record, Role};

/// The app under test, stopped (and its socket removed) on drop.
pub struct App {
    pub child: Child,
    dir: PathBuf,
    pub address: Address,
}

/// Where the app listens.
#[derive(Debug, Clone)]
pub enum Address {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

/// Either kind of stream a client talks over.
pub trait Stream: Read + Write + Send {
    fn shutdown(&self, how: Shutdown) -> std::io::Result<()>;
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()>;
    /// A second handle on the same connection (to write from one thread while another reads).
    fn try_clone_stream(&self) -> std::io::Result<Box<dyn Stream>>;
}

impl Stream for UnixStream {
    fn shutdown(&self, how: Shutdown) -> std::io::Result<()> {
        UnixStream::shutdown(self, how)
    }
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }
    fn try_clone_stream(&self) -> std::io::Result<Box<dyn Stream>> {
        Ok(Box::new(self.try_clone()?))
    }
}

impl Stream for TcpStream {
    fn shutdown(&self, how: Shutdown) -> std::io::Result<()> {
        TcpStream::shutdown(self, how)
    }
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
    fn try_clone_stream(&self) -> std::io::Result<Box<dyn Stream>> {
        Ok(Box::new(self.try_clone()?))
    }
}

impl Address {
    fn connect(&self) -> std::io::Result<Box<dyn Stream>> {
        Ok(match self {
            Self::Unix(path) => Box::new(UnixStream::connect(path)?),
            Self::Tcp(addr) => Box::new(TcpStream::connect(addr)?),
        })
    }
}

/// A fresh temporary folder for one app.
pub fn temp_dir() -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("fcgi-test-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The command that starts the app under test, without a bind address.
pub fn app_command() -> Command {
    match std::env::var("FCGI_TEST_APP") {
        Ok(line) if !line.trim().is_empty() => {
            let mut words = line.split_whitespace();
            let mut command = Command::new(words.next().unwrap());
            command.args(words);
            command
        }
        _ => Command::new(echo_binary()),
    }
}

pub fn echo_binary() -> PathBuf {
    static BUILD: Once = Once::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-q", "-p", "fcgi-core", "--example", "echo"])
            .current_dir(&root)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the echo example failed");
    });
    root.join("target/debug/examples/echo")
}

impl App {
    /// Starts the app on a Unix socket with `extra` arguments and waits until it listens.
    pub fn start(extra: &[&str]) -> Self {
        let dir = temp_dir();
        let address = Address::Unix(dir.join("app.sock"));
        Self::start_at(dir, address, app_command(), extra)
    }

    /// [`start`](Self::start), as one process. The Python face's default on a bound socket is a
    /// process per core; C and Rust programs serve in one process and take no such flag, so it
    /// is said in `FCGI_WSGI_ARGS`, which only the Python face reads.
    pub fn start_lone(extra: &[&str]) -> Self {
        let dir = temp_dir();
        let address = Address::Unix(dir.join("app.sock"));
        let mut command = app_command();
        command.env("FCGI_WSGI_ARGS", "--processes 1");
        Self::start_at(dir, address, command, extra)
    }

    /// Starts the app on `address` with `command` and `extra` arguments.
    pub fn start_at(dir: PathBuf, address: Address, mut command: Command, extra: &[&str]) -> Self {
        let bind = match &address {
            Address::Unix(path) => format!("unix:{}", path.display()),
            Address::Tcp(addr) => addr.to_string(),
        };
        command.arg("--bind").arg(bind).args(extra);
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(std::fs::File::create(dir.join("stderr")).unwrap());
        let child = command.spawn().expect("the app starts");
        let app = Self { child, dir, address };
        app.wait_until_listening();
        app
    }

    /// Adopts a child started some other way (fd 0, LISTEN_FDS) that listens on `address`.
    pub fn adopt(child: Child, dir: PathBuf, address: Address) -> Self {
        let app = Self { child, dir, address };
        app.wait_until_listening();
        app
    }

    fn wait_until_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Err(e) = self.address.connect() {
            assert!(Instant::now() < deadline, "the app did not listen ({e}): {}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A new connection.
    pub fn connect(&self) -> Client {
        let stream = self.address.connect().expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Client { stream, buf: BytesMut::new() }
    }

    /// The folder holding the app's files (its stderr log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What the app wrote to stderr.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    /// Waits up to `timeout` until the app's main thread blocks in an epoll wait (as its
    /// `/proc` wchan says), so that a signal sent next finds it there and not on its way.
    pub fn wait_until_blocked_in_epoll(&self, timeout: Duration) -> bool {
        let wchan = format!("/proc/{}/wchan", self.child.id());
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if std::fs::read_to_string(&wchan).is_ok_and(|at| at.contains("epoll")) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// Panics unless the app still runs and serves a fresh connection correctly.
    pub fn assert_serves(&mut self) {
        assert!(self.child.try_wait().unwrap().is_none(), "the app exited: {}", self.stderr());
        let mut client = self.connect();
        let request = request_bytes(1, "/hello", &[], b"", false);
        if let Err(e) = client.stream.write_all(&request) {
            panic!("the app refused a request ({e}): {}", self.stderr());
        }
        let response = client.response(1);
        assert_eq!(response.body(), b"Hello, world!", "stderr: {}", self.stderr());
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        self.child.wait().unwrap()
    }

    /// Sends `signal` to the app while it runs. Once it has exited and been reaped its pid may
    /// be another process's already (another test's app, which a stray SIGTERM would stop).
    pub fn signal(&self, signal: i32) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: waitid(2) with WNOWAIT only looks (it reaps nothing) and fills a zeroed
        // siginfo_t, plain data; si_pid is read only after it returned 0.
        let running = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
            libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) == 0 && info.si_pid() == 0
        };
        if running {
            // SAFETY: kill(2) on the pid of a child that has not exited (nor been reaped).
            unsafe { libc::kill(pid, signal) };
        }
    }

    /// Waits up to `timeout` for the app to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for App {
    fn drop(&mut self) {
        // SIGTERM first: a pre-fork supervisor stops its worker processes; SIGKILL would leave
        // them behind.
        self.signal(libc::SIGTERM);
        if self.wait_exit(Duration::from_secs(5)).is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What came back for one request.
#[derive(Debug, Default)]
pub struct Response {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub end: Option<EndRequest>,
    pub headers: Vec<Header>,
}

impl Response {
    /// The CGI header block, as text.
    pub fn head(&self) -> String {
        let end = find(&self.stdout, b"\r\n\r\n").unwrap_or(self.stdout.len());
        String::from_utf8_lossy(&self.stdout[..end]).into_owned()
    }

    /// The body after the CGI headers.
    pub fn body(&self) -> &[u8] {
        find(&self.stdout, b"\r\n\r\n").map_or(&[], |i| &self.stdout[i + 4..])
    }

    /// The `Status:` code (200 when absent, as CGI says).
    pub fn status(&self) -> u16 {
        self.head()
            .lines()
            .find_map(|l| l.strip_prefix("Status: "))
            .and_then(|s| s.split(' ').next()?.parse().ok())
            .unwrap_or(200)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A raw FastCGI client connection.
pub struct Client {
    pub stream: Box<dyn Stream>,
    buf: BytesMut,
}

impl Client {
    /// A client over a connection made by hand (to an app inside the test process).
    pub fn over(stream: Box<dyn Stream>) -> Self {
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Self { stream, buf: BytesMut::new() }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    pub fn begin(&mut self, id: u16, role: Role, keep_conn: bool) {
        let mut out = BytesMut::new();
        encode_record(RecordType::BeginRequest, id, &BeginRequest { role, keep_conn }.encode(), &mut out);
        self.send(&out);
    }

    /// Sends the params, cut into records of at most `record_size` bytes, and their end.
    pub fn params(&mut self, id: u16, pairs: &[(&str, &[u8])], record_size: usize) {
        let mut body = BytesMut::new();
        for (name, value) in pairs {
            encode_pair(name.as_bytes(), value, &mut body);
        }
        let mut out = BytesMut::new();
        for chunk in body.chunks(record_size) {
            encode_record(RecordType::Params, id, chunk, &mut out);
        }
        encode_stream_end(RecordType::Params, id, &mut out);
        self.send(&out);
    }

    /// Sends `data` as STDIN records, and the stream end.
    pub fn stdin(&mut self, id: u16, data: &[u8]) {
        let mut out = BytesMut::new();
        encode_stream(RecordType::Stdin, id, data, &mut out);
        encode_stream_end(RecordType::Stdin, id, &mut out);
        self.send(&out);
    }

    /// Sends a whole request: BEGIN, params for `uri`, the body.
    pub fn request(&mut self, id: u16, method: &str, uri: &str, body: &[u8], keep_conn: bool) {
        self.begin(id, Role::Responder, keep_conn);
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let length = body.len().to_string();
        self.params(
            id,
            &[
                ("REQUEST_METHOD", method.as_bytes()),
                ("REQUEST_URI", uri.as_bytes()),
                ("SCRIPT_NAME", path.as_bytes()),
                ("QUERY_STRING", query.as_bytes()),
                ("CONTENT_LENGTH", length.as_bytes()),
                ("SERVER_PROTOCOL", b"HTTP/1.1"),
            ],
            65535,
        );
        self.stdin(id, body);
    }

    /// Sends a request with `body` (its CONTENT_LENGTH declared) and reads the whole response.
    pub fn request_response(&mut self, id: u16, method: &str, uri: &str, body: &[u8]) -> Response {
        self.request(id, method, uri, body, false);
        self.response(id)
    }

    /// GET `uri` and read the whole response.
    pub fn get(&mut self, id: u16, uri: &str, keep_conn: bool) -> Response {
        self.request(id, "GET", uri, b"", keep_conn);
        self.response(id)
    }

    /// The next record, `None` at EOF. Checks the padding rule on every record received.
    pub fn record(&mut self) -> Option<Record> {
        loop {
            if let Some(record) = Record::decode(&mut self.buf).expect("the app sends valid records") {
                let total = record.content.len() + record.header.padding_len as usize;
                assert_eq!(total % 8, 0, "record not padded to 8: {:?}", record.header);
                return Some(record);
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => panic!("reading from the app: {e}"),
            }
        }
    }

    /// Reads records until request `id` ends.
    pub fn response(&mut self, id: u16) -> Response {
        let mut response = Response::default();
        while let Some(record) = self.record() {
            assert_eq!(record.header.request_id, id, "unexpected record {:?}", record.header);
            response.headers.push(record.header);
            match record.header.record_type {
                RecordType::Stdout => response.stdout.extend_from_slice(&record.content),
                RecordType::Stderr => response.stderr.extend_from_slice(&record.content),
                RecordType::EndRequest => {
                    response.end = Some(EndRequest::parse(&record.content).unwrap());
                    return response;
                }
                other => panic!("unexpected record type {other:?}"),
            }
        }
        panic!("the connection closed before END_REQUEST; got {response:?}")
    }

    /// Whether the app closed the connection (reads until EOF or a 5 s timeout).
    pub fn is_closed_by_app(&mut self) -> bool {
        self.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }
}

/// Serves `server` (bound to the Unix socket `path`) on a thread of this process with a handler
/// that answers 204, waits until it listens and `settle` more (time for a pre-fork supervisor
/// to start its workers), stops it with its handle and waits for `serve` to return.
pub fn serve_then_stop(server: &fcgi_core::Server, path: &Path, settle: Duration) {
    let stop = server.stop_handle();
    let handler = |request: &mut fcgi_core::Request<'_>| request.write_stdout(b"Status: 204 No Content\r\n\r\n");
    std::thread::scope(|scope| {
        let serving = scope.spawn(|| server.serve(&handler));
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(path).is_err() {
            assert!(Instant::now() < deadline, "the server did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(settle);
        stop.stop();
        serving.join().unwrap().expect("served");
    });
}

/// Deterministic pseudo-random bytes.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// What a process holds, read from /proc: resident memory and open descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub rss_kib: u64,
    pub fds: usize,
}

/// The usage of process `pid` (VmRSS of /proc/PID/status, the entries of /proc/PID/fd).
pub fn usage_of(pid: u32) -> Usage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc/PID/status");
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("/proc/PID/fd").count();
    Usage { rss_kib, fds }
}

/// How much a process may grow over a hostile case, once warmed up.
pub const RSS_SLACK_KIB: u64 = 8 * 1024;
pub const FD_SLACK: usize = 4;

impl App {
    /// The app's resident memory and open descriptors now.
    pub fn usage(&self) -> Usage {
        usage_of(self.child.id())
    }

    /// Panics unless the app serves, and, within `timeout` (its connections take a moment to
    /// close), holds at most `FD_SLACK` descriptors and `RSS_SLACK_KIB` of memory more than at
    /// `baseline`. Returns the usage it settled at.
    pub fn assert_not_grown(&mut self, baseline: Usage, timeout: Duration) -> Usage {
        self.assert_serves();
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.usage();
            let fds_ok = now.fds <= baseline.fds + FD_SLACK;
            let rss_ok = now.rss_kib <= baseline.rss_kib + RSS_SLACK_KIB;
            if fds_ok && rss_ok {
                let test = std::thread::current().name().unwrap_or("").to_owned();
                eprintln!("{test}: {baseline:?} before, {now:?} after");
                return now;
            }
            assert!(
                Instant::now() < deadline,
                "the app grew: {baseline:?} before, {now:?} after (allowed: {FD_SLACK} fds, {RSS_SLACK_KIB} KiB)\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Deterministic pseudo-random numbers (xorshift64), for cut points and the like.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// The bytes of one whole Responder request, as a web server sends them: BEGIN_REQUEST, the
/// params in one record and their end, the body as STDIN records and their end.
pub fn request_bytes(id: u16, uri: &str, pairs: &[(&str, &[u8])], body: &[u8], keep_conn: bool) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_record(RecordType::BeginRequest, id, &BeginRequest { role: Role::Responder, keep_conn }.encode(), &mut out);
    let method: &[u8] = if body.is_empty() { b"GET" } else { b"POST" };
    let length = body.len().to_string();
    let (_, query) = uri.split_once('?').unwrap_or((uri, ""));
    let mut block = BytesMut::new();
    let common: [(&str, &[u8]); 4] = [
        ("REQUEST_METHOD", method),
        ("REQUEST_URI", uri.as_bytes()),
        ("QUERY_STRING", query.as_bytes()),
        ("CONTENT_LENGTH", length.as_bytes()),
    ];
    for (name, value) in common.iter().chain(pairs) {
        encode_pair(name.as_bytes(), value, &mut block);
    }
    encode_stream(RecordType::Params, id, &block, &mut out);
    encode_stream_end(RecordType::Params, id, &mut out);
    encode_stream(RecordType::Stdin, id, body, &mut out);
    encode_stream_end(RecordType::Stdin, id, &mut out);
    out.to_vec()
}

/// Raises this process's soft limit on open files to `wanted` (or the hard limit); returns
/// the soft limit now in force.
pub fn raise_fd_limit(wanted: u64) -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write one valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < wanted {
            let raised = libc::rlimit { rlim_cur: wanted.min(limit.rlim_max), rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

/// Whether the app under test is the Python face (`FCGI_TEST_APP` runs `fcgi_wsgi`).
pub fn app_is_python() -> bool {
    std::env::var("FCGI_TEST_APP").is_ok_and(|line| line.contains("fcgi_wsgi"))
}

impl App {
    /// The app's usage once its descriptor count has held still for a moment (connections
    /// just dropped take a few milliseconds to close), after checking that it serves.
    pub fn settled_usage(&mut self) -> Usage {
        self.assert_serves();
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut last = self.usage();
        let mut still = 0;
        while still < 4 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            let now = self.usage();
            still = if now.fds == last.fds { still + 1 } else { 0 };
            last = now;
        }
        last
    }
}

impl Client {
    /// A second handle on this connection, to write from another thread while this one reads.
    pub fn writer(&self) -> Box<dyn Stream> {
        self.stream.try_clone_stream().expect("clone the client's socket")
    }

    /// Sends an ABORT_REQUEST for request `id`.
    pub fn abort(&mut self, id: u16) {
        let mut out = BytesMut::new();
        encode_record(RecordType::AbortRequest, id, b"", &mut out);
        self.send(&out);
    }
}
