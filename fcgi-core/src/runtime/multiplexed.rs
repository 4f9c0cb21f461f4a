//! A multiplexed connection (HAProxy with `mpxs-conns`): a reader thread of the connection's
//! own reads it and offers each request to the pool as its params complete; each request's
//! input waits for its handler in an inbox; all writers share the socket under one lock.
//!
//! FastCGI has no flow control per request, so one request's unread body can only be held or
//! left in the socket, where it blocks every other request behind it. The reader therefore
//! never waits for one request without a deadline: a request taken by a worker may hold up
//! the connection (back-pressure) while its handler reads, at most the read timeout between
//! two reads; a request no worker has taken yet gets [`UNTAKEN_INBOX_BYTES`] held for it, then
//! [`UNTAKEN_WAIT`] for a worker, and is otherwise answered 503 and its input dropped, so the
//! requests that are being served get their bytes.

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::connection::log_closed;
use super::connection::FcgiConnection;
use super::context::Context;
use super::error::{Error, ErrorKind};
use super::inputs::{Inputs, MAX_QUEUED_INPUT};
use super::listener::Socket;
use super::pool::Pool;
use super::request::{Exchange, Input, Output, Request, SERVICE_UNAVAILABLE};
use super::signals;
use super::socket_io::{recv, write_all_vectored, Wait};
use super::stats::InFlight;
use crate::protocol::record::STREAM_CHUNK;
use crate::protocol::response::COALESCE_MAX;
use crate::protocol::{Connection, Event};

/// Input held for a request a worker is serving before the reader waits for its handler.
const TAKEN_INBOX_BYTES: usize = 512 << 10;
/// Input held for a request no worker has taken yet, before the reader waits for a worker.
const UNTAKEN_INBOX_BYTES: usize = 1 << 20;
/// How long the reader waits for a worker to take a request whose inbox is full.
const UNTAKEN_WAIT: Duration = Duration::from_secs(1);
/// How often a reader waiting for input looks whether the server stops.
const STOP_CHECK_EVERY: Duration = Duration::from_millis(100);

/// Reads `conn` on a thread of its own, which offers each request to the pool.
pub(super) fn spawn_reader(pool: &Arc<Pool>, conn: FcgiConnection) {
    pool.reader_started();
    let reader_pool = pool.clone();
    let spawned = std::thread::Builder::new().name("fcgi-mpx-reader".into()).spawn(move || {
        signals::block_on_this_thread();
        match Reader::new(conn, reader_pool.context()) {
            Ok(mut reader) => {
                if let Err(e) = reader.run(&reader_pool) {
                    log_closed(&e);
                }
                reader.close();
            }
            Err(e) => log_closed(&e),
        }
        reader_pool.reader_ended();
    });
    if let Err(e) = spawned {
        log::error!("cannot start a multiplexed connection's reader: {e}");
        pool.reader_ended();
    }
}

/// The reading side of a multiplexed connection.
struct Reader {
    /// Its socket, input and timeouts; its protocol state and output moved to `shared`.
    conn: FcgiConnection,
    shared: Arc<Shared>,
    inboxes: HashMap<u16, Arc<Inbox>>,
}

impl Reader {
    fn new(mut conn: FcgiConnection, ctx: &Context) -> io::Result<Self> {
        let state = State {
            proto: std::mem::replace(
                &mut conn.proto,
                Connection::with_output_buffer(ctx.config.connection, BytesMut::new()),
            ),
            broken: None,
            closing: false,
        };
        let shared = Shared {
            state: Mutex::new(state),
            socket: Mutex::new(conn.socket.try_clone()?),
            shutdown: conn.socket.try_clone()?,
            write_timeout: conn.timeouts.write,
        };
        Ok(Self { conn, shared: Arc::new(shared), inboxes: HashMap::new() })
    }

