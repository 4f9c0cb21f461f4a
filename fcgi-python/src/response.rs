//! The response side of WSGI: `start_response`, its `write` callable, and
//! `wsgi.file_wrapper`. Headers are checked and serialized as CGI headers (latin-1, a `Status:`
//! line first) when `start_response` is called, and sent with the first non-empty chunk.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::exceptions::{PyAssertionError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::error::to_py;
use crate::latin1;
use crate::live_request::LiveRequest;

/// A body chunk up to this size goes out with the headers, copied after them: one write and one
/// record instead of two.
const WITH_HEAD_MAX: usize = 4 << 10;

#[derive(Default)]
struct Head {
    /// `Status:` and the app's headers, each line ending in CRLF, without the blank line.
    lines: Option<Vec<u8>>,
    has_content_length: bool,
    sent: bool,
}

/// The `start_response` callable of one request.
#[pyclass(module = "fcgi_wsgi", frozen)]
pub struct StartResponse {
    live: Arc<LiveRequest>,
    head: Mutex<Head>,
}

impl StartResponse {
    pub fn new(live: Arc<LiveRequest>) -> Self {
        Self { live, head: Mutex::new(Head::default()) }
    }

    fn head(&self) -> MutexGuard<'_, Head> {
        self.head.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the headers went out already.
    pub fn headers_sent(&self) -> bool {
        self.head().sent
    }

    /// Adds `Content-Length` when the app gave none and the body's length is known.
    pub fn set_content_length_if_absent(&self, length: usize) {
        let mut head = self.head();
        let head = &mut *head;
        if let (Some(lines), false) = (head.lines.as_mut(), head.has_content_length) {
            // Writing into a Vec cannot fail.
            let _ = write!(lines, "Content-Length: {length}\r\n");
            head.has_content_length = true;
        }
    }

    /// Sends `data`, preceded by the headers if they have not gone out yet.
    pub fn send(&self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        let lines = {
            let mut head = self.head();
            if head.sent {
                None
            } else {
                let mut lines =
                    head.lines.take().ok_or_else(|| PyAssertionError::new_err("write() before start_response()"))?;
                lines.extend_from_slice(b"\r\n");
                head.sent = true;
                Some(lines)
            }
        };
        // The head and a small body go as one write, in one record.
        let (lines, data) = match lines {
            Some(mut lines) if data.len() <= WITH_HEAD_MAX => {
                lines.extend_from_slice(data);
                (Some(lines), &[][..])
            }
            lines => (lines, data),
        };
        let live = &self.live;
        // Small writes only fill the send buffer: no I/O, so no reason to let go of the GIL. But
        // nothing waits with the GIL held: when the request or its connection is busy (another
        // thread, or another request of a multiplexed connection, blocked writing), the write
        // goes the detached way below.
        let try_buffer = |data: &[u8]| -> PyResult<bool> {
            if data.is_empty() {
                return Ok(true);
            }
            let buffered = live.try_with(|request| request.try_buffer_stdout(data)).map_err(to_py)?;
            Ok(buffered == Some(true))
        };
        let head_buffered = match &lines {
            Some(lines) => try_buffer(lines)?,
            None => true,
        };
        if head_buffered && try_buffer(data)? {
            return Ok(());
        }
        py.detach(|| {
            live.with(|request| {
                if let (Some(lines), false) = (&lines, head_buffered) {
                    request.write_stdout(lines)?;
                }
                if data.is_empty() {
                    return Ok(());
                }
                request.write_stdout(data)
            })
        })
        .map_err(to_py)
    }

    /// Sends the headers if no body chunk did (an empty body).
    pub fn finish(&self, py: Python<'_>) -> PyResult<()> {
        if self.headers_sent() {
            return Ok(());
        }
        self.send(py, b"")
    }
}

