//! The scoreboard: what every process and every worker thread of a server is doing, in one
//! anonymous shared mapping made when the server is, before any fork, so that a thread of any
//! process can report on all of them (the status page) and each process can watch its own
//! requests (the slow-request log). PHP-FPM and uWSGI keep theirs the same way.
//!
//! Everything in it is an atomic, written without locks: server-wide totals, one block per
//! process (its pid and the counts that are its own, such as the requests `max_requests`
//! counts), and one slot per worker thread, which the thread claims when it first asks for a
//! request and keeps for its life. A reader takes a consistent copy of a slot's request line
//! through the slot's sequence counter.

use std::alloc::Layout;
use std::cell::RefCell;
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use super::access_log::push_escaped;
use super::clock;
use super::thread_id;

/// Bytes of a request line (`GET /path?query`) a slot keeps; a longer one is cut.
pub(crate) const LINE_BYTES: usize = 256;
const LINE_WORDS: usize = LINE_BYTES / 8;

/// Server-wide counts since the server started, summed over its processes.
#[repr(C, align(64))]
pub(crate) struct Totals {
    /// When the server started, in Unix milliseconds.
    pub started_unix_ms: AtomicU64,
    pub connections: AtomicU64,
    pub requests: AtomicU64,
    /// Requests ended, by the first digit of their status (1xx to 5xx).
    pub by_class: [AtomicU64; 5],
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub slow: AtomicU64,
    /// Requests ended because they ran past the request timeout.
    pub timed_out: AtomicU64,
    /// Connections refused because the connection limit was reached.
    pub limit_hits: AtomicU64,
    /// The most requests served at once, and waiting at once, and queued on the listener.
    pub max_active: AtomicU64,
    pub max_waiting: AtomicU64,
    pub max_listen_queue: AtomicU64,
}

/// One process's part.
#[repr(C, align(64))]
pub(crate) struct ProcessBlock {
    /// 0 while no process holds the block.
    pub pid: AtomicU32,
    pub started_unix_ms: AtomicU64,
    /// Connections this process accepted, and requests it ended (what `max_requests` counts).
    pub connections: AtomicU64,
    pub requests: AtomicU64,
    pub open: AtomicU64,
    /// Requests read and not ended: being served, or waiting for a thread.
    pub in_flight: AtomicU64,
    /// Requests a thread is serving.
    pub active: AtomicU64,
    /// Requests read while every worker was busy, waiting for one.
    pub waiting: AtomicU64,
    pub slow: AtomicU64,
    /// Set when a request of this process is stuck past its timeout: the supervisor starts a
    /// process in its place while it finishes its other requests and ends.
    pub retiring: AtomicU32,
    /// When it last started or ended a request (monotonic µs): how long it has been idle.
    pub last_busy_us: AtomicU64,
    /// Its threads waiting in its epoll set, which holds the shared listener, and its threads
    /// standing by (see `duty.rs`).
    pub listening: AtomicU64,
    pub standing_by: AtomicU64,
    /// Set while its standby alarm is set and not yet taken by a standing-by thread.
    pub alarm_set: AtomicU32,
}

impl ProcessBlock {
    /// Whether the process holding the block has started serving: its threads listen or stand
    /// by, or it served a request.
    pub(crate) fn is_serving(&self) -> bool {
        [&self.listening, &self.standing_by, &self.active, &self.requests]
            .iter()
            .any(|count| count.load(Ordering::Relaxed) > 0)
    }
}

/// What a worker thread is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WorkerState {
    /// Waiting for a request. (A worker never waits for a request's head: one still on its
    /// way waits in the poller, so there is no "reading" state.)
    Idle = 0,
    /// Running the application.
    Running = 2,
    /// Waiting for the web server to take the response.
    Writing = 3,
}

impl WorkerState {
    fn from_u32(value: u32) -> Self {
        match value {
            2 => Self::Running,
            3 => Self::Writing,
            _ => Self::Idle,
        }
    }

    /// Whether a request is being served.
    pub(crate) fn is_busy(self) -> bool {
        matches!(self, Self::Running | Self::Writing)
    }

