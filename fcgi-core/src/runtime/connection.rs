//! One FastCGI connection up to its next request: bytes from the socket into the protocol
//! state machine until a request's head is whole, then the request (`in_series.rs`), or the
//! connection to a reader of its own (`multiplexed.rs`).
//!
//! Without multiplexing (what every mainstream web server does) the request owns its
//! connection while it runs, on the thread that took it from the pool, and pulls its body
//! straight from the socket, so input is read only as fast as the handler consumes it. When
//! the request ends, the connection goes back to the pool: a kept connection with nothing to
//! read waits in the poller instead of pinning a thread. A multiplexed connection is handed to
//! a reader thread of its own (`multiplexed.rs`).

use std::io;
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::context::Context;
use super::error::Error;
use super::heap::{self, Spare};
use super::in_series::InlineExchange;
use super::listener::Socket;
use super::multiplexed;
use super::pool::Pool;
use super::request::{is_disconnect, Request};
use super::socket_io::{recv, wait_ready, write_all_vectored, Wait, READ_CHUNK};
use super::stats::Stats;
use crate::protocol::response::OUTPUT_CAPACITY;
use crate::protocol::{Connection, Event, Params, ParamsError, Role};

/// How long the rest of a refused request may take to arrive (see [`FcgiConnection::linger`]).
const OVERLOADED_WAIT: Duration = Duration::from_millis(200);
/// How long a new connection may take to send its first bytes before it waits in the epoll set.
const FIRST_BYTES_WAIT: Duration = Duration::from_millis(2);
/// How long after a new connection stayed silent that wait is skipped: while a flood of silent
/// connections lasts, waiting for each would hold up the thread that accepts.
const SILENCE_MEMORY: Duration = Duration::from_millis(100);
/// How long a connection accepted during a stop may take to send its request.
const FIRST_REQUEST_WAIT: Duration = Duration::from_secs(1);
/// How long to drain a request body nobody read, before closing, so the web server gets our
/// response rather than a reset.
pub(super) const LINGER: Duration = Duration::from_secs(2);

/// The most a request's end may have left to send and still end without waiting
/// (`can_end_request_now`): a small response, whole.
const END_NOW_MAX: usize = 16 << 10;

/// What a connection taken from the pool gave.
pub(crate) enum Opened {
    /// A request to serve; the connection comes back to the pool when it ends.
    Request(Request<'static>),
    /// Kept alive and idle: it waits in the poller for its next request.
    Park(FcgiConnection),
    /// Nothing more: closed, refused, or read by a thread of its own (multiplexed).
    Done,
}

/// What reading a connection up to its next request gave.
enum Next {
    Request { id: u16, role: Role, params: Params },
    Park,
    Close,
}

/// One accepted connection and its protocol state.
pub(crate) struct FcgiConnection {
    pub(super) socket: Socket,
    pub(super) proto: Connection,
    pub(super) input: BytesMut,
    stats: Arc<Stats>,
    pub(super) timeouts: Timeouts,
    /// No record has arrived yet.
    fresh: bool,
    /// Since when the request head under way (BEGIN_REQUEST and PARAMS) has been arriving:
    /// from the accept for a new connection, from the first byte for a kept one; `None` while
    /// a kept connection is idle. The head must be whole within the head timeout.
    head_since: Option<Instant>,
    /// During a stop: until when a request this connection was about to send may still come.
    drain_by: Option<Instant>,
    /// This connection's number in the process (the access log's `%(C)s`).
    pub(super) number: u64,
}

/// How long a read or a write may wait for the web server (the socket is non-blocking: the
/// wait is a poll(2) bounded by these).
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    pub(super) read: Option<Duration>,
    pub(super) write: Option<Duration>,
    pub(super) idle: Option<Duration>,
    pub(super) head: Option<Duration>,
}

impl Drop for FcgiConnection {
    fn drop(&mut self) {
        heap::recycle(Spare::Read, std::mem::take(&mut self.input), READ_CHUNK);
        heap::recycle(Spare::Output, self.proto.take_output_buffer(), OUTPUT_CAPACITY);
        self.stats.connection_closed();
    }
}

