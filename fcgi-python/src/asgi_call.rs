//! One ASGI request, shared by the event-loop thread that runs the app's task for it and the
//! thread that carries out its I/O (the I/O thread): a porter (`asgi_porters.rs`) for a request
//! taken whole, the thread that holds the request in CGI mode.
//!
//! The loop never waits: what needs no I/O (a response that fits the send buffer, a body known
//! to be empty) it does at once under the GIL; what needs I/O (a body chunk not yet read, a
//! write the socket cannot take now, a streamed chunk that must go out, the request's end) it
//! orders from that thread, which does it without the GIL and answers through the bridge,
//! resolving the future the task awaits. So every awaited `receive()` reads the socket only
//! then, and every awaited `send()` returns once the socket took the bytes: back-pressure both
//! ways.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use fcgi_core::{Error, ErrorKind, Input, Params, Role};
use pyo3::exceptions::{PyRuntimeError, PyStopIteration, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use pyo3::{intern, Bound};

use crate::asgi_bridge::{Bridge, Event};
use crate::asgi_porters::Porters;
use crate::environ::length_param;
use crate::error::{failure_page, to_py, ClientDisconnected, RequestBodyIncomplete, RequestTimeout, RequestTooLarge};
use crate::live_request::LiveRequest;
use crate::scope;

/// How often the I/O thread looks for an abort while the app waits for one (`receive()`
/// after the whole body).
const ABORT_LOOK_EVERY: Duration = Duration::from_millis(100);

/// What the loop orders from the I/O thread.
enum Order {
    /// Read the next body chunk.
    Read,
    /// Write `data` (it may be empty), then flush if `flush`.
    Write { data: Vec<u8>, flush: bool },
    /// Write the server's error page `data`, with app status 1; nobody awaits it.
    Page(Vec<u8>),
    /// Write `data` to the web server's error log (FCGI_STDERR); nobody awaits it.
    Stderr(Vec<u8>),
    /// End the request: the handler returns this.
    End(io::Result<()>),
}

#[derive(Default)]
struct Orders {
    queue: VecDeque<Order>,
    /// A porter is carrying out the orders (a request taken whole).
    carried: bool,
    /// The app waits for `http.disconnect`: look for an abort now and then.
    watch_abort: bool,
}

/// Where the request body is, as the loop sees it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Body {
    /// Not all read; this many bytes left of CONTENT_LENGTH, if the web server sent one.
    Unread(Option<u64>),
    /// Read to its end.
    Read,
}

/// The loop's side, changed only under the GIL (the mutex only makes it `Sync`).
struct Progress {
    body: Body,
    /// `Status:` and the headers of `http.response.start`, until they go out with the body.
    head: Option<Vec<u8>>,
    has_content_length: bool,
    started: bool,
    head_sent: bool,
    /// The last `http.response.body` (no `more_body`) was sent: the end is ordered.
    complete: bool,
    /// The web server went away or aborted the request.
    disconnected: bool,
    /// The request ran past its timeout and its task was cancelled.
    timed_out: bool,
    /// The end of the request has been ordered.
    ended: bool,
    /// The future an awaited `receive()` (`reading`) or `send()` (`writing`) waits on.
    reading: Option<Py<PyAny>>,
    /// A read is with the I/O thread: its end resolves `reading`.
    read_ordered: bool,
    /// A message whose `receive()` was given up (its future cancelled: Starlette's
    /// `is_disconnected()` asks in a cancelled scope): the next `receive()` returns it, so no
    /// body chunk is lost.
    unclaimed: Option<Py<PyAny>>,
    writing: Option<Py<PyAny>>,
}

/// What a thread carrying out a call's orders does next.
enum Step {
    Order(Order),
    /// It looked whether the web server aborted the request.
    Looked,
    /// Nothing is left to do: the porter lets the call go.
    LetGo,
}