    /// The state's name, as the status page prints it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Running => "running",
            Self::Writing => "writing",
        }
    }
}

/// One worker thread's slot.
#[repr(C, align(64))]
struct Slot {
    /// The kernel id of the thread holding the slot; 0: free.
    tid: AtomicU64,
    /// pthread_self(3) of that thread (Python's thread ident).
    pthread: AtomicU64,
    state: AtomicU32,
    /// Odd while the current request's fields are being written.
    seq: AtomicU32,
    served: AtomicU64,
    /// When the current request started, in monotonic microseconds.
    started_us: AtomicU64,
    body_bytes: AtomicU64,
    last_duration_us: AtomicU64,
    /// `served` + 1 of the request the slow-request log reported, so it reports it once.
    reported: AtomicU64,
    /// `served` + 1 of the request that ran past the request timeout: it is being ended.
    cut: AtomicU64,
    line_len: AtomicU64,
    line: [AtomicU64; LINE_WORDS],
}

/// A copy of one worker's slot, for the status page and the slow-request log.
#[derive(Debug, Clone)]
pub(crate) struct Worker {
    /// The slot's index in its process's part of the board: it tells apart the requests of a
    /// handler that takes them whole (one thread takes them all, each on a slot of its own).
    pub slot: usize,
    pub pid: u32,
    pub tid: u64,
    pub pthread: u64,
    pub state: WorkerState,
    pub served: u64,
    /// The current request's line, start (monotonic µs) and body bytes read so far.
    pub line: String,
    pub started_us: u64,
    pub body_bytes: u64,
    pub last_duration_us: u64,
}

/// The shared mapping.
pub(crate) struct Scoreboard {
    base: NonNull<u8>,
    layout: Layout,
    /// Made by mmap (else, when that failed, by the allocator: this process alone sees it).
    shared: bool,
    processes: usize,
    slots_per_process: usize,
}

// SAFETY: the mapping holds only atomics, and stays mapped for as long as the Scoreboard lives.
unsafe impl Send for Scoreboard {}
// SAFETY: as above: every access to the mapping is an atomic operation.
unsafe impl Sync for Scoreboard {}

impl Scoreboard {
    /// A zeroed board for `processes` processes of `slots_per_process` worker threads each.
    pub(crate) fn new(processes: usize, slots_per_process: usize) -> Self {
        let (processes, slots_per_process) = (processes.max(1), slots_per_process.max(1));
        let size = size_of::<Totals>()
            + processes * size_of::<ProcessBlock>()
            + processes * slots_per_process * size_of::<Slot>();
        let layout = Layout::from_size_align(size, 64).expect("a valid layout");
        // SAFETY: an anonymous shared mapping of `size` bytes, zero-filled, fresh: nothing else
        // refers to it.
        let mapped = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        let (base, shared) = if mapped == libc::MAP_FAILED {
            log::error!(
                "cannot map the scoreboard ({}): the status page sees this process only",
                io::Error::last_os_error()
            );
            // SAFETY: a non-zero size with a valid alignment.
            let allocated = unsafe { std::alloc::alloc_zeroed(layout) };
            (NonNull::new(allocated).unwrap_or_else(|| std::alloc::handle_alloc_error(layout)), false)
        } else {
            (NonNull::new(mapped.cast()).expect("mmap returned a mapping"), true)
        };
        let board = Self { base, layout, shared, processes, slots_per_process };
        board.totals().started_unix_ms.store(clock::unix_millis(), Ordering::Relaxed);
        board
    }

    /// The server-wide totals.
    pub(crate) fn totals(&self) -> &Totals {
        // SAFETY: the mapping starts with a Totals, aligned to 64, all atomics (zero is valid).
        unsafe { &*self.base.as_ptr().cast::<Totals>() }
    }

    /// How many processes the board has room for.
    pub(crate) fn processes(&self) -> usize {
        self.processes
    }

    /// Process `index`'s block.
    pub(crate) fn process(&self, index: usize) -> &ProcessBlock {
        assert!(index < self.processes);
        // SAFETY: the blocks follow the totals, in bounds by the assert, each aligned to 64.
        unsafe { &*self.base.as_ptr().add(size_of::<Totals>()).cast::<ProcessBlock>().add(index) }
    }

