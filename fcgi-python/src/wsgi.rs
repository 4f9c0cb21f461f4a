//! The handler that runs a WSGI app for each request, holding the GIL only while Python runs.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use fcgi_core::{Handler, Lifecycle, Request};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::environ;
use crate::environ::EnvironBase;
use crate::error::{failure_page, ClientDisconnected, RequestBodyIncomplete, RequestTimeout, RequestTooLarge};
use crate::live_request::{publish, LiveRequest};
use crate::param_strings::ParamStrings;
use crate::process::{self, ProcessHooks};
use crate::response::StartResponse;
use fcgi_core::runtime::is_disconnect;
use fcgi_core::{Error, ErrorKind};

/// A WSGI app and how to report its failures.
pub struct WsgiHandler {
    /// The app, once loaded.
    pub app: OnceLock<Py<PyAny>>,
    /// `loader() -> app`: imports the app in each worker process after the fork (gunicorn's
    /// default: nothing opened at import, such as a database connection, is shared by forks).
    pub loader: Option<Py<PyAny>>,
    /// `report(environ, exc) -> bytes`: logs a failure and returns the 500 page's body
    /// (the traceback in debug mode, a short message otherwise).
    pub report: Py<PyAny>,
    /// The server has a request timeout: app calls may be interrupted (`RequestTimeout`).
    pub interruptible: bool,
    /// `post_fork()` and `worker_exit()`: the program's hooks around each serving process.
    pub process_hooks: ProcessHooks,
    /// The last request's params as Python strings, for the next environ.
    pub strings: ParamStrings,
    /// What each environ starts as.
    pub environ_base: EnvironBase,
}

/// The threads (their `threading.get_ident()`) inside an app call now. Changed and read only
/// under the GIL, so that the watchdog interrupts a thread only while the request that timed
/// out is still in its app call, never the next request on the same thread.
static IN_APP: Mutex<Vec<u64>> = Mutex::new(Vec::new());

fn in_app() -> MutexGuard<'static, Vec<u64>> {
    IN_APP.lock().unwrap_or_else(|p| p.into_inner())
}

/// Raises `exception` (a class; null clears what is pending) in the Python thread `thread`,
/// at its next bytecode.
fn set_async_exception(_py: Python<'_>, thread: u64, exception: *mut pyo3::ffi::PyObject) {
    // SAFETY: called with the GIL held (the `Python` token); `exception` is null or a live
    // exception class. An unknown thread id is not an error: it sets nothing.
    unsafe { pyo3::ffi::PyThreadState_SetAsyncExc(thread as std::os::raw::c_long, exception) };
}

impl Handler for WsgiHandler {
    fn handle(&self, request: &mut Request<'_>) -> io::Result<()> {
        let (info, role) = (request.server_info(), request.role());
        let params = request.params().clone();
        publish(request, |live| Python::attach(|py| self.call(py, live, &params, role, info)))
    }
}

impl Lifecycle for WsgiHandler {
    /// Gives the worker thread one Python thread state for its whole life, instead of one per
    /// request: attaching to the interpreter is then only taking the GIL.
    fn run_thread(&self, work: &mut (dyn FnMut() + Send)) {
        Python::attach(|py| py.detach(work));
    }

    fn fork(&self) -> io::Result<i32> {
        process::fork()
    }

    /// The stack of the Python thread `thread` (its `threading.get_ident()`, which is its
    /// pthread_self), as `traceback.format_stack` prints it, taken without stopping it.
    fn stack_of(&self, thread: u64, _slot: usize) -> Option<String> {
        Python::attach(|py| -> PyResult<Option<String>> {
            let frames = py.import("sys")?.call_method0("_current_frames")?;
            let Some(frame) = frames.call_method1("get", (thread,)).ok().filter(|f| !f.is_none()) else {
                return Ok(None);
            };
            let lines = py.import("traceback")?.call_method1("format_stack", (frame,))?;
            Ok(Some(lines.extract::<Vec<String>>()?.concat()))
        })
        .unwrap_or_else(|e| Some(format!("(no stack: {e})")))
    }

    /// Raises `RequestTimeout` in the Python thread `thread` if it is still in the app call of
    /// the request that timed out.
    fn interrupt(&self, thread: u64, _slot: usize, still_running: &dyn Fn() -> bool) {
        Python::attach(|py| {
            if in_app().contains(&thread) && still_running() {
                set_async_exception(py, thread, py.get_type::<RequestTimeout>().as_ptr());
            }
        });
    }

    fn process_exit(&self) {
        Python::attach(|py| self.process_hooks.exited(py));
    }

    /// Runs the program's `post_fork` hook, then loads a lazily given app: in each worker
    /// process, or in the one process, once its privileges are dropped. The traceback is
    /// printed; the error stops serving (a worker process exits, and its supervisor starts
    /// another).
    fn before_serving(&self) -> io::Result<()> {
        Python::attach(|py| {
            self.process_hooks.started(py)?;
            self.load(py).map(drop).and_then(|()| crate::logging::recheck_access(py)).map_err(|e| {
                let message = format!("the app failed to load: {e}");
                e.print(py);
                io::Error::other(message)
            })
        })
    }
}

