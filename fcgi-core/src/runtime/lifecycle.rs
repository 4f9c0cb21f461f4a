//! What a face does around the process and its threads, apart from serving requests: an
//! interpreter that needs a thread state per worker thread, or its own fork (Python's
//! `os.fork`) and a per-process start. [`Handler`](super::Handler) serves; this lives beside it.

use std::io;

/// Hooks around the worker threads and processes of [`Server::serve_with`](super::Server::serve_with).
pub trait Lifecycle: Sync {
    /// Runs the whole life of a worker thread: a face that needs per-thread state (an
    /// interpreter's thread state) sets it up once around `work`.
    fn run_thread(&self, work: &mut (dyn FnMut() + Send)) {
        work()
    }

    /// Starts a worker process when `processes > 1`: like fork(2), 0 in the child and the
    /// child's pid in the parent. The server calls it before it starts any thread of its own.
    /// A face whose runtime must take part in forks (Python's `os.fork`) overrides it.
    fn fork(&self) -> io::Result<i32> {
        // SAFETY: the server forks before it starts threads, so the child inherits no lock held
        // by a thread that does not exist there; the child only goes on to serve.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            pid => Ok(pid),
        }
    }

    /// Runs in each worker process right after the fork, before it drops its privileges.
    fn after_fork(&self) {}

    /// Runs in each process that serves (each worker process, after [`after_fork`](Self::after_fork)),
    /// once the privileges are dropped (the `user` and `group` settings), before the first
    /// request: a face loads a lazily loaded app here, so each process has its own and none is
    /// loaded with root's rights. An error stops the server (a worker process exits).
    fn before_serving(&self) -> io::Result<()> {
        Ok(())
    }

    /// Runs in each process that served, once it has served its last request, before it ends
    /// or re-executes (gunicorn's `worker_exit` hook); not when the graceful timeout cuts it.
    fn process_exit(&self) {}

    /// What the face can say of a slow request, for the slow-request log: Python gives the
    /// stack of the thread `thread` (its pthread_self(3)) that serves it, or of the request's
    /// task on slot `slot` ([`Request::slot`](super::Request::slot)) for a handler that takes
    /// requests whole.
    fn stack_of(&self, _thread: u64, _slot: usize) -> Option<String> {
        None
    }

    /// Interrupts a request that ran past the request timeout, if the face can: Python raises
    /// `RequestTimeout` in the thread `thread` (its pthread_self(3)) that serves it, or cancels
    /// the task of the request on slot `slot` ([`Request::slot`](super::Request::slot)) for a
    /// handler that takes requests whole; only while `still_running` says the request runs
    /// (asked where the answer cannot change meanwhile: under Python's GIL). Without it, the
    /// request ends at its next read or write.
    fn interrupt(&self, _thread: u64, _slot: usize, _still_running: &dyn Fn() -> bool) {}
}

/// No hooks: threads run as they are and processes fork with fork(2) ([`Server::serve`](super::Server::serve)).
pub struct NoHooks;

impl Lifecycle for NoHooks {}
