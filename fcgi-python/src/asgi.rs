//! The handler that runs an ASGI app: it takes each request whole from the core (one thread per
//! process takes them) and hands it to the process's event-loop thread, where the app's task
//! runs. What needs no wait the loop does at once, the usual request's end included (a response
//! that fits the socket, after the body's end); what must wait, porters do without the GIL
//! (`asgi_porters.rs`).
//!
//! The taking thread waits while `max_concurrency` requests are in flight: the requests beyond
//! wait as WSGI's wait for a worker (in the listener's backlog, or queued by the front desk,
//! which keeps answering the status page). Everything else the core does for WSGI (limits,
//! timeouts, processes, status, access log, signals, reload) applies unchanged. In CGI mode the
//! one request is held by the thread that serves it, which carries out its I/O itself.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use fcgi_core::{Handler, Lifecycle, Request};
use pyo3::prelude::*;

use crate::asgi_bridge::{Bridge, Event, EventBridge};
use crate::asgi_call::Call;
use crate::asgi_porters::Porters;
use crate::live_request::{publish, LiveRequest};
use crate::process::{self, ProcessHooks};

/// This process's way to its loop, once started (after the fork: each worker process has its
/// own loop).
#[derive(Clone)]
struct Started {
    bridge: Arc<Bridge>,
    porters: Arc<Porters>,
}

/// The requests taken and not ended yet.
#[derive(Default)]
struct InFlight {
    count: usize,
    /// Requests taken so far: each one's number tells its entry in `by_slot` from a later
    /// request's on the same slot (a slot is free again once its request has finished, which
    /// may be before the entry goes).
    taken: u64,
    /// By their slot on the scoreboard (what the watchdog names): each with its number.
    by_slot: HashMap<usize, (u64, Arc<Call>)>,
}

/// An ASGI app and the event loop that runs it.
pub struct AsgiHandler {
    /// `fcgi_wsgi._asgi.Runner`: starts the loop thread and the lifespan, starts a task per
    /// request, and stops them.
    pub runner: Py<PyAny>,
    /// `post_fork()` and `worker_exit()`.
    pub process_hooks: ProcessHooks,
    started: Mutex<Option<Started>>,
    in_flight: Arc<(Mutex<InFlight>, Condvar)>,
}

impl AsgiHandler {
    /// A handler for `runner`'s app.
    pub fn new(runner: Py<PyAny>, process_hooks: ProcessHooks) -> Self {
        Self { runner, process_hooks, started: Mutex::new(None), in_flight: Arc::default() }
    }

    fn in_flight(&self) -> MutexGuard<'_, InFlight> {
        lock_in_flight(&self.in_flight.0)
    }

    /// This process's bridge and porters, starting the loop (and the lifespan) if it has not
    /// started: in CGI mode the one request starts it.
    fn started(&self) -> io::Result<Started> {
        let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(started) = started.as_ref() {
            return Ok(started.clone());
        }
        let bridge = Python::attach(|py| -> PyResult<Arc<Bridge>> {
            let event_loop = self.runner.bind(py).call_method0("start")?;
            let bridge = Bridge::new(event_loop.getattr("create_future")?.unbind())?;
            self.runner.bind(py).call_method1("serve", (EventBridge(bridge.clone()),))?;
            Ok(bridge)
        })
        .map_err(|e| io::Error::other(format!("the ASGI app did not start: {e}")))?;
        let now = Started { bridge, porters: Porters::new() };
        *started = Some(now.clone());
        Ok(now)
    }

    /// The call of the request on scoreboard slot `slot`, if one is in flight there.
    fn call_on(&self, slot: usize) -> Option<Arc<Call>> {
        self.in_flight().by_slot.get(&slot).map(|(_, call)| call.clone())
    }
}

fn lock_in_flight(in_flight: &Mutex<InFlight>) -> MutexGuard<'_, InFlight> {
    in_flight.lock().unwrap_or_else(|p| p.into_inner())
}

impl Handler for AsgiHandler {
    fn takes_requests(&self) -> bool {
        true
    }

    /// Hands `request` to the loop, then waits while `max_concurrency` requests are in flight.
    fn take(&self, request: Request<'static>) {
        let Started { bridge, porters } = match self.started() {
            Ok(started) => started,
            Err(e) => return request.finish(Err(e)),
        };
        let most = request.server_info().workers.max(1);
        let (params, role, slot) = (request.params().clone(), request.role(), request.slot());
        let number = {
            let mut state = self.in_flight();
            state.taken += 1;
            state.taken
        };
        let in_flight = self.in_flight.clone();
        let on_end = Box::new(move || {
            let (state, room) = &*in_flight;
            let mut state = lock_in_flight(state);
            if let Some(slot) = slot {
                if state.by_slot.get(&slot).is_some_and(|(on_slot, _)| *on_slot == number) {
                    state.by_slot.remove(&slot);
                }
            }
            // Only a count at the bound can have the taking thread waiting.
            let was = state.count;
            state.count -= 1;
            if was >= most {
                room.notify_one();
            }
        });
        let call = Call::taken(LiveRequest::own(request), bridge.clone(), porters, params, role, on_end);
        let mut state = self.in_flight();
        state.count += 1;
        if let Some(slot) = slot {
            state.by_slot.insert(slot, (number, call.clone()));
        }
        drop(state);
        bridge.post(Event::Begin(call));
        let mut state = self.in_flight();
        while state.count >= most {
            // Until a request ends: each has the request timeout, if the server has one.
            state = self.in_flight.1.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// CGI mode: the one request, whose I/O this thread carries out.
    fn handle(&self, request: &mut Request<'_>) -> io::Result<()> {
        let Started { bridge, .. } = self.started()?;
        let (params, role) = (request.params().clone(), request.role());
        publish(request, |live| {
            let call = Call::held(live.clone(), bridge.clone(), params, role);
            bridge.post(Event::Begin(call.clone()));
            call.serve()
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
        self.started()?;
        // The app, loaded now, may have given the access logger handlers.
        Python::attach(|py| crate::logging::recheck_access(py).map_err(|e| io::Error::other(e.to_string())))
    }

    /// Runs the lifespan's shutdown and stops the loop, then `worker_exit`.
    fn process_exit(&self) {
        Python::attach(|py| {
            if self.started.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                if let Err(e) = self.runner.bind(py).call_method0("stop") {
                    e.print(py);
                }
            }
            self.process_hooks.exited(py);
        });
    }

    /// The stack of the task serving the request on scoreboard slot `slot`.
    fn stack_of(&self, _thread: u64, slot: usize) -> Option<String> {
        let call = self.call_on(slot)?;
        Python::attach(|py| -> PyResult<Option<String>> {
            let Some(task) = call.task(py) else { return Ok(None) };
            self.runner.bind(py).call_method1("stack_of", (task,))?.extract()
        })
        .unwrap_or_else(|e| Some(format!("(no stack: {e})")))
    }

    /// Cancels the task of the request on scoreboard slot `slot`, if it still runs: the app
    /// sees `asyncio.CancelledError` at its next await, and the client gets a 504 if nothing
    /// was sent.
    fn interrupt(&self, _thread: u64, slot: usize, still_running: &dyn Fn() -> bool) {
        // Asked under the lock a later request's entry needs: while the request that timed out
        // still holds its slot, the entry on it is its own.
        let state = self.in_flight();
        if !still_running() {
            return;
        }
        let call = state.by_slot.get(&slot).map(|(_, call)| call.clone());
        drop(state);
        if let Some(call) = call {
            call.time_out();
        }
    }
}