impl FcgiConnection {
    pub(crate) fn new(socket: Socket, ctx: &Context, number: u64) -> Self {
        Self {
            socket,
            proto: Connection::with_output_buffer(ctx.config.connection, heap::buffer(Spare::Output, OUTPUT_CAPACITY)),
            input: heap::buffer(Spare::Read, READ_CHUNK),
            stats: ctx.stats.clone(),
            timeouts: Timeouts {
                read: ctx.config.read_timeout,
                write: ctx.config.write_timeout,
                idle: ctx.config.idle_timeout,
                head: ctx.config.head_timeout,
            },
            fresh: true,
            head_since: Some(Instant::now()),
            drain_by: None,
            number,
        }
    }

    /// A connection over the connection limit: it gets OVERLOADED for its request, then closes.
    pub(crate) fn overloaded(socket: Socket, ctx: &Context, number: u64) -> Self {
        let mut conn = Self::new(socket, ctx, number);
        conn.proto = Connection::overloaded(ctx.config.connection);
        conn
    }

    pub(crate) fn socket(&self) -> &Socket {
        &self.socket
    }

    /// Whether a request is on its way to a connection parked at `since`: it is new (a web
    /// server opens one to send a request at once, so a second of silence means it will not),
    /// or something arrived that is not read yet.
    pub(crate) fn expects_request(&self, since: Instant) -> bool {
        self.is_new(since) || self.has_pending_input()
    }

    /// Whether this connection, parked at `since`, has sent nothing yet and may still: a web
    /// server sends its request right after connecting, so a second of silence means it will not.
    pub(crate) fn is_new(&self, since: Instant) -> bool {
        self.fresh && since.elapsed() < FIRST_REQUEST_WAIT
    }

    /// Whether this connection, parked at `parked_since`, has waited too long: its request
    /// head is not whole within the head timeout (counted from the accept for a new
    /// connection, so a silent one does not hold a slot for the idle timeout), or it sat idle
    /// between requests past the idle timeout. Over the connection limit: a second of silence.
    pub(crate) fn has_expired(&self, parked_since: Instant) -> bool {
        if self.proto.is_overloaded() {
            return !self.is_new(parked_since);
        }
        let idle = |since: Instant| self.timeouts.idle.is_some_and(|t| since.elapsed() >= t);
        let expired = match self.head_since {
            // Silent since the accept: idle as much as mid-head, whichever limit is shorter.
            Some(start) if self.fresh => idle(start) || self.timeouts.head.is_some_and(|t| start.elapsed() >= t),
            Some(start) => self.timeouts.head.is_some_and(|t| start.elapsed() >= t),
            None => idle(parked_since),
        };
        if expired && self.head_since.is_some() {
            log_rate_limited(&HEAD_TIMEOUT_LOGGED, || {
                format!("closed a connection whose request head did not come within {:?}", self.timeouts.head)
            });
        }
        expired
    }

    /// Gives a connection taken at a stop until `by` to send the request it was about to.
    pub(crate) fn drain_by(&mut self, by: Instant) {
        self.drain_by = Some(by);
    }

    /// Whether the web server has sent something not yet read (without reading it).
    fn has_pending_input(&self) -> bool {
        if self.has_buffered_input() {
            return true;
        }
        let mut byte = 0u8;
        // SAFETY: recv(2) writes at most one byte into `byte`; MSG_PEEK leaves it queued.
        let n = unsafe {
            libc::recv(self.socket.as_raw_fd(), (&mut byte as *mut u8).cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT)
        };
        n > 0
    }

