//! Serving one FastCGI connection: bytes from the socket into the protocol state machine,
//! events to the handler, its output framed back onto the socket.
//!
//! Without multiplexing (what every mainstream web server does) the request owns its
//! connection while it runs, on the thread that took it from the pool, and pulls its body
//! straight from the socket, so input is read only as fast as the handler consumes it. When
//! the request ends, the connection goes back to the pool: a kept connection with nothing to
//! read waits in the poller instead of pinning a thread. With multiplexing, a thread of the
//! connection's own reads it and offers each request to the pool, fed through a bounded
//! channel, all writers sharing the socket under a lock.

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::listener::Socket;
use super::pool::Pool;
use super::request::{is_disconnect, Exchange, Input, Output, Request};
use super::server::{Context, Stats};
use crate::protocol::response::{COALESCE_MAX, FLUSH_AT};
use crate::protocol::{
    Connection, Event, Params, ParamsError, ProtocolError, ProtocolStatus, RecordType, ResponseEncoder, Role,
};

/// Bytes asked of the kernel per read: one full record and then some.
const READ_CHUNK: usize = 64 << 10;
/// Input of one stream held while the handler reads the other (a Filter reading DATA first).
const MAX_QUEUED_INPUT: usize = 1 << 20;
/// Chunks in flight to one multiplexed request before the connection's reader waits for it.
const MPX_CHANNEL_CHUNKS: usize = 8;
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
const LINGER: Duration = Duration::from_secs(2);

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
    Request { id: u16, params: Params },
    Park,
    Close,
}

/// One accepted connection and its protocol state.
pub(crate) struct FcgiConnection {
    socket: Socket,
    proto: Connection,
    input: BytesMut,
    encoder: ResponseEncoder,
    stats: Arc<Stats>,
    timeouts: Timeouts,
    /// No record has arrived yet.
    fresh: bool,
    /// The role of the request under way (from its BEGIN_REQUEST).
    role: Role,
}

/// How long a read or a write may wait for the web server (the socket is non-blocking: the
/// wait is a poll(2) bounded by these).
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    read: Option<Duration>,
    write: Option<Duration>,
}

impl Drop for FcgiConnection {
    fn drop(&mut self) {
        self.stats.connection_closed();
    }
}

impl FcgiConnection {
    pub(crate) fn new(socket: Socket, ctx: &Context) -> Self {
        Self {
            socket,
            proto: Connection::new(ctx.config.connection),
            input: BytesMut::with_capacity(READ_CHUNK),
            encoder: ResponseEncoder::new(),
            stats: ctx.stats.clone(),
            timeouts: Timeouts { read: ctx.config.read_timeout, write: ctx.config.write_timeout },
            fresh: true,
            role: Role::Responder,
        }
    }

