//! A request served in series on its connection (what every mainstream web server does): it
//! owns the connection while it runs, pulls its body straight from the socket, so input is read
//! only as fast as the handler consumes it, and gives the connection back to the pool when it
//! ends.

use std::io;
use std::net::Shutdown;
use std::sync::Arc;

use bytes::Bytes;

use super::connection::{log_closed, FcgiConnection, LINGER};
use super::error::{Error, ErrorKind};
use super::inputs::{Inputs, MAX_QUEUED_INPUT};
use super::pool::Pool;
use super::request::{Exchange, Input, Output};
use super::socket_io::{recv, write_all_vectored, Wait};
use super::stats::InFlight;
use crate::protocol::response::{COALESCE_MAX, FLUSH_AT};
use crate::protocol::Event;

/// The view of a request that runs in series on its connection, which it holds until it ends.
pub(super) struct InlineExchange {
    /// Taken back at the end.
    conn: Option<FcgiConnection>,
    pool: Arc<Pool>,
    id: u16,
    inputs: Inputs,
    aborted: bool,
    /// Set once a write failed: the connection is finished.
    broken: Option<io::ErrorKind>,
    _in_flight: InFlight,
}

impl InlineExchange {
    pub(super) fn new(conn: FcgiConnection, pool: &Arc<Pool>, id: u16) -> Self {
        let in_flight = InFlight::new(&pool.context().stats);
        Self {
            conn: Some(conn),
            pool: pool.clone(),
            id,
            inputs: Inputs::default(),
            aborted: false,
            broken: None,
            _in_flight: in_flight,
        }
    }

    fn conn(&mut self) -> &mut FcgiConnection {
        // `end` takes the connection and is the last call (`Request` makes sure).
        self.conn.as_mut().expect("a request used after its end")
    }

    /// The answer to a read of `input`: taken from what arrived earlier, else from the events
    /// that arrive within `wait` (each other stream's chunk held, within MAX_QUEUED_INPUT);
    /// `None` when `wait` ends first.
    fn answer(&mut self, input: Input, wait: Wait) -> io::Result<Option<Option<Bytes>>> {
        loop {
            if let Some(answer) = self.inputs.take(input) {
                return Ok(Some(answer));
            }
            if self.aborted {
                return Err(Error::aborted());
            }
            let Some(event) = self.next_event(wait)? else { return Ok(None) };
            if let Some(answer) = self.inputs.offer(self.id, event, input)? {
                return Ok(Some(answer));
            }
            // Chunks of the other stream can only be held, not left in the socket: bounded.
            if self.inputs.queued_bytes > MAX_QUEUED_INPUT {
                return Err(Error::other_stream_overflow());
            }
        }
    }

