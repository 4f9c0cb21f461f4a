//! The one interface every application plugs into: a [`Handler`] gets a [`Request`] with the
//! params, readers for STDIN and DATA, writers for STDOUT and STDERR, the app status and the
//! abort flag, whether it came over FastCGI or CGI.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes};

use super::access_log::{AccessLog, AccessRecord};
use super::context::Context;
use super::error::{Error, ErrorKind};
use super::scoreboard::Seat;
use super::stats::Stats;
pub use crate::protocol::{Input, Output};
use crate::protocol::{Params, ResponseHead, Role};

/// An application: called once per request, on a worker thread.
pub trait Handler: Send + Sync {
    /// Serves one request. An error is logged; if nothing was written yet the client gets a
    /// 500 response. The request is ended (END_REQUEST) either way.
    fn handle(&self, request: &mut Request<'_>) -> io::Result<()>;

    /// Whether this handler takes each request whole ([`take`](Self::take)) instead of serving
    /// it on a worker thread ([`handle`](Self::handle)): an event loop serving many requests
    /// at once. A FastCGI server then runs one thread per process that takes the requests and
    /// hands them over, and ends serving once every request taken has ended. `workers` still
    /// sizes the scoreboard and what GET_VALUES reports; the handler bounds its requests in
    /// flight (its `take` waits for room). CGI mode still calls `handle`.
    fn takes_requests(&self) -> bool {
        false
    }

    /// Takes `request`, which the handler ends from any thread ([`Request::finish`], or by
    /// dropping it), when [`takes_requests`](Self::takes_requests) says so. The next request
    /// is taken once this returns, so it returns soon, or once there is room for another.
    fn take(&self, mut request: Request<'static>) {
        let outcome = self.handle(&mut request);
        request.finish(outcome);
    }
}

impl<F> Handler for F
where
    F: Fn(&mut Request<'_>) -> io::Result<()> + Send + Sync,
{
    fn handle(&self, request: &mut Request<'_>) -> io::Result<()> {
        self(request)
    }
}

/// How a request's bytes move: implemented by the FastCGI connection and by CGI mode.
pub(crate) trait Exchange: Send {
    /// The next chunk of `input`, `None` at its end.
    fn read(&mut self, input: Input) -> io::Result<Option<Bytes>>;
    /// [`read`](Self::read) if that needs no wait: the chunk (or the end) if it has arrived
    /// already, `Ok(None)` if it has not (or the exchange cannot tell without waiting).
    fn try_read(&mut self, _input: Input) -> io::Result<Option<Option<Bytes>>> {
        Ok(None)
    }
    /// Sends (or buffers) `data` on `output`.
    fn write(&mut self, output: Output, data: &[u8]) -> io::Result<()>;
    /// Buffers `data` if that needs no I/O; `Ok(false)` means it was not written.
    fn try_buffer(&mut self, output: Output, data: &[u8]) -> io::Result<bool>;
    /// Sends whatever is buffered.
    fn flush(&mut self) -> io::Result<()>;
    /// Whether the web server abandoned the request (ABORT_REQUEST or a closed connection).
    fn is_aborted(&mut self) -> bool;
    /// Ends the request on the wire (the streams' ends, END_REQUEST with `app_status`) and
    /// hands the connection on to its next request; says whether the web server took it all
    /// (false: it went away first). Called once, last.
    fn end(&mut self, app_status: u32, stderr_used: bool) -> bool;
    /// Whether [`end`](Self::end) would not wait: false when the exchange cannot tell.
    fn can_end_now(&mut self) -> bool {
        false
    }
    /// Ends a request whose response was cut short after its first bytes (the handler failed):
    /// the web server must see it incomplete, so the connection closes without END_REQUEST.
    /// Called once, last, instead of `end`.
    fn abandon(&mut self, stderr_used: bool) {
        let _ = self.end(1, stderr_used);
    }
    /// Called when a thread takes the request to serve it; false if it was answered meanwhile
    /// (and is to be dropped without serving).
    fn claim(&mut self) -> bool {
        true
    }
}

/// How the process was reached: what a face reports as `wsgi.multiprocess`, `wsgi.run_once`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// One CGI request in this process.
    Cgi,
    /// A listener handed over on fd 0 or by systemd: the web server may run several processes.
    Inherited,
    /// A listener this process bound itself.
    Bound,
}

/// Facts about the serving server that a handler may want.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerInfo {
    pub transport: Transport,
    /// Worker threads: requests that may run at once in this process.
    pub workers: usize,
    /// This process is a worker of a pre-fork pool: others serve the same listener.
    pub pool_worker: bool,
    /// Largest request body accepted: a larger CONTENT_LENGTH gets a 413 without the handler
    /// being called, and a body that grows past it fails the read.
    pub max_body_bytes: Option<u64>,
}