/// One request, between the loop and the thread that carries out its I/O.
pub(crate) struct Call {
    /// Itself, handed to a porter from `&self`.
    me: Weak<Call>,
    live: Arc<LiveRequest>,
    bridge: Arc<Bridge>,
    /// The porters, for a request taken whole; `None` when a thread holds the request and
    /// carries out the orders itself ([`serve`](Self::serve)).
    porters: Option<Arc<Porters>>,
    /// Runs once a request taken whole has ended.
    on_end: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    params: Params,
    role: Role,
    orders: Mutex<Orders>,
    ordered: Condvar,
    progress: Mutex<Progress>,
    /// The task running the app for this request. Apart from `progress`, which the loop holds
    /// while it ends the request: the watchdog asks for the task holding the GIL.
    task: Mutex<Option<Py<PyAny>>>,
}

/// The Python handle of a [`Call`]: what the task's `receive` and `send` use.
#[pyclass(module = "fcgi_wsgi", frozen, name = "AsgiRequest")]
pub struct AsgiCall(Arc<Call>);

impl From<Arc<Call>> for AsgiCall {
    fn from(call: Arc<Call>) -> Self {
        Self(call)
    }
}

impl Call {
    /// A call for the request published as `live`, whose orders the publishing thread carries
    /// out ([`serve`](Self::serve)).
    pub(crate) fn held(live: Arc<LiveRequest>, bridge: Arc<Bridge>, params: Params, role: Role) -> Arc<Self> {
        Self::new(live, bridge, None, params, role)
    }

    /// A call for a request taken whole (`live` owns it), whose orders `porters` carry out;
    /// `on_end` runs once it has ended.
    pub(crate) fn taken(
        live: Arc<LiveRequest>,
        bridge: Arc<Bridge>,
        porters: Arc<Porters>,
        params: Params,
        role: Role,
        on_end: Box<dyn FnOnce() + Send>,
    ) -> Arc<Self> {
        let call = Self::new(live, bridge, Some(porters), params, role);
        *call.on_end.lock().unwrap_or_else(|p| p.into_inner()) = Some(on_end);
        call
    }