    /// Takes the next event, reading the socket (blocking) when none is buffered. Without a
    /// wait it reads the socket at most once: a peer that floods management records cannot keep
    /// the handler's thread here.
    fn next_event(&mut self, wait: Wait) -> io::Result<Option<Event>> {
        let mut read_once = false;
        loop {
            let conn = self.conn();
            let event = conn.proto.poll_event(&mut conn.input).map_err(Error::protocol)?;
            // Replies owed (GET_VALUES_RESULT, UNKNOWN_TYPE) go out before they pile up: a flood
            // of management records during a request costs at most this much memory, or the
            // write timeout.
            let owed = self.conn().proto.pending_output();
            if owed >= FLUSH_AT || (owed > 0 && wait != Wait::No && event.is_none()) {
                self.flush()?;
            }
            if let Some(event) = event {
                if matches!(event, Event::Abort { id } if id == self.id) {
                    self.aborted = true;
                }
                return Ok(Some(event));
            }
            if wait == Wait::No && std::mem::replace(&mut read_once, true) {
                return Ok(None);
            }
            let conn = self.conn();
            match recv(&conn.socket, &mut conn.input, wait) {
                Ok(0) => {
                    self.aborted = true;
                    return Err(Error::io(ErrorKind::Disconnected, "the web server closed the connection"));
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
        let read_timeout = self.conn().timeouts.read;
        loop {
            if let Some(answer) = self.answer(input, Wait::For(read_timeout))? {
                return Ok(answer);
            }
        }
    }

    fn try_read(&mut self, input: Input) -> io::Result<Option<Option<Bytes>>> {
        self.answer(input, Wait::No)
    }

    fn write(&mut self, output: Output, data: &[u8]) -> io::Result<()> {
        if let Some(kind) = self.broken {
            return Err(kind.into());
        }
        // A handler that only writes learns of an ABORT_REQUEST here: before a write that will
        // reach the socket anyway, look at what arrived, without waiting.
        let will_send = data.len() > COALESCE_MAX || self.conn().proto.pending_output() + data.len() >= FLUSH_AT;
        if self.aborted || (will_send && self.is_aborted()) {
            return Err(Error::aborted());
        }
        let id = self.id;
        let FcgiConnection { socket, proto, timeouts, .. } = self.conn();
        let result = proto.write(id, output, data, |slices| write_all_vectored(socket, slices, timeouts.write));
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
            return Err(Error::aborted());
        }
        let id = self.id;
        Ok(self.conn().proto.try_buffer(id, output, data))
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
        // Look at what has arrived without waiting, keeping body chunks for later reads. Once
        // MAX_QUEUED_INPUT is held, stop reading ahead: the rest waits in the socket
        // (back-pressure), and an ABORT behind it is seen when the handler reads.
        while !self.aborted && self.inputs.queued_bytes < MAX_QUEUED_INPUT {
            match self.next_event(Wait::No) {
                Ok(Some(event)) => {
                    if self.inputs.offer(self.id, event, None).is_err() {
                        self.aborted = true;
                    }
                }
                Ok(None) => break,
                Err(_) => self.aborted = true,
            }
        }
        self.aborted
    }

    fn end(&mut self, app_status: u32, stderr_used: bool) -> bool {
        let Some(mut conn) = self.conn.take() else { return false };
        let ctx = self.pool.context();
        ctx.note_request();
        let stdin_ended = self.inputs.ended[Input::Stdin as usize];
        match conn.end_request(self.id, app_status, stderr_used, stdin_ended, self.broken) {
            Ok(true) if !ctx.is_stopping() => self.pool.resume(conn),
            Ok(_) => {}
            Err(e) => {
                log_closed(&e);
                return false;
            }
        }
        true
    }

    fn can_end_now(&mut self) -> bool {
        if self.broken.is_some() {
            return true;
        }
        // A body still on its way would be drained at the end (a linger): wait-free only if
        // its end is here. The look takes the buffered events, so its answer is kept for `end`
        // (a protocol error is left for `end` to find again, and close on). It comes first:
        // the records it passes over may add replies (GET_VALUES) to what is left to send.
        let stdin = Input::Stdin as usize;
        if !self.inputs.ended[stdin] {
            let id = self.id;
            self.inputs.ended[stdin] = self.conn().body_end_buffered(id).unwrap_or(false);
        }
        self.inputs.ended[stdin] && self.conn().can_send_end_now()
    }

    fn abandon(&mut self, _stderr_used: bool) {
        let Some(mut conn) = self.conn.take() else { return };
        self.pool.context().note_request();
        // What the handler wrote goes out; then the connection closes without the stream's end
        // or END_REQUEST, after a header no web server accepts, so it sees the response cut
        // short (see `CUT_SHORT`).
        if self.broken.is_none() {
            conn.proto.cut_short();
            if conn.flush().is_ok() {
                // As at any end: a body still on its way is drained a while, so the web
                // server's writes do not fail (nor a reset destroy what it has to read).
                let stdin_ended = self.inputs.ended[Input::Stdin as usize];
                if !stdin_ended && !conn.body_end_buffered(self.id).unwrap_or(true) {
                    conn.linger(LINGER);
                }
            }
        }
        let _ = conn.socket.shutdown(Shutdown::Both);
    }
}
