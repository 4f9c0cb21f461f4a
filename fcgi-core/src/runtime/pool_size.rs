//! How many worker processes a dynamic pool wants, between `processes` and `max_processes`
//! (PHP-FPM's `pm = dynamic`; `processes` 0 is its `ondemand`): one more when every worker of
//! every process is busy and requests wait (on the listener or in a front desk's queue), at
//! most `max_spawn_rate` a second; one fewer when a process has served nothing for
//! `process_idle_timeout` and more than `processes` run.

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::clock;
use super::config::ServerConfig;
use super::listen_queue::ListenQueue;
use super::scoreboard::Scoreboard;

/// The supervisor's account of the pool's size.
pub(crate) struct PoolSize {
    min: usize,
    max: usize,
    idle_timeout: Option<Duration>,
    spawn_rate: usize,
    workers_per_process: u64,
    /// How many processes should run now.
    wanted: usize,
    /// When the last processes were started, for the spawn rate.
    started: VecDeque<Instant>,
    queue: ListenQueue,
}

impl PoolSize {
    /// The pool `config` asks for, on the listener `listener_fd`.
    pub(crate) fn new(config: &ServerConfig, listener_fd: RawFd) -> Self {
        let min = config.process_count();
        Self {
            min,
            max: config.max_processes.max(min),
            idle_timeout: config.process_idle_timeout,
            spawn_rate: config.max_spawn_rate.max(1),
            workers_per_process: config.workers.unwrap_or(1) as u64,
            wanted: min,
            started: VecDeque::new(),
            queue: ListenQueue::new(listener_fd),
        }
    }

    /// How many processes should run, given the `live` ones (pid and scoreboard block, not
    /// counting those already on their way out); the idle ones to stop are returned.
    pub(crate) fn adjust(&mut self, board: &Scoreboard, live: &[(i32, usize)]) -> Vec<i32> {
        let now = Instant::now();
        while self.started.front().is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(1)) {
            self.started.pop_front();
        }
        self.wanted = self.wanted.clamp(self.min, self.max).max(live.len().min(self.max));
        let active: u64 = live.iter().map(|&(_, i)| board.process(i).active.load(Ordering::Relaxed)).sum();
        let waiting: u64 = live.iter().map(|&(_, i)| board.process(i).waiting.load(Ordering::Relaxed)).sum();
        let queued = self.queue.measure().map_or(0, |queue| queue.waiting);
        let all_busy = active >= self.workers_per_process * live.len() as u64;
        if all_busy && queued + waiting > 0 && self.wanted < self.max && self.started.len() < self.spawn_rate {
            self.wanted = live.len() + 1;
            return Vec::new();
        }
        let Some(idle_timeout) = self.idle_timeout else { return Vec::new() };
        let idle_since = clock::monotonic_micros().saturating_sub(idle_timeout.as_micros() as u64);
        let mut stop = Vec::new();
        for &(pid, index) in live {
            let block = board.process(index);
            let idle =
                block.active.load(Ordering::Relaxed) == 0 && block.last_busy_us.load(Ordering::Relaxed) < idle_since;
            if idle && live.len() - stop.len() > self.min {
                stop.push(pid);
            }
        }
        self.wanted = live.len() - stop.len();
        stop
    }

    /// How many processes should run.
    pub(crate) fn wanted(&self) -> usize {
        self.wanted
    }

    /// A process was started.
    pub(crate) fn started_one(&mut self) {
        self.started.push_back(Instant::now());
    }
}
