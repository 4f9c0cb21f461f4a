//! The requests the program holds: each lives in a [`Slot`] shared (an `Arc` each) by its
//! `fcgi_request` handle and by the server's [`Held`] registry, which is itself shared by the
//! server and every handle. So a handle that outlives `fcgi_server_close` still points to live
//! memory: close never frees a handle, it only waits for the requests to be given back, then
//! ends those still held ([`State::Closed`]: a tombstone), and their handle's later calls
//! return `FCGI_ERR_CLOSED` until `fcgi_request_finish` frees it.
//!
//! A call on a request takes it out of its slot for the call ([`Slot::borrow`]), so the slot's
//! lock is never held while a call blocks on the web server: close can always look at a slot.

use std::collections::HashMap;
use std::io;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use fcgi_core::Request;

use crate::fcgi_result::{self, FCGI_ERR_CLOSED};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The requests a server has lent to the program and not had back.
#[derive(Default)]
pub(crate) struct Held {
    slots: Mutex<Slots>,
    /// Rung when a request is given back while close waits on it.
    given_back: Condvar,
}

#[derive(Default)]
struct Slots {
    by_id: HashMap<u64, Arc<Slot>>,
    next_id: u64,
    /// Threads in [`Held::wait`]: without one, giving back rings nothing (a notify is a
    /// syscall even with no waiter, one per request).
    waiters: usize,
}

impl Held {
    /// Lends `request` to the program: its slot, which the handle keeps.
    pub(crate) fn lend(&self, request: Request<'static>) -> Arc<Slot> {
        let mut slots = lock(&self.slots);
        let id = slots.next_id;
        slots.next_id += 1;
        let slot = Arc::new(Slot { id, state: Mutex::new(State::Idle(request)) });
        slots.by_id.insert(id, slot.clone());
        slot
    }

    /// The program is done with `slot` (`fcgi_request_finish`).
    pub(crate) fn give_back(&self, slot: &Slot) {
        let mut slots = lock(&self.slots);
        slots.by_id.remove(&slot.id);
        if slots.waiters > 0 {
            self.given_back.notify_all();
        }
    }

    /// Waits until every request lent has been given back, or `deadline`; how many are
    /// still held.
    pub(crate) fn wait(&self, deadline: Instant) -> usize {
        let mut slots = lock(&self.slots);
        slots.waiters += 1;
        loop {
            let now = Instant::now();
            if slots.by_id.is_empty() || now >= deadline {
                slots.waiters -= 1;
                return slots.by_id.len();
            }
            slots = self.given_back.wait_timeout(slots, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Ends every request still held (the server is closing): each slot becomes a tombstone.
    /// A request in the middle of a call is ended by that call on its way out.
    pub(crate) fn close(&self) {
        let slots: Vec<Arc<Slot>> = lock(&self.slots).by_id.drain().map(|(_, slot)| slot).collect();
        for slot in slots {
            slot.close();
        }
    }
}

/// Where one lent request lives between calls.
pub(crate) struct Slot {
    id: u64,
    state: Mutex<State>,
}

// One State lives in each slot's own allocation and moves between variants in place: boxing
// the request would cost an allocation per request and save nothing.
#[allow(clippy::large_enum_variant)]
enum State {
    /// Held by the program, between calls.
    Idle(Request<'static>),
    /// A call has it on the program's thread; `closing` once close came in the meantime, so the
    /// call ends it instead of putting it back.
    InCall { closing: bool },
    /// Ended by `fcgi_server_close`: a tombstone until `fcgi_request_finish`.
    Closed,
    /// Ended by `fcgi_request_finish`.
    Finished,
}

impl Slot {
    /// The request, for one call; `Err(FCGI_ERR_CLOSED)` once close has ended it.
    pub(crate) fn borrow(&self) -> Result<Borrowed<'_>, fcgi_result> {
        let mut state = lock(&self.state);
        match std::mem::replace(&mut *state, State::InCall { closing: false }) {
            State::Idle(request) => Ok(Borrowed { slot: self, request: Some(request) }),
            other => {
                *state = other;
                Err(FCGI_ERR_CLOSED)
            }
        }
    }

    /// Whether close has ended the request.
    pub(crate) fn is_closed(&self) -> bool {
        matches!(*lock(&self.state), State::Closed)
    }

    /// Takes the request for good (`fcgi_request_finish`); `None` if close ended it.
    pub(crate) fn take(&self) -> Option<Request<'static>> {
        match std::mem::replace(&mut *lock(&self.state), State::Finished) {
            State::Idle(request) => Some(request),
            // One thread uses a handle at a time, so finish never meets a call in progress.
            State::InCall { .. } | State::Closed | State::Finished => None,
        }
    }

    /// Ends the request for close, unless a call has it (then that call ends it) or it has
    /// ended already.
    fn close(&self) {
        let mut state = lock(&self.state);
        let request = match &mut *state {
            State::InCall { closing } => {
                *closing = true;
                return;
            }
            State::Closed | State::Finished => return,
            State::Idle(_) => match std::mem::replace(&mut *state, State::Closed) {
                State::Idle(request) => request,
                _ => unreachable!("matched Idle above"),
            },
        };
        drop(state);
        end_closed(request);
    }
}

/// Ends a request the program still held when the server closed: a log line, a 500 page if
/// nothing was written yet, app status 1, END_REQUEST.
fn end_closed(request: Request<'static>) {
    request.finish(Err(io::Error::other("fcgi_server_close ended a request the program still held")));
}

/// A request taken out of its slot for one call; put back (or, if close came meanwhile,
/// ended) when dropped, a panic included.
pub(crate) struct Borrowed<'a> {
    slot: &'a Slot,
    request: Option<Request<'static>>,
}

impl Deref for Borrowed<'_> {
    type Target = Request<'static>;

    fn deref(&self) -> &Self::Target {
        self.request.as_ref().expect("present until dropped")
    }
}

impl DerefMut for Borrowed<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.request.as_mut().expect("present until dropped")
    }
}

impl Drop for Borrowed<'_> {
    fn drop(&mut self) {
        let Some(request) = self.request.take() else { return };
        let mut state = lock(&self.slot.state);
        if matches!(*state, State::InCall { closing: false }) {
            *state = State::Idle(request);
            return;
        }
        *state = State::Closed;
        drop(state);
        end_closed(request);
    }
}
