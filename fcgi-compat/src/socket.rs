//! `FCGX_OpenSocket`: a real listening socket, as libfcgi makes it, so that a program may
//! pass it to `FCGX_InitRequest`, share it with forked children, or close it. And the record
//! of what this process created, so the socket file goes away when the server stops or the
//! process exits (libfcgi leaves it behind).

use std::ffi::OsStr;
use std::io;
use std::net::{TcpListener, ToSocketAddrs};
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use fcgi_core::runtime::listener::{has_systemd_socket, is_listening_socket, remove_stale_socket};

/// Where `FCGX_OpenSocket` listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A Unix socket path.
    Unix(PathBuf),
    /// A TCP host (a name, an IPv4 address, or an IPv6 address without brackets) and port.
    Tcp { host: String, port: u16 },
}

/// Parses libfcgi's syntax: `HOST:PORT`, `:PORT` or `*:PORT` (every IPv4 address) when what
/// follows the first colon is a port, else a Unix socket path. Ours besides: `[IPV6]:PORT`
/// and `unix:PATH`.
pub fn parse(text: &[u8]) -> io::Result<Address> {
    if text.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "an empty socket address"));
    }
    if let Some(path) = text.strip_prefix(b"unix:") {
        return Ok(Address::Unix(PathBuf::from(OsStr::from_bytes(path))));
    }
    let port = |digits: &[u8]| std::str::from_utf8(digits).ok()?.parse::<u16>().ok().filter(|p| *p > 0);
    if let Some(rest) = text.strip_prefix(b"[") {
        let close = rest.iter().position(|b| *b == b']');
        let parsed = close.and_then(|close| {
            let host = std::str::from_utf8(&rest[..close]).ok()?;
            let port = port(rest[close + 1..].strip_prefix(b":")?)?;
            host.parse::<std::net::Ipv6Addr>().ok()?;
            Some(Address::Tcp { host: host.to_owned(), port })
        });
        return parsed.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "expected [IPV6]:PORT"));
    }
    if let Some(colon) = text.iter().position(|b| *b == b':') {
        if let (Some(port), Ok(host)) = (port(&text[colon + 1..]), std::str::from_utf8(&text[..colon])) {
            let host = if host.is_empty() || host == "*" { "0.0.0.0" } else { host };
            return Ok(Address::Tcp { host: host.to_owned(), port });
        }
    }
    Ok(Address::Unix(PathBuf::from(OsStr::from_bytes(text))))
}

/// A socket this process (or its parent, before a fork) created.
struct Created {
    fd: RawFd,
    pid: u32,
    /// For a Unix socket: its path, and the device and inode of the file created, so that a
    /// file another process put there since is left alone.
    file: Option<(PathBuf, u64, u64)>,
}

static CREATED: Mutex<Vec<Created>> = Mutex::new(Vec::new());

fn created() -> MutexGuard<'static, Vec<Created>> {
    CREATED.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The listener for `address`: one handed over already (see `inherited`), else a new one
/// bound with `backlog`. The descriptor has no close-on-exec flag, as libfcgi's has none (a
/// program may hand it to a child it executes).
pub fn open(address: &Address, backlog: i32) -> io::Result<RawFd> {
    if let Some(fd) = inherited(address) {
        let file = match address {
            Address::Unix(path) => std::fs::symlink_metadata(path).ok().map(|m| (path.clone(), m.dev(), m.ino())),
            Address::Tcp { .. } => None,
        };
        created().push(Created { fd, pid: std::process::id(), file });
        return Ok(fd);
    }
    bind(address, backlog)
}

/// A listening socket at `address` that this process was handed: by a reload of the program
/// (the core re-executes it with the listener on fd 0) or by systemd socket activation (fd 3,
/// `LISTEN_FDS`). Serving it keeps the connections waiting in its backlog.
fn inherited(address: &Address) -> Option<RawFd> {
    let systemd = has_systemd_socket();
    let fd = [0, 3]
        .into_iter()
        .filter(|fd| *fd == 0 || systemd)
        .find(|fd| is_listening_socket(*fd) && bound_to(*fd, address))?;
    if fd == 3 {
        // The socket is taken: the program's own children must not take it for theirs.
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
    }
    Some(fd)
}

