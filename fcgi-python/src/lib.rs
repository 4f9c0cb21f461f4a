//! The native half of the `fcgi_wsgi` Python package: serves a PEP 3333 app over FastCGI (or
//! one CGI request) on the fcgi-core runtime. The pure-Python package around it parses
//! arguments and formats errors; everything per request happens here.

mod asgi;
mod asgi_bridge;
mod asgi_call;
mod asgi_porters;
mod environ;
mod error;
mod latin1;
mod live_request;
mod logging;
mod param_strings;
mod process;
mod response;
mod scope;
mod streams;
mod wsgi;

use std::sync::{Arc, Mutex, OnceLock};

use fcgi_core::settings::{setting, Kind, Value, SETTINGS};
use fcgi_core::{Bind, Served, Server, ServerConfig, Stats};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error::to_py;

/// The counters of the server this process is running, for `server_stats()`.
static RUNNING: Mutex<Option<Arc<Stats>>> = Mutex::new(None);

/// Serves `app` (or, with `loader`, the app it returns, loaded in each process) until a signal
/// stops the server (FastCGI) or for one request (CGI); returns `"fastcgi"` or `"cgi"`. Each
/// entry of `settings` is a row of the core's settings table (`settings()`), set through it, so
/// 0 and a bad value mean on this face what they mean on every other. `hooks`: `post_fork` and
/// `worker_exit`, called without arguments in each serving process before it serves and after.
/// With `asgi_runner` (`fcgi_wsgi._asgi.Runner`) the app is an ASGI app run by it, at most
/// `max_concurrency` requests at once in a process (default 100, 1 on mod_fcgid's fd 0), each
/// held by a worker thread of its own (`app`, `loader` and `report` are the runner's then).
#[pyfunction]
#[pyo3(signature = (app, report, bind=None, *, loader=None, settings=None, hooks=None, asgi_runner=None, max_concurrency=None))]
#[allow(clippy::too_many_arguments)]
fn serve(
    py: Python<'_>,
    app: Option<Py<PyAny>>,
    report: Py<PyAny>,
    bind: Option<String>,
    loader: Option<Py<PyAny>>,
    settings: Option<Bound<'_, PyDict>>,
    hooks: Option<Bound<'_, PyDict>>,
    asgi_runner: Option<Py<PyAny>>,
    max_concurrency: Option<usize>,
) -> PyResult<&'static str> {
    let hook = |name: &str| -> PyResult<Option<Py<PyAny>>> {
        let Some(hooks) = &hooks else { return Ok(None) };
        Ok(hooks.get_item(name)?.filter(|hook| !hook.is_none()).map(Bound::unbind))
    };
    let process_hooks = process::ProcessHooks { start: hook("post_fork")?, exit: hook("worker_exit")? };
    let mut config = config_from(py, bind, settings)?;
    if app.is_none() && loader.is_none() && asgi_runner.is_none() {
        return Err(PyValueError::new_err("serve() needs an app or a loader"));
    }
    logging::attach(py, config.log_level)?;
    let interruptible = config.timeout.is_some();
    let served = match asgi_runner {
        Some(runner) => {
            if max_concurrency == Some(0) {
                return Err(PyValueError::new_err("max_concurrency must be 1 or more"));
            }
            // A worker thread holds each request in flight. Under mod_fcgid (fd 0), which sends
            // a process one request at a time, one is enough.
            config.workers = max_concurrency.or(config.workers);
            config.default_workers = Some(ASGI_DEFAULT_CONCURRENCY);
            let server = Server::new(config);
            let handler = asgi::AsgiHandler::new(runner, process_hooks);
            run(py, &server, &handler, &handler)
        }
        None => {
            // The GIL runs one thread of a process at a time: a page that is mostly Python is
            // served fastest by a process per core, and a second worker keeps one slow view from
            // stalling its process (README: Sizing workers and processes). On mod_fcgid's fd 0
            // both stay 1.
            config.default_processes = Some(std::thread::available_parallelism().map_or(1, |n| n.get()));
            config.default_workers = Some(WSGI_DEFAULT_WORKERS);
            let server = Server::new(config);
            let handler = wsgi::WsgiHandler {
                app: app.map(OnceLock::from).unwrap_or_default(),
                loader,
                report,
                interruptible,
                process_hooks,
                strings: Default::default(),
                environ_base: Default::default(),
            };
            run(py, &server, &handler, &handler)
        }
    };
    match served? {
        Served::FastCgi => Ok("fastcgi"),
        Served::Cgi { .. } => Ok("cgi"),
    }
}

/// An ASGI app's requests at once in a process, unless told (`max_concurrency`).
const ASGI_DEFAULT_CONCURRENCY: usize = 100;
/// A WSGI app's worker threads in each process, unless told (`workers`).
const WSGI_DEFAULT_WORKERS: usize = 2;

/// Serves `handler` without the GIL, with the server's counters published for `server_stats()`.
fn run(
    py: Python<'_>,
    server: &Server,
    handler: &(dyn fcgi_core::Handler + Sync),
    lifecycle: &(dyn fcgi_core::Lifecycle + Sync),
) -> PyResult<Served> {
    *RUNNING.lock().unwrap_or_else(|p| p.into_inner()) = Some(server.stats());
    let served = py.detach(|| server.serve_with(handler, lifecycle));
    *RUNNING.lock().unwrap_or_else(|p| p.into_inner()) = None;
    logging::detach();
    served.map_err(to_py)
}