    fn slot(&self, process: usize, index: usize) -> &Slot {
        assert!(process < self.processes && index < self.slots_per_process);
        let slots = size_of::<Totals>() + self.processes * size_of::<ProcessBlock>();
        // SAFETY: the slots follow the blocks, in bounds by the assert, each aligned to 64.
        unsafe { &*self.base.as_ptr().add(slots).cast::<Slot>().add(process * self.slots_per_process + index) }
    }

    /// Gives process block `index` to the calling process, as a fresh process: the counts of
    /// one that held it before are gone, and so are its workers.
    pub(crate) fn enter_process(&self, index: usize) {
        let block = self.process(index);
        for count in [
            &block.connections,
            &block.requests,
            &block.open,
            &block.in_flight,
            &block.active,
            &block.waiting,
            &block.slow,
            &block.listening,
            &block.standing_by,
        ] {
            count.store(0, Ordering::Relaxed);
        }
        block.started_unix_ms.store(clock::unix_millis(), Ordering::Relaxed);
        block.retiring.store(0, Ordering::Relaxed);
        block.alarm_set.store(0, Ordering::Relaxed);
        block.last_busy_us.store(clock::monotonic_micros(), Ordering::Relaxed);
        block.pid.store(std::process::id(), Ordering::Relaxed);
        self.free_slots(index);
    }

    /// Process block `index` is free again (its process ended).
    pub(crate) fn leave_process(&self, index: usize) {
        self.process(index).pid.store(0, Ordering::Relaxed);
        self.free_slots(index);
    }

    /// Frees every worker slot of process `index`.
    fn free_slots(&self, index: usize) {
        for (_, slot) in self.slots(index) {
            slot.tid.store(0, Ordering::Release);
        }
    }

    /// The worker slots of process `process`.
    fn slots(&self, process: usize) -> impl Iterator<Item = (usize, &Slot)> {
        (0..self.slots_per_process).map(move |i| (i, self.slot(process, i)))
    }

    /// The blocks of the processes that are running.
    fn running(&self) -> impl Iterator<Item = &ProcessBlock> {
        self.running_indexed().map(|(_, block)| block)
    }

    /// The blocks of the processes that are running, with their indexes.
    pub(crate) fn running_indexed(&self) -> impl Iterator<Item = (usize, &ProcessBlock)> {
        (0..self.processes).map(|i| (i, self.process(i))).filter(|(_, block)| block.pid.load(Ordering::Relaxed) != 0)
    }

    /// How many processes are running.
    pub(crate) fn running_processes(&self) -> usize {
        self.running().count()
    }

    /// Sum of `count` over the processes that are running.
    pub(crate) fn sum(&self, count: impl Fn(&ProcessBlock) -> &AtomicU64) -> u64 {
        self.running().map(|block| count(block).load(Ordering::Relaxed)).sum()
    }

    /// Copies of the workers of process `index`.
    pub(crate) fn workers(&self, index: usize) -> Vec<Worker> {
        let pid = self.process(index).pid.load(Ordering::Relaxed);
        self.slots(index)
            .filter_map(|(index, slot)| {
                let tid = slot.tid.load(Ordering::Acquire);
                (tid != 0).then(|| slot.copy(index, pid, tid))
            })
            .collect()
    }

    /// Gives the calling thread (a worker of process `process`) its slot now, so that the
    /// status page lists it before its first request.
    pub(crate) fn enroll(self: &Arc<Self>, process: usize) {
        self.slot_for_request(process);
    }