    /// Reads up to the next request; answers what needs no application on the way (management
    /// records, refusals).
    pub(crate) fn open(mut self, pool: &Arc<Pool>) -> Opened {
        let ctx = pool.context();
        let next = if self.proto.is_overloaded() {
            self.refuse_overloaded()
        } else if ctx.config.connection.max_requests_per_conn > 1 {
            multiplexed::spawn_reader(pool, self);
            return Opened::Done;
        } else {
            self.next_request(ctx)
        };
        match next {
            Ok(Next::Request { id, role, params }) => {
                let origin = ctx.origin(id, self.number);
                let exchange = InlineExchange::new(self, pool, id);
                Opened::Request(Request::new(ctx.info, role, params, Box::new(exchange), origin))
            }
            Ok(Next::Park) => Opened::Park(self),
            Ok(Next::Close) => Opened::Done,
            Err(e) => {
                log_closed(&e);
                Opened::Done
            }
        }
    }

    /// Whether input has been read that no request has taken yet.
    pub(crate) fn has_buffered_input(&self) -> bool {
        !self.input.is_empty()
    }

    /// Feeds the state machine what has arrived until a request's head is whole. Never waits
    /// for the web server (except for a moment for a new connection's first bytes, and during
    /// a stop): a head still on its way parks the connection in the poller, so a web server
    /// that stalls mid-head holds no thread, only its slot until the head timeout.
    fn next_request(&mut self, ctx: &Context) -> io::Result<Next> {
        loop {
            let event = self.proto.poll_event(&mut self.input).map_err(Error::protocol)?;
            self.fresh &= event.is_none();
            match event {
                Some(Event::Params { id, role, params, .. }) => {
                    self.head_since = None;
                    return Ok(Next::Request { id, role, params });
                }
                Some(Event::ParamsRefused { id, error }) => {
                    self.head_since = None;
                    if !self.refuse_request(ctx, id, error)? {
                        return Ok(Next::Close);
                    }
                }
                Some(Event::Abort { id }) => {
                    if !self.proto.end_request(id, 0) {
                        self.flush()?;
                        return Ok(Next::Close);
                    }
                }
                // Body records before the params end are refused by the state machine.
                Some(_) => {}
                None => {
                    self.flush()?;
                    if ctx.is_stopping() {
                        // A web server that connected, or began a request, before the stop
                        // expects an answer: its bytes may still come, until the drain's end.
                        let by = *self.drain_by.get_or_insert_with(|| Instant::now() + FIRST_REQUEST_WAIT);
                        let left = by.saturating_duration_since(Instant::now());
                        match recv(&self.socket, &mut self.input, Wait::For(Some(left))) {
                            Ok(n) if n > 0 => continue,
                            _ => return Ok(Next::Close),
                        }
                    }
                    match recv(&self.socket, &mut self.input, Wait::No) {
                        Ok(0) => return Ok(Next::Close),
                        Ok(_) => {
                            self.head_since.get_or_insert_with(Instant::now);
                        }
                        // A web server writes its request right after connecting: a new
                        // connection is worth a moment's wait before the round trip through
                        // the epoll set.
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock && self.fresh => {
                            if !self.wait_first_bytes(ctx) {
                                return Ok(Next::Park);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            if self.proto.active_requests() == 0 && self.input.is_empty() {
                                self.head_since = None;
                            } else {
                                self.head_since.get_or_insert_with(Instant::now);
                            }
                            return Ok(Next::Park);
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }

    /// Ends request `id` on the wire; returns whether the connection stays open.
    pub(super) fn end_request(
        &mut self,
        id: u16,
        app_status: u32,
        stderr_used: bool,
        stdin_ended: bool,
        broken: Option<io::ErrorKind>,
    ) -> io::Result<bool> {
        if let Some(kind) = broken {
            return Err(io::Error::new(kind, "the web server went away during the response"));
        }
        // Closing with request body still on its way fails the web server's writes (EPIPE, or a
        // TCP reset that can destroy the response in flight): such a close lingers. Often the
        // body's end is already here, unread (a handler that ignored an empty body).
        let unread_body = !stdin_ended && !self.body_end_buffered(id)?;
        let keep_conn = self.proto.finish_request(id, app_status, stderr_used);
        self.flush()?;
        if !keep_conn && unread_body {
            self.linger(LINGER);
        }
        Ok(keep_conn)
    }

    /// Whether a request's end would be sent without waiting: what is left to send is at most
    /// [`END_NOW_MAX`] and the socket is writable, so it takes it whole (a writable Unix socket
    /// has three quarters of its buffer free, a TCP one well above 16 KiB).
    pub(super) fn can_send_end_now(&self) -> bool {
        self.proto.pending_output() <= END_NOW_MAX && wait_ready(&self.socket, libc::POLLOUT, Some(Duration::ZERO))
    }

    /// Whether the end of request `id`'s body has already arrived, unread (a handler that did
    /// not read its body, often an empty one): looks through what is buffered, without waiting.
    pub(super) fn body_end_buffered(&mut self, id: u16) -> io::Result<bool> {
        loop {
            match self.proto.poll_event(&mut self.input).map_err(Error::protocol)? {
                Some(Event::StdinEnd { id: ended }) if ended == id => return Ok(true),
                Some(_) => {}
                None => return Ok(false),
            }
        }
    }

    /// Answers a request whose params were refused with an error page.
    fn refuse_request(&mut self, ctx: &Context, id: u16, error: ParamsError) -> io::Result<bool> {
        ctx.refused(id, self.number, &error);
        let keep_conn = self.proto.refuse_params(id, &error);
        self.flush()?;
        Ok(keep_conn)
    }

    /// Answers OVERLOADED to the request of a connection over the limit, once it has come; until
    /// then the connection waits in the poller (for a short while: see `Pool::park`), so that a
    /// flood of silent ones costs a thread nothing.
    fn refuse_overloaded(&mut self) -> io::Result<Next> {
        loop {
            self.proto.poll_event(&mut self.input).map_err(Error::protocol)?;
            self.flush()?;
            if self.proto.has_refused_overloaded() {
                // The rest of the request may still be on its way: take it, so the close is no
                // reset.
                self.linger(OVERLOADED_WAIT);
                return Ok(Next::Close);
            }
            match recv(&self.socket, &mut self.input, Wait::No) {
                Ok(0) => return Ok(Next::Close),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Next::Park),
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether this connection is over the connection limit (its request gets OVERLOADED).
    pub(crate) fn is_overloaded(&self) -> bool {
        self.proto.is_overloaded()
    }

    /// Waits a moment for a new connection's first bytes, unless new connections stayed silent
    /// lately; says whether they came.
    fn wait_first_bytes(&self, ctx: &Context) -> bool {
        if ctx.silence.heard_within(SILENCE_MEMORY) {
            return false;
        }
        let came = wait_ready(&self.socket, libc::POLLIN, Some(FIRST_BYTES_WAIT));
        if !came {
            ctx.silence.note();
        }
        came
    }

    pub(super) fn flush(&mut self) -> io::Result<()> {
        let Self { socket, proto, timeouts, .. } = self;
        proto.flush(|slices| write_all_vectored(socket, slices, timeouts.write))
    }

    /// Half-closes and reads until the web server closes too (or `bound` passes), so unread
    /// request body in our receive buffer does not turn our close into a reset that could
    /// destroy the response in flight.
    pub(super) fn linger(&mut self, bound: Duration) {
        let _ = self.socket.shutdown(Shutdown::Write);
        let start = Instant::now();
        while let Some(left) = bound.checked_sub(start.elapsed()) {
            self.input.clear();
            match recv(&self.socket, &mut self.input, Wait::For(Some(left))) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

/// When the head-timeout line was last logged (a flood of silent connections must not flood
/// the log).
static HEAD_TIMEOUT_LOGGED: AtomicU64 = AtomicU64::new(0);

/// Logs the line `message` makes unless `last` says one was logged this second.
pub(crate) fn log_rate_limited(last: &AtomicU64, message: impl FnOnce() -> String) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if last.swap(now, Ordering::Relaxed) != now {
        log::warn!("{}", message());
    }
}

/// Logs why a connection closed, unless the web server simply left.
pub(super) fn log_closed(e: &io::Error) {
    if !is_disconnect(e) {
        log::warn!("connection closed: {e}");
    }
}
