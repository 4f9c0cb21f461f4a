//! Where connections come from: the listening socket on fd 0 (mod_fcgid, spawn-fcgi,
//! lighttpd `bin-path`), a systemd socket (`LISTEN_FDS`), or an address the caller gives; and
//! the `FCGI_WEB_SERVER_ADDRS` check on TCP peers.

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::net::{IpAddr, Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use super::signals;

/// Where to listen, as a caller spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    /// A Unix socket path, created (a stale file is replaced) with `mode` if given.
    Unix { path: PathBuf, mode: Option<u32> },
    /// A TCP `host:port` (IPv4, `[IPv6]`, or a name that resolves).
    Tcp(String),
    /// A listening socket the program owns (one it bound, or was handed). The server serves
    /// a duplicate of the descriptor (close-on-exec), so the program's own stays open and
    /// stays the program's: the server never closes it and never removes its socket file.
    /// The two share the socket's status flags: the server makes it non-blocking. Refused
    /// unless it is a listening socket.
    Fd(RawFd),
}

impl Bind {
    /// Parses `unix:/path`, `/path` (or `./path`), `host:port` or `[::1]:port`.
    pub fn parse(addr: &str) -> io::Result<Self> {
        if let Some(path) = addr.strip_prefix("unix:") {
            return Ok(Self::Unix { path: path.into(), mode: None });
        }
        if addr.starts_with('/') || addr.starts_with('.') {
            return Ok(Self::Unix { path: addr.into(), mode: None });
        }
        if addr.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()) {
            return Ok(Self::Tcp(addr.to_owned()));
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bind address {addr:?} is neither unix:PATH, /PATH, HOST:PORT nor [IPV6]:PORT"),
        ))
    }
}

impl fmt::Display for Bind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix { path, .. } => write!(f, "unix:{}", path.display()),
            Self::Tcp(addr) => f.write_str(addr),
            Self::Fd(fd) => write!(f, "fd {fd}"),
        }
    }
}

/// A listening socket.
#[derive(Debug)]
pub enum Listener {
    Unix {
        listener: UnixListener,
        /// The socket file to remove at shutdown: only one this process created.
        owned_path: Option<PathBuf>,
    },
    Tcp {
        listener: TcpListener,
        /// `FCGI_WEB_SERVER_ADDRS`: the peers allowed, or `None` for any.
        allowed: Option<Vec<IpAddr>>,
    },
}

/// What [`Listener::inherited`] found.
#[derive(Debug)]
pub enum Inherited {
    /// fd 0 is a listening socket, as mod_fcgid, spawn-fcgi and lighttpd hand it over.
    Fd0(Listener),
    /// systemd socket activation handed over fd 3.
    Systemd(Listener),
    /// Neither: the process was started as a CGI program (or by hand).
    None,
}

const LISTEN_FDS_START: RawFd = 3;

