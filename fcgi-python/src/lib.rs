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
use std::time::Duration;

use fcgi_core::{Bind, Served, Server, ServerConfig, Stats};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error::to_py;

/// The counters of the server this process is running, for `server_stats()`.
static RUNNING: Mutex<Option<Arc<Stats>>> = Mutex::new(None);

/// Serves `app` (or, with `loader`, the app it returns, loaded in each process) until a signal
/// stops the server (FastCGI) or for one request (CGI); returns `"fastcgi"` or `"cgi"`.
#[pyfunction]
#[pyo3(signature = (
    app, report, bind=None, *, loader=None, workers=None, max_requests=None, max_connections=None,
    multiplex=None, processes=None, force_cgi=false, read_timeout=None, write_timeout=None, idle_timeout=None,
    head_timeout=None, graceful_timeout=None, max_body_bytes=None, handle_signals=true
))]
#[allow(clippy::too_many_arguments)]
fn serve(
    py: Python<'_>,
    app: Option<Py<PyAny>>,
    report: Py<PyAny>,
    bind: Option<String>,
    loader: Option<Py<PyAny>>,
    workers: Option<usize>,
    max_requests: Option<u64>,
    max_connections: Option<usize>,
    multiplex: Option<u16>,
    processes: Option<usize>,
    force_cgi: bool,
    read_timeout: Option<f64>,
    write_timeout: Option<f64>,
    idle_timeout: Option<f64>,
    head_timeout: Option<f64>,
    graceful_timeout: Option<f64>,
    max_body_bytes: Option<u64>,
    handle_signals: bool,
) -> PyResult<&'static str> {
    let mut config =
        ServerConfig { force_cgi, workers, max_requests, max_body_bytes, handle_signals, ..ServerConfig::default() };
    if let Some(bind) = bind {
        config.bind = Some(Bind::parse(&bind).map_err(|e| PyValueError::new_err(e.to_string()))?);
    }
    if let Some(max_connections) = max_connections {
        config.max_connections = max_connections;
    }
    if let Some(processes) = processes {
        config.processes = processes.max(1);
    }
    if let Some(multiplex) = multiplex {
        config.connection.max_requests_per_conn = multiplex.max(1);
    }
    // One meaning on every face: a timeout of 0 is no limit (as in C); a negative one is an error.
    let limit = |name: &str, s: f64| -> PyResult<Option<Duration>> {
        match Duration::try_from_secs_f64(s) {
            Ok(d) if d.is_zero() => Ok(None),
            Ok(d) => Ok(Some(d)),
            Err(_) => Err(PyValueError::new_err(format!(
                "{name} must be 0 (no limit) or a positive number of seconds, not {s}"
            ))),
        }
    };
    for (name, value, setting) in [
        ("read_timeout", read_timeout, &mut config.read_timeout),
        ("write_timeout", write_timeout, &mut config.write_timeout),
        ("idle_timeout", idle_timeout, &mut config.idle_timeout),
        ("head_timeout", head_timeout, &mut config.head_timeout),
        ("graceful_timeout", graceful_timeout, &mut config.graceful_timeout),
    ] {
        if let Some(seconds) = value {
            *setting = limit(name, seconds)?;
        }
    }
    let server = Server::new(config);
    *RUNNING.lock().unwrap_or_else(|p| p.into_inner()) = Some(server.stats());
    if app.is_none() && loader.is_none() {
        return Err(PyValueError::new_err("serve() needs an app or a loader"));
    }
    let handler = wsgi::WsgiHandler { app: app.map(OnceLock::from).unwrap_or_default(), loader, report };
    let served = py.detach(|| server.serve(&handler));
    *RUNNING.lock().unwrap_or_else(|p| p.into_inner()) = None;
    match served.map_err(to_py)? {
        Served::FastCgi => Ok("fastcgi"),
        Served::Cgi { .. } => Ok("cgi"),
    }
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