    fn new(
        live: Arc<LiveRequest>,
        bridge: Arc<Bridge>,
        porters: Option<Arc<Porters>>,
        params: Params,
        role: Role,
    ) -> Arc<Self> {
        let declared = length_param(&params, b"CONTENT_LENGTH");
        // Only a Responder or a Filter has a body to read (an Authorizer's stdin is empty).
        let body = if role == Role::Authorizer { Body::Read } else { Body::Unread(declared) };
        let progress = Progress {
            body,
            head: None,
            has_content_length: false,
            started: false,
            head_sent: false,
            complete: false,
            disconnected: false,
            timed_out: false,
            ended: false,
            reading: None,
            read_ordered: false,
            unclaimed: None,
            writing: None,
        };
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            live,
            bridge,
            porters,
            on_end: Mutex::new(None),
            params,
            role,
            orders: Mutex::new(Orders::default()),
            ordered: Condvar::new(),
            progress: Mutex::new(progress),
            task: Mutex::new(None),
        })
    }

    fn orders(&self) -> MutexGuard<'_, Orders> {
        self.orders.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn progress(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn order(&self, order: Order) {
        let mut orders = self.orders();
        orders.queue.push_back(order);
        self.summon(orders);
    }

    /// Sees that someone carries out the orders: a porter, called if none is on the call, or
    /// the thread already on it, woken.
    fn summon(&self, mut orders: MutexGuard<'_, Orders>) {
        if let Some(porters) = &self.porters {
            if !std::mem::replace(&mut orders.carried, true) {
                drop(orders);
                if let Some(call) = self.me.upgrade() {
                    porters.carry(call);
                }
                return;
            }
        }
        drop(orders);
        self.ordered.notify_one();
    }

    /// On the thread that holds the request (CGI mode): carries out the loop's orders until
    /// the end, which it returns (the handler's outcome). Waits for orders without a deadline:
    /// the app's task has one if the server has a request timeout.
    pub(crate) fn serve(self: &Arc<Self>) -> io::Result<()> {
        loop {
            if let Step::Order(order) = self.next_step(true) {
                if let Some(outcome) = self.perform(order) {
                    return outcome;
                }
            }
        }
    }

    /// On a porter: carries out the orders queued, then lets the call go; at the end, finishes
    /// the request (END_REQUEST, the access log, the connection handed on).
    pub(crate) fn carry(self: &Arc<Self>) {
        loop {
            match self.next_step(false) {
                Step::LetGo => return,
                Step::Looked => {}
                Step::Order(order) => {
                    if let Some(outcome) = self.perform(order) {
                        self.finish(outcome);
                        return;
                    }
                }
            }
        }
    }

    /// The next thing to do: an order, waiting for one if `hold`, else letting the call go
    /// when none is queued; while the app waits for `http.disconnect`, a look every
    /// [`ABORT_LOOK_EVERY`] whether the web server aborted the request.
    fn next_step(self: &Arc<Self>, hold: bool) -> Step {
        let mut orders = self.orders();
        loop {
            if let Some(order) = orders.queue.pop_front() {
                return Step::Order(order);
            }
            if orders.watch_abort {
                let (guard, _) = self.ordered.wait_timeout(orders, ABORT_LOOK_EVERY).unwrap_or_else(|p| p.into_inner());
                orders = guard;
                if orders.queue.is_empty() && orders.watch_abort {
                    drop(orders);
                    if self.live.with(|request| Ok(request.is_aborted())).unwrap_or(true) {
                        self.orders().watch_abort = false;
                        self.bridge.post(Event::Disconnected(self.clone()));
                    }
                    return Step::Looked;
                }
            } else if hold {
                orders = self.ordered.wait(orders).unwrap_or_else(|p| p.into_inner());
            } else {
                orders.carried = false;
                return Step::LetGo;
            }
        }
    }

    /// Carries out `order`, without the GIL; at the end, the outcome to end the request with.
    fn perform(self: &Arc<Self>, order: Order) -> Option<io::Result<()>> {
        match order {
            Order::Read => {
                let chunk = self.live.with(|request| request.read_chunk(Input::Stdin));
                self.bridge.post(Event::Read(self.clone(), chunk));
            }
            Order::Write { data, flush } => {
                let written = self.live.with(|request| {
                    request.write_stdout(&data)?;
                    if flush {
                        request.flush()?;
                    }
                    Ok(())
                });
                self.bridge.post(Event::Wrote(self.clone(), written));
            }
            Order::Page(data) => {
                let written = self.live.with(|request| {
                    request.set_app_status(1);
                    request.write_stdout(&data)
                });
                if let Err(e) = written {
                    return Some(Err(e));
                }
            }
            Order::Stderr(data) => {
                // Best effort, as a log line is: the response's own writes report a failure.
                let _ = self.live.with(|request| request.write_stderr(&data));
            }
            Order::End(outcome) => return Some(outcome),
        }
        None
    }

    /// Ends the request after its porter panicked, if it has not ended.
    pub(crate) fn abandon(&self) {
        log::error!("an ASGI request's I/O thread panicked: the request ends");
        self.finish(Err(io::Error::other("the request's I/O thread panicked")));
    }

    /// The task running the app for this request, once started.
    pub(crate) fn task(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.task.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|task| task.clone_ref(py))
    }

    /// On the watchdog's thread: the request ran past its timeout; the loop cancels its task.
    pub(crate) fn time_out(self: &Arc<Self>) {
        self.bridge.post(Event::TimedOut(self.clone()));
    }

    /// The app's task could not be started: the request ends with a 500.
    pub(crate) fn not_started(&self, error: String) {
        let mut progress = self.progress();
        self.end(&mut progress, Err(io::Error::other(format!("the ASGI task did not start: {error}"))));
    }

    /// Ends the request, once: at once on the loop when that needs no wait, else by ordering
    /// the end from the thread that carries out the orders.
    fn end(&self, progress: &mut Progress, outcome: io::Result<()>) {
        if !std::mem::replace(&mut progress.ended, true) {
            if let Err(outcome) = self.end_here(outcome) {
                self.order(Order::End(outcome));
            }
        }
    }

    /// Ends a request taken whole on the calling thread (the loop's) when no porter is on it
    /// and the end would not wait (`Request::can_finish_now`: a small response, whole): the
    /// usual request then costs no thread a wake-up. Else gives `outcome` back.
    fn end_here(&self, outcome: io::Result<()>) -> Result<(), io::Result<()>> {
        if self.porters.is_none() {
            return Err(outcome);
        }
        let orders = self.orders();
        if orders.carried || !orders.queue.is_empty() {
            return Err(outcome);
        }
        drop(orders);
        let failed = outcome.is_err();
        if !matches!(self.live.try_with(|request| Ok(request.can_finish_now(failed))), Ok(Some(true))) {
            return Err(outcome);
        }
        // Without the GIL: the end takes the core's locks (the pool's, the access log's), which
        // a thread may hold while it waits for the GIL to log through Python.
        Python::attach(|py| py.detach(|| self.finish(outcome)));
        Ok(())
    }

    /// Finishes a request taken whole (END_REQUEST, the access log, the connection handed
    /// on), then runs its `on_end`.
    fn finish(&self, outcome: io::Result<()>) {
        if let Some(request) = self.live.take_owned() {
            request.finish(outcome);
        }
        let on_end = self.on_end.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(on_end) = on_end {
            on_end();
        }
    }

    fn future<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.bridge.future(py)
    }

    /// Resolves `future` with `value`; false if its task gave up on it (cancelled), or there is
    /// none.
    fn resolve(py: Python<'_>, future: Option<Py<PyAny>>, value: PyResult<Bound<'_, PyAny>>) -> PyResult<bool> {
        let Some(future) = future else { return Ok(false) };
        let future = future.bind(py);
        if is_done(future)? {
            return Ok(false);
        }
        match value {
            Ok(value) => future.call_method1(intern!(py, "set_result"), (value,))?,
            Err(e) => future.call_method1(intern!(py, "set_exception"), (e.into_value(py),))?,
        };
        Ok(true)
    }

    /// Resolves the awaited `receive()` with `message`, or keeps it for the next one.
    fn deliver(&self, py: Python<'_>, message: PyResult<Bound<'_, PyDict>>) -> PyResult<()> {
        let future = self.progress().reading.take();
        let kept = match &message {
            Ok(message) => Some(message.clone().into_any().unbind()),
            Err(_) => None,
        };
        if !Self::resolve(py, future, message.map(Bound::into_any))? {
            self.progress().unclaimed = kept;
        }
        Ok(())
    }

    /// On the loop: a read ordered by `receive()` ended.
    pub(crate) fn read_ended(&self, py: Python<'_>, chunk: io::Result<Option<Bytes>>) -> PyResult<()> {
        let message = {
            let mut progress = self.progress();
            progress.read_ordered = false;
            Self::read_message(py, &mut progress, chunk)
        };
        self.deliver(py, message)
    }

    /// The `receive()` message of a body chunk that was read (`None`: the body's end).
    fn read_message<'py>(
        py: Python<'py>,
        progress: &mut Progress,
        chunk: io::Result<Option<Bytes>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        match chunk {
            Ok(Some(chunk)) => {
                let (chunk, next) = match progress.body {
                    // Never more than CONTENT_LENGTH, and no further read once it has all come.
                    Body::Unread(Some(left)) => {
                        let taken = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                        let left = left - taken as u64;
                        (chunk.slice(..taken), if left > 0 { Body::Unread(Some(left)) } else { Body::Read })
                    }
                    body => (chunk, body),
                };
                progress.body = next;
                request_message(py, &chunk, next != Body::Read)
            }
            Ok(None) => {
                progress.body = Body::Read;
                request_message(py, b"", false)
            }
            Err(e) if fcgi_core::runtime::is_disconnect(&e) => {
                progress.disconnected = true;
                disconnect_message(py)
            }
            Err(e) => Err(to_py(e)),
        }
    }

    /// On the loop: a write ordered by `send()` ended.
    pub(crate) fn write_ended(&self, py: Python<'_>, written: io::Result<()>) -> PyResult<()> {
        let mut progress = self.progress();
        let future = progress.writing.take();
        if written.as_ref().is_err_and(fcgi_core::runtime::is_disconnect) {
            progress.disconnected = true;
        }
        drop(progress);
        Self::resolve(py, future, written.map(|()| py.None().into_bound(py)).map_err(to_py)).map(drop)
    }

    /// On the loop: the web server went away while the app waits in `receive()`.
    pub(crate) fn disconnected(&self, py: Python<'_>) -> PyResult<()> {
        let future = {
            let mut progress = self.progress();
            progress.disconnected = true;
            // A read under way ends with the disconnect itself.
            if progress.read_ordered {
                return Ok(());
            }
            progress.reading.take()
        };
        Self::resolve(py, future, disconnect_message(py).map(Bound::into_any)).map(drop)
    }

    /// On the loop: cancels the task of a request that ran past its timeout.
    pub(crate) fn cancel_task(&self, py: Python<'_>) -> PyResult<()> {
        self.progress().timed_out = true;
        let task = self.task(py);
        if let Some(task) = task {
            task.bind(py).call_method0(intern!(py, "cancel"))?;
        }
        Ok(())
    }

    /// What `send` does with `message`: `None` when nothing is left to wait for, else the future.
    pub(crate) fn send_message<'py>(&self, message: &Bound<'py, PyDict>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let call = self;
        let mut progress = call.progress();
        if progress.writing.is_some() {
            return Err(PyRuntimeError::new_err("send() called before the previous send() finished"));
        }
        if progress.ended && !progress.complete {
            return Err(ClientDisconnected::new_err("the request has ended"));
        }
        let kind = required(message, "type")?;
        let kind = kind.cast::<PyString>().map_err(|_| PyValueError::new_err("the message's type must be a str"))?;
        match kind.to_cow()?.as_ref() {
            "http.response.start" => call.start(&mut progress, message).map(|()| None),
            "http.response.body" => call.body(&mut progress, message),
            "http.response.trailers" => Err(PyRuntimeError::new_err(
                "http.response.trailers: FastCGI carries no trailers (the scope offers no such extension)",
            )),
            other => Err(PyValueError::new_err(format!("unknown message type {other:?} for an http scope"))),
        }
    }

    /// `http.response.start`: keeps the head until the first body message.
    fn start(&self, progress: &mut Progress, message: &Bound<'_, PyDict>) -> PyResult<()> {
        if progress.started {
            return Err(PyRuntimeError::new_err("http.response.start sent twice"));
        }
        let py = message.py();
        if let Some(trailers) = message.get_item(intern!(py, "trailers"))? {
            if trailers.is_truthy()? {
                return Err(PyRuntimeError::new_err(
                    "http.response.trailers: FastCGI carries no trailers (the scope offers no such extension)",
                ));
            }
        }
        let status: u16 = required(message, "status")?.extract()?;
        if !(100..=999).contains(&status) {
            return Err(PyValueError::new_err(format!("status {status} is not a 3-digit code")));
        }
        let mut lines =
            format!("Status: {status}{}\r\n", reason(status).map(|r| format!(" {r}")).unwrap_or_default()).into_bytes();
        let mut has_content_length = false;
        if let Some(headers) = message.get_item(intern!(py, "headers"))? {
            for header in headers.try_iter()? {
                let (name, value): (Vec<u8>, Vec<u8>) = header?.extract().map_err(|_| {
                    PyValueError::new_err("headers must be an iterable of [name, value] byte-string pairs")
                })?;
                check_header(&name, &value)?;
                has_content_length |= name.eq_ignore_ascii_case(b"content-length");
                lines.extend_from_slice(&name);
                lines.extend_from_slice(b": ");
                lines.extend_from_slice(&value);
                lines.extend_from_slice(b"\r\n");
            }
        }
        progress.head = Some(lines);
        progress.has_content_length = has_content_length;
        progress.started = true;
        Ok(())
    }

    /// `http.response.body`: `None` if the bytes are out of the app's hands already, else the
    /// future of the write.
    fn body<'py>(&self, progress: &mut Progress, message: &Bound<'py, PyDict>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = message.py();
        if !progress.started {
            return Err(PyRuntimeError::new_err("http.response.body before http.response.start"));
        }
        if progress.complete {
            return Err(PyRuntimeError::new_err("http.response.body after the response's last body message"));
        }
        if progress.disconnected {
            return Err(ClientDisconnected::new_err("the web server went away"));
        }
        let more = match message.get_item(intern!(py, "more_body"))? {
            Some(more) => more.is_truthy()?,
            None => false,
        };
        let body = message.get_item(intern!(py, "body"))?;
        let body = match &body {
            Some(body) => body
                .cast::<PyBytes>()
                .map_err(|_| PyValueError::new_err("http.response.body's body must be bytes"))?
                .as_bytes(),
            None => b"",
        };
        let mut data = Vec::new();
        if let Some(mut head) = progress.head.take() {
            if !more && !progress.has_content_length {
                // The whole body in one message: its length is known, and the web server may
                // keep its client's connection without chunking.
                head.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
            }
            head.extend_from_slice(b"\r\n");
            data = head;
            progress.head_sent = true;
        }
        data.extend_from_slice(body);
        progress.complete = !more;
        // The last message ends the request; a streamed chunk must go out now (flushed).
        let buffered =
            !more && self.live.try_with(|request| request.try_buffer_stdout(&data)).map_err(to_py)?.unwrap_or(false);
        if buffered {
            self.end(progress, Ok(()));
            return Ok(None);
        }
        let future = self.future(py)?;
        progress.writing = Some(future.clone().unbind());
        self.order(Order::Write { data, flush: more });
        if !more {
            self.end(progress, Ok(()));
        }
        Ok(Some(future))
    }
}

