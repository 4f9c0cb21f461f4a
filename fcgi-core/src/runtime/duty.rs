//! Who listens, across the processes of a pre-fork pool. Within a process one thread listens
//! and the others stand by (see `pool.rs`); the processes of a pool share one listener, and the
//! same holds across them: while a thread of one process listens, the idle threads of the others
//! stand by too, unless their process has connections of its own to watch (kept-alive ones,
//! readers of multiplexed ones).
//!
//! Were every process to keep a thread listening, a connection that arrives while the listening
//! thread of the first is serving wakes a sleeping thread of another (the listener is in each
//! epoll set with EPOLLEXCLUSIVE, which wakes one waiter, not none): a wake-up and a sleep for
//! nearly every such request, where one process would have taken it from the backlog once done.
//! Measured with the echo example (4 workers) behind nginx and wrk on 2 cores, `--processes 2`
//! cost 0.6 to 1.2 context switches and 17 to 25 µs of CPU per hello request, one process 0.3
//! to 0.5 and 14 to 17 µs; with the standby shared, two processes cost what one does.
//!
//! A process whose last listener leaves the epoll set sets a standby alarm, as within a process,
//! but the alarm of the process with the most threads standing by (another one on a tie): a
//! process whose threads are all idle serves the next request sooner than one whose threads
//! share a lock (a Python interpreter's) with one already serving. So every process has its own
//! alarm, all made before the fork, so that any of them can set another's. The counts it chooses
//! by live in each process's block of the scoreboard, so a process that dies stops counting once
//! its supervisor has reaped it, which then rings every alarm: a standing-by thread comes in
//! should the dead one have been listening.
//!
//! A thread that goes back to listening because it found the backlog empty (it caught up)
//! disarms the alarms set for want of a listener: when the listener is away for less than the
//! alarm's delay, which is the rule for short requests, no standing-by thread wakes for
//! nothing. One that goes back for another reason (the bounded run of accepts ended with
//! connections still waiting) leaves them set, so that a second thread still comes in while
//! the backlog does not empty.
//!
//! Long requests (100 µs and more: `pool.rs`) are worth the wake-up: a thread whose last one was
//! long calls in, at once, a process whose threads all stand by, when it leaves the epoll set or
//! finds another connection waiting. Else a Python app of `processes 2` at 130 µs of CPU per
//! request lost a fifth of its requests per second, the second process waiting for the alarm
//! while the first served the backlog; now it is within a few percent of every process
//! listening, at the same CPU per request.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::poller::Alarm;
use super::scoreboard::{ProcessBlock, Scoreboard};

/// How long the listening thread may be away from the epoll set (serving) before the alarm
/// calls a standing-by thread in to listen meanwhile.
const STANDBY_ALARM: Duration = Duration::from_micros(500);

/// Why a process's alarm is set (its block's `alarm_set`; 0: it is not): nobody listens on the
/// shared listener; or nobody of that process listens while it has connections of its own to
/// watch, which only a thread of its own may answer.
const FOR_LISTENER: u32 = 1;
const FOR_OWN_WORK: u32 = 2;

/// The standby alarms of a server, one per block of its scoreboard, made before any fork so
/// that its worker processes share them.
pub(crate) struct Alarms {
    alarms: Vec<Alarm>,
}

impl Alarms {
    pub(crate) fn new(blocks: usize) -> io::Result<Self> {
        Ok(Self { alarms: (0..blocks.max(1)).map(|_| Alarm::new()).collect::<io::Result<_>>()? })
    }

    /// Makes every alarm go off now (the supervisor, when a worker process ended).
    pub(crate) fn ring_all(&self) {
        for alarm in &self.alarms {
            if let Err(e) = alarm.set(Duration::ZERO) {
                log::error!("setting a standby alarm: {e}");
            }
        }
    }
}

/// One process's part: its counts on the scoreboard and its alarm.
pub(crate) struct Duty {
    board: Arc<Scoreboard>,
    /// This process's block.
    index: usize,
    alarms: Arc<Alarms>,
    /// Worker threads per process.
    workers: u64,
}

impl Duty {
    pub(crate) fn new(board: Arc<Scoreboard>, index: usize, alarms: Arc<Alarms>, workers: usize) -> Self {
        let duty = Self { board, index, alarms, workers: workers as u64 };
        // Left by a process that held the block before.
        duty.alarm().clear();
        duty
    }

    fn block(&self) -> &ProcessBlock {
        self.board.process(self.index)
    }

    /// This process's alarm, which its standing-by threads wait for.
    pub(crate) fn alarm(&self) -> &Alarm {
        &self.alarms.alarms[self.index]
    }

    /// Threads of this process listening now.
    pub(crate) fn listening_here(&self) -> u64 {
        self.block().listening.load(Ordering::SeqCst)
    }

    /// Whether a thread of another process listens now.
    pub(crate) fn others_listen(&self) -> bool {
        self.board
            .running_indexed()
            .any(|(index, block)| index != self.index && block.listening.load(Ordering::SeqCst) > 0)
    }