impl WsgiHandler {
    /// The app, loading it first if it is loaded lazily.
    fn load<'py>(&self, py: Python<'py>) -> PyResult<&Bound<'py, PyAny>> {
        if self.app.get().is_none() {
            let loader = self.loader.as_ref().expect("an app or a loader is given");
            let app = loader.bind(py).call0()?.unbind();
            let _ = self.app.set(app);
        }
        Ok(self.app.get().expect("loaded above").bind(py))
    }

    fn call(
        &self,
        py: Python<'_>,
        live: &Arc<LiveRequest>,
        params: &fcgi_core::Params,
        role: fcgi_core::Role,
        info: fcgi_core::ServerInfo,
    ) -> io::Result<()> {
        let environ = environ::build(py, &self.environ_base, &self.strings, params, role, info, live)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let start_response =
            Bound::new(py, StartResponse::new(live.clone())).map_err(|e| io::Error::other(e.to_string()))?;
        let thread = self.interruptible.then(fcgi_core::runtime::thread_ident);
        if let Some(thread) = thread {
            in_app().push(thread);
        }
        let outcome = match self.load(py).and_then(|app| app.call1((&environ, &start_response))) {
            Ok(result) => {
                let sent = send_body(py, start_response.get(), &result);
                // PEP 3333: close() is called however the iteration ended. Plain lists and tuples
                // have none: skip the lookup, whose miss costs an exception.
                let plain = result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>();
                let closed = if plain { Ok(()) } else { call_close(&result) };
                sent.and(closed)
            }
            Err(e) => Err(e),
        };
        if let Some(thread) = thread {
            in_app().retain(|t| *t != thread);
            // An interrupt that came as the app returned must not fire in the next request.
            set_async_exception(py, thread, std::ptr::null_mut());
        }
        match outcome {
            Ok(()) => Ok(()),
            Err(e) => self.fail(py, live, &environ, start_response.get(), e),
        }
    }

    /// Reports an app failure: a 500 page if no header went out yet (a 400 for a body that ended
    /// early: the web server's fault, or its client's), else only the log.
    fn fail(
        &self,
        py: Python<'_>,
        live: &Arc<LiveRequest>,
        environ: &Bound<'_, PyDict>,
        start_response: &StartResponse,
        error: PyErr,
    ) -> io::Result<()> {
        if error.is_instance_of::<ClientDisconnected>(py) {
            return Err(Error::io(ErrorKind::Disconnected, "the web server went away"));
        }
        if error.is_instance_of::<RequestTimeout>(py) {
            // Its traceback says where the app was; the core answers 504 if nothing went out.
            let _ = self.report.bind(py).call1((environ, error.value(py)));
            return Err(Error::io(ErrorKind::RequestTimedOut, "the request ran past its timeout"));
        }
        if error.is_instance_of::<RequestTooLarge>(py) && !start_response.headers_sent() {
            // The core answers 413 for a failed request whose body passed the limit.
            return Err(Error::io(ErrorKind::BodyTooLarge, error.to_string()));
        }
        let incomplete = error.is_instance_of::<RequestBodyIncomplete>(py).then(|| error.value(py).to_string());
        // `into_value` carries the traceback onto the exception object (before Python 3.12 the
        // bare value has no `__traceback__`, and the log would show only its last line).
        let body = match self.report.bind(py).call1((environ, error.into_value(py))) {
            Ok(body) => body.extract::<Vec<u8>>().unwrap_or_else(|_| b"Internal Server Error\n".to_vec()),
            Err(report_error) => {
                report_error.print(py);
                b"Internal Server Error\n".to_vec()
            }
        };
        if start_response.headers_sent() {
            // The response is cut short: the core closes the connection without END_REQUEST, so
            // the web server sees it end early (nginx leaves out a chunked body's last chunk).
            return Err(io::Error::other("the app failed after its response began"));
        }
        let page = failure_page(incomplete, body);
        let result = py.detach(|| {
            live.with(|request| {
                request.set_app_status(1);
                request.write_stdout(&page)
            })
        });
        match result {
            Err(e) if is_disconnect(&e) => Err(e),
            _ => Ok(()),
        }
    }
}

/// Calls the iterable's `close()`, if it has one.
fn call_close(result: &Bound<'_, PyAny>) -> PyResult<()> {
    if let Some(close) = result.getattr_opt(intern!(result.py(), "close"))? {
        close.call0()?;
    }
    Ok(())
}

/// Sends each chunk of the app's iterable. A list or tuple of one chunk gets a Content-Length.
fn send_body(py: Python<'_>, start_response: &StartResponse, result: &Bound<'_, PyAny>) -> PyResult<()> {
    let send = |chunk: Bound<'_, PyAny>| -> PyResult<()> {
        let chunk = chunk
            .cast_into::<PyBytes>()
            .map_err(|e| pyo3::exceptions::PyTypeError::new_err(format!("the app yielded {e}, not bytes")))?;
        if chunk.as_bytes().is_empty() {
            return Ok(());
        }
        start_response.send(py, chunk.as_bytes())
    };
    if let Ok(list) = result.cast_exact::<PyList>() {
        if list.len() == 1 {
            if let Ok(only) = list.get_item(0)?.cast::<PyBytes>() {
                start_response.set_content_length_if_absent(only.as_bytes().len());
            }
        }
        for chunk in list.iter() {
            send(chunk)?;
        }
    } else if let Ok(tuple) = result.cast_exact::<PyTuple>() {
        for chunk in tuple.iter() {
            send(chunk)?;
        }
    } else {
        for chunk in result.try_iter()? {
            send(chunk?)?;
        }
    }
    start_response.finish(py)
}