/// Whether listening socket `fd` is bound to `address`.
fn bound_to(fd: RawFd, address: &Address) -> bool {
    use std::mem::ManuallyDrop;
    use std::os::fd::FromRawFd;
    match address {
        Address::Unix(path) => {
            // SAFETY: a listener over `fd` that is never dropped, so the descriptor stays open
            // and owned by whoever owned it; only getsockname(2) runs on it.
            let listener = ManuallyDrop::new(unsafe { UnixListener::from_raw_fd(fd) });
            listener.local_addr().ok().and_then(|a| a.as_pathname().map(|p| p == path)).unwrap_or(false)
        }
        Address::Tcp { host, port } => {
            // SAFETY: as above.
            let listener = ManuallyDrop::new(unsafe { TcpListener::from_raw_fd(fd) });
            let Ok(local) = listener.local_addr() else { return false };
            (host.as_str(), *port).to_socket_addrs().is_ok_and(|mut addrs| addrs.any(|a| a == local))
        }
    }
}

fn bind(address: &Address, backlog: i32) -> io::Result<RawFd> {
    let (fd, file): (OwnedFd, _) = match address {
        Address::Unix(path) => {
            remove_stale_socket(path)?;
            let listener = UnixListener::bind(path)?;
            let meta = std::fs::symlink_metadata(path)?;
            (listener.into(), Some((path.clone(), meta.dev(), meta.ino())))
        }
        Address::Tcp { host, port } => {
            let addrs: Vec<_> = (host.as_str(), *port).to_socket_addrs()?.collect();
            (TcpListener::bind(&addrs[..])?.into(), None)
        }
    };
    // SAFETY: listen(2) and fcntl(2) on a socket descriptor this function owns.
    unsafe {
        if libc::listen(fd.as_raw_fd(), backlog) != 0 {
            return Err(io::Error::last_os_error());
        }
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFD);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let fd = fd.into_raw_fd();
    created().push(Created { fd, pid: std::process::id(), file });
    Ok(fd)
}

/// Whether `fd` came from `FCGX_OpenSocket` (in this process or before a fork).
pub fn is_created(fd: RawFd) -> bool {
    created().iter().any(|c| c.fd == fd)
}

/// Removes the socket files this process created, unless another file replaced them.
pub fn remove_files() {
    let pid = std::process::id();
    created().retain_mut(|c| {
        if c.pid != pid {
            return true;
        }
        if let Some((path, dev, ino)) = c.file.take() {
            if std::fs::symlink_metadata(&path)
                .is_ok_and(|m| m.file_type().is_socket() && (m.dev(), m.ino()) == (dev, ino))
            {
                let _ = std::fs::remove_file(&path);
            }
        }
        true
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Address {
        Address::Tcp { host: host.to_owned(), port }
    }

    #[test]
    fn libfcgi_addresses_and_ours() {
        assert_eq!(parse(b":9000").unwrap(), tcp("0.0.0.0", 9000));
        assert_eq!(parse(b"*:9000").unwrap(), tcp("0.0.0.0", 9000));
        assert_eq!(parse(b"127.0.0.1:9000").unwrap(), tcp("127.0.0.1", 9000));
        assert_eq!(parse(b"localhost:80").unwrap(), tcp("localhost", 80));
        assert_eq!(parse(b"[::1]:9000").unwrap(), tcp("::1", 9000));
        assert_eq!(parse(b"/run/app.sock").unwrap(), Address::Unix("/run/app.sock".into()));
        assert_eq!(parse(b"unix:/run/app.sock").unwrap(), Address::Unix("/run/app.sock".into()));
        assert_eq!(parse(b"app.sock").unwrap(), Address::Unix("app.sock".into()));
        // libfcgi's rule: no port after the first colon means a path.
        assert_eq!(parse(b"/tmp/a:b").unwrap(), Address::Unix("/tmp/a:b".into()));
        assert_eq!(parse(b"host:0").unwrap(), Address::Unix("host:0".into()));
        assert!(parse(b"").is_err());
        assert!(parse(b"[::1]").is_err());
        assert!(parse(b"[nonsense]:80").is_err());
    }

    #[test]
    fn a_created_unix_socket_listens_and_its_file_is_removed() {
        let dir = std::env::temp_dir().join(format!("fcgi-compat-socket-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let fd = open(&Address::Unix(path.clone()), 16).unwrap();
        assert!(is_listening_socket(fd) && is_created(fd));
        // SAFETY: fcntl(2) F_GETFD on a descriptor we own.
        assert_eq!(unsafe { libc::fcntl(fd, libc::F_GETFD) } & libc::FD_CLOEXEC, 0);
        remove_files();
        assert!(!path.exists());
        // SAFETY: closing the descriptor `open` gave us, once.
        unsafe { libc::close(fd) };
        std::fs::write(&path, b"not a socket").unwrap();
        assert!(open(&Address::Unix(path.clone()), 16).is_err(), "a regular file is never replaced");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