    /// A slot for a request the calling thread takes in process `process`: the thread's own
    /// (claimed on its first request, kept for its life), or, while that one still holds a
    /// request the thread handed to another thread (the C API allows it), a free slot lent for
    /// this request alone (`true`). `None` when every slot is taken: the request is still
    /// served and counted, but not listed.
    fn slot_for_request(self: &Arc<Self>, process: usize) -> Option<(usize, bool)> {
        let pid = std::process::id();
        let held = HELD.with(|held| {
            held.borrow()
                .as_ref()
                .filter(|h| h.pid == pid && h.process == process && std::ptr::eq(h.board.as_ptr(), Arc::as_ptr(self)))
                .map(|h| h.index)
        });
        if let Some(index) = held.filter(|&index| !self.slot(process, index).state().is_busy()) {
            return Some((index, false));
        }
        let (pthread, tid) = thread_id::current();
        let index = (0..self.slots_per_process).find(|&i| {
            self.slot(process, i).tid.compare_exchange(0, tid as u64, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        })?;
        let slot = self.slot(process, index);
        slot.pthread.store(pthread, Ordering::Relaxed);
        slot.served.store(0, Ordering::Relaxed);
        slot.reported.store(0, Ordering::Relaxed);
        slot.cut.store(0, Ordering::Relaxed);
        slot.last_duration_us.store(0, Ordering::Relaxed);
        slot.state.store(WorkerState::Idle as u32, Ordering::Relaxed);
        if held.is_some() {
            return Some((index, true));
        }
        // The thread's earlier slot (of another server or process) is given back here.
        HELD.with(|held| *held.borrow_mut() = Some(Held { board: Arc::downgrade(self), process, index, pid }));
        Some((index, false))
    }

    /// The requests of process `process` running since before `since_us` (monotonic µs) and
    /// not marked with `mark` yet, marked now: each is returned once per mark.
    pub(crate) fn newly_past(&self, process: usize, since_us: u64, mark: Mark) -> Vec<Worker> {
        let pid = self.process(process).pid.load(Ordering::Relaxed);
        self.slots(process)
            .filter(|(_, slot)| slot.is_busy())
            .filter_map(|(index, slot)| {
                let worker = slot.copy(index, pid, slot.tid.load(Ordering::Acquire));
                let this_request = worker.served + 1;
                let marks = match mark {
                    Mark::Reported => &slot.reported,
                    Mark::Cut => &slot.cut,
                };
                (worker.started_us <= since_us && marks.swap(this_request, Ordering::Relaxed) != this_request)
                    .then_some(worker)
            })
            .collect()
    }

    /// Whether a request of process `process` ran past the request timeout and still runs.
    pub(crate) fn has_timed_out_request(&self, process: usize) -> bool {
        self.slots(process).any(|(_, slot)| {
            slot.is_busy() && slot.cut.load(Ordering::Relaxed) == slot.served.load(Ordering::Relaxed) + 1
        })
    }

    /// Whether the request `worker` was serving (a copy taken earlier) still runs.
    pub(crate) fn still_serving(&self, process: usize, worker: &Worker) -> bool {
        let slot = self.slot(process, worker.slot);
        slot.tid.load(Ordering::Acquire) == worker.tid
            && slot.served.load(Ordering::Relaxed) == worker.served
            && slot.started_us.load(Ordering::Relaxed) == worker.started_us
            && slot.is_busy()
    }
}

/// What a watcher marks a request with, so that it acts on it once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    /// The slow-request log reported it.
    Reported,
    /// It ran past the request timeout and is being ended.
    Cut,
}

impl Drop for Scoreboard {
    fn drop(&mut self) {
        if self.shared {
            // SAFETY: the mapping made in `new`, of this size; nothing refers to it any more.
            unsafe { libc::munmap(self.base.as_ptr().cast(), self.layout.size()) };
        } else {
            // SAFETY: allocated in `new` with this layout.
            unsafe { std::alloc::dealloc(self.base.as_ptr(), self.layout) };
        }
    }
}

impl Slot {
    fn state(&self) -> WorkerState {
        WorkerState::from_u32(self.state.load(Ordering::Relaxed))
    }

    /// Whether a thread holds it and serves a request on it now.
    fn is_busy(&self) -> bool {
        self.tid.load(Ordering::Acquire) != 0 && self.state().is_busy()
    }

