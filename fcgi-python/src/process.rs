//! What every Python face does around its serving processes: forks through `os.fork()`, and
//! runs the program's `post_fork` and `worker_exit` hooks.

use std::io;

use pyo3::prelude::*;

/// The program's hooks around each serving process (gunicorn's `post_fork`, `worker_exit`),
/// called without arguments (the Python side passes on what they want).
#[derive(Default)]
pub struct ProcessHooks {
    pub start: Option<Py<PyAny>>,
    pub exit: Option<Py<PyAny>>,
}

impl ProcessHooks {
    /// Runs `post_fork`; its failure (traceback printed) stops this process's serving.
    pub fn started(&self, py: Python<'_>) -> io::Result<()> {
        let Some(hook) = &self.start else { return Ok(()) };
        hook.bind(py).call0().map(drop).map_err(|e| {
            let message = format!("the post_fork hook failed: {e}");
            e.print(py);
            io::Error::other(message)
        })
    }

    /// Runs `worker_exit`, printing its failure.
    pub fn exited(&self, py: Python<'_>) {
        if let Some(hook) = &self.exit {
            hook.bind(py).call0().map(drop).unwrap_or_else(|e| e.print(py));
        }
    }
}

/// Forks through `os.fork()`, so the interpreter does its own before- and after-fork work.
pub fn fork() -> io::Result<i32> {
    Python::attach(|py| py.import("os")?.call_method0("fork")?.extract::<i32>())
        .map_err(|e| io::Error::other(format!("os.fork() failed: {e}")))
}