/// Where a request came from, and where the record of its end goes.
#[derive(Default)]
pub(crate) struct Origin {
    /// The FastCGI request id (0 in CGI mode).
    pub id: u16,
    /// The connection's number in this process.
    pub connection: u64,
    pub access_log: Option<Arc<AccessLog>>,
    /// Where responses are counted by status and bytes, for the status page (the head is
    /// read for it).
    pub counted: Option<Arc<Stats>>,
}

/// One request being served. It ends with [`finish`](Self::finish), or when dropped.
pub struct Request<'a> {
    origin: Origin,
    started: Instant,
    /// The request's place on the scoreboard, from when a thread takes it to serve it.
    seat: Option<Seat>,
    /// The response's CGI head, read as it is written (only while an access log wants it).
    head: ResponseHead,
    /// The status to log when the response says none: 499 when the client left first.
    fallback_status: Option<u16>,
    info: ServerInfo,
    role: Role,
    params: Params,
    app_status: u32,
    stdout_bytes: u64,
    stderr_used: bool,
    stdin_bytes: u64,
    /// CONTENT_LENGTH, if the web server sent one that parses.
    content_length: Option<u64>,
    pending: [Bytes; 2],
    exchange: Box<dyn Exchange + 'a>,
    ended: bool,
}

// A Request may move to another thread (the C API hands them to the program's threads).
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Request<'static>>();
};

