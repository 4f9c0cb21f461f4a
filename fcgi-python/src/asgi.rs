//! The handler that runs an ASGI app: the core's worker threads take the requests as for WSGI,
//! and each hands its request to the process's event-loop thread, where the app's task runs,
//! then does the I/O the task orders, without the GIL, until the task is done.
//!
//! A request therefore holds a worker thread while it runs, parked in a condition variable when
//! it does no I/O: the worker threads (`max_concurrency` of them) bound the requests in flight,
//! and the requests beyond wait for one, as WSGI's do (in the listener's backlog, or queued by
//! the front desk, which keeps answering the status page). The worker threads never take the
//! GIL; the loop thread runs all the Python. Everything else the core does for WSGI (limits,
//! timeouts, processes, status, access log, signals, reload) applies unchanged.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use fcgi_core::{Handler, Lifecycle, Request};
use pyo3::prelude::*;

use crate::asgi_bridge::{Bridge, Event, EventBridge};
use crate::asgi_call::Call;
use crate::live_request::publish;
use crate::process::{self, ProcessHooks};

/// An ASGI app and the event loop that runs it.
pub struct AsgiHandler {
    /// `fcgi_wsgi._asgi.Runner`: starts the loop thread and the lifespan, starts a task per
    /// request, and stops them.
    pub runner: Py<PyAny>,
    /// `post_fork()` and `worker_exit()`.
    pub process_hooks: ProcessHooks,
    /// This process's bridge to its loop, once started (after the fork: each worker process
    /// has its own loop).
    bridge: Mutex<Option<Arc<Bridge>>>,
    /// The requests in flight, by the worker thread (pthread_self) holding each.
    running: Mutex<HashMap<u64, Arc<Call>>>,
}

impl AsgiHandler {
    /// A handler for `runner`'s app.
    pub fn new(runner: Py<PyAny>, process_hooks: ProcessHooks) -> Self {
        Self { runner, process_hooks, bridge: Mutex::new(None), running: Mutex::new(HashMap::new()) }
    }

    fn running(&self) -> MutexGuard<'_, HashMap<u64, Arc<Call>>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This process's bridge, starting the loop (and the lifespan) if it has not started: in
    /// CGI mode the one request starts it.
    fn bridge(&self) -> io::Result<Arc<Bridge>> {
        let mut bridge = self.bridge.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bridge) = bridge.as_ref() {
            return Ok(bridge.clone());
        }
        let started = Python::attach(|py| -> PyResult<Arc<Bridge>> {
            let event_loop = self.runner.bind(py).call_method0("start")?;
            let started = Bridge::new(event_loop.getattr("create_future")?.unbind())?;
            self.runner.bind(py).call_method1("serve", (EventBridge(started.clone()),))?;
            Ok(started)
        })
        .map_err(|e| io::Error::other(format!("the ASGI app did not start: {e}")))?;
        *bridge = Some(started.clone());
        Ok(started)
    }
}

impl Handler for AsgiHandler {
    fn handle(&self, request: &mut Request<'_>) -> io::Result<()> {
        let bridge = self.bridge()?;
        let (params, role) = (request.params().clone(), request.role());
        publish(request, |live| {
            let call = Call::new(live.clone(), bridge.clone(), params, role);
            let thread = fcgi_core::runtime::thread_ident();
            self.running().insert(thread, call.clone());
            bridge.post(Event::Begin(call.clone()));
            let outcome = call.serve();
            self.running().remove(&thread);
            outcome
        })
    }
}

impl Lifecycle for AsgiHandler {
    fn fork(&self) -> io::Result<i32> {
        process::fork()
    }

    /// Runs the program's `post_fork` hook, then starts this process's loop: the app is loaded
    /// (if given lazily) and its lifespan started; a failure stops the server.
    fn before_serving(&self) -> io::Result<()> {
        Python::attach(|py| self.process_hooks.started(py))?;
        self.bridge()?;
        // The app, loaded now, may have given the access logger handlers.
        Python::attach(|py| crate::logging::recheck_access(py).map_err(|e| io::Error::other(e.to_string())))
    }

    /// Runs the lifespan's shutdown and stops the loop, then `worker_exit`.
    fn process_exit(&self) {
        Python::attach(|py| {
            if self.bridge.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                if let Err(e) = self.runner.bind(py).call_method0("stop") {
                    e.print(py);
                }
            }
            self.process_hooks.exited(py);
        });
    }

    /// The stack of the task serving the request on worker thread `thread`.
    fn stack_of(&self, thread: u64) -> Option<String> {
        let call = self.running().get(&thread).cloned()?;
        Python::attach(|py| -> PyResult<Option<String>> {
            let Some(task) = call.task(py) else { return Ok(None) };
            self.runner.bind(py).call_method1("stack_of", (task,))?.extract()
        })
        .unwrap_or_else(|e| Some(format!("(no stack: {e})")))
    }

    /// Cancels the task of the request on worker thread `thread`: the app sees
    /// `asyncio.CancelledError` at its next await, and the client gets a 504 if nothing was sent.
    fn interrupt(&self, thread: u64, _still_running: &dyn Fn() -> bool) {
        if let Some(call) = self.running().get(&thread) {
            call.time_out();
        }
    }
}
