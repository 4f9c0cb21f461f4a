//! Every tunable setting of the server in one table, which each face reads or is tested
//! against: the Python keywords and command-line flags, the C setters, libfcgi-compat's
//! environment variables and docs/SETTINGS.md. Adding a knob is a row here, a field of
//! [`ServerConfig`] and its arm in [`ServerConfig::set`]; a face that lacks it fails a test.

use std::fmt;
use std::time::Duration;

use super::access_log::AccessFormat;
use super::allow_list::AllowListError;
use super::config::ServerConfig;
use super::logging::ParseLevelError;
use super::privileges;

/// What a setting's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole number of things (workers, connections, requests).
    Count,
    /// A size in bytes.
    Bytes,
    /// A duration in seconds (fractions allowed; C takes milliseconds).
    Seconds,
    /// Yes or no.
    Flag,
    /// Words: a path, a format, a level name.
    Text,
    /// Permission bits, in octal (`0660`, `0o660`).
    Mode,
}

/// One setting.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The Python keyword (`serve_wsgi(name=...)`), and with dashes the command-line flag.
    pub name: &'static str,
    pub kind: Kind,
    /// The default, as the docs say it.
    pub default: &'static str,
    /// What 0 means (`""` where 0 is not accepted).
    pub zero: &'static str,
    /// One line for the docs.
    pub doc: &'static str,
    /// The C setter (`fcgi_options_set_...`), or `None` with the reason it does not apply.
    pub c_setter: Result<&'static str, &'static str>,
    /// libfcgi-compat's environment variable, or `None` with the reason it does not apply.
    pub env: Result<&'static str, &'static str>,
}

