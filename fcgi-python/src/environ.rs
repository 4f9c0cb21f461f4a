//! The WSGI environ of one request: a copy of the process's base (the `wsgi.*` keys), then the
//! params as native strings decoded as latin-1, the role (`FCGI_ROLE`, as libfcgi adds it), and
//! the request's own streams (`wsgi.input`, `wsgi.errors`, the Filter's `fcgi.data`).

use std::sync::{Arc, Mutex};

use fcgi_core::{Input, Params, Role, ServerInfo, Transport};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use pyo3::{intern, Bound};

use crate::live_request::LiveRequest;
use crate::param_strings::ParamStrings;
use crate::response::FileWrapper;
use crate::streams::{ErrorStream, InputStream};

/// Whether the client came over TLS: HTTPS on (as web servers spell it) or REQUEST_SCHEME https.
pub(crate) fn is_https(params: &Params) -> bool {
    says_https(params.get(b"HTTPS"), params.get(b"REQUEST_SCHEME"))
}

fn says_https(https: Option<&[u8]>, scheme: Option<&[u8]>) -> bool {
    https.is_some_and(|v| v.eq_ignore_ascii_case(b"on") || v == b"1") || scheme == Some(b"https")
}

/// A length param (CONTENT_LENGTH, a Filter's FCGI_DATA_LENGTH) as a number, if present and valid.
pub(crate) fn length_param(params: &Params, name: &[u8]) -> Option<u64> {
    parse_length(params.get(name)?)
}

fn parse_length(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

/// The params the server itself reads, noted as they go into the environ (each lookup of
/// [`Params::get`] would scan them all again). A repeated name counts as in the environ: the last.
#[derive(Default)]
struct ServerParams<'a> {
    content_length: Option<&'a [u8]>,
    data_length: Option<&'a [u8]>,
    https: Option<&'a [u8]>,
    scheme: Option<&'a [u8]>,
}

impl<'a> ServerParams<'a> {
    fn note(&mut self, name: &[u8], value: &'a [u8]) {
        let field = match name {
            b"CONTENT_LENGTH" => &mut self.content_length,
            b"FCGI_DATA_LENGTH" => &mut self.data_length,
            b"HTTPS" => &mut self.https,
            b"REQUEST_SCHEME" => &mut self.scheme,
            _ => return,
        };
        *field = Some(value);
    }
}