    fn run(&mut self, pool: &Arc<Pool>) -> io::Result<()> {
        let ctx = pool.context();
        loop {
            let event = {
                let mut state = self.shared.state();
                if state.closing {
                    return Ok(());
                }
                let event = state.proto.poll_event(&mut self.conn.input);
                // Replies of its own (GET_VALUES_RESULT, an aborted request's END_REQUEST), sent
                // now unless a writer is at the socket, which then sends them before it lets go.
                if state.proto.pending_output() > 0 {
                    if let Ok(socket) = self.shared.socket.try_lock() {
                        self.shared.write_out(socket, state, None).1?;
                    }
                }
                event.map_err(Error::protocol)?
            };
            match event {
                Some(Event::Params { id, role, params, .. }) => {
                    let inbox = Arc::new(Inbox::default());
                    self.inboxes.insert(id, inbox.clone());
                    let exchange = MpxExchange {
                        shared: self.shared.clone(),
                        pool: pool.clone(),
                        id,
                        inbox,
                        inputs: Inputs::default(),
                        read_timeout: self.conn.timeouts.read,
                        _in_flight: InFlight::new(&ctx.stats),
                    };
                    let origin = ctx.origin(id, self.conn.number);
                    pool.offer(Request::new(ctx.info, role, params, Box::new(exchange), origin));
                }
                Some(Event::ParamsRefused { id, error }) => {
                    ctx.refused(id, self.conn.number, &error);
                    self.shared.state().proto.refuse_params(id, &error);
                }
                Some(event) => self.deliver(event),
                None => {
                    if !self.wait_for_input(ctx)? {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Reads more input; false when the connection is done: closed by the web server, idle
    /// past the idle timeout, or idle at a stop. Whether it is idle (no request active) is
    /// looked at again at each slice of the wait: a request may end meanwhile.
    fn wait_for_input(&mut self, ctx: &Context) -> io::Result<bool> {
        let start = Instant::now();
        loop {
            match recv(&self.conn.socket, &mut self.conn.input, Wait::For(Some(STOP_CHECK_EVERY))) {
                Ok(0) => return Ok(false),
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    let idle = self.shared.state().proto.active_requests() == 0;
                    if idle && ctx.is_stopping() {
                        return Ok(false);
                    }
                    let timeout = if idle { self.conn.timeouts.idle } else { self.conn.timeouts.read };
                    if timeout.is_some_and(|t| start.elapsed() >= t) {
                        return if idle { Ok(false) } else { Err(e) };
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Hands a body chunk, an end of stream or an ABORT to its request's inbox.
    fn deliver(&mut self, event: Event) {
        let id = event.id();
        let Some(inbox) = self.inboxes.get(&id) else {
            // A request between its BEGIN and its params' end: an ABORT ends it here.
            if matches!(event, Event::Abort { .. }) {
                self.shared.state().proto.end_request(id, 0);
            }
            return;
        };
        match inbox.put(event, self.conn.timeouts.read) {
            Put::Held => {}
            Put::Gone => {
                self.inboxes.remove(&id);
            }
            Put::Unserved => {
                self.inboxes.remove(&id);
                log_unserved(id);
                self.shared.answer_unavailable(id);
            }
        }
    }

    /// The web server is gone or the connection is closing: every request still reading is
    /// told so.
    fn close(&mut self) {
        for (_, inbox) in self.inboxes.drain() {
            inbox.abort();
        }
        let _ = self.conn.socket.shutdown(Shutdown::Both);
    }
}

fn log_unserved(id: u16) {
    log::warn!(
        "multiplexed request {id} answered 503: its body arrived while no worker was free to read it \
         (more workers, or less multiplexing, would serve it)"
    );
}

/// What the requests of a multiplexed connection share: the protocol state, and the socket's
/// writing side.
///
/// One writer at a time holds the socket, across its write; the state is held only to take
/// what is owed, never across a write. So while a request's write waits for a web server that
/// does not read, the reader goes on decoding the other requests and offering them to workers,
/// and small writes go on being buffered.
struct Shared {
    state: Mutex<State>,
    /// The writing side. Taken before `state`, never while holding it (but with `try_lock`).
    socket: Mutex<Socket>,
    /// The same socket, to shut down without waiting for a writer.
    shutdown: Socket,
    write_timeout: Option<Duration>,
}

struct State {
    proto: Connection,
    /// Set once a write failed: a record may have been cut short, so nothing else may follow.
    broken: Option<io::ErrorKind>,
    /// The connection ends once the reader sees this.
    closing: bool,
}

impl State {
    /// Buffers `data` on `output` of request `id` if that needs no write, and says whether it
    /// did; fails after a failed write.
    fn try_buffer(&mut self, id: u16, output: Output, data: &[u8]) -> io::Result<bool> {
        if let Some(kind) = self.broken {
            return Err(kind.into());
        }
        Ok(self.proto.try_buffer(id, output, data))
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The socket, then the state: how a writer starts.
    fn writer(&self) -> (MutexGuard<'_, Socket>, MutexGuard<'_, State>) {
        let socket = lock(&self.socket);
        (socket, self.state())
    }

    /// Sends what is owed, then `piece` (a request's output, at most one record's worth), then
    /// whatever became owed meanwhile, letting go of the state during each write. The socket is
    /// let go while the state is held, so that whoever left bytes owed while it was held (the
    /// reader, which then did not wait for it) sees them sent. After a failure (a timeout may cut
    /// a record in half) every later write fails too and the connection is shut down, so no
    /// other request's bytes can follow a partial record.
    fn write_out<'a>(
        &'a self,
        mut socket: MutexGuard<'a, Socket>,
        mut state: MutexGuard<'a, State>,
        mut piece: Option<(u16, Output, &[u8])>,
    ) -> (MutexGuard<'a, State>, io::Result<()>) {
        loop {
            if let Some(kind) = state.broken {
                let error = io::Error::new(kind, "an earlier write on this multiplexed connection failed");
                return (state, Err(error));
            }
            let result = match piece.take() {
                Some((id, output, data)) => {
                    let (owed, header, padding) = state.proto.take_framed(id, output, data.len());
                    drop(state);
                    let slices =
                        [IoSlice::new(&owed), IoSlice::new(&header), IoSlice::new(data), IoSlice::new(padding)];
                    write_all_vectored(&mut socket, &slices, self.write_timeout)
                }
                None if state.proto.pending_output() > 0 => {
                    let owed = state.proto.take_output();
                    drop(state);
                    write_all_vectored(&mut socket, &[IoSlice::new(&owed)], self.write_timeout)
                }
                None => {
                    drop(socket);
                    return (state, Ok(()));
                }
            };
            state = self.state();
            if let Err(e) = result {
                state.broken = Some(e.kind());
                state.closing = true;
                let _ = self.shutdown.shutdown(Shutdown::Both);
                drop(socket);
                return (state, Err(e));
            }
        }
    }

    /// Sends what is owed.
    fn flush(&self) -> io::Result<()> {
        let (socket, state) = self.writer();
        self.write_out(socket, state, None).1
    }

    /// Answers request `id` with 503 and ends it.
    fn answer_unavailable(&self, id: u16) {
        let (socket, mut state) = self.writer();
        state.proto.answer(id, SERVICE_UNAVAILABLE);
        let _ = self.write_out(socket, state, None);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One request's input, from the reader to its handler.
#[derive(Default)]
struct Inbox {
    state: Mutex<InboxState>,
    /// Signalled when the handler takes input, when the request is taken or ends, and when
    /// input arrives.
    changed: Condvar,
    /// ABORT_REQUEST arrived or the connection is gone (read without the lock by writes).
    aborted: AtomicBool,
}

#[derive(Default)]
struct InboxState {
    events: VecDeque<Event>,
    bytes: usize,
    /// A worker took the request.
    taken: bool,
    /// Ended by its handler, or answered 503 before a worker took it: input is dropped.
    done: bool,
}

/// What became of an event put in an inbox.
enum Put {
    Held,
    /// The request has ended: the event was dropped.
    Gone,
    /// Nobody took the request in time: it is to be answered 503.
    Unserved,
}

impl Inbox {
    /// Holds `event` for the handler, waiting (with a deadline) while the inbox is full.
    fn put(&self, event: Event, read_timeout: Option<Duration>) -> Put {
        let size = event_size(&event);
        let mut state = lock(&self.state);
        if matches!(event, Event::Abort { .. }) {
            self.aborted.store(true, Ordering::Release);
        }
        let start = Instant::now();
        loop {
            if state.done {
                return Put::Gone;
            }
            let bound = if state.taken { TAKEN_INBOX_BYTES } else { UNTAKEN_INBOX_BYTES };
            if state.bytes < bound || size == 0 {
                state.bytes += size;
                state.events.push_back(event);
                self.changed.notify_all();
                return Put::Held;
            }
            let wait = if state.taken { read_timeout } else { Some(UNTAKEN_WAIT) };
            let left = match wait {
                Some(wait) => match wait.checked_sub(start.elapsed()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => None,
                },
                None => Some(Duration::from_secs(3600)),
            };
            let Some(left) = left else {
                if state.taken {
                    // The handler read nothing for the read timeout: it is failed, the others go on.
                    log::warn!("a multiplexed request's handler did not read its input within {read_timeout:?}");
                    state.done = true;
                    state.events.clear();
                    self.aborted.store(true, Ordering::Release);
                    self.changed.notify_all();
                    return Put::Gone;
                }
                state.done = true;
                state.events.clear();
                return Put::Unserved;
            };
            state = self.changed.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Marks the request taken by a worker; false if it was answered before.
    fn take(&self) -> bool {
        let mut state = lock(&self.state);
        state.taken = true;
        self.changed.notify_all();
        !state.done
    }

    /// The next event for the handler, waiting up to `timeout`.
    fn next(&self, timeout: Option<Duration>) -> io::Result<Event> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = lock(&self.state);
        loop {
            if let Some(event) = state.events.pop_front() {
                state.bytes -= event_size(&event);
                self.changed.notify_all();
                return Ok(event);
            }
            if state.done || self.aborted.load(Ordering::Acquire) {
                return Err(Error::aborted());
            }
            let left = match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => {
                        return Err(Error::io(
                            ErrorKind::TimedOut,
                            "the web server sent nothing for this request within the read timeout",
                        ))
                    }
                },
                None => Duration::from_secs(3600),
            };
            state = self.changed.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// The handler is done: what arrives from now on is dropped.
    fn close(&self) {
        let mut state = lock(&self.state);
        state.done = true;
        state.events.clear();
        state.bytes = 0;
        self.changed.notify_all();
    }

    /// The connection is gone.
    fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
        let _state = lock(&self.state);
        self.changed.notify_all();
    }
}

fn event_size(event: &Event) -> usize {
    match event {
        Event::Stdin { data, .. } | Event::Data { data, .. } => data.len(),
        _ => 0,
    }
}

/// A multiplexed request's view: input from its inbox, output through the shared socket.
struct MpxExchange {
    shared: Arc<Shared>,
    pool: Arc<Pool>,
    id: u16,
    inbox: Arc<Inbox>,
    inputs: Inputs,
    read_timeout: Option<Duration>,
    _in_flight: InFlight,
}

impl MpxExchange {
    fn is_aborted_now(&self) -> bool {
        self.inbox.aborted.load(Ordering::Acquire)
    }
}

impl Exchange for MpxExchange {
    fn claim(&mut self) -> bool {
        self.inbox.take()
    }

    fn read(&mut self, input: Input) -> io::Result<Option<Bytes>> {
        loop {
            if let Some(answer) = self.inputs.take(input) {
                return Ok(answer);
            }
            let event = self.inbox.next(self.read_timeout)?;
            if let Some(answer) = self.inputs.offer(self.id, event, input)? {
                return Ok(answer);
            }
            if self.inputs.queued_bytes > MAX_QUEUED_INPUT {
                return Err(Error::other_stream_overflow());
            }
        }
    }

    fn write(&mut self, output: Output, data: &[u8]) -> io::Result<()> {
        if self.is_aborted_now() {
            return Err(Error::aborted());
        }
        if data.len() <= COALESCE_MAX && self.shared.state().try_buffer(self.id, output, data)? {
            return Ok(());
        }
        for piece in data.chunks(STREAM_CHUNK) {
            let (socket, state) = self.shared.writer();
            self.shared.write_out(socket, state, Some((self.id, output, piece))).1?;
        }
        Ok(())
    }

    fn try_buffer(&mut self, output: Output, data: &[u8]) -> io::Result<bool> {
        if self.is_aborted_now() {
            return Err(Error::aborted());
        }
        // Never wait for the lock here: the caller may hold a lock of its own (Python's GIL).
        let Ok(mut state) = self.shared.state.try_lock() else { return Ok(false) };
        state.try_buffer(self.id, output, data)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.shared.flush()
    }

    fn is_aborted(&mut self) -> bool {
        self.is_aborted_now()
    }

    fn end(&mut self, app_status: u32, stderr_used: bool) -> bool {
        self.inbox.close();
        self.pool.context().note_request();
        let (socket, mut state) = self.shared.writer();
        let keep_conn = state.proto.finish_request(self.id, app_status, stderr_used);
        let (mut state, flushed) = self.shared.write_out(socket, state, None);
        if flushed.is_err() || (!keep_conn && state.proto.active_requests() == 0) {
            state.closing = true;
            // Wakes the reader, which waits for input.
            let _ = self.shared.shutdown.shutdown(Shutdown::Read);
        }
        flushed.is_ok()
    }

    fn abandon(&mut self, _stderr_used: bool) {
        // The response was cut short after its first bytes: the web server must not take it
        // for whole, and a multiplexed connection has no way to say so for one request but to
        // close. The other requests on it see the connection go.
        self.inbox.close();
        self.pool.context().note_request();
        let (socket, mut state) = self.shared.writer();
        state.proto.cut_short();
        let (mut state, _) = self.shared.write_out(socket, state, None);
        state.broken = Some(io::ErrorKind::ConnectionAborted);
        state.closing = true;
        let _ = self.shared.shutdown.shutdown(Shutdown::Both);
    }
}