/// Every setting, in the order the docs list them.
pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "workers",
        kind: Kind::Count,
        default: "1 on mod_fcgid's fd 0; else 2 for a Python WSGI app, max_concurrency (100) for an ASGI app, twice the cores (4 to 32) for Rust and C",
        zero: "the default",
        doc: "requests served at once in a process (worker threads)",
        c_setter: Ok("workers"),
        env: Ok("FCGI_COMPAT_WORKERS"),
    },
    Setting {
        name: "processes",
        kind: Kind::Count,
        default: "1 on mod_fcgid's fd 0; else the cores for a Python WSGI app (one thread at a time runs Python in a process), 1 for ASGI and Rust",
        zero: "none until a request comes (a dynamic pool: needs max_processes)",
        doc: "worker processes sharing the listener (pre-fork; this process supervises them)",
        c_setter: Err("the C API serves on the program's own threads: a C program that wants processes forks"),
        env: Err("a libfcgi program forks its own processes"),
    },
    Setting {
        name: "max_processes",
        kind: Kind::Count,
        default: "processes (a fixed pool)",
        zero: "processes (a fixed pool)",
        doc: "a dynamic pool: processes are started, up to this many, while every worker is busy and requests wait (PHP-FPM's pm = dynamic; with processes 0, ondemand)",
        c_setter: Err("the C API serves on the program's own threads: a C program that wants processes forks"),
        env: Err("a libfcgi program forks its own processes"),
    },
    Setting {
        name: "process_idle_timeout",
        kind: Kind::Seconds,
        default: "10",
        zero: "never",
        doc: "a process of a dynamic pool that served nothing this long is stopped, while more than processes run",
        c_setter: Err("the C API serves on the program's own threads: a C program that wants processes forks"),
        env: Err("a libfcgi program forks its own processes"),
    },
    Setting {
        name: "max_spawn_rate",
        kind: Kind::Count,
        default: "8",
        zero: "",
        doc: "processes a dynamic pool starts per second, at most",
        c_setter: Err("the C API serves on the program's own threads: a C program that wants processes forks"),
        env: Err("a libfcgi program forks its own processes"),
    },
    Setting {
        name: "max_requests",
        kind: Kind::Count,
        default: "no limit",
        zero: "no limit",
        doc: "recycle a process after this many requests: a worker of processes is replaced (the new one started first), a lone process stops (mod_fcgid's FcgidMaxRequestsPerProcess)",
        c_setter: Ok("max_requests"),
        env: Ok("FCGI_COMPAT_MAX_REQUESTS"),
    },
    Setting {
        name: "max_requests_jitter",
        kind: Kind::Count,
        default: "0",
        zero: "no jitter",
        doc: "add a random 0 to this many requests to max_requests in each process, so that processes started together do not recycle at once (gunicorn's)",
        c_setter: Ok("max_requests_jitter"),
        env: Ok("FCGI_COMPAT_MAX_REQUESTS_JITTER"),
    },
    Setting {
        name: "max_rss",
        kind: Kind::Count,
        default: "no limit",
        zero: "no limit",
        doc: "MiB of resident memory past which a process is recycled, after its requests (checked each second)",
        c_setter: Ok("max_rss"),
        env: Ok("FCGI_COMPAT_MAX_RSS"),
    },
    Setting {
        name: "max_connections",
        kind: Kind::Count,
        default: "1024",
        zero: "",
        doc: "connections open at once; the request of one more gets END_REQUEST(OVERLOADED)",
        c_setter: Ok("max_conns"),
        env: Ok("FCGI_COMPAT_MAX_CONNS"),
    },
    Setting {
        name: "multiplex",
        kind: Kind::Count,
        default: "1 (a second request on a connection gets CANT_MPX_CONN)",
        zero: "",
        doc: "requests served at once on one connection (HAProxy's mpxs-conns)",
        c_setter: Ok("multiplex"),
        env: Ok("FCGI_COMPAT_MULTIPLEX"),
    },
    Setting {
        name: "max_body_bytes",
        kind: Kind::Bytes,
        default: "no limit (the web server's own)",
        zero: "no limit",
        doc: "largest request body: a larger CONTENT_LENGTH gets 413 without calling the app",
        c_setter: Ok("max_body_bytes"),
        env: Ok("FCGI_COMPAT_MAX_BODY_BYTES"),
    },
    Setting {
        name: "max_params_bytes",
        kind: Kind::Bytes,
        default: "1 MiB",
        zero: "",
        doc: "largest PARAMS stream of a request (431 beyond)",
        c_setter: Ok("params_limits"),
        env: Ok("FCGI_COMPAT_MAX_PARAMS_BYTES"),
    },
    Setting {
        name: "max_param_bytes",
        kind: Kind::Bytes,
        default: "256 KiB",
        zero: "",
        doc: "largest name-value pair, decided on its claimed length before anything is stored (431 beyond)",
        c_setter: Ok("params_limits"),
        env: Ok("FCGI_COMPAT_MAX_PARAM_BYTES"),
    },
    Setting {
        name: "max_params",
        kind: Kind::Count,
        default: "4096",
        zero: "",
        doc: "most name-value pairs in a request (431 beyond)",
        c_setter: Ok("params_limits"),
        env: Ok("FCGI_COMPAT_MAX_PARAMS"),
    },
    Setting {
        name: "read_timeout",
        kind: Kind::Seconds,
        default: "60",
        zero: "no limit",
        doc: "how long a read of the body may wait for the web server",
        c_setter: Ok("read_timeout"),
        env: Ok("FCGI_COMPAT_READ_TIMEOUT"),
    },
    Setting {
        name: "write_timeout",
        kind: Kind::Seconds,
        default: "60",
        zero: "no limit",
        doc: "how long a write may wait for the web server to read",
        c_setter: Ok("write_timeout"),
        env: Ok("FCGI_COMPAT_WRITE_TIMEOUT"),
    },
    Setting {
        name: "idle_timeout",
        kind: Kind::Seconds,
        default: "90",
        zero: "no limit",
        doc: "how long a kept-alive connection may sit idle between requests",
        c_setter: Ok("idle_timeout"),
        env: Ok("FCGI_COMPAT_IDLE_TIMEOUT"),
    },
    Setting {
        name: "head_timeout",
        kind: Kind::Seconds,
        default: "10",
        zero: "no limit",
        doc: "how long BEGIN_REQUEST and the whole PARAMS stream may take (meanwhile no worker is held)",
        c_setter: Ok("head_timeout"),
        env: Ok("FCGI_COMPAT_HEAD_TIMEOUT"),
    },
    Setting {
        name: "graceful_timeout",
        kind: Kind::Seconds,
        default: "30",
        zero: "no limit",
        doc: "how long a stop or reload waits for requests in flight, then ends or re-executes anyway",
        c_setter: Ok("graceful_timeout"),
        env: Ok("FCGI_COMPAT_GRACEFUL_TIMEOUT"),
    },
    Setting {
        name: "log_level",
        kind: Kind::Text,
        default: "info",
        zero: "",
        doc: "the least severe of the server's own messages logged: debug, info, warning or error",
        c_setter: Ok("log_level"),
        env: Ok("FCGI_COMPAT_LOG_LEVEL"),
    },
    Setting {
        name: "access_logfile",
        kind: Kind::Text,
        default: "none (no access log)",
        zero: "",
        doc: "write one line per request to this file (`-`: stderr), buffered, flushed within a second and at exit",
        c_setter: Ok("access_logfile"),
        env: Ok("FCGI_COMPAT_ACCESS_LOGFILE"),
    },
    Setting {
        name: "access_logformat",
        kind: Kind::Text,
        default: "gunicorn's: `%(h)s %(l)s %(u)s %(t)s \"%(r)s\" %(s)s %(b)s \"%(f)s\" \"%(a)s\"`",
        zero: "",
        doc: "the access log's line, in gunicorn's atoms and ours (README: Seeing what it does)",
        c_setter: Ok("access_logformat"),
        env: Ok("FCGI_COMPAT_ACCESS_LOGFORMAT"),
    },
    Setting {
        name: "slow_request_timeout",
        kind: Kind::Seconds,
        default: "off",
        zero: "off",
        doc: "a request running past this is logged once, with its thread's stack (Python), and counted; it goes on",
        c_setter: Ok("slow_request_timeout"),
        env: Ok("FCGI_COMPAT_SLOW_REQUEST_TIMEOUT"),
    },
    Setting {
        name: "timeout",
        kind: Kind::Seconds,
        default: "off",
        zero: "off",
        doc: "a request running past this is ended: 504 if nothing was sent (Python: RequestTimeout raised in its thread; C, Rust: its next read or write fails); one still running timeout_grace later gets its process replaced",
        c_setter: Ok("timeout"),
        env: Ok("FCGI_COMPAT_TIMEOUT"),
    },
    Setting {
        name: "timeout_grace",
        kind: Kind::Seconds,
        default: "5",
        zero: "",
        doc: "how long a timed-out request may take to end before its process is replaced (after its other requests end, within graceful_timeout), its stack logged first",
        c_setter: Ok("timeout_grace"),
        env: Ok("FCGI_COMPAT_TIMEOUT_GRACE"),
    },
    Setting {
        name: "status_path",
        kind: Kind::Text,
        default: "none (no status page)",
        zero: "",
        doc: "a request for this path (SCRIPT_NAME + PATH_INFO) gets the status page from the server itself, even while every worker is busy",
        c_setter: Ok("status_path"),
        env: Ok("FCGI_COMPAT_STATUS_PATH"),
    },
    Setting {
        name: "ping_path",
        kind: Kind::Text,
        default: "none",
        zero: "",
        doc: "a request for this path gets `pong` from the server itself, even while every worker is busy",
        c_setter: Ok("ping_path"),
        env: Ok("FCGI_COMPAT_PING_PATH"),
    },
    Setting {
        name: "status_allow",
        kind: Kind::Text,
        default: "loopback: `127.0.0.0/8,::1`",
        zero: "",
        doc: "client addresses or networks (REMOTE_ADDR) that may see the status and ping pages, comma-separated; others get 404",
        c_setter: Ok("status_allow"),
        env: Ok("FCGI_COMPAT_STATUS_ALLOW"),
    },
    Setting {
        name: "force_cgi",
        kind: Kind::Flag,
        default: "no (fd 0 decides)",
        zero: "",
        doc: "serve one CGI request even if a listener is there (also FCGI_FORCE_CGI=1)",
        c_setter: Ok("force_cgi"),
        env: Err("the core reads FCGI_FORCE_CGI itself, on every face"),
    },
    Setting {
        name: "handle_signals",
        kind: Kind::Flag,
        default: "yes",
        zero: "",
        doc: "take SIGTERM, SIGINT, SIGUSR1 (stop) and SIGHUP (reload) while serving",
        c_setter: Ok("handle_signals"),
        env: Err("libfcgi-compat takes the signals unless the program has handlers of its own"),
    },
    // Privileges and the socket (issue 16, item 4): privileges.rs and pid_file.rs apply them.
    Setting {
        name: "user",
        kind: Kind::Text,
        default: "unchanged",
        zero: "",
        doc: "once the socket is bound, run as this user (name or uid; its groups too) before the app is loaded: \
              with processes, each worker process (the supervisor keeps its user); needs root",
        c_setter: Ok("user"),
        env: Err("spawn-fcgi (-u, -g), mod_fcgid or systemd (User=) start a libfcgi program as its user"),
    },
    Setting {
        name: "group",
        kind: Kind::Text,
        default: "the user's group, else unchanged",
        zero: "",
        doc: "with `user`, or alone: run as this group (name or gid), with no other group",
        c_setter: Ok("user"),
        env: Err("spawn-fcgi (-u, -g), mod_fcgid or systemd (Group=) start a libfcgi program as its group"),
    },
    Setting {
        name: "umask",
        kind: Kind::Mode,
        default: "unchanged",
        zero: "nothing masked",
        doc: "the process's file-creation mask (octal), set before the socket is bound",
        c_setter: Err("a C program calls umask(2) itself"),
        env: Err("whoever starts the program sets it (systemd's UMask=)"),
    },
    Setting {
        name: "socket_mode",
        kind: Kind::Mode,
        default: "0777 less the umask",
        zero: "",
        doc: "the permissions (octal) of a Unix socket the server binds, never wider at any moment",
        c_setter: Ok("socket_mode"),
        env: Err("a libfcgi program binds its own socket (FCGX_OpenSocket) or is handed one"),
    },
    Setting {
        name: "socket_owner",
        kind: Kind::Text,
        default: "the user binding it",
        zero: "",
        doc: "`USER:GROUP`, `USER` or `:GROUP`: the owner of a Unix socket the server binds (chown before the user changes)",
        c_setter: Ok("socket_owner"),
        env: Err("a libfcgi program binds its own socket (FCGX_OpenSocket) or is handed one"),
    },
    Setting {
        name: "backlog",
        kind: Kind::Count,
        default: "1024 (the kernel caps it at net.core.somaxconn)",
        zero: "",
        doc: "connections the kernel queues on a socket the server binds until one is accepted",
        c_setter: Ok("backlog"),
        env: Err("FCGX_OpenSocket takes it as an argument"),
    },
    Setting {
        name: "pid_file",
        kind: Kind::Text,
        default: "none",
        zero: "",
        doc: "write the server's pid here (a temporary file renamed into place) and remove it at exit; a reload keeps it (same pid)",
        c_setter: Ok("pid_file"),
        env: Err("spawn-fcgi -P writes a libfcgi program's; a program that forks has a server in each process"),
    },
];

