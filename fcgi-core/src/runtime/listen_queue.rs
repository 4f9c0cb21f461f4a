//! How many connections wait in the listener's accept queue, measured as `ss -l` does: TCP_INFO
//! on a TCP listener, sock_diag (netlink) on a Unix one. PHP-FPM's "listen queue" reads 0 on a
//! Unix socket; this one does not.

use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The accept queue of one listener.
pub(crate) struct ListenQueue {
    listener: RawFd,
    kind: Kind,
}

enum Kind {
    Tcp,
    /// The socket's inode, and the netlink socket that asks about it.
    Unix {
        inode: u32,
        netlink: OwnedFd,
    },
    Unknown,
}

/// What a measure found: connections waiting now, and the most the queue takes (the backlog).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Queue {
    pub waiting: u64,
    pub backlog: u64,
}

// <linux/sock_diag.h> and <linux/unix_diag.h>, which the libc crate does not carry.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const UDIAG_SHOW_RQLEN: u32 = 0x10;
const UNIX_DIAG_RQLEN: u16 = 4;
const TCP_LISTEN: u32 = 10;

#[repr(C)]
struct UnixDiagReq {
    family: u8,
    protocol: u8,
    pad: u16,
    states: u32,
    ino: u32,
    show: u32,
    cookie: [u32; 2],
}

#[repr(C)]
struct UnixDiagRequest {
    header: libc::nlmsghdr,
    body: UnixDiagReq,
}

#[repr(C)]
struct UnixDiagMsg {
    family: u8,
    kind: u8,
    state: u8,
    pad: u8,
    ino: u32,
    cookie: [u32; 2],
}

impl ListenQueue {
    /// Measures the listener `fd` (which must outlive this).
    pub(crate) fn new(fd: RawFd) -> Self {
        let kind = match socket_family(fd) {
            Some(libc::AF_INET | libc::AF_INET6) => Kind::Tcp,
            Some(libc::AF_UNIX) => unix_kind(fd).unwrap_or(Kind::Unknown),
            _ => Kind::Unknown,
        };
        Self { listener: fd, kind }
    }

    /// The queue now, if the kernel says.
    pub(crate) fn measure(&self) -> Option<Queue> {
        match &self.kind {
            Kind::Tcp => tcp_queue(self.listener),
            Kind::Unix { inode, netlink } => unix_queue(netlink.as_raw_fd(), *inode),
            Kind::Unknown => None,
        }
    }
}

fn socket_family(fd: RawFd) -> Option<i32> {
    // SAFETY: getsockname(2) writes at most `len` bytes into a zeroed sockaddr_storage.
    unsafe {
        let mut addr: libc::sockaddr_storage = zeroed();
        let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        (libc::getsockname(fd, (&raw mut addr).cast(), &mut len) == 0).then_some(i32::from(addr.ss_family))
    }
}

fn tcp_queue(fd: RawFd) -> Option<Queue> {
    // SAFETY: getsockopt(2) writes at most `len` bytes into a zeroed tcp_info.
    let info = unsafe {
        let mut info: libc::tcp_info = zeroed();
        let mut len = size_of::<libc::tcp_info>() as libc::socklen_t;
        if libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO, (&raw mut info).cast(), &mut len) != 0 {
            return None;
        }
        info
    };
    // On a listening socket the kernel reports the accept queue in these two fields.
    Some(Queue { waiting: u64::from(info.tcpi_unacked), backlog: u64::from(info.tcpi_sacked) })
}

fn unix_kind(fd: RawFd) -> Option<Kind> {
    // SAFETY: fstat(2) writes one stat struct.
    let inode = unsafe {
        let mut stat: libc::stat = zeroed();
        if libc::fstat(fd, &mut stat) != 0 {
            return None;
        }
        stat.st_ino
    };
    // SAFETY: socket(2) makes a new descriptor, owned from here on.
    let netlink = unsafe {
        let fd = libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, libc::NETLINK_SOCK_DIAG);
        if fd < 0 {
            return None;
        }
        OwnedFd::from_raw_fd(fd)
    };
    Some(Kind::Unix { inode: u32::try_from(inode).ok()?, netlink })
}

/// Asks sock_diag about the Unix socket `inode`: its receive queue, which for a listener is
/// the accept queue, and the backlog.
fn unix_queue(netlink: RawFd, inode: u32) -> Option<Queue> {
    let request = UnixDiagRequest {
        header: libc::nlmsghdr {
            nlmsg_len: size_of::<UnixDiagRequest>() as u32,
            nlmsg_type: SOCK_DIAG_BY_FAMILY,
            nlmsg_flags: libc::NLM_F_REQUEST as u16,
            nlmsg_seq: 1,
            nlmsg_pid: 0,
        },
        body: UnixDiagReq {
            family: libc::AF_UNIX as u8,
            protocol: 0,
            pad: 0,
            states: 1 << TCP_LISTEN,
            ino: inode,
            show: UDIAG_SHOW_RQLEN,
            // No cookie: look the socket up by its inode alone.
            cookie: [u32::MAX; 2],
        },
    };
    let mut reply = [0u8; 512];
    // SAFETY: send(2) and recv(2) on our own netlink socket, with a buffer of the size given.
    let received = unsafe {
        if libc::send(netlink, (&raw const request).cast(), size_of::<UnixDiagRequest>(), 0) < 0 {
            return None;
        }
        libc::recv(netlink, reply.as_mut_ptr().cast(), reply.len(), 0)
    };
    let reply = &reply[..usize::try_from(received).ok()?];
    let header_len = size_of::<libc::nlmsghdr>();
    let message_type = u16::from_ne_bytes(reply.get(4..6)?.try_into().ok()?);
    if message_type != SOCK_DIAG_BY_FAMILY {
        return None;
    }
    let mut attributes = reply.get(header_len + size_of::<UnixDiagMsg>()..)?;
    // rtattr: u16 length (header included), u16 type, payload, padded to 4.
    while attributes.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([attributes[0], attributes[1]]));
        let kind = u16::from_ne_bytes([attributes[2], attributes[3]]);
        if len < 4 || len > attributes.len() {
            return None;
        }
        if kind == UNIX_DIAG_RQLEN && len >= 12 {
            let word = |at: usize| u64::from(u32::from_ne_bytes(attributes[at..at + 4].try_into().expect("4 bytes")));
            return Some(Queue { waiting: word(4), backlog: word(8) });
        }
        attributes = &attributes[len.next_multiple_of(4).min(attributes.len())..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::unix::net::{UnixListener, UnixStream};

    #[test]
    fn connections_not_accepted_yet_are_counted_on_tcp_and_unix_listeners() {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let queue = ListenQueue::new(tcp.as_raw_fd());
        assert_eq!(queue.measure().unwrap().waiting, 0);
        let _clients: Vec<_> = (0..3).map(|_| TcpStream::connect(tcp.local_addr().unwrap()).unwrap()).collect();
        let measured = queue.measure().unwrap();
        assert_eq!(measured.waiting, 3);
        assert!(measured.backlog >= 3, "{measured:?}");

        let dir = std::env::temp_dir().join(format!("fcgi-listen-queue-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let unix = UnixListener::bind(&dir).unwrap();
        let queue = ListenQueue::new(unix.as_raw_fd());
        assert_eq!(queue.measure().unwrap().waiting, 0);
        let _clients: Vec<_> = (0..2).map(|_| UnixStream::connect(&dir).unwrap()).collect();
        assert_eq!(queue.measure().unwrap().waiting, 2);
        let _ = std::fs::remove_file(&dir);
    }
}