impl<'a> Request<'a> {
    pub(crate) fn new(
        info: ServerInfo,
        role: Role,
        params: Params,
        exchange: Box<dyn Exchange + 'a>,
        origin: Origin,
    ) -> Self {
        let content_length =
            params.get(b"CONTENT_LENGTH").and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok());
        let head = ResponseHead::new(origin.access_log.as_ref().is_some_and(|log| log.wants_response_headers()));
        Self {
            seat: None,
            origin,
            started: Instant::now(),
            head,
            fallback_status: None,
            content_length,
            info,
            role,
            params,
            app_status: 0,
            stdout_bytes: 0,
            stderr_used: false,
            stdin_bytes: 0,
            pending: [Bytes::new(), Bytes::new()],
            exchange,
            ended: false,
        }
    }

    /// Ends the request, `outcome` saying how the application did. An error is logged (a
    /// disconnect is not: nobody is left to answer) and, if no response byte was written yet,
    /// answered with a 500 page (413 if the body passed `max_body_bytes`), with app status 1.
    /// Then the web server gets the ends of the streams and END_REQUEST, and the connection
    /// goes on to its next request. Dropping a request finishes it with `Ok(())`. A request that
    /// ran past the request timeout with nothing written gets a 504 page instead.
    pub fn finish(mut self, outcome: io::Result<()>) {
        // A handler that stopped at the timeout (its abort check said so) answered nothing.
        let outcome = match outcome {
            Ok(()) if self.stdout_bytes == 0 && self.is_timed_out() => self.check_timeout(),
            outcome => outcome,
        };
        if let Err(e) = outcome {
            if is_disconnect(&e) {
                self.fallback_status = Some(CLIENT_LEFT);
            } else {
                if self.stdout_bytes > 0 {
                    // Part of the response is out: an END_REQUEST would make it look whole to
                    // the client (nginx ends a chunked body properly). Closing instead lets the
                    // web server see the truncation.
                    log::error!("the handler failed after {} response bytes: {e}", self.stdout_bytes);
                    self.ended = true;
                    self.exchange.abandon(self.stderr_used);
                    self.log_access();
                    return;
                }
                self.fail(&e.to_string());
            }
        }
        self.end();
    }

    /// Whether [`finish`](Self::finish) with an outcome that `failed` (or not) would end this
    /// request without waiting: the rest of the response fits in the socket now and no request
    /// body is left to drain. A handler that ends requests from a thread that must not wait (an
    /// event loop) asks first, and leaves the end to another thread when the answer is no.
    /// Ask only to finish: the look for the body's end passes over the body not read yet.
    pub fn can_finish_now(&mut self, failed: bool) -> bool {
        // A response cut short after its first bytes may linger for the rest of the body.
        let cut_short = failed && self.stdout_bytes > 0;
        self.ended || (!cut_short && self.exchange.can_end_now())
    }

    /// Tells the exchange a thread takes this request; false if it was answered meanwhile
    /// (see `Exchange::claim`).
    pub(crate) fn claim(&mut self) -> bool {
        let claimed = self.exchange.claim();
        if !claimed {
            // Answered 503 by the connection's reader meanwhile.
            self.ended = true;
            self.fallback_status = Some(503);
            self.log_access();
        }
        claimed
    }

    /// The calling thread serves this request from now on: it goes on the thread's slot of the
    /// scoreboard with its line (`GET /path?query`), if requests are seated (see
    /// `Context::seats_requests`).
    pub(crate) fn take_seat(&mut self, ctx: &Context) {
        if !ctx.seats_requests() {
            return;
        }
        let param = |name: &[u8]| self.params.get(name).unwrap_or_default();
        let method = param(b"REQUEST_METHOD");
        let seat = match self.params.get(b"REQUEST_URI") {
            Some(uri) => Seat::new(ctx.stats.scoreboard(), ctx.stats.process_index(), &[method, b" ", uri]),
            None => {
                let query = param(b"QUERY_STRING");
                let mark: &[u8] = if query.is_empty() { b"" } else { b"?" };
                let line = [method, b" ", param(b"SCRIPT_NAME"), param(b"PATH_INFO"), mark, query];
                Seat::new(ctx.stats.scoreboard(), ctx.stats.process_index(), &line)
            }
        };
        self.seat = Some(seat);
    }

    /// Logs the access record of this request, once, and takes it off the scoreboard: it has
    /// ended.
    fn log_access(&mut self) {
        self.seat = None;
        if let Some(stats) = self.origin.counted.take() {
            stats.response(self.head.status().or(self.fallback_status), self.stdin_bytes, self.stdout_bytes);
        }
        let Some(log) = self.origin.access_log.take() else { return };
        log.log(&AccessRecord {
            params: Some(&self.params),
            head: Some(&self.head),
            status: self.fallback_status,
            started: self.started,
            bytes_out: self.stdout_bytes,
            bytes_in: self.stdin_bytes,
            request_id: self.origin.id,
            connection: self.origin.connection,
        });
    }

    /// Logs `failure`; answers with an error page if nothing was written yet.
    fn fail(&mut self, failure: &str) {
        let timed_out = self.is_timed_out();
        if !timed_out {
            log::error!("the handler failed: {failure}");
        }
        if self.stdout_bytes == 0 {
            let page = if timed_out {
                GATEWAY_TIMEOUT
            } else if self.info.max_body_bytes.is_some_and(|limit| self.stdin_bytes > limit) {
                TOO_LARGE
            } else {
                INTERNAL_ERROR
            };
            // The server's own page: written even past the timeout.
            if self.exchange.write(Output::Stdout, page).is_ok() {
                self.wrote_stdout(page);
            }
        }
        if self.app_status == 0 {
            self.app_status = 1;
        }
    }

    fn end(&mut self) {
        if !std::mem::replace(&mut self.ended, true) {
            // A web server that left before the end (it waits for END_REQUEST) never passed the
            // whole response on, whatever it said: logged as nginx logs it.
            let left = self.origin.access_log.is_some() && self.exchange.is_aborted();
            if !self.exchange.end(self.app_status, self.stderr_used) || left {
                self.fallback_status = Some(CLIENT_LEFT);
                self.head = ResponseHead::default();
            }
            self.log_access();
        }
    }

    /// Answers 413 when CONTENT_LENGTH is over `max_body_bytes`, before anyone reads the body;
    /// says whether it did (the request is then done).
    pub(crate) fn refuse_too_large(&mut self) -> bool {
        let (Some(declared), Some(limit)) = (self.content_length, self.info.max_body_bytes) else { return false };
        if declared <= limit {
            return false;
        }
        log::warn!("refused a {declared}-byte body: the limit is {limit}");
        let _ = self.write_stdout(TOO_LARGE);
        self.app_status = 1;
        true
    }

    /// How this process serves (CGI or FastCGI, workers).
    pub fn server_info(&self) -> ServerInfo {
        self.info
    }

    /// The role the web server asked for (always Responder in CGI mode).
    pub fn role(&self) -> Role {
        self.role
    }

    /// All params (CGI variables), as raw bytes in the order sent.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The value of param `name`.
    pub fn param(&self, name: &str) -> Option<&[u8]> {
        self.params.get(name.as_bytes())
    }

    /// The next chunk of `input` as it arrives, without copying; `None` at its end.
    pub fn read_chunk(&mut self, input: Input) -> io::Result<Option<Bytes>> {
        let pending = &mut self.pending[input as usize];
        if !pending.is_empty() {
            return Ok(Some(std::mem::take(pending)));
        }
        self.receive(input)
    }

    /// [`read_chunk`](Self::read_chunk) if that needs no wait: `Ok(None)` when the next chunk
    /// has not arrived yet (an event loop then has a thread wait for it). The web server's
    /// records that arrived meanwhile are taken in, so an abort is seen too (an error).
    pub fn try_read_chunk(&mut self, input: Input) -> io::Result<Option<Option<Bytes>>> {
        let pending = &mut self.pending[input as usize];
        if !pending.is_empty() {
            return Ok(Some(Some(std::mem::take(pending))));
        }
        self.check_timeout()?;
        match self.exchange.try_read(input)? {
            Some(chunk) => self.count(input, chunk).map(Some),
            None => Ok(None),
        }
    }

    /// The next chunk from the exchange, counted (see [`count`](Self::count)).
    fn receive(&mut self, input: Input) -> io::Result<Option<Bytes>> {
        self.check_timeout()?;
        let chunk = self.exchange.read(input)?;
        self.count(input, chunk)
    }

    /// Counts a chunk of the body against `max_body_bytes` and CONTENT_LENGTH: a body that
    /// ends short of CONTENT_LENGTH is an error, not a short body the application could take
    /// for whole.
    fn count(&mut self, input: Input, chunk: Option<Bytes>) -> io::Result<Option<Bytes>> {
        if input == Input::Stdin {
            match &chunk {
                Some(chunk) => {
                    self.stdin_bytes += chunk.len() as u64;
                    if let Some(seat) = &self.seat {
                        seat.body_read(self.stdin_bytes);
                    }
                    if let Some(limit) = self.info.max_body_bytes.filter(|limit| self.stdin_bytes > *limit) {
                        return Err(body_too_large(limit));
                    }
                }
                None => {
                    if let Some(declared) = self.content_length.filter(|declared| self.stdin_bytes < *declared) {
                        return Err(body_truncated(self.stdin_bytes, declared));
                    }
                }
            }
        }
        Ok(chunk)
    }

    /// Reads from `input` into `buf`; 0 at its end.
    pub fn read_into(&mut self, input: Input, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pending[input as usize].is_empty() {
            match self.receive(input)? {
                Some(chunk) => self.pending[input as usize] = chunk,
                None => return Ok(0),
            }
        }
        let pending = &mut self.pending[input as usize];
        let n = pending.len().min(buf.len());
        buf[..n].copy_from_slice(&pending[..n]);
        pending.advance(n);
        Ok(n)
    }

    /// A reader over the request body.
    pub fn stdin(&mut self) -> InputReader<'_, 'a> {
        InputReader { request: self, input: Input::Stdin }
    }

    /// A reader over the Filter role's DATA stream.
    pub fn data(&mut self) -> InputReader<'_, 'a> {
        InputReader { request: self, input: Input::Data }
    }

    /// Writes response bytes (CGI headers, then the body).
    pub fn write_stdout(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.check_timeout()?;
        if let Some(seat) = &self.seat {
            seat.writing(true);
        }
        let written = self.exchange.write(Output::Stdout, data);
        if let Some(seat) = &self.seat {
            seat.writing(false);
        }
        written?;
        self.wrote_stdout(data);
        Ok(())
    }

    /// Counts `data`, written to STDOUT, and reads the head in it while an access log wants it.
    fn wrote_stdout(&mut self, data: &[u8]) {
        if (self.origin.access_log.is_some() || self.origin.counted.is_some()) && self.head.is_reading() {
            self.head.feed(data);
        }
        self.stdout_bytes += data.len() as u64;
    }

    /// Writes `data` only if that needs no I/O (it fits the send buffer), and says whether it did.
    /// A caller that must not block, such as one holding Python's GIL, tries this first and
    /// calls [`write_stdout`](Self::write_stdout) without its lock when it says no.
    pub fn try_buffer_stdout(&mut self, data: &[u8]) -> io::Result<bool> {
        self.check_timeout()?;
        let buffered = data.is_empty() || self.exchange.try_buffer(Output::Stdout, data)?;
        if buffered {
            self.wrote_stdout(data);
        }
        Ok(buffered)
    }

    /// [`try_buffer_stdout`](Self::try_buffer_stdout) for the error log.
    pub fn try_buffer_stderr(&mut self, data: &[u8]) -> io::Result<bool> {
        self.check_timeout()?;
        let buffered = data.is_empty() || self.exchange.try_buffer(Output::Stderr, data)?;
        self.stderr_used |= buffered && !data.is_empty();
        Ok(buffered)
    }

    /// Writes to the web server's error log.
    pub fn write_stderr(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.check_timeout()?;
        self.stderr_used = true;
        self.exchange.write(Output::Stderr, data)
    }

    /// A writer for the response.
    pub fn stdout(&mut self) -> OutputWriter<'_, 'a> {
        OutputWriter { request: self, output: Output::Stdout }
    }

    /// A writer for the error log.
    pub fn stderr(&mut self) -> OutputWriter<'_, 'a> {
        OutputWriter { request: self, output: Output::Stderr }
    }

    /// Sends buffered output now (a streamed response wants its first bytes out).
    pub fn flush(&mut self) -> io::Result<()> {
        self.check_timeout()?;
        self.exchange.flush()
    }

    /// Response bytes written so far.
    pub fn stdout_bytes(&self) -> u64 {
        self.stdout_bytes
    }

    /// Sets the application status reported in END_REQUEST (the CGI exit status).
    pub fn set_app_status(&mut self, status: u32) {
        self.app_status = status;
    }

    /// The application status so far.
    pub fn app_status(&self) -> u32 {
        self.app_status
    }

    /// Whether the web server abandoned this request, or it ran past the request timeout: a
    /// long-running handler checks it and stops early. Writes after an abort fail.
    pub fn is_aborted(&mut self) -> bool {
        self.is_timed_out() || self.exchange.is_aborted()
    }

    /// The request's slot on the scoreboard while it runs (what the status page lists), if it
    /// has one: the key of [`Lifecycle::interrupt`](super::Lifecycle::interrupt) and
    /// [`Lifecycle::stack_of`](super::Lifecycle::stack_of) for a handler that takes requests
    /// whole.
    pub fn slot(&self) -> Option<usize> {
        self.seat.as_ref().and_then(Seat::slot)
    }

    /// Whether this request ran past the request timeout (`timeout`): its reads and writes
    /// fail from then on, and if nothing was written the client gets a 504.
    pub fn is_timed_out(&self) -> bool {
        self.seat.as_ref().is_some_and(Seat::is_cut)
    }

    fn check_timeout(&self) -> io::Result<()> {
        if self.is_timed_out() {
            return Err(Error::io(ErrorKind::RequestTimedOut, "the request ran past its timeout"));
        }
        Ok(())
    }
}

