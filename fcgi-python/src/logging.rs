//! The server's log records go to Python's `logging`: the core's own messages to the logger
//! `fcgi_wsgi.error`, access records to `fcgi_wsgi.access`, so `logging.config` or Django's
//! `LOGGING` route them like the app's own. Access records are sent only when that logger (or
//! `fcgi_wsgi`) has handlers of its own: one line per request costs a Python call, so nobody
//! pays for it without asking (`access_logfile` writes lines from Rust, without Python).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use fcgi_core::runtime::logging::{format_line, Level, ACCESS_TARGET};
use pyo3::prelude::*;

/// The logger installed in the `log` facade (once: the facade takes one per process).
static LOGGER: PythonLogger = PythonLogger { loggers: RwLock::new(None), access_wanted: AtomicBool::new(false) };

struct PythonLogger {
    /// `fcgi_wsgi.error` and `fcgi_wsgi.access`, while a server runs; `None` sends records to
    /// stderr (the interpreter may be finishing).
    loggers: RwLock<Option<Arc<[Py<PyAny>; 2]>>>,
    access_wanted: AtomicBool,
}

/// Routes the server's records into Python's `logging` for the serve about to start, at
/// `level`; the first call installs the logger. The error logger gets a stderr handler in
/// gunicorn's shape when nothing anywhere handles its records.
pub(crate) fn attach(py: Python<'_>, level: Level) -> PyResult<()> {
    let logging = py.import("logging")?;
    let error = logging.call_method1("getLogger", ("fcgi_wsgi.error",))?;
    let access = logging.call_method1("getLogger", ("fcgi_wsgi.access",))?;
    let package = logging.call_method1("getLogger", ("fcgi_wsgi",))?;
    if !error.call_method0("hasHandlers")?.is_truthy()? {
        py.import("fcgi_wsgi._logging")?.call_method1("add_stderr_handler", (&error,))?;
    }
    error.call_method1("setLevel", (level.name().to_ascii_uppercase(),))?;
    let has_handlers = |logger: &Bound<'_, PyAny>| -> PyResult<bool> { logger.getattr("handlers")?.is_truthy() };
    let access_wanted = has_handlers(&access)? || has_handlers(&package)?;
    *LOGGER.loggers.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new([error.unbind(), access.unbind()]));
    LOGGER.access_wanted.store(access_wanted, Ordering::Relaxed);
    // Already installed by an earlier serve in this process: the records go to the new loggers.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level.filter().max(if access_wanted { log::LevelFilter::Info } else { log::LevelFilter::Off }));
    Ok(())
}

/// Looks again for handlers of the access logger once the app is loaded: an app imported after
/// `attach`, in each worker process after the fork (or in a lone one before serving), may have
/// given it some (Django's `LOGGING`).
pub(crate) fn recheck_access(py: Python<'_>) -> PyResult<()> {
    let logging = py.import("logging")?;
    let has_handlers =
        |name: &str| -> PyResult<bool> { logging.call_method1("getLogger", (name,))?.getattr("handlers")?.is_truthy() };
    if has_handlers("fcgi_wsgi.access")? || has_handlers("fcgi_wsgi")? {
        LOGGER.access_wanted.store(true, Ordering::Relaxed);
        log::set_max_level(log::max_level().max(log::LevelFilter::Info));
    }
    Ok(())
}

/// Sends records to stderr again: the serve is over, and the interpreter may be finishing.
pub(crate) fn detach() {
    *LOGGER.loggers.write().unwrap_or_else(|p| p.into_inner()) = None;
    LOGGER.access_wanted.store(false, Ordering::Relaxed);
}

impl log::Log for PythonLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target() != ACCESS_TARGET || self.access_wanted.load(Ordering::Relaxed)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // Out of the lock before taking the GIL: a thread holding the GIL may be waiting for it.
        let loggers = self.loggers.read().unwrap_or_else(|p| p.into_inner()).clone();
        let Some([error, access]) = loggers.as_deref() else {
            if record.target() != ACCESS_TARGET {
                eprint!("{}", format_line(record));
            }
            return;
        };
        let (logger, level) = if record.target() == ACCESS_TARGET {
            (access, 20)
        } else {
            let level = match record.level() {
                log::Level::Error => 40,
                log::Level::Warn => 30,
                log::Level::Info => 20,
                log::Level::Debug | log::Level::Trace => 10,
            };
            (error, level)
        };
        Python::attach(|py| {
            if let Err(e) = logger.call_method1(py, "log", (level, record.args().to_string())) {
                // A handler that raises must not take the server down; Python prints it as
                // `logging` itself would.
                e.print(py);
            }
        });
    }

    fn flush(&self) {}
}