    /// A connection over the connection limit: it gets OVERLOADED for its request, then closes.
    pub(crate) fn overloaded(socket: Socket, ctx: &Context) -> Self {
        let mut conn = Self::new(socket, ctx);
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
            self.spawn_multiplexed(pool);
            return Opened::Done;
        } else {
            self.next_request(ctx)
        };
        match next {
            Ok(Next::Request { id, params }) => {
                let role = self.role;
                let exchange = InlineExchange {
                    conn: Some(self),
                    pool: pool.clone(),
                    id,
                    inputs: Inputs::default(),
                    aborted: false,
                    broken: None,
                };
                Opened::Request(Request::new(ctx.info, role, params, Box::new(exchange)))
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

    fn next_request(&mut self, ctx: &Context) -> io::Result<Next> {
        loop {
            let event = self.proto.poll_event(&mut self.input).map_err(protocol_error)?;
            self.take_replies();
            self.fresh &= event.is_none();
            match event {
                Some(Event::Begin { role, .. }) => self.role = role,
                Some(Event::Params { id, params }) => return Ok(Next::Request { id, params }),
                Some(Event::ParamsRefused { id, error }) => {
                    if !self.refuse_request(id, error)? {
                        return Ok(Next::Close);
                    }
                }
                Some(Event::Abort { id }) => {
                    if !self.proto.end_request(id, 0, ProtocolStatus::RequestComplete, self.encoder.buffer()) {
                        self.flush()?;
                        return Ok(Next::Close);
                    }
                }
                // Body records before the params end are refused by the state machine.
                Some(_) => {}
                None => {
                    self.flush()?;
                    if self.proto.active_requests() == 0 {
                        if ctx.is_stopping() {
                            // Accepted during the stop: a web server connected to send a request.
                            if std::mem::take(&mut self.fresh) {
                                let wait = Wait::For(Some(FIRST_REQUEST_WAIT));
                                if matches!(recv(&self.socket, &mut self.input, wait), Ok(n) if n > 0) {
                                    continue;
                                }
                            }
                            return Ok(Next::Close);
                        }
                        match recv(&self.socket, &mut self.input, Wait::No) {
                            Ok(0) => return Ok(Next::Close),
                            Ok(_) => {}
                            // A web server writes its request right after connecting: a new
                            // connection is worth a moment's wait before the round trip through
                            // the epoll set.
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock && self.fresh => {
                                if !self.wait_first_bytes(ctx) {
                                    return Ok(Next::Park);
                                }
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Next::Park),
                            Err(e) => return Err(e),
                        }
                    } else if recv(&self.socket, &mut self.input, Wait::For(self.timeouts.read))? == 0 {
                        return Ok(Next::Close);
                    }
                }
            }
        }
    }

    /// Ends request `id` on the wire; returns whether the connection stays open.
    fn end_request(
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
        if stderr_used {
            self.encoder.end_stream(RecordType::Stderr, id);
        }
        self.encoder.end_stream(RecordType::Stdout, id);
        let keep_conn = self.proto.end_request(id, app_status, ProtocolStatus::RequestComplete, self.encoder.buffer());
        self.flush()?;
        if !keep_conn && unread_body {
            self.linger(LINGER);
        }
        Ok(keep_conn)
    }

    /// Whether the end of request `id`'s body has already arrived, unread (a handler that did
    /// not read its body, often an empty one): looks through what is buffered, without waiting.
    fn body_end_buffered(&mut self, id: u16) -> io::Result<bool> {
        loop {
            match self.proto.poll_event(&mut self.input).map_err(protocol_error)? {
                Some(Event::StdinEnd { id: ended }) if ended == id => return Ok(true),
                Some(_) => {}
                None => return Ok(false),
            }
        }
    }

    /// Answers a request whose params were refused with an error page.
    fn refuse_request(&mut self, id: u16, error: ParamsError) -> io::Result<bool> {
        eprintln!("fcgi: request {id} refused: {error}");
        let status = match error {
            ParamsError::Truncated => "400 Bad Request",
            _ => "431 Request Header Fields Too Large",
        };
        let page = format!("Status: {status}\r\nContent-Type: text/plain\r\n\r\n{status}: {error}\n");
        let encoder = &mut self.encoder;
        crate::protocol::record::encode_stream(RecordType::Stdout, id, page.as_bytes(), encoder.buffer());
        encoder.end_stream(RecordType::Stdout, id);
        let keep_conn = self.proto.end_request(id, 1, ProtocolStatus::RequestComplete, encoder.buffer());
        self.flush()?;
        Ok(keep_conn)
    }

    /// Answers OVERLOADED to the request of a connection over the limit, once it has come; until
    /// then the connection waits in the poller (for a short while: see `Pool::park`), so that a
    /// flood of silent ones costs a thread nothing.
    fn refuse_overloaded(&mut self) -> io::Result<Next> {
        loop {
            self.proto.poll_event(&mut self.input).map_err(protocol_error)?;
            self.take_replies();
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

    /// Moves the state machine's replies (GET_VALUES_RESULT, refusals) to the send buffer.
    fn take_replies(&mut self) {
        move_replies(&mut self.proto, &mut self.encoder);
    }

    fn flush(&mut self) -> io::Result<()> {
        let Self { socket, encoder, timeouts, .. } = self;
        encoder.flush(|slices| write_all_vectored(socket, slices, timeouts.write))
    }

    /// Half-closes and reads until the web server closes too (or `bound` passes), so unread
    /// request body in our receive buffer does not turn our close into a reset that could
    /// destroy the response in flight.
    fn linger(&mut self, bound: Duration) {
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

    /// Reads this multiplexed connection on a thread of its own, which offers each request to
    /// the pool as its params complete.
    fn spawn_multiplexed(self, pool: &Arc<Pool>) {
        pool.reader_started();
        let reader_pool = pool.clone();
        let spawned = std::thread::Builder::new().name("fcgi-mpx-reader".into()).spawn(move || {
            if let Err(e) = self.read_multiplexed(&reader_pool) {
                log_closed(&e);
            }
            reader_pool.reader_ended();
        });
        if let Err(e) = spawned {
            eprintln!("fcgi: cannot start a multiplexed connection's reader: {e}");
            pool.reader_ended();
        }
    }

    fn read_multiplexed(mut self, pool: &Arc<Pool>) -> io::Result<()> {
        let ctx = pool.context();
        let shared = Arc::new(Mutex::new(MpxShared {
            socket: self.socket.try_clone()?,
            proto: std::mem::replace(&mut self.proto, Connection::new(ctx.config.connection)),
            encoder: std::mem::take(&mut self.encoder),
            write_timeout: self.timeouts.write,
            closing: false,
        }));
        let mut requests: HashMap<u16, (SyncSender<Event>, Arc<AtomicBool>)> = HashMap::new();
        let mut roles: HashMap<u16, Role> = HashMap::new();
        let outcome = loop {
            let event = {
                let mut guard = lock(&shared);
                if guard.closing {
                    break Ok(());
                }
                let event = guard.proto.poll_event(&mut self.input);
                guard.take_replies();
                if let Err(e) = guard.flush() {
                    break Err(e);
                }
                event
            };
            match event.map_err(protocol_error) {
                Err(e) => break Err(e),
                Ok(Some(Event::Begin { id, role, .. })) => {
                    roles.insert(id, role);
                }
                Ok(Some(Event::Params { id, params })) => {
                    let (sender, receiver) = sync_channel(MPX_CHANNEL_CHUNKS);
                    let aborted = Arc::new(AtomicBool::new(false));
                    requests.insert(id, (sender, aborted.clone()));
                    let role = roles.remove(&id).unwrap_or(Role::Responder);
                    let exchange = MpxExchange {
                        shared: shared.clone(),
                        pool: pool.clone(),
                        id,
                        receiver,
                        aborted,
                        inputs: Inputs::default(),
                    };
                    pool.offer(Request::new(ctx.info, role, params, Box::new(exchange)));
                }
                Ok(Some(Event::ParamsRefused { id, error })) => {
                    eprintln!("fcgi: request {id} refused: {error}");
                    let mut guard = lock(&shared);
                    let MpxShared { proto, encoder, .. } = &mut *guard;
                    proto.end_request(id, 1, ProtocolStatus::RequestComplete, encoder.buffer());
                }
                Ok(Some(event)) => {
                    let id = event_id(&event);
                    match requests.get(&id) {
                        Some((sender, aborted)) => {
                            if matches!(event, Event::Abort { .. }) {
                                aborted.store(true, Ordering::Release);
                            }
                            // The request has ended once its receiver is gone.
                            if sender.send(event).is_err() {
                                requests.remove(&id);
                            }
                        }
                        None if matches!(event, Event::Abort { .. }) => {
                            let mut guard = lock(&shared);
                            let MpxShared { proto, encoder, .. } = &mut *guard;
                            proto.end_request(id, 0, ProtocolStatus::RequestComplete, encoder.buffer());
                        }
                        None => {}
                    }
                }
                Ok(None) => match recv(&self.socket, &mut self.input, Wait::For(self.timeouts.read)) {
                    Ok(0) => break Ok(()),
                    Ok(_) => {}
                    Err(e) => break Err(e),
                },
            }
        };
        // The web server is gone or the connection is closing: unblock every request.
        for (_, (_, aborted)) in requests.drain() {
            aborted.store(true, Ordering::Release);
        }
        let _ = self.socket.shutdown(Shutdown::Both);
        outcome
    }
}

/// The view of a request that runs in series on its connection, which it holds until it ends.
struct InlineExchange {
    /// Taken back at the end.
    conn: Option<FcgiConnection>,
    pool: Arc<Pool>,
    id: u16,
    inputs: Inputs,
    aborted: bool,
    /// Set once a write failed: the connection is finished.
    broken: Option<io::ErrorKind>,
}

impl InlineExchange {
    fn conn(&mut self) -> &mut FcgiConnection {
        // `end` takes the connection and is the last call (`Request` makes sure).
        self.conn.as_mut().expect("a request used after its end")
    }

    /// Takes the next event, reading the socket (blocking) when none is buffered.
    fn next_event(&mut self, wait: Wait) -> io::Result<Option<Event>> {
        loop {
            let conn = self.conn();
            let event = conn.proto.poll_event(&mut conn.input).map_err(protocol_error)?;
            conn.take_replies();
            if let Some(event) = event {
                if matches!(event, Event::Abort { id } if id == self.id) {
                    self.aborted = true;
                }
                return Ok(Some(event));
            }
            if !self.conn().encoder.is_empty() && wait != Wait::No {
                self.flush()?;
            }
            let conn = self.conn();
            match recv(&conn.socket, &mut conn.input, wait) {
                Ok(0) => {
                    self.aborted = true;
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the web server closed the connection"));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && wait == Wait::No => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }
}

impl Exchange for InlineExchange {
    fn read(&mut self, input: Input) -> io::Result<Option<Bytes>> {
        loop {
            if let Some(answer) = self.inputs.take(input) {
                return Ok(answer);
            }
            if self.aborted {
                return Err(aborted_error());
            }
            let read_timeout = self.conn().timeouts.read;
            if let Some(event) = self.next_event(Wait::For(read_timeout))? {
                if let Some(answer) = self.inputs.offer(self.id, event, input)? {
                    return Ok(answer);
                }
            }
        }
    }

    fn write(&mut self, output: Output, data: &[u8]) -> io::Result<()> {
        if let Some(kind) = self.broken {
            return Err(kind.into());
        }
        // A handler that only writes learns of an ABORT_REQUEST here: before a write that will
        // reach the socket anyway, look at what arrived, without waiting.
        let will_send = data.len() > COALESCE_MAX || self.conn().encoder.buffer().len() + data.len() >= FLUSH_AT;
        if self.aborted || (will_send && self.is_aborted()) {
            return Err(aborted_error());
        }
        let id = self.id;
        let FcgiConnection { socket, encoder, timeouts, .. } = self.conn();
        let result =
            encoder.write(record_type(output), id, data, |slices| write_all_vectored(socket, slices, timeouts.write));
        if let Err(e) = &result {
            self.broken = Some(e.kind());
        }
        result
    }

    fn try_buffer(&mut self, output: Output, data: &[u8]) -> io::Result<bool> {
        if let Some(kind) = self.broken {
            return Err(kind.into());
        }
        if self.aborted {
            return Err(aborted_error());
        }
        let id = self.id;
        Ok(self.conn().encoder.try_buffer(record_type(output), id, data))
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(kind) = self.broken {
            return Err(kind.into());
        }
        let result = self.conn().flush();
        if let Err(e) = &result {
            self.broken = Some(e.kind());
        }
        result
    }

    fn is_aborted(&mut self) -> bool {
        // Look at what has arrived without waiting, keeping body chunks for later reads.
        while !self.aborted && self.inputs.queued_bytes < MAX_QUEUED_INPUT {
            match self.next_event(Wait::No) {
                Ok(Some(event)) => {
                    let _ = self.inputs.offer(self.id, event, None);
                }
                Ok(None) => break,
                Err(_) => self.aborted = true,
            }
        }
        self.aborted
    }

    fn end(&mut self, app_status: u32, stderr_used: bool) {
        let Some(mut conn) = self.conn.take() else { return };
        let ctx = self.pool.context();
        ctx.note_request();
        let stdin_ended = self.inputs.ended[Input::Stdin as usize];
        match conn.end_request(self.id, app_status, stderr_used, stdin_ended, self.broken) {
            Ok(true) if !ctx.is_stopping() => self.pool.resume(conn),
            Ok(_) => {}
            Err(e) => log_closed(&e),
        }
    }
}

/// Body chunks that arrived for the stream the handler was not reading, and which streams ended.
#[derive(Default)]
struct Inputs {
    queued: [VecDeque<Bytes>; 2],
    queued_bytes: usize,
    ended: [bool; 2],
}

impl Inputs {
    /// A queued answer for `input`: `Some(Some(chunk))`, `Some(None)` at its end, `None` if
    /// nothing is known yet.
    fn take(&mut self, input: Input) -> Option<Option<Bytes>> {
        if let Some(chunk) = self.queued[input as usize].pop_front() {
            self.queued_bytes -= chunk.len();
            return Some(Some(chunk));
        }
        self.ended[input as usize].then_some(None)
    }

    /// Takes an event of request `id`: the answer if it is for `wanted`, else queued.
    fn offer(&mut self, id: u16, event: Event, wanted: impl Into<Option<Input>>) -> io::Result<Option<Option<Bytes>>> {
        let (input, chunk) = match event {
            Event::Stdin { id: i, data } if i == id => (Input::Stdin, Some(data)),
            Event::StdinEnd { id: i } if i == id => (Input::Stdin, None),
            Event::Data { id: i, data } if i == id => (Input::Data, Some(data)),
            Event::DataEnd { id: i } if i == id => (Input::Data, None),
            Event::Abort { id: i } if i == id => return Err(aborted_error()),
            _ => return Ok(None),
        };
        if wanted.into() == Some(input) {
            if chunk.is_none() {
                self.ended[input as usize] = true;
            }
            return Ok(Some(chunk));
        }
        match chunk {
            Some(data) => {
                self.queued_bytes += data.len();
                if self.queued_bytes > MAX_QUEUED_INPUT {
                    return Err(io::Error::other("over 1 MiB of one input stream arrived while reading the other"));
                }
                self.queued[input as usize].push_back(data);
            }
            None => self.ended[input as usize] = true,
        }
        Ok(None)
    }
}

/// What the requests of a multiplexed connection share.
struct MpxShared {
    socket: Socket,
    proto: Connection,
    encoder: ResponseEncoder,
    write_timeout: Option<Duration>,
    closing: bool,
}

impl MpxShared {
    fn take_replies(&mut self) {
        move_replies(&mut self.proto, &mut self.encoder);
    }

    fn flush(&mut self) -> io::Result<()> {
        let Self { socket, encoder, write_timeout, .. } = self;
        encoder.flush(|slices| write_all_vectored(socket, slices, *write_timeout))
    }
}

/// Moves the replies the state machine owes (GET_VALUES_RESULT, refusals) behind what the
/// encoder already holds, without copying them.
fn move_replies(proto: &mut Connection, encoder: &mut ResponseEncoder) {
    let replies = proto.output();
    if !replies.is_empty() {
        encoder.buffer().unsplit(replies.split());
    }
}

fn lock(shared: &Mutex<MpxShared>) -> MutexGuard<'_, MpxShared> {
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A multiplexed request's view: input through its channel, output through the shared socket.
struct MpxExchange {
    shared: Arc<Mutex<MpxShared>>,
    pool: Arc<Pool>,
    id: u16,
    receiver: Receiver<Event>,
    aborted: Arc<AtomicBool>,
    inputs: Inputs,
}

impl Exchange for MpxExchange {
    fn read(&mut self, input: Input) -> io::Result<Option<Bytes>> {
        loop {
            if let Some(answer) = self.inputs.take(input) {
                return Ok(answer);
            }
            if self.aborted.load(Ordering::Acquire) {
                return Err(aborted_error());
            }
            let event = self.receiver.recv().map_err(|_| aborted_error())?;
            if let Some(answer) = self.inputs.offer(self.id, event, input)? {
                return Ok(answer);
            }
        }
    }

    fn write(&mut self, output: Output, data: &[u8]) -> io::Result<()> {
        if self.aborted.load(Ordering::Acquire) {
            return Err(aborted_error());
        }
        let mut guard = lock(&self.shared);
        let MpxShared { socket, encoder, write_timeout, .. } = &mut *guard;
        encoder.write(record_type(output), self.id, data, |slices| write_all_vectored(socket, slices, *write_timeout))
    }

    fn try_buffer(&mut self, output: Output, data: &[u8]) -> io::Result<bool> {
        if self.aborted.load(Ordering::Acquire) {
            return Err(aborted_error());
        }
        // Never waits: a caller that must not block (holding Python's GIL) may be here while
        // another request's write holds the connection, stalled on a web server that does not
        // read. Busy is a "no", and the caller writes the waiting way, without its own lock.
        let mut guard = match self.shared.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Ok(false),
        };
        Ok(guard.encoder.try_buffer(record_type(output), self.id, data))
    }

    fn flush(&mut self) -> io::Result<()> {
        lock(&self.shared).flush()
    }

    fn is_aborted(&mut self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }

    fn end(&mut self, app_status: u32, stderr_used: bool) {
        self.pool.context().note_request();
        let id = self.id;
        let mut guard = lock(&self.shared);
        let MpxShared { proto, encoder, .. } = &mut *guard;
        if stderr_used {
            encoder.end_stream(RecordType::Stderr, id);
        }
        encoder.end_stream(RecordType::Stdout, id);
        let keep_conn = proto.end_request(id, app_status, ProtocolStatus::RequestComplete, encoder.buffer());
        let flushed = guard.flush();
        if flushed.is_err() || (!keep_conn && guard.proto.active_requests() == 0) {
            guard.closing = true;
            // Wakes the reader, which waits for input.
            let _ = guard.socket.shutdown(Shutdown::Read);
        }
    }
}

fn record_type(output: Output) -> RecordType {
    match output {
        Output::Stdout => RecordType::Stdout,
        Output::Stderr => RecordType::Stderr,
    }
}

fn event_id(event: &Event) -> u16 {
    match *event {
        Event::Begin { id, .. }
        | Event::Params { id, .. }
        | Event::ParamsRefused { id, .. }
        | Event::Stdin { id, .. }
        | Event::StdinEnd { id }
        | Event::Data { id, .. }
        | Event::DataEnd { id }
        | Event::Abort { id } => id,
    }
}

/// Logs why a connection closed, unless the web server simply left.
fn log_closed(e: &io::Error) {
    if !is_disconnect(e) {
        eprintln!("fcgi: connection closed: {e}");
    }
}

fn aborted_error() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "the web server aborted the request")
}

fn protocol_error(e: ProtocolError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Writes every slice, resuming after short writes and waiting (up to `timeout` each time)
/// while the web server's receive buffer is full.
fn write_all_vectored(socket: &mut Socket, slices: &[IoSlice<'_>], timeout: Option<Duration>) -> io::Result<()> {
    let mut owned: Vec<IoSlice<'_>> = slices.iter().filter(|s| !s.is_empty()).copied().collect();
    let mut remaining = &mut owned[..];
    while !remaining.is_empty() {
        match socket.write_vectored(remaining) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut remaining, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !wait_ready(socket, libc::POLLOUT, timeout) {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "the web server stopped reading the response"));
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Waits up to `timeout` (for ever if `None`) for `socket` to be ready for `events`; false
/// when the time ran out. Readiness includes errors and hang-ups: the next call reports them.
fn wait_ready(socket: &Socket, events: libc::c_short, timeout: Option<Duration>) -> bool {
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
enum Wait {
    /// Only what has arrived.
    No,
    /// Up to this long (for ever if `None`).
    For(Option<Duration>),
}

/// Reads what the socket has into the spare capacity of `buf`, without zeroing it first.
/// A read that waits longer than its timeout is `TimedOut`.
fn recv(socket: &Socket, buf: &mut BytesMut, wait: Wait) -> io::Result<usize> {
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
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the web server sent nothing within the read timeout",
                    ))
                }
            },
            _ => return Err(e),
        }
    }
}
