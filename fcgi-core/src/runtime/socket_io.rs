//! The socket's side of a connection: reads into a buffer's spare capacity and vectored
//! writes, each waiting (poll(2), the socket being non-blocking) no longer than its timeout.

use std::io::{self, IoSlice, Write};
use std::os::fd::AsRawFd;
use std::time::Duration;

use bytes::BytesMut;

use super::error::{Error, ErrorKind};
use super::listener::Socket;

/// Bytes asked of the kernel per read: one full record and then some.
pub(super) const READ_CHUNK: usize = 64 << 10;

/// Writes every slice, resuming after short writes and waiting (up to `timeout` each time)
/// while the web server's receive buffer is full.
pub(super) fn write_all_vectored(
    socket: &mut Socket,
    slices: &[IoSlice<'_>],
    timeout: Option<Duration>,
) -> io::Result<()> {
    // A copy to advance through: on the stack for the encoder's at most four slices.
    let mut stack = [IoSlice::new(&[]); 4];
    let mut heap = Vec::new();
    let mut remaining = if slices.len() <= stack.len() {
        stack[..slices.len()].copy_from_slice(slices);
        &mut stack[..slices.len()]
    } else {
        heap.extend_from_slice(slices);
        &mut heap[..]
    };
    // Emptied slices are dropped as the write advances past them; all empty would write 0 bytes.
    IoSlice::advance_slices(&mut remaining, 0);
    while !remaining.is_empty() {
        match socket.write_vectored(remaining) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut remaining, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !wait_ready(socket, libc::POLLOUT, timeout) {
                    return Err(Error::io(ErrorKind::TimedOut, "the web server stopped reading the response"));
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Waits up to `timeout` (for ever if `None`) for `socket` to be ready for `events`; false
/// when the time ran out. Readiness includes errors and hang-ups: the next call reports them.
pub(super) fn wait_ready(socket: &Socket, events: libc::c_short, timeout: Option<Duration>) -> bool {
    let mut poll = libc::pollfd { fd: socket.as_raw_fd(), events, revents: 0 };
    let timeout_ms = timeout.map_or(-1, |t| libc::c_int::try_from(t.as_millis()).unwrap_or(libc::c_int::MAX));
    loop {
        // SAFETY: poll(2) on one valid pollfd.
        match unsafe { libc::poll(&mut poll, 1, timeout_ms) } {
            n if n > 0 => return true,
            0 => return false,
            _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
            // poll itself failing (EINVAL, ENOMEM): let the next read or write say why.
            _ => return true,
        }
    }
}

/// Whether a read may wait for data, and how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    /// Only what has arrived.
    No,
    /// Up to this long (for ever if `None`).
    For(Option<Duration>),
}

/// Reads what the socket has into the spare capacity of `buf`, without zeroing it first.
/// A read that waits longer than its timeout is `TimedOut`.
pub(super) fn recv(socket: &Socket, buf: &mut BytesMut, wait: Wait) -> io::Result<usize> {
    buf.reserve(READ_CHUNK);
    let spare = buf.spare_capacity_mut();
    loop {
        // SAFETY: `spare` is writable memory owned by `buf`, `spare.len()` bytes long, and recv
        // writes at most that many bytes into it.
        let n = unsafe { libc::recv(socket.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len(), libc::MSG_DONTWAIT) };
        if n >= 0 {
            let n = n as usize;
            // SAFETY: recv initialised the first `n` bytes of the spare capacity.
            unsafe { buf.set_len(buf.len() + n) };
            return Ok(n);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => match wait {
                Wait::No => return Err(e),
                Wait::For(timeout) if wait_ready(socket, libc::POLLIN, timeout) => {}
                Wait::For(_) => {
                    return Err(Error::io(ErrorKind::TimedOut, "the web server sent nothing within the read timeout"))
                }
            },
            _ => return Err(e),
        }
    }
}
