//! Epoll sets the workers wait on: the listener, the wake-up socket and kept-alive connections
//! waiting for their next request, so that an idle connection never pins a worker thread; and
//! the alarm that calls a standing-by worker in when the listening one is busy.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// A readiness token: the listener, the wake-up socket, the alarm, or a parked connection's fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token {
    Listener,
    Wake,
    Alarm,
    Bell,
    Connection(RawFd),
}

impl Token {
    fn to_u64(self) -> u64 {
        match self {
            Self::Listener => 0,
            Self::Wake => 1,
            Self::Alarm => 2,
            Self::Bell => 3,
            Self::Connection(fd) => fd as u64 + 4,
        }
    }

    fn from_u64(value: u64) -> Self {
        match value {
            0 => Self::Listener,
            1 => Self::Wake,
            2 => Self::Alarm,
            3 => Self::Bell,
            n => Self::Connection((n - 4) as RawFd),
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
    /// ran out, an error of kind `Interrupted` when a signal handler ran on this thread
    /// meanwhile (epoll_wait is never restarted). One at a time, so that each worker takes one.
    pub(crate) fn wait_one(&self, timeout: Option<Duration>) -> io::Result<Option<Token>> {
        let mut event = libc::epoll_event { events: 0, u64: 0 };
        let timeout_ms = timeout.map_or(-1, |t| i32::try_from(t.as_millis()).unwrap_or(i32::MAX));
        // SAFETY: `event` is valid for the one entry asked for.
        let n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), &mut event, 1, timeout_ms) };
        match n {
            1 => Ok(Some(Token::from_u64(event.u64))),
            0 => Ok(None),
            _ => Err(io::Error::last_os_error()),
        }
    }
}

/// A one-shot timer (timerfd) that a poller watches: readable once it has gone off, until
/// cleared.
pub(crate) struct Alarm {
    timer: OwnedFd,
}

impl Alarm {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: timerfd_create takes no pointers; a non-negative result is a new fd we own.
        let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        Ok(Self { timer: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// Makes the alarm go off once, `after` from now (replacing an earlier setting).
    pub(crate) fn set(&self, after: Duration) -> io::Result<()> {
        // A zero value would disarm it.
        self.set_time(libc::timespec {
            tv_sec: after.as_secs() as libc::time_t,
            tv_nsec: after.subsec_nanos().max(1) as libc::c_long,
        })
    }

    /// Disarms the alarm, and takes an expiry not yet taken.
    pub(crate) fn disarm(&self) -> io::Result<()> {
        self.set_time(libc::timespec { tv_sec: 0, tv_nsec: 0 })
    }

    fn set_time(&self, value: libc::timespec) -> io::Result<()> {
        let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        let setting = libc::itimerspec { it_interval: zero, it_value: value };
        // SAFETY: a valid timerfd, a pointer to an initialised itimerspec, no old value asked.
        if unsafe { libc::timerfd_settime(self.timer.as_raw_fd(), 0, &setting, std::ptr::null_mut()) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Takes the alarm's expiry, so the poller stops reporting it; false if another thread
    /// took it first.
    pub(crate) fn clear(&self) -> bool {
        let mut expirations = 0u64;
        // SAFETY: read(2) of at most 8 bytes into a u64 that lives through the call.
        let n = unsafe { libc::read(self.timer.as_raw_fd(), (&mut expirations as *mut u64).cast(), 8) };
        n == 8
    }
}

impl AsRawFd for Alarm {
    fn as_raw_fd(&self) -> RawFd {
        self.timer.as_raw_fd()
    }
}

/// An eventfd that a poller watches: readable from a ring until cleared.
pub(crate) struct Bell {
    event: OwnedFd,
}

impl Bell {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: eventfd takes no pointers; a non-negative result is a new fd we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        Ok(Self { event: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    pub(crate) fn ring(&self) {
        let one = 1u64;
        // SAFETY: write(2) of the 8 bytes of a u64 that lives through the call. It fails only
        // when the counter would overflow, and then the bell is ringing anyway.
        unsafe { libc::write(self.event.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    pub(crate) fn clear(&self) {
        let mut count = 0u64;
        // SAFETY: read(2) of at most 8 bytes into a u64 that lives through the call.
        unsafe { libc::read(self.event.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
    }

    /// Waits up to `timeout` for a ring, and clears it; false if a signal handler ran on this
    /// thread meanwhile (poll is never restarted).
    pub(crate) fn wait(&self, timeout: Duration) -> bool {
        let mut poll = libc::pollfd { fd: self.event.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: poll(2) on one valid pollfd.
        let n = unsafe { libc::poll(&mut poll, 1, timeout.as_millis() as libc::c_int) };
        let interrupted = n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted;
        self.clear();
        !interrupted
    }
}

impl AsRawFd for Bell {
    fn as_raw_fd(&self) -> RawFd {
        self.event.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disarmed_alarm_neither_goes_off_nor_keeps_an_expiry() {
        let alarm = Alarm::new().unwrap();
        let poller = Poller::new().unwrap();
        poller.add(alarm.as_raw_fd(), Token::Alarm).unwrap();
        alarm.set(Duration::ZERO).unwrap();
        assert_eq!(poller.wait_one(Some(Duration::from_secs(5))).unwrap(), Some(Token::Alarm));
        alarm.disarm().unwrap();
        assert!(!alarm.clear(), "the expiry went with the disarm");
        alarm.set(Duration::from_millis(20)).unwrap();
        alarm.disarm().unwrap();
        assert_eq!(poller.wait_one(Some(Duration::from_millis(60))).unwrap(), None);
        assert!(!alarm.clear());
    }
}
