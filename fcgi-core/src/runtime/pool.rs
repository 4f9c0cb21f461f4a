//! Where the threads that serve one listener meet. [`Pool::next`] gives the next request to
//! whichever thread asks: a worker of `Server::serve`, or a thread of the program's own that
//! accepts requests (`Acceptor`, the C API). There is no dispatcher: the asking thread waits on
//! the epoll set itself (the listener with EPOLLEXCLUSIVE, parked kept-alive connections
//! one-shot) and reads the connection it is woken for up to its request, so a request costs no
//! hand-off between threads.
//!
//! One thread listens at a time; the others stand by. Waking a sleeping thread per request
//! costs more than the request (a context switch, cold caches): with four workers all listening,
//! a hello request cost 9.5 us of CPU against 6.5 us with one. So a thread that is done goes
//! back to listening only if nobody listens, and otherwise stands by; whenever the listener
//! leaves the epoll set to serve, an alarm is set: if nobody listens when it goes off (the
//! server is busy, or a request is slow), a standing-by thread comes in to listen. Short
//! requests thus run on one thread without hand-offs, and slow ones still run side by side,
//! each new one waiting at most the alarm's delay for a free thread. The worker processes of a
//! pre-fork pool share this standby (`duty.rs`).

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::connection::{log_rate_limited, FcgiConnection, Opened};
use super::context::Context;
use super::duty::{Alarms, Duty};
use super::front_desk::FrontDesk;
use super::heap;
use super::listener::Listener;
use super::poller::{Bell, Poller, Token};
use super::request::Request;

/// The longest time between two sweeps of the parked connections.
const SWEEP_AT_MOST_EVERY: Duration = Duration::from_millis(100);

/// Connections a thread accepts one after the other before it waits in epoll again.
const ACCEPT_RUN: usize = 16;

/// A thread whose last request took at least this long and that finds another connection
/// waiting calls a standing-by thread in at once, rather than after the alarm's delay: waking
/// one costs a few µs of CPU, a small part of such requests, and a thread or process otherwise
/// idle serves the connections waiting behind it (the second core of a Python app that runs
/// `processes 2`). Shorter requests run in series on the listening thread.
const LONG_ENOUGH_TO_SHARE: Duration = Duration::from_micros(100);

/// Parked connections past which, once most have gone, the pool gives their memory back.
const FLOOD_PARKED: usize = 256;

/// How long, from the stop, the connections taken then may take to send their requests.
const DRAIN_REQUEST_WAIT: Duration = Duration::from_secs(1);

/// Connections taken from the listener's queue when the server stops.
const DRAIN_AT_MOST: usize = 1024;

/// How often the front desk looks whether every worker is busy (and samples the accept queue),
/// and the longest it listens at a time.
const FRONT_DESK_NAP: Duration = Duration::from_millis(50);

/// Connections over the connection limit that may wait in the poller for their request (to
/// answer it OVERLOADED) at once: a new one closes the oldest, so a flood of silent connections
/// holds no more descriptors than this beyond the limit, and a web server's connection, which
/// sends its request at once, is still answered.
const REFUSED_PARKED_MAX: usize = 32;

/// Connections waiting in the poller (kept-alive ones, and new ones whose request has not come
/// yet), with the time each started waiting.
type Parked = Mutex<HashMap<RawFd, (FcgiConnection, Instant)>>;

