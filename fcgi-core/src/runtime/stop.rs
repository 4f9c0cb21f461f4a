//! Stopping a server from anywhere: a flag, and a wake-up socket that stays open as long as
//! anyone can write to it.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use super::signals;

/// Stops a serving server from another thread (or a signal handler: it is async-signal-safe).
#[derive(Debug, Clone)]
pub struct StopHandle {
    pub(super) stopping: Arc<AtomicBool>,
    /// The server's wake-up socket, made by its first serve; shared, so that it stays open as
    /// long as any handle can write to it.
    pub(super) wake: Arc<OnceLock<Wake>>,
}

/// A server's wake-up socket: a byte written to `writer` wakes whatever waits on `reader` (the
/// worker threads, or a pre-fork supervisor). Made once and kept until the server and every
/// [`StopHandle`] are gone, so the descriptor a stop writes to is always this socket: never one
/// closed when serving ended, whose number a file opened since may have taken.
#[derive(Debug)]
pub(super) struct Wake {
    pub(super) reader: UnixStream,
    pub(super) writer: UnixStream,
}

impl Wake {
    pub(super) fn new() -> io::Result<Self> {
        let (reader, writer) = UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        Ok(Self { reader, writer })
    }

    /// Puts a fresh socket pair behind the same two descriptor numbers, atomically (dup3), so a
    /// forked worker process wakes on its own socket, not on its supervisor's.
    pub(super) fn renew(&self) -> io::Result<()> {
        let fresh = Self::new()?;
        for (new, old) in [(&fresh.reader, &self.reader), (&fresh.writer, &self.writer)] {
            // SAFETY: dup3 onto a descriptor this Wake owns: the number stays open throughout,
            // now for the fresh socket (close-on-exec, as it was); `fresh` closes its own copies.
            if unsafe { libc::dup3(new.as_raw_fd(), old.as_raw_fd(), libc::O_CLOEXEC) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

impl StopHandle {
    /// Stops accepting, lets in-flight requests finish, and makes `serve` return.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        // OnceLock::get is one atomic load; the socket outlives this handle.
        if let Some(wake) = self.wake.get() {
            signals::wake(wake.writer.as_raw_fd());
        }
    }

    /// Whether a stop was asked for: by this handle, or by a signal when the server handles
    /// them.
    pub(super) fn is_stopping(&self, signals_too: bool) -> bool {
        self.stopping.load(Ordering::SeqCst) || (signals_too && signals::stop_requested())
    }
}