/// `text` encoded as latin-1, refusing what is not a str, characters above U+00FF, and line
/// breaks (which would let a header value inject headers).
fn latin1_bytes<'a>(text: &'a Bound<'_, PyAny>, what: &str) -> PyResult<latin1::Encoded<'a>> {
    let encoded = latin1::encode(text).map_err(|e| {
        if e.is_instance_of::<PyTypeError>(text.py()) {
            PyTypeError::new_err(format!("{what} must be a str"))
        } else {
            PyValueError::new_err(format!("{what} {text:?} is not latin-1"))
        }
    })?;
    // A fold, not `any`: no branch per byte, which costs more on these short strings.
    let line_break = encoded.as_bytes().iter().fold(false, |found, &b| found | (b == b'\r') | (b == b'\n'));
    if line_break {
        return Err(PyValueError::new_err(format!("{what} {text:?} contains a line break")));
    }
    Ok(encoded)
}

#[pymethods]
impl StartResponse {
    /// `start_response(status, response_headers, exc_info=None)`, as PEP 3333 says.
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        status: &Bound<'py, PyAny>,
        headers: &Bound<'py, PyAny>,
        exc_info: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let this = slf.get();
        let exc_info = exc_info.filter(|e| !e.is_none());
        {
            let head = this.head();
            match exc_info {
                // Too late to change the response: re-raise the app's error.
                Some(exc_info) if head.sent => {
                    let exc_info = exc_info.cast::<PyTuple>()?;
                    return Err(PyErr::from_value(exc_info.get_item(1)?));
                }
                None if head.lines.is_some() || head.sent => {
                    return Err(PyAssertionError::new_err("start_response() called again without exc_info"));
                }
                _ => {}
            }
        }
        let status = latin1_bytes(status, "status")?;
        let code = status.as_bytes().split(|&b| b == b' ').next().unwrap_or_default();
        if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
            let status = String::from_utf8_lossy(status.as_bytes());
            return Err(PyValueError::new_err(format!("status {status:?} does not start with a 3-digit code")));
        }
        let mut lines = Vec::with_capacity(128);
        lines.extend_from_slice(b"Status: ");
        lines.extend_from_slice(status.as_bytes());
        lines.extend_from_slice(b"\r\n");
        let mut has_content_length = false;
        let mut add = |header: Bound<'py, PyAny>| -> PyResult<()> {
            let (name, value): (Bound<'py, PyAny>, Bound<'py, PyAny>) = header
                .extract()
                .map_err(|_| PyTypeError::new_err("response headers must be a list of (str, str) tuples"))?;
            let (name, value) = (latin1_bytes(&name, "header name")?, latin1_bytes(&value, "header value")?);
            let name = name.as_bytes();
            if name.is_empty() || name.contains(&b':') {
                let name = String::from_utf8_lossy(name);
                return Err(PyValueError::new_err(format!("header name {name:?} is not valid")));
            }
            has_content_length |= name.eq_ignore_ascii_case(b"content-length");
            lines.extend_from_slice(name);
            lines.extend_from_slice(b": ");
            lines.extend_from_slice(value.as_bytes());
            lines.extend_from_slice(b"\r\n");
            Ok(())
        };
        // A list, as nearly every app passes, is read in place, without an iterator object.
        if let Ok(list) = headers.cast_exact::<PyList>() {
            list.iter().try_for_each(&mut add)?;
        } else {
            for header in headers.try_iter()? {
                add(header?)?;
            }
        }
        *this.head() = Head { lines: Some(lines), has_content_length, sent: false };
        slf.getattr(intern!(slf.py(), "write"))
    }

    /// The `write(data)` callable that `start_response` returns: sends `data` at once.
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyBytes>) -> PyResult<()> {
        if data.as_bytes().is_empty() {
            return Ok(());
        }
        self.send(py, data.as_bytes())?;
        let live = &self.live;
        py.detach(|| live.with(|request| request.flush())).map_err(to_py)
    }
}

/// `wsgi.file_wrapper`: iterates a file-like object in blocks, and closes it with the response.
#[pyclass(module = "fcgi_wsgi")]
pub struct FileWrapper {
    filelike: Py<PyAny>,
    block_size: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, block_size=65536))]
    fn new(filelike: Py<PyAny>, block_size: usize) -> Self {
        Self { filelike, block_size: block_size.max(1) }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let block = self.filelike.bind(py).call_method1("read", (self.block_size,))?;
        Ok((block.len()? > 0).then_some(block))
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(close) = self.filelike.bind(py).getattr_opt("close")? {
            close.call0()?;
        }
        Ok(())
    }
}
