//! An epoll set that the workers wait on together: the listener, the wake-up socket and
//! kept-alive connections waiting for their next request, so that an idle connection never pins
//! a worker thread.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// A readiness token: the listener, the wake-up socket, or a parked connection's fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token {
    Listener,
    Wake,
    Connection(RawFd),
}

impl Token {
    fn to_u64(self) -> u64 {
        match self {
            Self::Listener => 0,
            Self::Wake => 1,
            Self::Connection(fd) => fd as u64 + 2,
        }
    }

    fn from_u64(value: u64) -> Self {
        match value {
            0 => Self::Listener,
            1 => Self::Wake,
            n => Self::Connection((n - 2) as RawFd),
        }
    }
}

pub(crate) struct Poller {
    epoll: OwnedFd,
}

impl Poller {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative result is a new fd we own.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        Ok(Self { epoll: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// Watches `fd` for input, for good: every waiting thread is woken while it is readable.
    pub(crate) fn add(&self, fd: RawFd, token: Token) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_ADD, fd, token, libc::EPOLLIN as u32)
    }

    /// Watches `fd` for input, for good, waking one waiting thread (not all) when it is ready:
    /// the listener, which any one worker can accept from.
    pub(crate) fn add_exclusive(&self, fd: RawFd, token: Token) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_ADD, fd, token, (libc::EPOLLIN | libc::EPOLLEXCLUSIVE) as u32)
    }

    /// Watches `fd` for input once: after one report it is disarmed until armed again.
    pub(crate) fn arm_once(&self, fd: RawFd, token: Token) -> io::Result<()> {
        let interest = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT) as u32;
        match self.control(libc::EPOLL_CTL_MOD, fd, token, interest) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => self.control(libc::EPOLL_CTL_ADD, fd, token, interest),
            other => other,
        }
    }

    fn control(&self, op: libc::c_int, fd: RawFd, token: Token, events: u32) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: token.to_u64() };
        // SAFETY: a valid epoll fd and a pointer to an initialised event.
        if unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut event) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits (at most `timeout`, or for ever) for one thing to be ready; `None` when the time
    /// ran out or a signal interrupted the wait. One at a time, so that each worker takes one.
    pub(crate) fn wait_one(&self, timeout: Option<Duration>) -> io::Result<Option<Token>> {
        let mut event = libc::epoll_event { events: 0, u64: 0 };
        let timeout_ms = timeout.map_or(-1, |t| i32::try_from(t.as_millis()).unwrap_or(i32::MAX));
        // SAFETY: `event` is valid for the one entry asked for.
        let n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), &mut event, 1, timeout_ms) };
        match n {
            1 => Ok(Some(Token::from_u64(event.u64))),
            0 => Ok(None),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }
}