    /// A consistent copy, retried while the thread writes its request's fields.
    fn copy(&self, index: usize, pid: u32, tid: u64) -> Worker {
        loop {
            let before = self.seq.load(Ordering::Acquire);
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let len = (self.line_len.load(Ordering::Relaxed) as usize).min(LINE_BYTES);
            let mut bytes = Vec::with_capacity(LINE_BYTES);
            for word in &self.line[..len.div_ceil(8)] {
                bytes.extend_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
            }
            bytes.truncate(len);
            let worker = Worker {
                slot: index,
                pid,
                tid,
                pthread: self.pthread.load(Ordering::Relaxed),
                state: self.state(),
                served: self.served.load(Ordering::Relaxed),
                line: {
                    // Escaped as the access log escapes: a client must not forge log lines.
                    let mut line = String::new();
                    push_escaped(&mut line, &bytes);
                    line
                },
                started_us: self.started_us.load(Ordering::Relaxed),
                body_bytes: self.body_bytes.load(Ordering::Relaxed),
                last_duration_us: self.last_duration_us.load(Ordering::Relaxed),
            };
            std::sync::atomic::fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == before {
                return worker;
            }
        }
    }
}

/// The slot the current thread holds, given back when the thread ends.
struct Held {
    board: Weak<Scoreboard>,
    process: usize,
    index: usize,
    /// A forked child inherits the thread's record, not its slot.
    pid: u32,
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.pid == std::process::id() {
            if let Some(board) = self.board.upgrade() {
                board.slot(self.process, self.index).tid.store(0, Ordering::Release);
            }
        }
    }
}

