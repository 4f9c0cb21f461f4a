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
//! cost 0.9 to 1.2 context switches and 23 to 25 µs of CPU per hello request, one process 0.3
//! to 0.5 and 15 to 17 µs; with the standby shared, two processes cost what one does.
//!
//! A process whose last listener leaves the epoll set sets a standby alarm, as within a process,
//! but the alarm of the process with the most threads standing by (another one on a tie): a
//! process whose threads are all idle serves the next request sooner than one whose threads
//! share a lock (a Python interpreter's) with one already serving. So every process has its own
//! alarm, all made before the fork, so that any of them can set another's. The counts it chooses
//! by live in each process's block of the scoreboard, so a process that dies stops counting once
//! its supervisor has reaped it, which then rings every alarm: a standing-by thread comes in
//! should the dead one have been listening.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::poller::Alarm;
use super::scoreboard::{ProcessBlock, Scoreboard};

/// How long the listening thread may be away from the epoll set (serving) before the alarm
/// calls a standing-by thread in to listen meanwhile.
const STANDBY_ALARM: Duration = Duration::from_micros(500);

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
}

impl Duty {
    pub(crate) fn new(board: Arc<Scoreboard>, index: usize, alarms: Arc<Alarms>) -> Self {
        let duty = Self { board, index, alarms };
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
    /// most threads standing by (never this one if it is stopping: `leaving`).
    pub(crate) fn call_in(&self, own_work: bool, leaving: bool) {
        let target = if own_work {
            Some(self.index)
        } else if self.others_listen() {
            None
        } else {
            self.most_standing_by(leaving)
        };
        if let Some(index) = target {
            self.set_alarm(index, STANDBY_ALARM);
        }
    }

    /// Calls a standing-by thread of this process in at once, unless its alarm is set already
    /// (the front desk left work for the workers).
    pub(crate) fn call_in_here_now(&self) {
        self.set_alarm(self.index, Duration::ZERO);
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

    /// Sets the alarm of process `index` to go off `after` from now, unless it is set already.
    fn set_alarm(&self, index: usize, after: Duration) {
        let flag = &self.board.process(index).alarm_set;
        if flag.swap(1, Ordering::SeqCst) == 0 {
            if let Err(e) = self.alarms.alarms[index].set(after) {
                log::error!("setting the standby alarm: {e}");
                flag.store(0, Ordering::SeqCst);
            }
        }
    }
}