/// An awaitable already done with `value`: what `receive()` and `send()` return when they need
/// no wait, cheaper than a coroutine or a future (an `await` on it is one `__next__` call).
#[pyclass(module = "fcgi_wsgi")]
pub struct Ready(Option<Py<PyAny>>);

#[pymethods]
impl Ready {
    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Ends the `await` at once: with no value (`send()`'s None) the iteration just ends, which
    /// costs no exception object; a value travels as StopIteration's.
    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let Some(value) = self.0.take().filter(|value| !value.is_none(py)) else {
            return Ok(None);
        };
        // Wrapped so that a tuple is not taken for the exception's args.
        let stop = PyStopIteration::new_err(()).into_value(py);
        stop.bind(py).setattr(intern!(py, "value"), value)?;
        Err(PyErr::from_value(stop.into_any().into_bound(py)))
    }
}

fn ready<'py>(py: Python<'py>, value: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    Ok(Bound::new(py, Ready(Some(value.unbind())))?.into_any())
}

/// Whether an asyncio future is done (resolved, failed or cancelled).
fn is_done(future: &Bound<'_, PyAny>) -> PyResult<bool> {
    future.call_method0(intern!(future.py(), "done"))?.is_truthy()
}

/// `message[key]`, or a clear error naming it.
fn required<'py>(message: &Bound<'py, PyDict>, key: &str) -> PyResult<Bound<'py, PyAny>> {
    message.get_item(key)?.ok_or_else(|| PyValueError::new_err(format!("the message has no {key:?}")))
}