thread_local! {
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

/// A request being served, on its thread's slot: it counts as active until dropped.
pub(crate) struct Seat {
    board: Arc<Scoreboard>,
    process: usize,
    slot: Option<usize>,
    /// `served` + 1 of this request on its slot: how the watchers mark it.
    mark: u64,
    /// The slot was lent for this request alone: it is freed at the end.
    lent: bool,
    started_us: u64,
}

impl Seat {
    /// Seats a request, served by the calling thread from now on, in process `process`; its
    /// line is the concatenation of `line`'s parts, kept as sent (escaped when read).
    pub(crate) fn new(board: &Arc<Scoreboard>, process: usize, line: &[&[u8]]) -> Self {
        let block = board.process(process);
        block.active.fetch_add(1, Ordering::Relaxed);
        let active = board.sum(|block| &block.active);
        board.totals().max_active.fetch_max(active, Ordering::Relaxed);
        let started_us = clock::monotonic_micros();
        block.last_busy_us.store(started_us, Ordering::Relaxed);
        let (slot, lent) = board.slot_for_request(process).unzip();
        let mut mark = 0;
        if let Some(index) = slot {
            let slot = board.slot(process, index);
            let mut bytes = [0u8; LINE_BYTES];
            let mut len = 0;
            for part in line {
                let take = part.len().min(LINE_BYTES - len);
                bytes[len..len + take].copy_from_slice(&part[..take]);
                len += take;
            }
            slot.seq.fetch_add(1, Ordering::AcqRel);
            for (word, chunk) in slot.line.iter().zip(bytes[..len].chunks(8)) {
                let mut word_bytes = [0; 8];
                word_bytes[..chunk.len()].copy_from_slice(chunk);
                word.store(u64::from_ne_bytes(word_bytes), Ordering::Relaxed);
            }
            slot.line_len.store(len as u64, Ordering::Relaxed);
            mark = slot.served.load(Ordering::Relaxed) + 1;
            slot.started_us.store(started_us, Ordering::Relaxed);
            slot.body_bytes.store(0, Ordering::Relaxed);
            slot.state.store(WorkerState::Running as u32, Ordering::Relaxed);
            slot.seq.fetch_add(1, Ordering::Release);
        }
        Self { board: board.clone(), process, slot, mark, lent: lent.unwrap_or(false), started_us }
    }

    /// The request is now waiting for the web server to take its response (`true`), or back
    /// in the application (`false`).
    pub(crate) fn writing(&self, writing: bool) {
        if let Some(index) = self.slot {
            let state = if writing { WorkerState::Writing } else { WorkerState::Running };
            self.board.slot(self.process, index).state.store(state as u32, Ordering::Relaxed);
        }
    }

    /// The request's slot in its process's part of the board, if it has one.
    pub(crate) fn slot(&self) -> Option<usize> {
        self.slot
    }

    /// Whether the request ran past the request timeout (it is to end at once).
    pub(crate) fn is_cut(&self) -> bool {
        self.slot.is_some_and(|index| self.board.slot(self.process, index).cut.load(Ordering::Relaxed) == self.mark)
    }

    /// The request has read `bytes` of its body so far.
    pub(crate) fn body_read(&self, bytes: u64) {
        if let Some(index) = self.slot {
            self.board.slot(self.process, index).body_bytes.store(bytes, Ordering::Relaxed);
        }
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        let block = self.board.process(self.process);
        block.active.fetch_sub(1, Ordering::Relaxed);
        block.last_busy_us.store(clock::monotonic_micros(), Ordering::Relaxed);
        if let Some(index) = self.slot {
            let slot = self.board.slot(self.process, index);
            slot.last_duration_us.store(clock::monotonic_micros().saturating_sub(self.started_us), Ordering::Relaxed);
            slot.served.fetch_add(1, Ordering::Relaxed);
            slot.state.store(WorkerState::Idle as u32, Ordering::Relaxed);
            if self.lent {
                slot.tid.store(0, Ordering::Release);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seat_shows_on_its_threads_slot_and_leaves_it_idle_with_its_duration() {
        let board = Arc::new(Scoreboard::new(2, 4));
        board.enter_process(1);
        let seat = Seat::new(&board, 1, &[b"GET ", b"/a-rather-long-path?with=a&query=string\n[ERROR] forged"]);
        seat.body_read(12);
        let workers = board.workers(1);
        assert_eq!(workers.len(), 1);
        assert_eq!(workers[0].line, "GET /a-rather-long-path?with=a&query=string\\x0a[ERROR] forged");
        assert_eq!((workers[0].state, workers[0].body_bytes), (WorkerState::Running, 12));
        assert_eq!(board.sum(|b| &b.active), 1);
        assert_eq!(board.newly_past(1, u64::MAX, Mark::Reported).len(), 1);
        assert!(board.newly_past(1, u64::MAX, Mark::Reported).is_empty(), "reported once");
        assert!(!seat.is_cut());
        let cut = board.newly_past(1, u64::MAX, Mark::Cut);
        assert!(seat.is_cut() && board.still_serving(1, &cut[0]));
        drop(seat);
        let workers = board.workers(1);
        assert_eq!((workers[0].state, workers[0].served), (WorkerState::Idle, 1));
        assert_eq!(board.sum(|b| &b.active), 0);
        assert!(board.workers(0).is_empty());
    }

    #[test]
    fn a_thread_that_hands_requests_on_gets_a_slot_lent_for_each() {
        let board = Arc::new(Scoreboard::new(1, 4));
        board.enter_process(0);
        let first = Seat::new(&board, 0, &[b"GET /first"]);
        let second = Seat::new(&board, 0, &[b"GET /second"]);
        let mut lines: Vec<_> = board.workers(0).into_iter().map(|w| w.line).collect();
        lines.sort();
        assert_eq!(lines, ["GET /first", "GET /second"]);
        drop(second);
        assert_eq!(board.workers(0).len(), 1, "the lent slot is free again");
        drop(first);
        assert_eq!(board.workers(0)[0].state, WorkerState::Idle, "the thread keeps its own");
    }

    #[test]
    fn a_long_line_is_cut_to_the_slot() {
        let board = Arc::new(Scoreboard::new(1, 1));
        board.enter_process(0);
        let line = vec![b'x'; LINE_BYTES + 10];
        let _seat = Seat::new(&board, 0, &[&line[..10], &line[10..]]);
        assert_eq!(board.workers(0)[0].line.len(), LINE_BYTES);
    }

    #[test]
    fn the_board_is_shared_with_a_forked_child() {
        let board = Arc::new(Scoreboard::new(2, 2));
        // SAFETY: the child only touches the mapping and exits without unwinding.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            board.enter_process(1);
            board.process(1).requests.store(7, Ordering::Relaxed);
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just forked.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(board.process(1).pid.load(Ordering::Relaxed), pid as u32);
        assert_eq!(board.sum(|b| &b.requests), 7);
    }
}