/// The setting called `name`.
pub fn setting(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// A value `setting` takes, as text (for tests on every face and for examples).
pub fn example(setting: &Setting) -> &'static str {
    match (setting.kind, setting.name) {
        (Kind::Count | Kind::Bytes, _) => "7",
        (Kind::Seconds, _) => "7.5",
        (Kind::Flag, "handle_signals") => "no",
        (Kind::Flag, _) => "yes",
        (Kind::Text, "log_level") => "debug",
        (Kind::Text, "access_logformat") => "%(s)s %(D)s",
        (Kind::Text, "status_path" | "ping_path") => "/fcgi-status",
        (Kind::Text, "status_allow") => "10.0.0.0/8,::1",
        // Ids every system has: the names of nobody and its group differ between systems.
        (Kind::Text, "user" | "group") => "0",
        (Kind::Text, "socket_owner") => "0:0",
        (Kind::Text, _) => "/tmp/fcgi-example.log",
        (Kind::Mode, _) => "0660",
    }
}

/// A value a face hands over for a setting.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A count or a size.
    Number(u64),
    /// Seconds.
    Seconds(f64),
    Flag(bool),
    Text(String),
}

/// A value a setting does not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError(String);

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SettingError {}

impl Value {
    /// Parses `text` as a value of `kind` (environment variables, command lines).
    pub fn parse(kind: Kind, text: &str) -> Option<Self> {
        let text = text.trim();
        match kind {
            Kind::Count | Kind::Bytes => text.parse().ok().map(Self::Number),
            Kind::Seconds => text.parse().ok().map(Self::Seconds),
            Kind::Flag => match text {
                "1" | "yes" | "true" | "on" => Some(Self::Flag(true)),
                "0" | "no" | "false" | "off" | "" => Some(Self::Flag(false)),
                _ => None,
            },
            Kind::Text => Some(Self::Text(text.to_owned())),
            Kind::Mode => {
                let digits = text.strip_prefix("0o").unwrap_or(text);
                u32::from_str_radix(digits, 8).ok().filter(|mode| *mode <= 0o7777).map(|mode| Self::Number(mode.into()))
            }
        }
    }
}