/// `FCGI_ROLE` as libfcgi spells it in every request's environment.
pub(crate) fn role_name(py: Python<'_>, role: Role) -> &Bound<'_, PyString> {
    match role {
        Role::Responder => intern!(py, "RESPONDER"),
        Role::Authorizer => intern!(py, "AUTHORIZER"),
        Role::Filter => intern!(py, "FILTER"),
        // The core answers other roles with UNKNOWN_ROLE before any handler runs.
        Role::Unknown(_) => intern!(py, "UNKNOWN"),
    }
}

/// What every environ of a process starts as: the `wsgi.*` keys (those of the request's own
/// with a placeholder), an empty `fcgi.data`, `FCGI_ROLE` for a Responder, and the keys PEP 3333
/// requires with their defaults, replaced by the params that say otherwise.
///
/// An environ is a copy of it, made by cloning its table, and the table is made large enough
/// for a web server's params (64 slots), so they go in without the dict growing.
#[derive(Default)]
pub struct EnvironBase(Mutex<Option<(ServerInfo, Py<PyDict>)>>);

impl EnvironBase {
    /// A new environ for a server described by `info`. The lock is never held across a call
    /// into Python (an allocation may run the collector, and a finalizer hand the GIL over to
    /// a thread that would then wait for the lock).
    fn copy<'py>(&self, py: Python<'py>, info: ServerInfo) -> PyResult<Bound<'py, PyDict>> {
        let kept = self.lock().as_ref().filter(|(for_info, _)| *for_info == info).map(|(_, dict)| dict.clone_ref(py));
        let base = match kept {
            Some(dict) => dict.into_bound(py),
            None => {
                let dict = Self::build(py, info)?;
                *self.lock() = Some((info, dict.clone().unbind()));
                dict
            }
        };
        base.copy()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(ServerInfo, Py<PyDict>)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The base for a server described by `info`.
    fn build(py: Python<'_>, info: ServerInfo) -> PyResult<Bound<'_, PyDict>> {
        let dict = PyDict::new(py);
        dict.set_item(intern!(py, "wsgi.version"), PyTuple::new(py, [1, 0])?)?;
        dict.set_item(intern!(py, "wsgi.url_scheme"), intern!(py, "http"))?;
        for placeholder in ["wsgi.input", "wsgi.errors"] {
            dict.set_item(placeholder, py.None())?;
        }
        // Only a Filter has a data stream: for other roles reading one would wait for records
        // that never come, so they share a stream that is empty from the start.
        dict.set_item(intern!(py, "fcgi.data"), InputStream::empty(Input::Data))?;
        dict.set_item(intern!(py, "wsgi.multithread"), info.workers > 1)?;
        // Another process may run the app at once: the web server's (CGI, fd 0, systemd) or a
        // worker of the same pre-fork pool.
        let multiprocess = info.transport != Transport::Bound || info.pool_worker;
        dict.set_item(intern!(py, "wsgi.multiprocess"), multiprocess)?;
        dict.set_item(intern!(py, "wsgi.run_once"), info.transport == Transport::Cgi)?;
        dict.set_item(intern!(py, "wsgi.file_wrapper"), py.get_type::<FileWrapper>())?;
        // Other roles set theirs after the params; no param replaces it (BEGIN_REQUEST's role
        // is the truth).
        dict.set_item(intern!(py, "FCGI_ROLE"), role_name(py, Role::Responder))?;
        for (name, default) in REQUIRED_DEFAULTS {
            dict.set_item(PyString::intern(py, name), PyString::intern(py, default))?;
        }
        // Keys set and deleted again leave room: the dict grows its table to 64 slots as the
        // 22nd key goes in, and deleting does not shrink it. PyDict_Copy clones a table whose
        // entries are at most a third deleted, keeping its size (CPython 3.9 to 3.13); if a
        // version did not, its environs would grow as they did before, nothing worse.
        let room: Vec<_> = (dict.len()..ROOM_FOR).map(|i| PyString::new(py, &format!(" room {i}"))).collect();
        for key in &room {
            dict.set_item(key, py.None())?;
        }
        for key in &room {
            dict.del_item(key)?;
        }
        Ok(dict)
    }
}

/// The keys a dict of the base's size holds before its table grows to 64 slots.
const ROOM_FOR: usize = 22;

/// PEP 3333's keys that "must be present": a web server that sends none of one is broken, and
/// its apps see flup's defaults (SCRIPT_NAME and PATH_INFO may be empty).
const REQUIRED_DEFAULTS: [(&str, &str); 6] = [
    ("REQUEST_METHOD", "GET"),
    ("SCRIPT_NAME", ""),
    ("PATH_INFO", ""),
    ("SERVER_NAME", "localhost"),
    ("SERVER_PORT", "80"),
    ("SERVER_PROTOCOL", "HTTP/1.0"),
];

/// The keys of the base that no param may replace (the request's own streams and role are set
/// after the params).
const SERVER_KEYS: [&[u8]; 8] = [
    b"wsgi.version",
    b"wsgi.url_scheme",
    b"wsgi.multithread",
    b"wsgi.multiprocess",
    b"wsgi.run_once",
    b"wsgi.file_wrapper",
    b"fcgi.data",
    b"FCGI_ROLE",
];

/// Builds the environ for a request of `role` with `params`, from `base`.
pub fn build<'py>(
    py: Python<'py>,
    base: &EnvironBase,
    strings: &ParamStrings,
    params: &Params,
    role: Role,
    info: ServerInfo,
    live: &Arc<LiveRequest>,
) -> PyResult<Bound<'py, PyDict>> {
    let environ = base.copy(py, info)?;
    let mut read = ServerParams::default();
    strings.each(py, params, |(name, value), key, string| {
        // The server's values stand whatever a param says.
        if SERVER_KEYS.contains(&name) {
            return Ok(());
        }
        read.note(name, value);
        environ.set_item(key, string)
    })?;
    if role != Role::Responder {
        environ.set_item(intern!(py, "FCGI_ROLE"), role_name(py, role))?;
    }
    if says_https(read.https, read.scheme) {
        environ.set_item(intern!(py, "wsgi.url_scheme"), intern!(py, "https"))?;
    }
    let body = InputStream::new(live.clone(), Input::Stdin, read.content_length.and_then(parse_length));
    environ.set_item(intern!(py, "wsgi.input"), body)?;
    if role == Role::Filter {
        let data_length = read.data_length.and_then(parse_length);
        environ.set_item(intern!(py, "fcgi.data"), InputStream::new(live.clone(), Input::Data, data_length))?;
    }
    environ.set_item(intern!(py, "wsgi.errors"), ErrorStream::new(live.clone()))?;
    Ok(environ)
}