/// Refuses a header that would break the CGI head: an empty name, a name with a separator or
/// a control character, a value with a line break.
fn check_header(name: &[u8], value: &[u8]) -> PyResult<()> {
    let bad_name = name.is_empty() || name.iter().any(|&b| b <= b' ' || b == b':' || b >= 0x7f);
    if bad_name {
        return Err(PyValueError::new_err(format!("header name {:?} is not valid", String::from_utf8_lossy(name))));
    }
    if value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(PyValueError::new_err(format!(
            "header {:?}'s value contains a line break",
            String::from_utf8_lossy(name)
        )));
    }
    Ok(())
}

/// `{"type": "http.request", "body": chunk, "more_body": more}`.
fn request_message<'py>(py: Python<'py>, chunk: &[u8], more: bool) -> PyResult<Bound<'py, PyDict>> {
    let message = PyDict::new(py);
    message.set_item(intern!(py, "type"), intern!(py, "http.request"))?;
    message.set_item(intern!(py, "body"), PyBytes::new(py, chunk))?;
    message.set_item(intern!(py, "more_body"), more)?;
    Ok(message)
}

/// `{"type": "http.disconnect"}`.
fn disconnect_message(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let message = PyDict::new(py);
    message.set_item(intern!(py, "type"), intern!(py, "http.disconnect"))?;
    Ok(message)
}