impl ServerConfig {
    /// Sets the setting called `name` (a row of [`SETTINGS`]) to `value`, with the same
    /// meaning on every face: 0 is "no limit" where the table says so and refused where it
    /// gives 0 no meaning; a negative duration is refused.
    pub fn set(&mut self, name: &str, value: Value) -> Result<(), SettingError> {
        let setting = setting(name).ok_or_else(|| SettingError(format!("there is no setting {name:?}")))?;
        let refuse = || SettingError(format!("{name} does not take {value:?}"));
        match (setting.kind, &value) {
            (Kind::Count | Kind::Bytes, &Value::Number(n)) => {
                if n == 0 && setting.zero.is_empty() {
                    return Err(SettingError(format!("{name} must be above 0")));
                }
                let size = usize::try_from(n).unwrap_or(usize::MAX);
                let limit = (n > 0).then_some(n);
                match name {
                    "workers" => self.workers = (n > 0).then_some(size),
                    "processes" => self.processes = Some(size),
                    "max_processes" => self.max_processes = size,
                    "max_spawn_rate" => self.max_spawn_rate = size,
                    "max_requests" => self.max_requests = limit,
                    "max_requests_jitter" => self.max_requests_jitter = n,
                    "max_rss" => self.max_rss = limit.map(|mib| mib.saturating_mul(1 << 20)),
                    "max_connections" => self.max_connections = size,
                    "multiplex" => self.connection.max_requests_per_conn = u16::try_from(n).map_err(|_| refuse())?,
                    "max_body_bytes" => self.max_body_bytes = limit,
                    "max_params_bytes" => self.connection.params_limits.max_total_bytes = size,
                    "max_param_bytes" => self.connection.params_limits.max_pair_len = size,
                    "max_params" => self.connection.params_limits.max_pairs = size,
                    "backlog" => self.backlog = u32::try_from(n).map_err(|_| refuse())?,
                    _ => return Err(refuse()),
                }
            }
            (Kind::Seconds, &Value::Seconds(seconds)) => {
                let timeout = match Duration::try_from_secs_f64(seconds) {
                    Ok(d) if d.is_zero() => None,
                    Ok(d) => Some(d),
                    Err(_) => {
                        return Err(SettingError(format!(
                            "{name} must be 0 (no limit) or a positive number of seconds, not {seconds}"
                        )))
                    }
                };
                match name {
                    "read_timeout" => self.read_timeout = timeout,
                    "write_timeout" => self.write_timeout = timeout,
                    "idle_timeout" => self.idle_timeout = timeout,
                    "head_timeout" => self.head_timeout = timeout,
                    "graceful_timeout" => self.graceful_timeout = timeout,
                    "slow_request_timeout" => self.slow_request_timeout = timeout,
                    "timeout" => self.timeout = timeout,
                    "process_idle_timeout" => self.process_idle_timeout = timeout,
                    "timeout_grace" => {
                        self.timeout_grace = timeout.ok_or_else(|| SettingError(format!("{name} must be above 0")))?
                    }
                    _ => return Err(refuse()),
                }
            }
            (Kind::Flag, &Value::Flag(yes)) => match name {
                "force_cgi" => self.force_cgi = yes,
                "handle_signals" => self.handle_signals = yes,
                _ => return Err(refuse()),
            },
            (Kind::Text, Value::Text(text)) => match name {
                "log_level" => {
                    self.log_level = text.parse().map_err(|e: ParseLevelError| SettingError(e.to_string()))?
                }
                "access_logfile" => self.access_logfile = (!text.is_empty()).then(|| text.into()),
                "status_path" => self.status_path = (!text.is_empty()).then(|| text.clone()),
                "ping_path" => self.ping_path = (!text.is_empty()).then(|| text.clone()),
                "status_allow" => {
                    self.status_allow =
                        text.parse().map_err(|e: AllowListError| SettingError(format!("status_allow: {e}")))?
                }
                "access_logformat" => {
                    self.access_logformat =
                        AccessFormat::parse(text).map_err(|e| SettingError(format!("access_logformat: {e}")))?
                }
                "user" => self.user = (!text.is_empty()).then(|| text.clone()),
                "group" => self.group = (!text.is_empty()).then(|| text.clone()),
                "socket_owner" => self.socket_owner = (!text.is_empty()).then(|| text.clone()),
                "pid_file" => self.pid_file = (!text.is_empty()).then(|| text.into()),
                _ => return Err(refuse()),
            },
            (Kind::Mode, &Value::Number(mode)) => {
                let mode = u32::try_from(mode).ok().filter(|mode| *mode <= 0o7777).ok_or_else(|| {
                    SettingError(format!("{name} must be permission bits, 0 to 0o7777, not {mode:#o}"))
                })?;
                if mode == 0 && setting.zero.is_empty() {
                    return Err(SettingError(format!("{name} must be above 0")));
                }
                match name {
                    "umask" => self.umask = Some(mode),
                    "socket_mode" => self.socket_mode = Some(mode),
                    _ => return Err(refuse()),
                }
            }
            _ => return Err(refuse()),
        }
        if matches!(name, "user" | "group" | "socket_owner") {
            // A name that does not resolve is refused now, naming the setting, rather than at
            // the start of serving.
            privileges::Identity::resolve(self.user.as_deref(), self.group.as_deref())
                .and_then(|_| self.socket_owner.as_deref().map_or(Ok((None, None)), privileges::owner))
                .map_err(|e| SettingError(format!("{name}: {e}")))?;
        }
        Ok(())
    }
}

