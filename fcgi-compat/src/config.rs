//! What libfcgi has no API for, read from the environment when the server starts, so an
//! unchanged program can be tuned by whoever runs it:
//!
//! | variable | sets |
//! |---|---|
//! | `FCGI_COMPAT_WORKERS` | requests held at once (accept on that many threads to use them) |
//! | `FCGI_COMPAT_MAX_REQUESTS` | stop after this many requests (mod_fcgid's recycling) |
//! | `FCGI_COMPAT_MULTIPLEX` | requests served at once on one connection |
//! | `FCGI_COMPAT_MAX_BODY_BYTES` | the largest request body (413 beyond) |
//! | `FCGI_COMPAT_MAX_CONNS` | connections open at once (more are refused with OVERLOADED) |
//! | `FCGI_COMPAT_READ_TIMEOUT`, `_WRITE_TIMEOUT`, `_IDLE_TIMEOUT` | seconds (fractions allowed; 0: none) |
//!
//! A value that does not parse is reported on stderr and ignored.

use std::time::Duration;

use fcgi_core::ServerConfig;

/// Applies the `FCGI_COMPAT_*` variables that `lookup` finds to `config`; returns the
/// complaints about values that do not parse (the caller logs them).
pub fn apply(config: &mut ServerConfig, lookup: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mut complaints = Vec::new();
    let c = &mut complaints;
    if let Some(n) = read(&lookup, "FCGI_COMPAT_WORKERS", positive, c) {
        config.workers = Some(n);
    }
    if let Some(n) = read(&lookup, "FCGI_COMPAT_MAX_REQUESTS", positive, c) {
        config.max_requests = Some(n);
    }
    if let Some(n) = read(&lookup, "FCGI_COMPAT_MULTIPLEX", positive, c) {
        config.connection.max_requests_per_conn = n;
    }
    if let Some(n) = read(&lookup, "FCGI_COMPAT_MAX_BODY_BYTES", positive, c) {
        config.max_body_bytes = Some(n);
    }
    if let Some(n) = read(&lookup, "FCGI_COMPAT_MAX_CONNS", positive, c) {
        config.max_connections = n;
    }
    if let Some(t) = read(&lookup, "FCGI_COMPAT_READ_TIMEOUT", seconds, c) {
        config.read_timeout = t;
    }
    if let Some(t) = read(&lookup, "FCGI_COMPAT_WRITE_TIMEOUT", seconds, c) {
        config.write_timeout = t;
    }
    if let Some(t) = read(&lookup, "FCGI_COMPAT_IDLE_TIMEOUT", seconds, c) {
        config.idle_timeout = t;
    }
    if let Some(t) = read(&lookup, "FCGI_COMPAT_HEAD_TIMEOUT", seconds, c) {
        config.head_timeout = t;
    }
    if let Some(t) = read(&lookup, "FCGI_COMPAT_GRACEFUL_TIMEOUT", seconds, c) {
        config.graceful_timeout = t;
    }
    complaints
}

/// The parsed value of variable `name`, if set; a complaint if it does not parse.
fn read<T>(
    lookup: &dyn Fn(&str) -> Option<String>,
    name: &str,
    parse: fn(&str) -> Option<T>,
    complaints: &mut Vec<String>,
) -> Option<T> {
    let value = lookup(name)?;
    let parsed = parse(value.trim());
    if parsed.is_none() {
        complaints.push(format!("{name}={value:?} is not valid: ignored"));
    }
    parsed
}

/// A number above 0.
fn positive<T: std::str::FromStr + PartialOrd + Default>(text: &str) -> Option<T> {
    text.parse::<T>().ok().filter(|n| *n > T::default())
}

/// Seconds, fractions allowed: `Some(None)` for 0 (no timeout).
fn seconds(text: &str) -> Option<Option<Duration>> {
    let seconds: f64 = text.parse().ok()?;
    let duration = Duration::try_from_secs_f64(seconds).ok()?;
    Some((!duration.is_zero()).then_some(duration))
}

/// The worker count the core picks for a listener it bound itself: twice the cores, between 4
/// and 32. Used for a socket from `FCGX_OpenSocket`, which the core sees as inherited.
pub fn bound_workers() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (2 * cores).clamp(4, 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(vars: &[(&str, &str)]) -> (ServerConfig, Vec<String>) {
        let mut config = ServerConfig::default();
        let complaints = apply(&mut config, |name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string()));
        (config, complaints)
    }

    #[test]
    fn every_knob_is_read() {
        let (config, complaints) = applied(&[
            ("FCGI_COMPAT_WORKERS", "3"),
            ("FCGI_COMPAT_MAX_REQUESTS", "500"),
            ("FCGI_COMPAT_MULTIPLEX", "4"),
            ("FCGI_COMPAT_MAX_BODY_BYTES", "1000"),
            ("FCGI_COMPAT_MAX_CONNS", "10"),
            ("FCGI_COMPAT_READ_TIMEOUT", "0.3"),
            ("FCGI_COMPAT_WRITE_TIMEOUT", "0"),
            ("FCGI_COMPAT_IDLE_TIMEOUT", " 2 "),
        ]);
        assert!(complaints.is_empty(), "{complaints:?}");
        assert_eq!(config.workers, Some(3));
        assert_eq!(config.max_requests, Some(500));
        assert_eq!(config.connection.max_requests_per_conn, 4);
        assert_eq!(config.max_body_bytes, Some(1000));
        assert_eq!(config.max_connections, 10);
        assert_eq!(config.read_timeout, Some(Duration::from_millis(300)));
        assert_eq!(config.write_timeout, None);
        assert_eq!(config.idle_timeout, Some(Duration::from_secs(2)));
    }

    #[test]
    fn bad_values_are_reported_and_ignored() {
        let (config, complaints) = applied(&[
            ("FCGI_COMPAT_WORKERS", "0"),
            ("FCGI_COMPAT_MULTIPLEX", "70000"),
            ("FCGI_COMPAT_READ_TIMEOUT", "-1"),
            ("FCGI_COMPAT_MAX_REQUESTS", "many"),
        ]);
        assert_eq!(complaints.len(), 4, "{complaints:?}");
        let defaults = ServerConfig::default();
        assert_eq!(config.workers, defaults.workers);
        assert_eq!(config.connection.max_requests_per_conn, defaults.connection.max_requests_per_conn);
        assert_eq!(config.read_timeout, defaults.read_timeout);
        assert_eq!(config.max_requests, None);
    }
}