/// `Read` over one input stream of a request.
pub struct InputReader<'r, 'a> {
    request: &'r mut Request<'a>,
    input: Input,
}

impl Read for InputReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.request.read_into(self.input, buf)
    }
}

/// `Write` over one output stream of a request.
pub struct OutputWriter<'r, 'a> {
    request: &'r mut Request<'a>,
    output: Output,
}

impl Write for OutputWriter<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.output {
            Output::Stdout => self.request.write_stdout(buf)?,
            Output::Stderr => self.request.write_stderr(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.request.flush()
    }
}

/// The error a read returns once the body passes `max_body_bytes`.
fn body_too_large(limit: u64) -> io::Error {
    Error::io(ErrorKind::BodyTooLarge, format!("the request body is larger than {limit} bytes"))
}

/// The error a read returns when the body ends before CONTENT_LENGTH bytes.
fn body_truncated(received: u64, declared: u64) -> io::Error {
    Error::io(
        ErrorKind::BodyTruncated,
        format!("the request body ended after {received} of its {declared} bytes (CONTENT_LENGTH)"),
    )
}

/// The status logged for a request whose client left before it was answered (nginx's).
const CLIENT_LEFT: u16 = 499;

/// The response to a body over `max_body_bytes`.
pub(crate) const TOO_LARGE: &[u8] =
    b"Status: 413 Content Too Large\r\nContent-Type: text/plain\r\nContent-Length: 19\r\n\r\nContent Too Large\r\n";