impl Listener {
    /// Binds `bind`, with std's backlog ([`set_backlog`](Self::set_backlog) changes it).
    pub fn bind(bind: &Bind) -> io::Result<Self> {
        match bind {
            Bind::Unix { path, mode } => {
                remove_stale_socket(path)?;
                let listener = match mode {
                    Some(mode) => bind_unix_with_mode(path, *mode),
                    None => UnixListener::bind(path),
                }
                .map_err(|e| io::Error::new(e.kind(), format!("binding {}: {e}", path.display())))?;
                Ok(Self::Unix { listener, owned_path: Some(path.clone()) })
            }
            Bind::Tcp(addr) => {
                let addrs: Vec<_> = addr.to_socket_addrs()?.collect();
                let listener = TcpListener::bind(&addrs[..])
                    .map_err(|e| io::Error::new(e.kind(), format!("binding {addr}: {e}")))?;
                Ok(Self::Tcp { listener, allowed: web_server_addrs_from_env()? })
            }
            Bind::Fd(fd) => {
                if !is_listening_socket(*fd) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("fd {fd} is not a listening socket"),
                    ));
                }
                // SAFETY: fcntl(2) F_DUPFD_CLOEXEC on a descriptor the caller owns (checked open
                // above) only makes a new one, which nothing else owns.
                let dup = unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, LISTEN_FDS_START + 1) };
                if dup < 0 {
                    return Err(io::Error::last_os_error());
                }
                Self::from_fd(dup)
            }
        }
    }

    /// Looks for a listening socket given to this process: fd 0, then `LISTEN_FDS`.
    pub fn inherited() -> io::Result<Inherited> {
        if is_listening_socket(0) {
            return Ok(Inherited::Fd0(Self::from_fd(0)?));
        }
        Ok(Self::systemd()?.map_or(Inherited::None, Inherited::Systemd))
    }

    /// The listener systemd socket activation (or a reload of this program) passed on fd 3
    /// (`LISTEN_FDS`, `LISTEN_PID` naming this process). The variables are then removed, so
    /// that the program's own children do not take the socket for theirs.
    pub fn systemd() -> io::Result<Option<Self>> {
        if !has_systemd_socket() {
            return Ok(None);
        }
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        Self::from_fd(LISTEN_FDS_START).map(Some)
    }

    /// After a reload, the listener is the one this process bound before: remove its socket
    /// file at the final exit, as if bound now.
    pub fn adopt_socket_file(&mut self, bind: &Bind) {
        if let (Self::Unix { owned_path, .. }, Bind::Unix { path, .. }) = (self, bind) {
            *owned_path = Some(path.clone());
        }
    }

    /// Replaces this process with a new run of the same program (same executable, arguments
    /// and environment) that serves this listener: on fd 0 if it is there already, else on fd 3
    /// with `LISTEN_FDS`. Returns only if the exec failed.
    pub fn reexec(&self) -> io::Error {
        self.reexec_with(&[])
    }

    /// [`Listener::reexec`], with `env` added to the new program's environment.
    pub(crate) fn reexec_with(&self, env: &[(&str, String)]) -> io::Error {
        use std::os::unix::process::CommandExt;
        let args = match std::fs::read("/proc/self/cmdline") {
            Ok(cmdline) => cmdline,
            Err(e) => return e,
        };
        let mut args = args.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| {
            use std::os::unix::ffi::OsStrExt;
            std::ffi::OsStr::from_bytes(a).to_os_string()
        });
        let Some(arg0) = args.next() else { return io::Error::other("empty /proc/self/cmdline") };
        let mut command = std::process::Command::new("/proc/self/exe");
        command.arg0(arg0).args(args);
        for (name, value) in env {
            command.env(name, value);
        }
        // From here until the new program's server handles SIGHUP, SIGHUP is ignored: a reload
        // asked for meanwhile is this one, and must not end the process.
        match signals::prepare_reexec() {
            Ok((name, value)) => command.env(name, value),
            Err(e) => return e,
        };
        let error = self.exec_on_listener(command);
        signals::reexec_failed();
        error
    }

    /// Executes `command` with this listener kept open for it (fd 0, or fd 3 with
    /// `LISTEN_FDS`). Returns only if the exec failed.
    fn exec_on_listener(&self, mut command: std::process::Command) -> io::Error {
        use std::os::unix::process::CommandExt;
        let fd = self.as_raw_fd();
        // SAFETY: dup2 and fcntl on descriptors this process owns; the listener stays open (it
        // is borrowed) into the new program, and the exec follows at once.
        unsafe {
            if fd != 0 {
                if fd != LISTEN_FDS_START && libc::dup2(fd, LISTEN_FDS_START) < 0 {
                    return io::Error::last_os_error();
                }
                command.env("LISTEN_FDS", "1").env("LISTEN_PID", std::process::id().to_string());
            }
            let target = if fd == 0 { 0 } else { LISTEN_FDS_START };
            if libc::fcntl(target, libc::F_SETFD, 0) < 0 {
                return io::Error::last_os_error();
            }
            // The new program starts with this thread's signal mask: a face that serves from a
            // thread blocking signals must not pass that on.
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        }
        command.exec()
    }

    fn from_fd(fd: RawFd) -> io::Result<Self> {
        // SAFETY: `fd` is a listening socket handed to this process or duplicated for the
        // listener (checked by the caller), and nothing else in the process owns it: the
        // listener takes it over for good.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        if socket_family(fd)? == libc::AF_UNIX {
            Ok(Self::Unix { listener: UnixListener::from(owned), owned_path: None })
        } else {
            Ok(Self::Tcp { listener: TcpListener::from(owned), allowed: web_server_addrs_from_env()? })
        }
    }

    /// Sets the queue of connections the kernel holds until they are accepted: listen(2) again
    /// on a listening socket changes its backlog (capped by net.core.somaxconn).
    pub fn set_backlog(&self, backlog: u32) -> io::Result<()> {
        let backlog = libc::c_int::try_from(backlog).unwrap_or(libc::c_int::MAX);
        // SAFETY: listen(2) on a socket this listener owns.
        if unsafe { libc::listen(self.as_raw_fd(), backlog) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The socket file this process created, if any.
    pub fn socket_file(&self) -> Option<&Path> {
        match self {
            Self::Unix { owned_path, .. } => owned_path.as_deref(),
            Self::Tcp { .. } => None,
        }
    }

    /// Sets the listener non-blocking, so that accepting goes with `poll`.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match self {
            Self::Unix { listener, .. } => listener.set_nonblocking(nonblocking),
            Self::Tcp { listener, .. } => listener.set_nonblocking(nonblocking),
        }
    }

    /// Accepts one connection. `Ok(None)` when a TCP peer is not in `FCGI_WEB_SERVER_ADDRS`
    /// (the connection is closed and logged).
    /// The connection is non-blocking from the start: a read or write that has to wait does
    /// so in poll(2), bounded by the server's timeouts, which costs no syscall per connection.
    pub fn accept(&self) -> io::Result<Option<Socket>> {
        match self {
            Self::Unix { listener, .. } => Ok(Some(Socket::Unix(accept_nonblocking(listener.as_raw_fd())?.into()))),
            Self::Tcp { listener, allowed } => {
                let stream = TcpStream::from(accept_nonblocking(listener.as_raw_fd())?);
                if let Some(allowed) = allowed {
                    let peer = stream.peer_addr()?;
                    if !is_allowed(peer.ip(), allowed) {
                        log::warn!("refused a connection from {peer}: not in FCGI_WEB_SERVER_ADDRS");
                        return Ok(None);
                    }
                }
                stream.set_nodelay(true)?;
                Ok(Some(Socket::Tcp(stream)))
            }
        }
    }

    /// Removes the socket file this process created, if any.
    pub fn remove_socket_file(&self) {
        if let Self::Unix { owned_path: Some(path), .. } = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Self::Unix { listener, .. } => listener.as_raw_fd(),
            Self::Tcp { listener, .. } => listener.as_raw_fd(),
        }
    }
}