    /// A thread of this process starts listening.
    pub(crate) fn start_listening(&self) {
        self.block().listening.fetch_add(1, Ordering::SeqCst);
    }

    /// A thread of this process stops listening; returns whether it was the last one.
    pub(crate) fn stop_listening(&self) -> bool {
        self.block().listening.fetch_sub(1, Ordering::SeqCst) == 1
    }

    /// A thread of this process starts (`true`) or stops standing by.
    pub(crate) fn standing_by(&self, standing_by: bool) {
        let count = &self.block().standing_by;
        if standing_by {
            count.fetch_add(1, Ordering::SeqCst);
        } else {
            count.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// The last listener of this process left: sets the alarm that calls a standing-by thread
    /// in, unless a thread of another process listens (and this process has nothing of its own
    /// to watch: `own_work`). The alarm of this process if it has, else of the process with the
    /// most threads standing by (never this one if it is stopping: `leaving`), after the
    /// standby delay. With `at_once` (the requests are long, see `pool.rs`), that of another
    /// process whose threads all stand by, if there is one, and at once: a process serving
    /// nothing takes the next request as cheaply as the busy one would, and sooner, where a
    /// second thread of a busy process would share its interpreter's lock.
    pub(crate) fn call_in(&self, own_work: bool, leaving: bool, at_once: bool) {
        if own_work {
            self.set_alarm(self.index, STANDBY_ALARM, FOR_OWN_WORK, false);
            return;
        }
        if self.others_listen() {
            return;
        }
        if let Some(index) = at_once.then(|| self.idle_process()).flatten() {
            self.set_alarm(index, Duration::ZERO, FOR_LISTENER, true);
        } else if let Some(index) = self.most_standing_by(leaving) {
            self.set_alarm(index, STANDBY_ALARM, FOR_LISTENER, false);
        }
    }

    /// Another running process whose threads all stand by.
    fn idle_process(&self) -> Option<usize> {
        self.board.running_indexed().find_map(|(index, block)| {
            (index != self.index && block.standing_by.load(Ordering::SeqCst) >= self.workers).then_some(index)
        })
    }

    /// Whether a thread of any process listens now.
    pub(crate) fn anyone_listens(&self) -> bool {
        self.listening_here() > 0 || self.others_listen()
    }

    /// A thread of this process goes back to listening because it found the backlog empty:
    /// disarms this process's alarm, and those of the others set for want of a listener.
    pub(crate) fn caught_up(&self) {
        for (index, block) in self.board.running_indexed() {
            let flag = &block.alarm_set;
            let reason = flag.load(Ordering::SeqCst);
            if reason == 0 || (index != self.index && reason != FOR_LISTENER) {
                continue;
            }
            let alarm = &self.alarms.alarms[index];
            if let Err(e) = alarm.disarm() {
                log::error!("disarming a standby alarm: {e}");
                continue;
            }
            if index == self.index {
                // A thread of this process listening is what every reason asks for.
                flag.store(0, Ordering::SeqCst);
            } else if flag.compare_exchange(FOR_LISTENER, 0, Ordering::SeqCst, Ordering::SeqCst).is_err() {
                // That process asked for one of its own threads meanwhile: its alarm stays.
                if let Err(e) = alarm.set(STANDBY_ALARM) {
                    log::error!("setting a standby alarm: {e}");
                    flag.store(0, Ordering::SeqCst);
                }
            }
        }
    }

    /// Calls a standing-by thread of this process in at once (the front desk left work for the
    /// workers).
    pub(crate) fn call_in_here_now(&self) {
        self.set_alarm(self.index, Duration::ZERO, FOR_OWN_WORK, true);
    }

    /// A standing-by thread took this process's alarm.
    pub(crate) fn alarm_taken(&self) {
        self.block().alarm_set.store(0, Ordering::SeqCst);
    }

    /// The running process with the most threads standing by; on a tie another than this one.
    fn most_standing_by(&self, leaving: bool) -> Option<usize> {
        self.board
            .running_indexed()
            .filter(|(index, _)| !(leaving && *index == self.index))
            .map(|(index, block)| (block.standing_by.load(Ordering::SeqCst), index != self.index, index))
            .max_by_key(|(standing_by, other, index)| (*standing_by, *other, std::cmp::Reverse(*index)))
            .map(|(_, _, index)| index)
    }

    /// Sets the alarm of process `index` to go off `after` from now for `reason`, unless it is
    /// set already and not `sooner` (then it keeps its time, and the weightier reason).
    fn set_alarm(&self, index: usize, after: Duration, reason: u32, sooner: bool) {
        let flag = &self.board.process(index).alarm_set;
        if flag.fetch_max(reason, Ordering::SeqCst) == 0 || sooner {
            if let Err(e) = self.alarms.alarms[index].set(after) {
                log::error!("setting the standby alarm: {e}");
                flag.store(0, Ordering::SeqCst);
            }
        }
    }
}
