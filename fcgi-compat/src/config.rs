//! What libfcgi has no API for, read from the environment when the server starts, so an
//! unchanged program can be tuned by whoever runs it: each setting of the core's table
//! (`fcgi_core::settings::SETTINGS`, listed in docs/SETTINGS.md) that names an `FCGI_COMPAT_*`
//! variable. Timeouts are in seconds (fractions allowed; 0: no limit). A value that does not
//! parse, or that the setting refuses, is reported on stderr and ignored.

use fcgi_core::settings::{Value, SETTINGS};
use fcgi_core::ServerConfig;

/// Applies the `FCGI_COMPAT_*` variables that `lookup` finds to `config`; returns the
/// complaints about values that do not parse (the caller logs them).
pub fn apply(config: &mut ServerConfig, lookup: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mut complaints = Vec::new();
    for setting in SETTINGS {
        let Ok(name) = setting.env else { continue };
        let Some(text) = lookup(name) else { continue };
        let applied = match Value::parse(setting.kind, &text) {
            Some(value) => config.set(setting.name, value).map_err(|e| e.to_string()),
            None => Err("not a value it takes".to_owned()),
        };
        if let Err(why) = applied {
            complaints.push(format!("{name}={text:?} is not valid ({why}): ignored"));
        }
    }
    complaints
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use fcgi_core::settings::example;

    use super::*;

    #[test]
    fn every_setting_of_the_core_with_a_variable_is_read() {
        for setting in SETTINGS {
            let Ok(name) = setting.env else { continue };
            let (config, complaints) = applied(&[(name, example(setting))]);
            assert!(complaints.is_empty(), "{name}: {complaints:?}");
            assert_ne!(format!("{config:?}"), format!("{:?}", ServerConfig::default()), "{name} changed nothing");
        }
    }

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
            ("FCGI_COMPAT_MAX_CONNS", "0"),
            ("FCGI_COMPAT_MULTIPLEX", "70000"),
            ("FCGI_COMPAT_READ_TIMEOUT", "-1"),
            ("FCGI_COMPAT_MAX_REQUESTS", "many"),
        ]);
        assert_eq!(complaints.len(), 4, "{complaints:?}");
        let defaults = ServerConfig::default();
        assert_eq!(config.max_connections, defaults.max_connections);
        assert_eq!(config.connection.max_requests_per_conn, defaults.connection.max_requests_per_conn);
        assert_eq!(config.read_timeout, defaults.read_timeout);
        assert_eq!(config.max_requests, None);
    }
}