/// The reason phrase web servers expect after a status code (they put in their own when a
/// `Status:` line has none, but not all do).
fn reason(status: u16) -> Option<&'static str> {
    Some(match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => return None,
    })
}

#[pymethods]
impl AsgiCall {
    /// The request's `http` scope, with a copy of `state` (the lifespan's) if given.
    #[pyo3(signature = (state=None))]
    fn scope<'py>(&self, py: Python<'py>, state: Option<&Bound<'py, PyDict>>) -> PyResult<Bound<'py, PyDict>> {
        scope::build(py, &self.0.params, self.0.role, state)
    }

    /// Writes `text` to the web server's error log (FCGI_STDERR), without waiting: buffered if
    /// it fits, else handed to the I/O thread.
    fn write_error(&self, text: &str) -> PyResult<()> {
        let call = &self.0;
        let data = text.as_bytes();
        let progress = call.progress();
        if progress.ended {
            return Ok(());
        }
        if call.live.try_with(|request| request.try_buffer_stderr(data)).map_err(to_py)? != Some(true) {
            call.order(Order::Stderr(data.to_vec()));
        }
        Ok(())
    }

    /// Whether the web server went away or aborted the request: an error the app raises then
    /// is its consequence, not worth a traceback.
    #[getter]
    fn disconnected(&self) -> bool {
        self.0.progress().disconnected
    }

