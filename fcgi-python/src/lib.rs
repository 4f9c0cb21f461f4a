//! The native half of the `fcgi_wsgi` Python package: serves a PEP 3333 app over FastCGI (or
//! one CGI request) on the fcgi-core runtime. The pure-Python package around it parses
//! arguments and formats errors; everything per request happens here.

mod environ;
mod error;
mod live_request;
mod response;
mod streams;
mod wsgi;

use std::sync::{Arc, Mutex, OnceLock};

use fcgi_core::settings::{Kind, Value, SETTINGS};
use fcgi_core::{Bind, Served, Server, ServerConfig, Stats};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error::to_py;

/// The counters of the server this process is running, for `server_stats()`.
static RUNNING: Mutex<Option<Arc<Stats>>> = Mutex::new(None);

/// Serves `app` (or, with `loader`, the app it returns, loaded in each process) until a signal
/// stops the server (FastCGI) or for one request (CGI); returns `"fastcgi"` or `"cgi"`. Each
/// keyword after `loader` is a row of the core's settings table (`settings()`), set through it,
/// so 0 and a bad value mean on this face what they mean on every other.
#[pyfunction]
#[pyo3(signature = (
    app, report, bind=None, *, loader=None, workers=None, processes=None, max_requests=None,
    max_connections=None, multiplex=None, max_body_bytes=None, max_params_bytes=None, max_param_bytes=None,
    max_params=None, read_timeout=None, write_timeout=None, idle_timeout=None, head_timeout=None,
    graceful_timeout=None, force_cgi=None, handle_signals=None
))]
#[allow(clippy::too_many_arguments)]
fn serve(
    py: Python<'_>,
    app: Option<Py<PyAny>>,
    report: Py<PyAny>,
    bind: Option<String>,
    loader: Option<Py<PyAny>>,
    workers: Option<u64>,
    processes: Option<u64>,
    max_requests: Option<u64>,
    max_connections: Option<u64>,
    multiplex: Option<u64>,
    max_body_bytes: Option<u64>,
    max_params_bytes: Option<u64>,
    max_param_bytes: Option<u64>,
    max_params: Option<u64>,
    read_timeout: Option<f64>,
    write_timeout: Option<f64>,
    idle_timeout: Option<f64>,
    head_timeout: Option<f64>,
    graceful_timeout: Option<f64>,
    force_cgi: Option<bool>,
    handle_signals: Option<bool>,
) -> PyResult<&'static str> {
    let mut config = ServerConfig::default();
    if let Some(bind) = bind {
        config.bind = Some(Bind::parse(&bind).map_err(|e| PyValueError::new_err(e.to_string()))?);
    }
    let numbers = [
        ("workers", workers),
        ("processes", processes),
        ("max_requests", max_requests),
        ("max_connections", max_connections),
        ("multiplex", multiplex),
        ("max_body_bytes", max_body_bytes),
        ("max_params_bytes", max_params_bytes),
        ("max_param_bytes", max_param_bytes),
        ("max_params", max_params),
    ];
    let seconds = [
        ("read_timeout", read_timeout),
        ("write_timeout", write_timeout),
        ("idle_timeout", idle_timeout),
        ("head_timeout", head_timeout),
        ("graceful_timeout", graceful_timeout),
    ];
    let flags = [("force_cgi", force_cgi), ("handle_signals", handle_signals)];
    let given = (numbers.iter().filter_map(|(name, n)| Some((*name, Value::Number((*n)?)))))
        .chain(seconds.iter().filter_map(|(name, s)| Some((*name, Value::Seconds((*s)?)))))
        .chain(flags.iter().filter_map(|(name, f)| Some((*name, Value::Flag((*f)?)))));
    for (name, value) in given {
        config.set(name, value).map_err(|e| PyValueError::new_err(e.to_string()))?;
    }
    let server = Server::new(config);
    *RUNNING.lock().unwrap_or_else(|p| p.into_inner()) = Some(server.stats());
    if app.is_none() && loader.is_none() {
        return Err(PyValueError::new_err("serve() needs an app or a loader"));
    }
    let handler = wsgi::WsgiHandler { app: app.map(OnceLock::from).unwrap_or_default(), loader, report };
    let served = py.detach(|| server.serve_with(&handler, &handler));
    *RUNNING.lock().unwrap_or_else(|p| p.into_inner()) = None;
    match served.map_err(to_py)? {
        Served::FastCgi => Ok("fastcgi"),
        Served::Cgi { .. } => Ok("cgi"),
    }
}

/// The core's settings table: `[(name, kind, default, what 0 means, doc)]`, kind being
/// `"count"`, `"bytes"`, `"seconds"` or `"flag"`. The tests check that `serve_wsgi` and the
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
            };
            (s.name, kind, s.default, s.zero, s.doc)
        })
        .collect()
}

/// `{"connections": N, "requests": M}` for the server running in this process, else `None`.
#[pyfunction]
fn server_stats(py: Python<'_>) -> PyResult<Option<Bound<'_, PyDict>>> {
    let Some(stats) = RUNNING.lock().unwrap_or_else(|p| p.into_inner()).clone() else {
        return Ok(None);
    };
    let dict = PyDict::new(py);
    dict.set_item("connections", stats.connections())?;
    dict.set_item("requests", stats.requests())?;
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
    m.add_function(wrap_pyfunction!(server_stats, m)?)?;
    m.add_function(wrap_pyfunction!(request_stop, m)?)?;
    m.add_function(wrap_pyfunction!(request_reload, m)?)?;
    m.add_class::<streams::InputStream>()?;
    m.add_class::<streams::ErrorStream>()?;
    m.add_class::<response::StartResponse>()?;
    m.add_class::<response::FileWrapper>()?;
    m.add("ClientDisconnected", m.py().get_type::<error::ClientDisconnected>())?;
    m.add("RequestTooLarge", m.py().get_type::<error::RequestTooLarge>())?;
    m.add("RequestBodyIncomplete", m.py().get_type::<error::RequestBodyIncomplete>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