/// The response to a request that ran past the request timeout before writing anything.
const GATEWAY_TIMEOUT: &[u8] =
    b"Status: 504 Gateway Timeout\r\nContent-Type: text/plain\r\nContent-Length: 16\r\n\r\nGateway Timeout\n";

/// The response sent when a handler fails before writing anything.
pub(crate) const INTERNAL_ERROR: &[u8] =
    b"Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 22\r\n\r\nInternal Server Error\n";

impl Drop for Request<'_> {
    fn drop(&mut self) {
        self.end();
    }
}

/// Runs `handler` on `request` and finishes it: an error or a panic becomes a log line and, if
/// nothing was written yet, a 500 response.
pub(crate) fn run_handler(handler: &dyn Handler, mut request: Request<'_>) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.handle(&mut request)));
    let outcome = outcome.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_owned());
        Err(io::Error::other(message))
    });
    request.finish(outcome);
}

/// The response to a request that no thread could take: a multiplexed one no worker took in
/// time, or one read while an acceptor was closing.
pub(crate) const SERVICE_UNAVAILABLE: &[u8] =
    b"Status: 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n\r\nService Unavailable\n";

/// Whether `e` only says that the web server left (closed, reset or aborted the request):
/// nothing to log, nobody to answer.
pub fn is_disconnect(e: &io::Error) -> bool {
    ErrorKind::of(e).is_disconnect()
}