/// Checks `bind` and `settings` as `serve` would take them, serving nothing: raises what `serve`
/// would raise (`--check-config`).
#[pyfunction]
#[pyo3(signature = (bind=None, settings=None))]
fn check_settings(py: Python<'_>, bind: Option<String>, settings: Option<Bound<'_, PyDict>>) -> PyResult<()> {
    config_from(py, bind, settings).map(drop)
}

/// The configuration `bind` and `settings` make, each setting set through the core's table.
fn config_from(py: Python<'_>, bind: Option<String>, settings: Option<Bound<'_, PyDict>>) -> PyResult<ServerConfig> {
    let mut config = ServerConfig::default();
    if let Some(bind) = bind {
        config.bind = Some(Bind::parse(&bind).map_err(|e| PyValueError::new_err(e.to_string()))?);
    }
    for (name, value) in settings.iter().flat_map(|settings| settings.iter()) {
        let name: String = name.extract()?;
        let setting = setting(&name).ok_or_else(|| PyValueError::new_err(format!("there is no setting {name:?}")))?;
        let value = setting_value(setting.kind, &value)
            .map_err(|e| PyTypeError::new_err(format!("{name}: {}", e.value(py))))?;
        config.set(&name, value).map_err(|e| PyValueError::new_err(e.to_string()))?;
    }
    Ok(config)
}

/// `value` as the core takes a setting of `kind`.
fn setting_value(kind: Kind, value: &Bound<'_, PyAny>) -> PyResult<Value> {
    Ok(match kind {
        Kind::Count | Kind::Bytes => Value::Number(value.extract()?),
        Kind::Seconds => Value::Seconds(value.extract()?),
        Kind::Flag => Value::Flag(value.extract()?),
        Kind::Text => Value::Text(value.extract()?),
        // An int (0o660) or its octal text ("0660", as a command line gives it).
        Kind::Mode => match value.extract::<u64>() {
            Ok(mode) => Value::Number(mode),
            Err(e) => {
                let text: String = value.extract().map_err(|_| e)?;
                Value::parse(kind, &text)
                    .ok_or_else(|| PyValueError::new_err(format!("{text:?} is not an octal mode such as 0660")))?
            }
        },
    })
}

/// The core's settings table: `[(name, kind, default, what 0 means, doc)]`, kind being
/// `"count"`, `"bytes"`, `"seconds"`, `"flag"`, `"text"` or `"mode"` (octal permission bits). The tests check that `serve_wsgi` and the
/// command line offer every one.
#[pyfunction]
fn settings() -> Vec<(&'static str, &'static str, &'static str, &'static str, &'static str)> {
    SETTINGS
        .iter()
        .map(|s| {
            let kind = match s.kind {
                Kind::Count => "count",
                Kind::Bytes => "bytes",
                Kind::Seconds => "seconds",
                Kind::Flag => "flag",
                Kind::Text => "text",
                Kind::Mode => "mode",
            };
            (s.name, kind, s.default, s.zero, s.doc)
        })
        .collect()
}

/// `{"connections": N, "requests": M, "slow_requests": S}` for the server running in this
/// process, else `None`.
#[pyfunction]
fn server_stats(py: Python<'_>) -> PyResult<Option<Bound<'_, PyDict>>> {
    let Some(stats) = RUNNING.lock().unwrap_or_else(|p| p.into_inner()).clone() else {
        return Ok(None);
    };
    let dict = PyDict::new(py);
    dict.set_item("connections", stats.connections())?;
    dict.set_item("requests", stats.requests())?;
    dict.set_item("slow_requests", stats.slow_requests())?;
    Ok(Some(dict))
}

/// Asks the running server to stop, as SIGTERM would.
#[pyfunction]
fn request_stop() {
    fcgi_core::runtime::signals::request_stop();
}

/// Asks the running server to reload, as SIGHUP would: finish the requests in flight, then
/// re-execute the program on the same listening socket.
#[pyfunction]
fn request_reload() {
    fcgi_core::runtime::signals::request_reload();
}

#[pymodule]
fn _fcgi_wsgi(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(serve, m)?)?;
    m.add_function(wrap_pyfunction!(settings, m)?)?;
    m.add_function(wrap_pyfunction!(check_settings, m)?)?;
    m.add_function(wrap_pyfunction!(server_stats, m)?)?;
    m.add_function(wrap_pyfunction!(request_stop, m)?)?;
    m.add_function(wrap_pyfunction!(request_reload, m)?)?;
    m.add_class::<streams::InputStream>()?;
    m.add_class::<streams::ErrorStream>()?;
    m.add_class::<response::StartResponse>()?;
    m.add_class::<response::FileWrapper>()?;
    m.add_class::<asgi_call::AsgiCall>()?;
    m.add_class::<asgi_bridge::EventBridge>()?;
    m.add_class::<asgi_call::Ready>()?;
    m.add_class::<scope::FastCgiParams>()?;
    m.add("ClientDisconnected", m.py().get_type::<error::ClientDisconnected>())?;
    m.add("RequestTooLarge", m.py().get_type::<error::RequestTooLarge>())?;
    m.add("RequestTimeout", m.py().get_type::<error::RequestTimeout>())?;
    m.add("RequestBodyIncomplete", m.py().get_type::<error::RequestBodyIncomplete>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
