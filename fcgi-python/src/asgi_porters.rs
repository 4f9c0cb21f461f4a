//! The threads that carry out what an ASGI request's task orders and the loop cannot do without
//! waiting: a read of a body not yet arrived, a write the socket cannot take now, an end that
//! would wait (a large rest to send, a body to drain). The loop hands such a request to a porter
//! and goes on; the porter does the I/O without the GIL, answers through the bridge, and lets
//! the request go once nothing is left to do.
//!
//! A porter that has let one request go takes the next waiting without sleeping, so under load
//! a few porters end many requests in a row, without a wake-up each. A porter blocked on a web
//! server that does not read holds up only its own request: the next one waiting gets an idle
//! porter, or a new one. Idle porters end after a while, and give their memory back.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::asgi_call::Call;

/// How long an idle porter waits for work before it ends.
const IDLE_FOR: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Waiting {
    calls: VecDeque<Arc<Call>>,
    /// Porters waiting for a call.
    idle: usize,
    /// Porters running.
    alive: usize,
}

/// The porters of one serving process (made after the fork).
#[derive(Default)]
pub(crate) struct Porters {
    waiting: Mutex<Waiting>,
    /// Signalled when a call is queued.
    queued: Condvar,
}

impl Porters {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn waiting(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands `call` to a porter: an idle one, or a new thread when every porter is busy.
    pub(crate) fn carry(self: &Arc<Self>, call: Arc<Call>) {
        let mut waiting = self.waiting();
        waiting.calls.push_back(call);
        if waiting.calls.len() <= waiting.idle {
            drop(waiting);
            self.queued.notify_one();
            return;
        }
        waiting.alive += 1;
        drop(waiting);
        let porters = self.clone();
        let spawned = std::thread::Builder::new().name("fcgi-asgi-io".into()).spawn(move || porters.work());
        if let Err(e) = spawned {
            self.waiting().alive -= 1;
            // The call stays queued for the next porter to come free.
            log::error!("cannot start a thread for an ASGI request's I/O: {e}");
        }
    }

    /// A porter's life: carries the calls queued, one after the other, until none has come
    /// for [`IDLE_FOR`].
    fn work(&self) {
        while let Some(call) = self.next() {
            // A panic ends its request (a 500, or the response cut short), not the porter:
            // a request never ended would hold its place among those in flight for ever.
            let carried = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call.carry()));
            if carried.is_err() {
                call.abandon();
            }
        }
        let mut waiting = self.waiting();
        waiting.alive -= 1;
        let last = waiting.alive == 0;
        drop(waiting);
        if last {
            // The porters of a burst (a flood of slow bodies) have ended: what their arenas
            // hold goes back (once: the trim takes every arena's lock in turn).
            fcgi_core::runtime::give_back_memory();
        }
    }

    /// The next call to carry, waiting for one up to [`IDLE_FOR`].
    fn next(&self) -> Option<Arc<Call>> {
        let mut waiting = self.waiting();
        loop {
            if let Some(call) = waiting.calls.pop_front() {
                return Some(call);
            }
            waiting.idle += 1;
            let (guard, wait) = self.queued.wait_timeout(waiting, IDLE_FOR).unwrap_or_else(|p| p.into_inner());
            waiting = guard;
            waiting.idle -= 1;
            if wait.timed_out() && waiting.calls.is_empty() {
                return None;
            }
        }
    }
}