    /// Remembers the task running the app, to cancel it at the request timeout.
    fn set_task(&self, task: Py<PyAny>) {
        *self.0.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    }

    /// ASGI's `receive()`: an awaitable of the next message, already done when the message is
    /// known now (no event-loop round), else the future the I/O thread's read resolves.
    fn receive<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let call = &self.0;
        let mut progress = call.progress();
        if let Some(message) = progress.unclaimed.take() {
            return ready(py, message.into_bound(py));
        }
        if let Some(waiting) = &progress.reading {
            if !is_done(waiting.bind(py))? {
                return Err(PyRuntimeError::new_err("receive() called while another receive() waits"));
            }
            // Given up (cancelled): this call takes its place.
            progress.reading = None;
        }
        if progress.read_ordered {
            // The read under way answers this call.
            let future = call.future(py)?;
            progress.reading = Some(future.clone().unbind());
            return Ok(future);
        }
        if progress.disconnected || progress.complete {
            // After the response, or once the web server is gone, there is only the end.
            return ready(py, disconnect_message(py)?.into_any());
        }
        match progress.body {
            Body::Unread(Some(0)) => {
                progress.body = Body::Read;
                ready(py, request_message(py, b"", false)?.into_any())
            }
            Body::Unread(_) => {
                // What has arrived already is taken at once; only a wait goes to the I/O thread.
                let arrived = call.live.try_with(|request| request.try_read_chunk(Input::Stdin));
                let chunk = match arrived {
                    Ok(Some(Some(chunk))) => Some(Ok(chunk)),
                    Ok(Some(None) | None) => None,
                    Err(e) => Some(Err(e)),
                };
                if let Some(chunk) = chunk {
                    return ready(py, Call::read_message(py, &mut progress, chunk)?.into_any());
                }
                let future = call.future(py)?;
                progress.reading = Some(future.clone().unbind());
                progress.read_ordered = true;
                call.order(Order::Read);
                Ok(future)
            }
            Body::Read => {
                // Only `http.disconnect` is left to come: the I/O thread looks for it.
                let future = call.future(py)?;
                progress.reading = Some(future.clone().unbind());
                let mut orders = call.orders();
                orders.watch_abort = true;
                call.summon(orders);
                Ok(future)
            }
        }
    }

    /// ASGI's `send(message)`: an awaitable, already done when nothing is left to wait for,
    /// else a future that resolves once the socket took the bytes.
    fn send<'py>(&self, message: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyAny>> {
        let py = message.py();
        match self.0.send_message(message)? {
            Some(future) => Ok(future),
            None => ready(py, py.None().into_bound(py)),
        }
    }

    /// The app returned. A response it did not finish is cut short: without its head, the
    /// client gets a 500; with part of it out, the web server sees the connection close before
    /// END_REQUEST, and its client an incomplete response.
    fn returned(&self) {
        let call = &self.0;
        let mut progress = call.progress();
        let outcome = if progress.complete {
            Ok(())
        } else if progress.started {
            Err(io::Error::other("the app returned before its response ended"))
        } else {
            Err(io::Error::other("the app returned without sending a response"))
        };
        call.end(&mut progress, outcome);
    }

    /// The app raised `error`; `page` is the body of the 500 page (the report's). Said as WSGI
    /// says it: a disconnect ends quietly, a body past the limit is a 413, a body that ended
    /// early a 400, a timeout a 504, and an error after the head went out cuts the response.
    fn failed(&self, py: Python<'_>, error: &Bound<'_, PyAny>, page: &[u8]) {
        let call = &self.0;
        let mut progress = call.progress();
        let error = PyErr::from_value(error.clone());
        let outcome = if error.is_instance_of::<ClientDisconnected>(py) || progress.disconnected {
            Err(Error::io(ErrorKind::Disconnected, "the web server went away"))
        } else if error.is_instance_of::<RequestTimeout>(py) || progress.timed_out {
            Err(Error::io(ErrorKind::RequestTimedOut, "the request ran past its timeout"))
        } else if error.is_instance_of::<RequestTooLarge>(py) && !progress.head_sent {
            Err(Error::io(ErrorKind::BodyTooLarge, error.to_string()))
        } else if progress.head_sent {
            Err(io::Error::other("the app failed after its response began"))
        } else {
            let incomplete = error.is_instance_of::<RequestBodyIncomplete>(py).then(|| error.value(py).to_string());
            let data = failure_page(incomplete, page.to_vec());
            progress.head_sent = true;
            call.order(Order::Page(data));
            Ok(())
        };
        call.end(&mut progress, outcome);
    }

    /// The task was cancelled: at the request timeout (a 504 if nothing went out), because
    /// the web server went away, or by the server's stop.
    fn cancelled(&self) {
        let call = &self.0;
        let mut progress = call.progress();
        let outcome = if progress.timed_out {
            Err(Error::io(ErrorKind::RequestTimedOut, "the request ran past its timeout"))
        } else if progress.disconnected {
            Err(Error::io(ErrorKind::Disconnected, "the web server went away"))
        } else {
            Err(io::Error::other("the app's task was cancelled"))
        };
        call.end(&mut progress, outcome);
    }
}
