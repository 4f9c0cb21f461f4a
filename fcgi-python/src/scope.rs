//! The ASGI `http` scope of one request, from its FastCGI params: what HTTP servers read off
//! the request line and headers, FastCGI web servers send as CGI variables.

use fcgi_core::{Params, Role};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use pyo3::{intern, Bound};

use crate::environ::{is_https, role_name};
use crate::latin1;

/// The ASGI version and the spec version this server follows (2.4: `send()` on a connection
/// the web server closed raises an `OSError`, `ClientDisconnected`).
const SPEC_VERSION: &str = "2.4";

/// The `asgi` key of every scope.
pub(crate) fn asgi_version(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let asgi = PyDict::new(py);
    asgi.set_item(intern!(py, "version"), intern!(py, "3.0"))?;
    asgi.set_item(intern!(py, "spec_version"), SPEC_VERSION)?;
    Ok(asgi)
}

/// Text of a param that is a path: UTF-8 as browsers send it, else latin-1 (every byte kept).
fn path_text<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    match std::str::from_utf8(bytes) {
        Ok(text) => PyString::new(py, text),
        Err(_) => latin1::decode(py, bytes),
    }
}

/// `HTTP_ACCEPT_ENCODING` as `accept-encoding`; CONTENT_TYPE and CONTENT_LENGTH (which carry no
/// HTTP_ prefix in CGI) likewise; `None` for the other params.
fn header_name(name: &[u8]) -> Option<Vec<u8>> {
    let bare = match name {
        b"CONTENT_TYPE" | b"CONTENT_LENGTH" => name,
        _ => name.strip_prefix(b"HTTP_")?,
    };
    Some(bare.iter().map(|&b| if b == b'_' { b'-' } else { b.to_ascii_lowercase() }).collect())
}

/// `(host, port)` from two params, if the first is there.
fn endpoint<'py>(py: Python<'py>, params: &Params, host: &[&[u8]], port: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let Some(host) = host.iter().find_map(|name| params.get(name).filter(|v| !v.is_empty())) else {
        return Ok(py.None().into_bound(py));
    };
    let port: u16 = params.get(port).and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok()).unwrap_or(0);
    Ok(PyTuple::new(py, [latin1::decode(py, host).into_any(), port.into_pyobject(py)?.into_any()])?.into_any())
}

/// "1.1" for `HTTP/1.1`, "2" for `HTTP/2.0`: the versions ASGI names.
fn http_version(protocol: Option<&[u8]>) -> &'static str {
    match protocol {
        Some(b"HTTP/1.0") => "1.0",
        Some(b"HTTP/2.0" | b"HTTP/2") => "2",
        Some(b"HTTP/3.0" | b"HTTP/3") => "3",
        _ => "1.1",
    }
}

/// The scope of a request of `role` with `params`; `state` is a shallow copy of the lifespan's
/// state (or `None`).
pub(crate) fn build<'py>(
    py: Python<'py>,
    params: &Params,
    role: Role,
    state: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let scope = PyDict::new(py);
    let param = |name: &[u8]| params.get(name).unwrap_or_default();
    scope.set_item(intern!(py, "type"), intern!(py, "http"))?;
    scope.set_item(intern!(py, "asgi"), asgi_version(py)?)?;
    scope.set_item(intern!(py, "http_version"), http_version(params.get(b"SERVER_PROTOCOL")))?;
    scope.set_item(intern!(py, "method"), latin1::decode(py, param(b"REQUEST_METHOD")))?;
    let scheme = if is_https(params) { intern!(py, "https") } else { intern!(py, "http") };
    scope.set_item(intern!(py, "scheme"), scheme)?;
    // `path` is the whole path, `root_path` its mount point (SCRIPT_NAME): ASGI's meaning since
    // its spec 2.4's clarification, and what Starlette's routing takes off.
    let (script_name, path_info) = (param(b"SCRIPT_NAME"), param(b"PATH_INFO"));
    let uri_path = params.get(b"REQUEST_URI").map(|uri| uri.split(|&b| b == b'?').next().unwrap_or_default());
    let path = if script_name.is_empty() && path_info.is_empty() {
        // No CGI path at all: the request line's path, percent-decoded.
        percent_decoded(uri_path.unwrap_or(b"/"))
    } else {
        [script_name, path_info].concat()
    };
    scope.set_item(intern!(py, "path"), path_text(py, &path))?;
    match uri_path {
        Some(raw) => scope.set_item(intern!(py, "raw_path"), PyBytes::new(py, raw))?,
        None => scope.set_item(intern!(py, "raw_path"), py.None())?,
    }
    scope.set_item(intern!(py, "root_path"), path_text(py, script_name))?;
    scope.set_item(intern!(py, "query_string"), PyBytes::new(py, param(b"QUERY_STRING")))?;
    let headers = PyList::empty(py);
    for (name, value) in params.iter() {
        if value.is_empty() && name == b"CONTENT_LENGTH" {
            continue;
        }
        if let Some(header) = header_name(name) {
            headers.append(PyTuple::new(py, [PyBytes::new(py, &header), PyBytes::new(py, value)])?)?;
        }
    }
    scope.set_item(intern!(py, "headers"), headers)?;
    scope.set_item(intern!(py, "client"), endpoint(py, params, &[b"REMOTE_ADDR"], b"REMOTE_PORT")?)?;
    scope.set_item(intern!(py, "server"), endpoint(py, params, &[b"SERVER_ADDR", b"SERVER_NAME"], b"SERVER_PORT")?)?;
    if let Some(state) = state {
        scope.set_item(intern!(py, "state"), state.copy()?)?;
    }
    let fastcgi = PyDict::new(py);
    fastcgi.set_item(intern!(py, "params"), FastCgiParams { params: params.clone() })?;
    fastcgi.set_item(intern!(py, "role"), role_name(py, role))?;
    let extensions = PyDict::new(py);
    extensions.set_item(intern!(py, "fastcgi"), fastcgi)?;
    scope.set_item(intern!(py, "extensions"), extensions)?;
    Ok(scope)
}