thread_local! {
    /// When the calling thread was given its last request, until it asks for the next.
    static DELIVERED: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// What [`Pool::next_or_interrupted`] came to.
// Moved out at once into `Accepted` or an `Option`: boxing the request would cost an
// allocation per request.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Next {
    Request(Request<'static>),
    /// The server stopped and nothing is left.
    Stopped,
    /// A signal handler ran on the waiting thread.
    Interrupted,
}

/// A signal handler ran on the thread while it waited.
struct Interrupted;

/// Work that is ready without waiting on a socket.
enum Ready {
    /// A request of a multiplexed connection, offered by its reader.
    Request(Request<'static>),
    /// A request the front desk read while every worker was busy.
    Waiting(Request<'static>),
    /// A kept connection whose next request has already been read (in part).
    Connection(FcgiConnection),
}

/// What the threads serving one listener share.
pub(crate) struct Pool {
    ctx: Context,
    listener: Arc<Listener>,
    /// The epoll set one thread listens on: the listener, the wake-up socket, the bell and
    /// parked connections.
    poller: Poller,
    parked: Parked,
    /// The parked connections over the connection limit, oldest first, with when they were
    /// parked (a descriptor number may be reused: the time tells the same connection).
    refused: Mutex<VecDeque<(RawFd, Instant)>>,
    last_sweep: Mutex<Instant>,
    sweep_every: Duration,
    /// Who listens (threads waiting in `poller`), here and in the other processes of a pool.
    duty: Duty,
    /// Where the other threads wait: the alarm (one thread at a time) and the wake-up socket.
    standby: Poller,
    /// More than one thread may ask, or other processes share the listener: the standby applies.
    several: bool,
    ready: Mutex<VecDeque<Ready>>,
    /// Rung when work is queued in `ready`.
    bell: Bell,
    /// Readers of multiplexed connections still running (they may offer more requests).
    readers: AtomicUsize,
    /// Accepts left in the current run (see [`ACCEPT_RUN`]).
    accept_run: AtomicUsize,
    /// From the stop on: the connections still to serve.
    draining: Mutex<Option<VecDeque<FcgiConnection>>>,
    /// The pages the server answers itself (status, ping), if any.
    desk: Option<FrontDesk>,
    /// Read end of the wake-up socket, written once at the stop and never drained, so that it
    /// wakes every waiting thread (kept open here).
    _wake: UnixStream,
}

impl Pool {
    /// A pool serving `listener`; `wake` is the read end of the server's wake-up socket,
    /// `several` says whether more than one thread (of this process or another sharing the
    /// listener) will ask for requests, and `alarms` are the server's standby alarms.
    pub(crate) fn new(
        ctx: Context,
        listener: Arc<Listener>,
        wake: UnixStream,
        several: bool,
        alarms: Arc<Alarms>,
    ) -> io::Result<Arc<Self>> {
        listener.set_nonblocking(true)?;
        let poller = Poller::new()?;
        poller.add_exclusive(listener.as_raw_fd(), Token::Listener)?;
        poller.add(wake.as_raw_fd(), Token::Wake)?;
        let bell = Bell::new()?;
        poller.add(bell.as_raw_fd(), Token::Bell)?;
        let standby = Poller::new()?;
        let duty = Duty::new(ctx.stats.scoreboard().clone(), ctx.stats.process_index(), alarms, ctx.info.workers);
        standby.add_exclusive(duty.alarm().as_raw_fd(), Token::Alarm)?;
        standby.add(wake.as_raw_fd(), Token::Wake)?;
        // Parked connections are swept a few times per idle timeout.
        let sweep_every = ctx
            .config
            .idle_timeout
            .map_or(SWEEP_AT_MOST_EVERY, |t| t / 4)
            .clamp(Duration::from_millis(10), SWEEP_AT_MOST_EVERY);
        let desk = FrontDesk::new(&ctx.config, listener.as_raw_fd());
        Ok(Arc::new(Self {
            desk,
            ctx,
            listener,
            poller,
            parked: Mutex::new(HashMap::new()),
            refused: Mutex::new(VecDeque::new()),
            last_sweep: Mutex::new(Instant::now()),
            sweep_every,
            duty,
            standby,
            several,
            ready: Mutex::new(VecDeque::new()),
            bell,
            readers: AtomicUsize::new(0),
            accept_run: AtomicUsize::new(0),
            draining: Mutex::new(None),
            _wake: wake,
        }))
    }

    pub(crate) fn context(&self) -> &Context {
        &self.ctx
    }

    /// The next request, waiting as long as it takes; `None` once the server has stopped and
    /// everything that was under way when it did has been served.
    pub(crate) fn next(self: &Arc<Self>) -> Option<Request<'static>> {
        match self.next_or_interrupted(false) {
            Next::Request(request) => Some(request),
            Next::Stopped | Next::Interrupted => None,
        }
    }

    /// [`next`](Self::next); if `interruptible`, a signal handler that runs on this thread
    /// while it waits (in epoll_wait or poll: not while it reads a connection up to its
    /// request) makes it return [`Next::Interrupted`].
    pub(crate) fn next_or_interrupted(self: &Arc<Self>, interruptible: bool) -> Next {
        let served_long = DELIVERED.take().is_some_and(|at| at.elapsed() >= LONG_ENOUGH_TO_SHARE);
        loop {
            if let Some(ready) = self.take_queued(served_long) {
                let request = match ready {
                    Ready::Request(mut request) => request.claim().then_some(request),
                    Ready::Waiting(request) => {
                        self.ctx.stats.waiting(false);
                        Some(request)
                    }
                    Ready::Connection(conn) => self.open(conn),
                };
                match request.and_then(|request| self.deliver(request)) {
                    Some(next) => return next,
                    None => continue,
                }
            }
            if self.ctx.is_stopping() {
                if let Some(next) = self.next_draining().and_then(|request| self.deliver(request)) {
                    return next;
                }
                if self.readers.load(Ordering::SeqCst) == 0 && lock(&self.ready).is_empty() {
                    return Next::Stopped;
                }
                // A multiplexed connection may still offer a request.
                if !self.bell.wait(self.sweep_every) && interruptible {
                    return Next::Interrupted;
                }
                continue;
            }
            // Under load more connections wait in the backlog: taking them straight away saves
            // a trip through epoll (and a sleep and a wake-up) for each. A bounded run, so that
            // parked connections get their turn.
            let mut caught_up = false;
            if self.accept_run.load(Ordering::Relaxed) > 0 {
                self.accept_run.fetch_sub(1, Ordering::Relaxed);
                match self.accept() {
                    Some(conn) => {
                        self.going_to_serve(served_long);
                        match self.open(conn).and_then(|request| self.deliver(request)) {
                            Some(next) => return next,
                            None => continue,
                        }
                    }
                    None => {
                        self.accept_run.store(0, Ordering::Relaxed);
                        caught_up = true;
                    }
                }
            }
            if self.several && self.stands_by() {
                if self.stand_by().is_err() && interruptible {
                    return Next::Interrupted;
                }
                continue;
            }
            let listened = self.listen(caught_up, served_long);
            if listened.is_err() && interruptible {
                return Next::Interrupted;
            }
            let conn = match listened.unwrap_or(None) {
                Some(Token::Listener) => match self.accept() {
                    Some(conn) => {
                        self.accept_run.store(ACCEPT_RUN, Ordering::Relaxed);
                        conn
                    }
                    None => continue,
                },
                Some(Token::Connection(fd)) => match lock(&self.parked).remove(&fd) {
                    Some((conn, _)) => conn,
                    None => continue,
                },
                Some(Token::Bell) => {
                    self.bell.clear();
                    continue;
                }
                Some(Token::Wake | Token::Alarm) | None => continue,
            };
            if let Some(next) = self.open(conn).and_then(|request| self.deliver(request)) {
                return next;
            }
        }
    }

    /// Hands `request` to the calling thread, which serves it from now on (on its slot of the
    /// scoreboard); `None` if the front desk answered it instead.
    fn deliver(&self, mut request: Request<'static>) -> Option<Next> {
        if self.desk.as_ref().is_some_and(|desk| desk.answers(&mut request, &self.ctx)) {
            return None;
        }
        request.take_seat(&self.ctx);
        DELIVERED.set(Some(Instant::now()));
        Some(Next::Request(request))
    }

    /// Whether the server answers pages itself (a thread then keeps the front desk).
    pub(crate) fn has_front_desk(&self) -> bool {
        self.desk.is_some()
    }

    /// One round of the front desk, if the server has one (false when it has not, or at the
    /// stop): if every worker of every process is busy, listens in their place for a moment,
    /// answers the desk's pages and queues any other request for the next free worker;
    /// otherwise naps. Either way, samples the listener's accept queue.
    pub(crate) fn front_desk_round(self: &Arc<Self>) -> bool {
        let Some(desk) = &self.desk else { return false };
        if self.ctx.is_stopping() {
            return false;
        }
        let board = self.ctx.stats.scoreboard();
        // Sampled every round, for the status page's longest queue.
        desk.measure(board);
        let capacity = self.ctx.info.workers as u64 * board.running_processes() as u64;
        // A request queued here waits for a worker of this process: not behind one stuck past
        // the request timeout, nor while a dynamic pool can still grow (another process will
        // take it from the listener).
        let stuck = board.has_timed_out_request(self.ctx.stats.process_index());
        let can_grow = board.running_processes() < self.ctx.config.max_processes;
        if stuck || can_grow || board.sum(|block| &block.active) < capacity {
            std::thread::sleep(FRONT_DESK_NAP);
            return true;
        }
        let conn = match self.poller.wait_one(Some(FRONT_DESK_NAP)) {
            Ok(Some(Token::Listener)) => self.accept(),
            Ok(Some(Token::Connection(fd))) => lock(&self.parked).remove(&fd).map(|(conn, _)| conn),
            Ok(Some(Token::Bell)) => {
                // Work queued for the workers, none of whom listens: each looks at the queue
                // before it listens again.
                self.bell.clear();
                None
            }
            Ok(_) => None,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => None,
            Err(e) => {
                log::error!("front desk: {e}");
                std::thread::sleep(FRONT_DESK_NAP);
                None
            }
        };
        let Some(conn) = conn else { return true };
        // Whatever it leaves (a parked connection, a queued request) needs a thread of this
        // process listening, and they may all stand by for another process's.
        if let Some(mut request) = self.open(conn) {
            if desk.answers(&mut request, &self.ctx) {
                return true;
            }
            self.ctx.stats.waiting(true);
            self.queue(Ready::Waiting(request));
        }
        if self.several {
            self.duty.call_in_here_now();
        }
        true
    }

    /// Whether the calling thread stands by rather than listen: another thread of this process
    /// listens, or one of another process sharing the listener does and this process has
    /// nothing of its own to watch.
    fn stands_by(&self) -> bool {
        self.duty.listening_here() > 0 || (self.duty.others_listen() && !self.has_own_work())
    }

    /// Whether something only a thread of this process can see may come: a parked connection's
    /// next request, a request of a multiplexed connection.
    fn has_own_work(&self) -> bool {
        self.readers.load(Ordering::SeqCst) > 0 || !lock(&self.parked).is_empty()
    }

    /// Waits in the epoll set for one ready thing; sets an alarm when this thread was the last
    /// one of its process listening: to go off at once if its last request was a long one
    /// (`served_long`, see [`LONG_ENOUGH_TO_SHARE`]). `caught_up`: the thread found the backlog
    /// empty, so the alarms set for want of a listener are disarmed (see `duty.rs`).
    fn listen(&self, caught_up: bool, served_long: bool) -> Result<Option<Token>, Interrupted> {
        self.duty.start_listening();
        if caught_up && self.several {
            self.duty.caught_up();
        }
        let ready = self.poller.wait_one(Some(self.sweep_every));
        if self.duty.stop_listening() && self.several {
            self.duty.call_in(self.has_own_work(), self.ctx.is_stopping(), served_long);
        }
        self.sweep_idle();
        match ready {
            Ok(token) => Ok(token),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(Interrupted),
            Err(e) => {
                // Cannot happen with a valid epoll set; stop rather than spin.
                log::error!("waiting for connections: {e}; stopping");
                self.ctx.stop();
                Ok(None)
            }
        }
    }

    /// Waits until the alarm goes off (or the server stops); then the caller listens if nobody
    /// else does. Each thread standing by also wakes every [`SWEEP_AT_MOST_EVERY`], a safety
    /// net should an alarm be missed. (Keeping the timer on one thread only, so that an idle
    /// server of a hundred threads sleeps, lost a multiplexed request in CI once: a wake-up
    /// path is still missed somewhere, which this timer covers.)
    fn stand_by(&self) -> Result<(), Interrupted> {
        self.duty.standing_by(true);
        let woken = self.standby.wait_one(Some(SWEEP_AT_MOST_EVERY));
        self.duty.standing_by(false);
        match woken {
            Ok(Some(Token::Alarm)) => {
                if self.duty.alarm().clear() {
                    self.duty.alarm_taken();
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(Interrupted),
            Err(e) => {
                log::error!("standing by: {e}");
                std::thread::sleep(SWEEP_AT_MOST_EVERY);
            }
        }
        Ok(())
    }

    /// Reads `conn` up to its next request: the request, if one is ready.
    fn open(self: &Arc<Self>, conn: FcgiConnection) -> Option<Request<'static>> {
        match conn.open(self) {
            // A refused one is dropped, so it ends, and its connection comes back.
            Opened::Request(mut request) => (!request.refuse_too_large()).then_some(request),
            Opened::Park(conn) => {
                self.park(conn);
                None
            }
            Opened::Done => None,
        }
    }

    /// Takes back a kept connection whose request has ended.
    pub(crate) fn resume(&self, conn: FcgiConnection) {
        if conn.has_buffered_input() {
            self.queue(Ready::Connection(conn));
        } else {
            self.park(conn);
        }
    }

    /// Queues a request of a multiplexed connection for the next thread that asks.
    pub(crate) fn offer(&self, mut request: Request<'static>) {
        if request.refuse_too_large() {
            return;
        }
        self.queue(Ready::Request(request));
    }

    /// The next queued thing, which the calling thread goes to serve; if more wait and nobody
    /// of this process listens, a thread standing by is called in for them at once.
    fn take_queued(&self, served_long: bool) -> Option<Ready> {
        let mut queue = lock(&self.ready);
        let ready = queue.pop_front()?;
        let more = !queue.is_empty();
        drop(queue);
        if more && self.several && self.duty.listening_here() == 0 {
            self.duty.call_in_here_now();
        } else {
            self.going_to_serve(served_long);
        }
        Some(ready)
    }

    /// The calling thread, not listening, goes to serve what it took: if nobody listens, a
    /// thread standing by is called in, as when a listener leaves the epoll set (`listen`).
    /// Else nobody would come before the standby's safety-net timer (see [`Pool::stand_by`]).
    fn going_to_serve(&self, served_long: bool) {
        if self.several && !self.duty.anyone_listens() {
            self.duty.call_in(self.has_own_work(), self.ctx.is_stopping(), served_long);
        }
    }

    /// Queues `ready` for the next thread that asks: the bell wakes a thread listening; if
    /// none of this process listens, one standing by is called in, for they do not hear the
    /// bell.
    fn queue(&self, ready: Ready) {
        lock(&self.ready).push_back(ready);
        self.bell.ring();
        if self.several && self.duty.listening_here() == 0 {
            self.duty.call_in_here_now();
        }
    }

    /// A multiplexed connection's reader started.
    pub(crate) fn reader_started(&self) {
        self.readers.fetch_add(1, Ordering::SeqCst);
    }

    /// A multiplexed connection's reader is done.
    pub(crate) fn reader_ended(&self) {
        self.readers.fetch_sub(1, Ordering::SeqCst);
        self.bell.ring();
    }

    /// Parks `conn` in the epoll set until its next request comes (closes it if stopping).
    fn park(&self, conn: FcgiConnection) {
        let fd = conn.socket().as_raw_fd();
        let mut parked = lock(&self.parked);
        if self.ctx.is_stopping() {
            return;
        }
        let now = Instant::now();
        if conn.is_overloaded() {
            let mut refused = lock(&self.refused);
            while refused.len() >= REFUSED_PARKED_MAX {
                let Some((oldest, at)) = refused.pop_front() else { break };
                if parked.get(&oldest).is_some_and(|(_, since)| *since == at) {
                    parked.remove(&oldest);
                }
            }
            refused.push_back((fd, now));
        }
        parked.insert(fd, (conn, now));
        if let Err(e) = self.poller.arm_once(fd, Token::Connection(fd)) {
            log::error!("cannot watch a kept connection: {e}");
            parked.remove(&fd);
        }
    }

    /// The stop: connections the kernel already accepted, new ones that have not sent their
    /// request yet, and kept ones whose next request already arrived were made by a web server
    /// that expects an answer: serve them. Idle kept connections close. A reload leaves the
    /// listener's backlog to the new program.
    fn next_draining(self: &Arc<Self>) -> Option<Request<'static>> {
        loop {
            let conn = lock(&self.draining).get_or_insert_with(|| self.start_draining()).pop_front()?;
            if let Some(request) = self.open(conn) {
                return Some(request);
            }
        }
    }

    fn start_draining(&self) -> VecDeque<FcgiConnection> {
        let mut queued = VecDeque::new();
        // A reload leaves the listener's backlog to the new program, a retiring worker process
        // to the others of its pool.
        if !self.ctx.is_reloading() && !self.ctx.stats.is_retiring() {
            // Only what is queued now: serving while accepting would go on for as long as
            // clients keep connecting.
            while queued.len() < DRAIN_AT_MOST {
                match self.accept() {
                    Some(conn) => queued.push_back(conn),
                    None => break,
                }
            }
        }
        for (_, (conn, since)) in lock(&self.parked).drain() {
            if conn.expects_request(since) {
                queued.push_back(conn);
            }
        }
        // However many there are, the stop waits for their requests at most this long in all.
        let by = Instant::now() + DRAIN_REQUEST_WAIT;
        for conn in &mut queued {
            conn.drain_by(by);
        }
        queued
    }

    /// Closes kept connections idle for longer than the idle timeout, and connections over the
    /// limit that stayed silent.
    fn sweep_idle(&self) {
        {
            let mut last_sweep = lock(&self.last_sweep);
            if last_sweep.elapsed() < self.sweep_every {
                return;
            }
            *last_sweep = Instant::now();
        }
        let mut parked = lock(&self.parked);
        parked.retain(|_, (conn, since)| !conn.has_expired(*since));
        if parked.capacity() >= FLOOD_PARKED && parked.len() < parked.capacity() / 8 {
            // A flood of connections has gone: its memory goes back to the system.
            parked.shrink_to_fit();
            drop(parked);
            heap::give_back();
        }
    }

    /// Accepts one connection, if one is waiting.
    fn accept(&self) -> Option<FcgiConnection> {
        let ctx = &self.ctx;
        loop {
            let socket = match self.listener.accept() {
                Ok(Some(socket)) => socket,
                Ok(None) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: log, and give the other threads a moment to free
                    // descriptors.
                    log::error!("accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                    return None;
                }
            };
            let (number, open) = ctx.stats.connection_opened();
            if open > ctx.config.max_connections {
                ctx.stats.connection_refused();
                log_overloaded(ctx.config.max_connections);
                return Some(FcgiConnection::overloaded(socket, ctx, number));
            }
            return Some(FcgiConnection::new(socket, ctx, number));
        }
    }
}

/// Logs that connections are refused, at most once a second (a flood must not flood the log).
fn log_overloaded(max_connections: usize) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    log_rate_limited(&LAST, || format!("over {max_connections} connections: refusing with OVERLOADED"));
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
