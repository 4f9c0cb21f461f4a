//! The server's log records for a C program: to stderr by default, or to a callback the
//! program sets (its syslog, its own log file), with a level; access records too if it asks.

use std::ffi::{c_char, c_void, CString};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::RwLock;

use fcgi_core::runtime::logging::{format_line, Level, ACCESS_TARGET};

use crate::fcgi_result::{self, *};
use crate::panic::ffi_boundary;

/// How severe a log record is.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum fcgi_log_level {
    /// Something failed: a request, a connection, the server.
    FCGI_LOG_ERROR = 1,
    /// Something was refused or cut (a limit, a timeout), and the server goes on.
    FCGI_LOG_WARNING = 2,
    /// What the server does (a reload) and, for the access log, one record per request.
    FCGI_LOG_INFO = 3,
    /// Detail for finding a fault.
    FCGI_LOG_DEBUG = 4,
}

impl fcgi_log_level {
    pub(crate) fn level(self) -> Level {
        match self {
            Self::FCGI_LOG_ERROR => Level::Error,
            Self::FCGI_LOG_WARNING => Level::Warning,
            Self::FCGI_LOG_INFO => Level::Info,
            Self::FCGI_LOG_DEBUG => Level::Debug,
        }
    }
}

/// Receives one log record: `logger` is `"fcgi.error"` for the server's own messages or
/// `"fcgi.access"` for an access record; `message` has no newline. Both strings live only
/// during the call. Called from the server's threads, possibly several at once.
pub type fcgi_log_callback = Option<
    unsafe extern "C" fn(user_data: *mut c_void, level: fcgi_log_level, logger: *const c_char, message: *const c_char),
>;

/// The program's callback and what it asked for.
#[derive(Clone, Copy)]
struct Sink {
    callback: unsafe extern "C" fn(*mut c_void, fcgi_log_level, *const c_char, *const c_char),
    /// The program's pointer, passed back untouched.
    user_data: usize,
    access: bool,
}

struct CLogger {
    sink: RwLock<Option<Sink>>,
    /// The least severe level of the server's own messages passed on (a [`Level`] as u8).
    level: AtomicU8,
    installed: AtomicBool,
}

static LOGGER: CLogger =
    CLogger { sink: RwLock::new(None), level: AtomicU8::new(Level::Info as u8), installed: AtomicBool::new(false) };

/// Sends the server's log records to `callback` with `user_data`, process-wide, from now on;
/// access records too if `access` (the access log as records, beside or instead of
/// `fcgi_options_set_access_logfile`). NULL goes back to stderr. The level is each server's
/// (`fcgi_options_set_log_level`).
#[no_mangle]
pub unsafe extern "C" fn fcgi_log_set_callback(
    callback: fcgi_log_callback,
    user_data: *mut c_void,
    access: bool,
) -> fcgi_result {
    ffi_boundary!({
        install();
        let sink = callback.map(|callback| Sink { callback, user_data: user_data as usize, access });
        *LOGGER.sink.write().unwrap_or_else(|p| p.into_inner()) = sink;
        apply_level();
        FCGI_OK
    })
}

/// Installs the C face's logger (before the core would install its stderr one) and sets the
/// level of the server about to open.
pub(crate) fn set_level(level: Level) {
    install();
    LOGGER.level.store(level as u8, Ordering::Relaxed);
    apply_level();
}

fn install() {
    if !LOGGER.installed.swap(true, Ordering::SeqCst) {
        // A Rust logger in the same program (an embedding Rust crate) keeps precedence.
        let _ = log::set_logger(&LOGGER);
    }
}

/// The facade's filter: the level, or info if access records are wanted.
fn apply_level() {
    let level = level_of(LOGGER.level.load(Ordering::Relaxed)).filter();
    let access = LOGGER.sink.read().unwrap_or_else(|p| p.into_inner()).is_some_and(|sink| sink.access);
    log::set_max_level(if access { level.max(log::LevelFilter::Info) } else { level });
}

fn level_of(n: u8) -> Level {
    [Level::Error, Level::Warning, Level::Info, Level::Debug].into_iter().find(|l| *l as u8 == n).unwrap_or(Level::Info)
}

impl log::Log for CLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        if metadata.target() == ACCESS_TARGET {
            return self.sink.read().unwrap_or_else(|p| p.into_inner()).is_some_and(|sink| sink.access);
        }
        metadata.level() <= level_of(self.level.load(Ordering::Relaxed)).filter()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let sink = *self.sink.read().unwrap_or_else(|p| p.into_inner());
        let Some(sink) = sink else {
            eprint!("{}", format_line(record));
            return;
        };
        let (logger, level) = if record.target() == ACCESS_TARGET {
            (c"fcgi.access", fcgi_log_level::FCGI_LOG_INFO)
        } else {
            let level = match record.level() {
                log::Level::Error => fcgi_log_level::FCGI_LOG_ERROR,
                log::Level::Warn => fcgi_log_level::FCGI_LOG_WARNING,
                log::Level::Info => fcgi_log_level::FCGI_LOG_INFO,
                log::Level::Debug | log::Level::Trace => fcgi_log_level::FCGI_LOG_DEBUG,
            };
            (c"fcgi.error", level)
        };
        // A NUL inside a message (from a client's bytes) would cut it: shown as \0 instead.
        let message = CString::new(record.args().to_string().replace('\0', "\\0")).unwrap_or_default();
        // SAFETY: the program gave this callback for exactly this call shape; both strings
        // are NUL-terminated and outlive the call.
        unsafe { (sink.callback)(sink.user_data as *mut c_void, level, logger.as_ptr(), message.as_ptr()) };
    }

    fn flush(&self) {}
}