/// docs/SETTINGS.md, made from the table (a test keeps the committed file the same).
pub fn markdown() -> String {
    let mut out = String::from(
        "# Settings\n\nGenerated from `fcgi-core/src/runtime/settings.rs` (`FCGI_BLESS=1 cargo test -p fcgi-core --test settings` \
         rewrites it). Python: `serve_wsgi(NAME=...)`, `python -m fcgi_wsgi --NAME-WITH-DASHES` \
         (also in `FCGI_WSGI_ARGS`, and as a key of its `--config` TOML file, either spelling); C: \
         `fcgi_options_set_SETTER` (timeouts in milliseconds); libfcgi-compat: the environment variable. Timeouts are in \
         seconds, modes in octal; 0 means what the table says, and where it says nothing 0 is refused.\n\n\
         | setting | default | 0 means | what it does | C | libfcgi-compat |\n|---|---|---|---|---|---|\n",
    );
    for s in SETTINGS {
        let c = match s.c_setter {
            Ok(setter) => format!("`fcgi_options_set_{setter}`"),
            Err(why) => format!("— ({why})"),
        };
        let env = match s.env {
            Ok(env) => format!("`{env}`"),
            Err(why) => format!("— ({why})"),
        };
        let zero = match (s.kind, s.zero) {
            (Kind::Text, _) => "—",
            (_, "") => "refused",
            (_, zero) => zero,
        };
        out.push_str(&format!("| `{}` | {} | {} | {} | {} | {} |\n", s.name, s.default, zero, s.doc, c, env));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_can_be_set_and_changes_the_config() {
        for s in SETTINGS {
            let mut config = ServerConfig::default();
            let value = Value::parse(s.kind, example(s)).unwrap();
            config.set(s.name, value).unwrap_or_else(|e| panic!("{}: {e}", s.name));
            assert_ne!(format!("{config:?}"), format!("{:?}", ServerConfig::default()), "{} changed nothing", s.name);
        }
    }

    #[test]
    fn zero_and_negative_values_mean_the_same_on_every_face() {
        let mut config = ServerConfig::default();
        config.set("read_timeout", Value::Seconds(0.0)).unwrap();
        assert_eq!(config.read_timeout, None, "0 is no limit");
        let refused = config.set("read_timeout", Value::Seconds(-1.0)).unwrap_err();
        assert!(refused.to_string().contains("read_timeout must be 0 (no limit)"), "{refused}");
        assert!(config.set("max_connections", Value::Number(0)).is_err(), "0 connections is refused");
        config.set("workers", Value::Number(0)).unwrap();
        assert_eq!(config.workers, None, "0 workers: the core chooses");
        config.set("max_requests", Value::Number(0)).unwrap();
        assert_eq!(config.max_requests, None);
        assert!(config.set("no_such", Value::Number(1)).is_err());
        assert!(config.set("workers", Value::Seconds(1.0)).is_err());
    }
}