/// `scope["extensions"]["fastcgi"]["params"]`: every param as the web server sent it, as a
/// read-only mapping of str to str decoded as WSGI decodes them (latin-1). Each is decoded when
/// asked for: most requests ask for none (the scope's keys already carry what apps read).
#[pyclass(module = "fcgi_wsgi", frozen, mapping)]
pub struct FastCgiParams {
    params: Params,
}

impl FastCgiParams {
    /// The params' `(name, value)` pairs, as Python strings.
    fn pairs<'a, 'py: 'a>(
        &'a self,
        py: Python<'py>,
    ) -> impl Iterator<Item = (Bound<'py, PyString>, Bound<'py, PyString>)> + 'a {
        self.params.iter().map(move |(name, value)| (latin1::decode(py, name), latin1::decode(py, value)))
    }

    /// The value of the param `name` (its bytes are its characters, latin-1), if sent.
    fn value<'py>(&self, py: Python<'py>, name: &str) -> Option<Bound<'py, PyString>> {
        let raw: Vec<u8> = name.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect::<Option<_>>()?;
        self.params.get(&raw).map(|value| latin1::decode(py, value))
    }
}

#[pymethods]
impl FastCgiParams {
    fn __getitem__<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyString>> {
        self.value(py, name).ok_or_else(|| pyo3::exceptions::PyKeyError::new_err(name.to_owned()))
    }

    fn __contains__(&self, py: Python<'_>, name: &str) -> bool {
        self.value(py, name).is_some()
    }

    fn __len__(&self) -> usize {
        self.params.iter().len()
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.keys(py)?.try_iter().map(Bound::into_any)
    }

    #[pyo3(signature = (name, default=None))]
    fn get<'py>(&self, py: Python<'py>, name: &str, default: Option<Bound<'py, PyAny>>) -> Bound<'py, PyAny> {
        match self.value(py, name) {
            Some(value) => value.into_any(),
            None => default.unwrap_or_else(|| py.None().into_bound(py)),
        }
    }

    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.params.iter().map(|(name, _)| latin1::decode(py, name)))
    }

    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.params.iter().map(|(_, value)| latin1::decode(py, value)))
    }

    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.pairs(py).map(|pair| PyTuple::new(py, [pair.0, pair.1])).collect::<PyResult<Vec<_>>>()?)
    }

    /// A plain dict of them all.
    fn copy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (name, value) in self.pairs(py) {
            dict.set_item(name, value)?;
        }
        Ok(dict)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("FastCgiParams({})", self.copy(py)?.repr()?))
    }
}

/// `%XX` sequences decoded to their bytes; anything else (a stray `%`) kept as it is.
fn percent_decoded(raw: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 2 < raw.len() {
            if let (Some(high), Some(low)) = (hex(raw[i + 1]), hex(raw[i + 2])) {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_lower_case_with_dashes() {
        assert_eq!(header_name(b"HTTP_ACCEPT_ENCODING").as_deref(), Some(&b"accept-encoding"[..]));
        assert_eq!(header_name(b"CONTENT_TYPE").as_deref(), Some(&b"content-type"[..]));
        assert_eq!(header_name(b"REMOTE_ADDR"), None);
    }

    #[test]
    fn percent_sequences_decode_and_stray_percents_stay() {
        assert_eq!(percent_decoded(b"/a%20b/%E2%82%AC"), "/a b/€".as_bytes());
        assert_eq!(percent_decoded(b"/100%"), b"/100%");
        assert_eq!(percent_decoded(b"/%zz%4"), b"/%zz%4");
    }

    #[test]
    fn protocols_map_to_asgi_versions() {
        assert_eq!(http_version(Some(b"HTTP/1.0")), "1.0");
        assert_eq!(http_version(Some(b"HTTP/2.0")), "2");
        assert_eq!(http_version(None), "1.1");
    }
}