/// Binds a Unix socket that is at no moment reachable with more permissions than `mode`.
///
/// bind(2) creates the file with 0777 less the umask; a chmod after it leaves a window in which
/// the socket has the wrong mode. So the umask is set for the bind to the process's own umask
/// plus every bit `mode` leaves out: the file is born with `mode` or less (less if the umask
/// held back bits `mode` grants), and the chmod after it only ever adds what `mode` grants.
///
/// The umask is process-wide, and another thread creating a file during these few microseconds
/// gets it too. That is acceptable because this umask is never looser than the process's own:
/// such a file may come out with fewer permissions than its creator asked for, never more. (The
/// process's umask is read by setting 0o777, the strictest, for the same reason.) The other way,
/// binding in a private temporary folder and renaming the socket into place, touches no process
/// state, but leaves getsockname(2) naming the temporary path and can push a long path past the
/// 108 bytes of sun_path.
fn bind_unix_with_mode(path: &Path, mode: u32) -> io::Result<UnixListener> {
    let mode = mode & 0o7777;
    // SAFETY: umask(2) only swaps the process's file-creation mask; it cannot fail.
    let own = unsafe { libc::umask(0o777) };
    // SAFETY: as above.
    unsafe { libc::umask(own | (!mode & 0o777)) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(own) };
    let listener = bound?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(listener)
}

/// Whether systemd (or a reload of this program) handed this process a listening socket on
/// fd 3: `LISTEN_PID` names this process and `LISTEN_FDS` is at least 1.
pub fn has_systemd_socket() -> bool {
    let ours = std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    let count = std::env::var("LISTEN_FDS").ok().and_then(|n| n.parse::<u32>().ok()).unwrap_or(0);
    ours && count >= 1 && is_listening_socket(LISTEN_FDS_START)
}

/// Replaces a socket file left by a previous run, but never a regular file.
pub fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => {
            Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} exists and is not a socket", path.display())))
        }
        Err(_) => Ok(()),
    }
}

/// `getpeername` failing with ENOTCONN marks a listening socket (libfcgi's and flup's test);
/// ENOTSOCK, EBADF or a connected peer mean something else.
pub fn is_listening_socket(fd: RawFd) -> bool {
    let mut addr: libc::sockaddr_storage = unsafe_zeroed_storage();
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `addr` and `len` are valid for writes of the sizes given; the call only inspects fd.
    let rc = unsafe { libc::getpeername(fd, (&mut addr as *mut libc::sockaddr_storage).cast(), &mut len) };
    rc == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOTCONN)
}

fn socket_family(fd: RawFd) -> io::Result<libc::c_int> {
    let mut addr = unsafe_zeroed_storage();
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: as in `is_listening_socket`.
    let rc = unsafe { libc::getsockname(fd, (&mut addr as *mut libc::sockaddr_storage).cast(), &mut len) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(addr.ss_family as libc::c_int)
}

fn unsafe_zeroed_storage() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain old data for which all-zero bytes are a valid value.
    unsafe { std::mem::zeroed() }
}

/// Reads `FCGI_WEB_SERVER_ADDRS` (comma-separated IPv4 and IPv6 addresses).
pub fn web_server_addrs_from_env() -> io::Result<Option<Vec<IpAddr>>> {
    match std::env::var("FCGI_WEB_SERVER_ADDRS") {
        Ok(list) if !list.trim().is_empty() => parse_web_server_addrs(&list).map(Some),
        _ => Ok(None),
    }
}

