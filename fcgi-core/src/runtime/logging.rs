//! The server's own messages go through the `log` facade, so each face routes them into its
//! host's facility (Python's `logging`, a C callback, a Rust program's logger). When nothing
//! else is installed, [`install_default`] writes them to stderr, which under mod_fcgid and
//! lighttpd is the web server's error log.

use std::fmt;
use std::io::Write;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use super::clock;

/// The `log` target of access records (one per request, see `access_log.rs`); every other
/// target is the server's own messages.
pub const ACCESS_TARGET: &str = "fcgi::access";

/// The least severe message a server logs (the `log_level` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warning,
    Info,
    Debug,
}

impl Level {
    /// The `log` crate's filter for this level.
    pub fn filter(self) -> log::LevelFilter {
        match self {
            Self::Error => log::LevelFilter::Error,
            Self::Warning => log::LevelFilter::Warn,
            Self::Info => log::LevelFilter::Info,
            Self::Debug => log::LevelFilter::Trace,
        }
    }

    /// The name as the settings spell it (and Python's `logging` upper-cases it).
    pub fn name(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Info => "info",
            Self::Debug => "debug",
        }
    }
}

/// A level name that is not one of debug, info, warning, error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseLevelError(String);

impl fmt::Display for ParseLevelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "log_level must be debug, info, warning or error, not {:?}", self.0)
    }
}

impl std::error::Error for ParseLevelError {}

impl FromStr for Level {
    type Err = ParseLevelError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "error" | "critical" => Ok(Self::Error),
            "warning" | "warn" => Ok(Self::Warning),
            "info" => Ok(Self::Info),
            "debug" | "trace" => Ok(Self::Debug),
            _ => Err(ParseLevelError(text.to_owned())),
        }
    }
}

/// Installs the stderr logger at `level` unless the program installed a logger of its own
/// (which then decides what it shows); once installed, a later call sets its level.
pub fn install_default(level: Level) {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if log::set_logger(&StderrLogger).is_ok() {
        INSTALLED.store(true, Ordering::Relaxed);
    }
    if INSTALLED.load(Ordering::Relaxed) {
        log::set_max_level(level.filter());
    }
}

/// One line per message on stderr, gunicorn's shape: `[2026-12-04 18:56:08 +0000] [PID]
/// [LEVEL] message`. Access records are not its business (`access_logfile = "-"` writes them).
struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target() != ACCESS_TARGET
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            // One write per line, so lines of several threads and processes do not interleave.
            let line = format_line(record);
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

/// `record` as a stderr line, ending in a newline.
pub fn format_line(record: &log::Record<'_>) -> String {
    let level = match record.level() {
        log::Level::Error => "ERROR",
        log::Level::Warn => "WARNING",
        log::Level::Info => "INFO",
        log::Level::Debug | log::Level::Trace => "DEBUG",
    };
    format!("[{}] [{}] [{level}] {}\n", clock::log_time(), std::process::id(), record.args())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_names_parse_as_python_and_rust_spell_them() {
        assert_eq!("WARNING".parse(), Ok(Level::Warning));
        assert_eq!("warn".parse(), Ok(Level::Warning));
        assert_eq!(" debug ".parse(), Ok(Level::Debug));
        assert!("loud".parse::<Level>().unwrap_err().to_string().contains("debug, info, warning or error"));
        assert_eq!(Level::Debug.filter(), log::LevelFilter::Trace);
    }
}
