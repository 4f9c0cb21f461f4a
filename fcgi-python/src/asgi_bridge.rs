//! The way from the threads that take the requests and carry out their I/O (the taking thread,
//! porters, in CGI mode the thread holding the request) to the event-loop thread, which runs
//! the ASGI app: a queue of events and a socket the loop watches (`loop.add_reader`).
//!
//! Those threads never take the GIL to reach the loop (`call_soon_threadsafe` would: while
//! the loop runs Python, that waits up to the interpreter's switch interval, 5 ms). Each pushes
//! its event and, if the queue was empty, writes one byte; the loop, woken, takes every event
//! queued by then in one go, so that under load one wake-up serves many requests.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use pyo3::prelude::*;

use crate::asgi_call::{AsgiCall, Call};

/// What a thread tells the loop.
pub(crate) enum Event {
    /// A request to run: the loop starts the app's task for it.
    Begin(Arc<Call>),
    /// A read the app awaits has ended: a body chunk, `None` at the body's end, or an error.
    Read(Arc<Call>, io::Result<Option<Bytes>>),
    /// A write the app awaits has ended.
    Wrote(Arc<Call>, io::Result<()>),
    /// The web server aborted the request or went away while the app waits for `receive()`.
    Disconnected(Arc<Call>),
    /// The request ran past its timeout: the loop cancels its task.
    TimedOut(Arc<Call>),
}

/// The event queue and its wake-up socket, one per serving process (made after the fork).
pub(crate) struct Bridge {
    events: Mutex<Vec<Event>>,
    /// Watched by the loop.
    reader: UnixStream,
    writer: UnixStream,
    /// The loop's `create_future`.
    create_future: Py<PyAny>,
}

/// The loop's handle of the [`Bridge`].
#[pyclass(module = "fcgi_wsgi", frozen)]
pub struct EventBridge(pub(crate) Arc<Bridge>);

impl Bridge {
    /// A bridge with an empty queue, to the loop whose `create_future` is given.
    pub(crate) fn new(create_future: Py<PyAny>) -> io::Result<Arc<Self>> {
        let (reader, writer) = UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        Ok(Arc::new(Self { events: Mutex::new(Vec::new()), reader, writer, create_future }))
    }

    /// A new future of the loop.
    pub(crate) fn future<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.create_future.bind(py).call0()
    }

    fn events(&self) -> MutexGuard<'_, Vec<Event>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `event` for the loop, waking it if it may be asleep.
    pub(crate) fn post(&self, event: Event) {
        let was_empty = {
            let mut events = self.events();
            events.push(event);
            events.len() == 1
        };
        if was_empty {
            // A full socket means the loop has wake-ups waiting already: nothing is lost.
            let _ = (&self.writer).write(&[1]);
        }
    }
}

#[pymethods]
impl EventBridge {
    /// The descriptor the loop watches for reading.
    fn fileno(&self) -> i32 {
        self.0.reader.as_raw_fd()
    }

    /// Takes every queued event: a new request is handed to `begin(call)`, which starts its
    /// task; an ended read or write resolves the future its task awaits; a timeout cancels it.
    fn drain(&self, py: Python<'_>, begin: &Bound<'_, PyAny>) -> PyResult<()> {
        // The byte is read before the queue is taken: an event pushed after the take writes a
        // byte of its own, so the loop never sleeps on a queued event.
        while (&self.0.reader).read(&mut [0; 256]).is_ok_and(|n| n > 0) {}
        let events = std::mem::take(&mut *self.0.events());
        for event in events {
            // One event's failure is its request's: the others are still delivered.
            let delivered = match event {
                Event::Begin(call) => begin.call1((AsgiCall::from(call.clone()),)).map(drop).inspect_err(|e| {
                    call.not_started(e.to_string());
                }),
                Event::Read(call, chunk) => call.read_ended(py, chunk),
                Event::Wrote(call, written) => call.write_ended(py, written),
                Event::Disconnected(call) => call.disconnected(py),
                Event::TimedOut(call) => call.cancel_task(py),
            };
            if let Err(e) = delivered {
                e.print(py);
            }
        }
        Ok(())
    }
}
