//! The WSGI environ of one request: the params as native strings decoded as latin-1, the role
//! (`FCGI_ROLE`, as libfcgi adds it), then the `wsgi.*` keys and the Filter's data stream
//! (`fcgi.data`).

use std::sync::Arc;

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
    let on = params.get(b"HTTPS").is_some_and(|v| v.eq_ignore_ascii_case(b"on") || v == b"1");
    on || params.get(b"REQUEST_SCHEME") == Some(b"https")
}

/// A length param (CONTENT_LENGTH, a Filter's FCGI_DATA_LENGTH) as a number, if present and valid.
pub(crate) fn length_param(params: &Params, name: &[u8]) -> Option<u64> {
    std::str::from_utf8(params.get(name)?).ok()?.trim().parse().ok()
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

/// Builds the environ for a request of `role` with `params`.
pub fn build<'py>(
    py: Python<'py>,
    strings: &ParamStrings,
    params: &Params,
    role: Role,
    info: ServerInfo,
    live: &Arc<LiveRequest>,
) -> PyResult<Bound<'py, PyDict>> {
    let environ = PyDict::new(py);
    let (mut script_name, mut path_info) = (false, false);
    strings.each(py, params, |name, key, value| {
        script_name |= name == b"SCRIPT_NAME";
        path_info |= name == b"PATH_INFO";
        environ.set_item(key, value)
    })?;
    // PEP 3333 requires these even when the web server sends none.
    if !script_name {
        environ.set_item(intern!(py, "SCRIPT_NAME"), intern!(py, ""))?;
    }
    if !path_info {
        environ.set_item(intern!(py, "PATH_INFO"), intern!(py, ""))?;
    }
    // Set after the params: the role of BEGIN_REQUEST is the truth, whatever a param says.
    environ.set_item(intern!(py, "FCGI_ROLE"), role_name(py, role))?;
    let scheme = if is_https(params) { intern!(py, "https") } else { intern!(py, "http") };
    environ.set_item(intern!(py, "wsgi.version"), PyTuple::new(py, [1, 0])?)?;
    environ.set_item(intern!(py, "wsgi.url_scheme"), scheme)?;
    let body = InputStream::new(live.clone(), Input::Stdin, length_param(params, b"CONTENT_LENGTH"));
    environ.set_item(intern!(py, "wsgi.input"), body)?;
    // Only a Filter has a data stream: for other roles reading one would wait for records that
    // never come, so they get a stream that is empty from the start.
    let data_length = if role == Role::Filter { length_param(params, b"FCGI_DATA_LENGTH") } else { Some(0) };
    environ.set_item(intern!(py, "fcgi.data"), InputStream::new(live.clone(), Input::Data, data_length))?;
    environ.set_item(intern!(py, "wsgi.errors"), ErrorStream::new(live.clone()))?;
    environ.set_item(intern!(py, "wsgi.multithread"), info.workers > 1)?;
    // Another process may run the app at once: the web server's (CGI, fd 0, systemd) or a
    // worker of the same pre-fork pool.
    let multiprocess = info.transport != Transport::Bound || info.pool_worker;
    environ.set_item(intern!(py, "wsgi.multiprocess"), multiprocess)?;
    environ.set_item(intern!(py, "wsgi.run_once"), info.transport == Transport::Cgi)?;
    environ.set_item(intern!(py, "wsgi.file_wrapper"), py.get_type::<FileWrapper>())?;
    Ok(environ)
}