/// Parses a comma-separated address list.
pub fn parse_web_server_addrs(list: &str) -> io::Result<Vec<IpAddr>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpAddr>().map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("FCGI_WEB_SERVER_ADDRS: {s:?} is not an address"))
            })
        })
        .collect()
}

/// Whether `peer` is in `allowed`, an IPv4-mapped IPv6 peer matching its IPv4 form.
pub fn is_allowed(peer: IpAddr, allowed: &[IpAddr]) -> bool {
    let canonical = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    allowed.iter().any(|a| canonical(*a) == canonical(peer))
}

/// accept(2) with the new connection close-on-exec and non-blocking in the same call.
fn accept_nonblocking(listener: RawFd) -> io::Result<OwnedFd> {
    let flags = libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
    // SAFETY: accept4 with NULL address pointers writes no memory of ours.
    let fd = unsafe { libc::accept4(listener, std::ptr::null_mut(), std::ptr::null_mut(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a non-negative result is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One accepted connection.
#[derive(Debug)]
pub enum Socket {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Socket {
    /// Switches non-blocking mode.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match self {
            Self::Unix(s) => s.set_nonblocking(nonblocking),
            Self::Tcp(s) => s.set_nonblocking(nonblocking),
        }
    }

    /// Shuts down one or both directions.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Self::Unix(s) => s.shutdown(how),
            Self::Tcp(s) => s.shutdown(how),
        }
    }

    /// A second handle to the same socket (a multiplexed connection's writer).
    pub fn try_clone(&self) -> io::Result<Self> {
        match self {
            Self::Unix(s) => s.try_clone().map(Self::Unix),
            Self::Tcp(s) => s.try_clone().map(Self::Tcp),
        }
    }
}

impl AsRawFd for Socket {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Self::Unix(s) => s.as_raw_fd(),
            Self::Tcp(s) => s.as_raw_fd(),
        }
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Unix(s) => s.read(buf),
            Self::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Unix(s) => s.write(buf),
            Self::Tcp(s) => s.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Self::Unix(s) => s.write_vectored(bufs),
            Self::Tcp(s) => s.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses() {
        assert_eq!(Bind::parse("unix:/run/a.sock").unwrap(), Bind::Unix { path: "/run/a.sock".into(), mode: None });
        assert_eq!(Bind::parse("/run/a.sock").unwrap(), Bind::Unix { path: "/run/a.sock".into(), mode: None });
        assert_eq!(Bind::parse("127.0.0.1:9000").unwrap(), Bind::Tcp("127.0.0.1:9000".into()));
        assert_eq!(Bind::parse("[::1]:9000").unwrap(), Bind::Tcp("[::1]:9000".into()));
        assert!(Bind::parse("nonsense").is_err());
    }

    #[test]
    fn web_server_addrs_match_v4_and_v6() {
        let allowed = parse_web_server_addrs(" 127.0.0.1, ::1 ,10.1.2.3").unwrap();
        assert!(is_allowed("127.0.0.1".parse().unwrap(), &allowed));
        assert!(is_allowed("::1".parse().unwrap(), &allowed));
        assert!(is_allowed("::ffff:10.1.2.3".parse().unwrap(), &allowed));
        assert!(!is_allowed("10.1.2.4".parse().unwrap(), &allowed));
        assert!(parse_web_server_addrs("1.2.3.4,bogus").is_err());
    }

    #[test]
    fn a_plain_file_is_not_a_listening_socket() {
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(!is_listening_socket(file.as_raw_fd()));
        let listener = UnixListener::bind(std::env::temp_dir().join(format!("fcgi-l-{}", std::process::id()))).unwrap();
        assert!(is_listening_socket(listener.as_raw_fd()));
        let _ = std::fs::remove_file(std::env::temp_dir().join(format!("fcgi-l-{}", std::process::id())));
    }

    #[test]
    fn a_bound_fd_is_served_through_a_duplicate_and_stays_the_programs() {
        let path = std::env::temp_dir().join(format!("fcgi-fd-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let own = UnixListener::bind(&path).unwrap();
        let listener = Listener::bind(&Bind::Fd(own.as_raw_fd())).unwrap();
        assert_ne!(listener.as_raw_fd(), own.as_raw_fd());
        // SAFETY: fcntl(2) F_GETFD on a descriptor the listener owns.
        assert_ne!(unsafe { libc::fcntl(listener.as_raw_fd(), libc::F_GETFD) } & libc::FD_CLOEXEC, 0);
        listener.remove_socket_file();
        drop(listener);
        assert!(path.exists(), "the program's socket file is the program's");
        assert!(is_listening_socket(own.as_raw_fd()), "the program's descriptor stays open");
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(Listener::bind(&Bind::Fd(file.as_raw_fd())).is_err());
        let _ = std::fs::remove_file(&path);
    }
}
