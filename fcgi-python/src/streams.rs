//! `wsgi.input` (and the Filter's `fcgi.data`) and `wsgi.errors`.

use std::os::raw::{c_char, c_int};
use std::sync::Arc;

use bytes::Bytes;
use fcgi_core::Input;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::error::{to_py, RequestBodyIncomplete};
use crate::live_request::LiveRequest;

/// `wsgi.input`: the request body, streamed from the connection as the app reads it, ending at
/// CONTENT_LENGTH (or at the end of the body when the web server sends none). The same type is
/// `fcgi.data`, a Filter's data stream (the file to filter), ending at FCGI_DATA_LENGTH.
///
/// Memory: the body is never buffered here beyond the chunk being read (one FastCGI record, at
/// most 64 KiB). What a call returns is copied once, straight from those chunks into the `bytes`
/// object it returns, which grows in place as chunks arrive; each chunk is let go once copied.
/// So `readline()` on a body without a newline, or `read()` without a size, costs the body's size
/// once: pass a size to bound it.
#[pyclass(module = "fcgi_wsgi")]
pub struct InputStream {
    live: Arc<LiveRequest>,
    /// STDIN for `wsgi.input`, DATA for `fcgi.data`.
    input: Input,
    /// What is left of the last chunk taken off the connection (its memory, not a copy).
    pending: Bytes,
    /// The length the web server declared (CONTENT_LENGTH, FCGI_DATA_LENGTH), if any.
    declared: Option<u64>,
    /// Bytes of the stream not yet taken from the connection; `None` without a declared length.
    remaining: Option<u64>,
    eof: bool,
}

impl InputStream {
    /// A reader of `input` that stops after `declared` bytes, if given (`Some(0)`: empty at once,
    /// without ever reading the connection).
    pub fn new(live: Arc<LiveRequest>, input: Input, declared: Option<u64>) -> Self {
        Self { live, input, pending: Bytes::new(), declared, remaining: declared, eof: declared == Some(0) }
    }

    /// A stream of `input` that is empty from the start and reaches no request, so one serves
    /// every request (the `fcgi.data` of roles other than Filter).
    pub fn empty(input: Input) -> Self {
        Self::new(LiveRequest::finished(), input, Some(0))
    }

    /// Takes the next chunk off the connection (without the GIL). A stream that ends before its
    /// declared length is an error, raised again by every later read that needs more of it.
    fn fill(&mut self, py: Python<'_>) -> PyResult<()> {
        let (live, input) = (&self.live, self.input);
        let chunk = py.detach(|| live.with(|request| request.read_chunk(input))).map_err(to_py)?;
        match chunk {
            Some(mut chunk) => {
                if let Some(remaining) = self.remaining.as_mut() {
                    // Never hand out bytes past the declared length.
                    chunk.truncate(usize::try_from(*remaining).unwrap_or(usize::MAX));
                    *remaining -= chunk.len() as u64;
                    self.eof = *remaining == 0;
                }
                self.pending = chunk;
            }
            None => match (self.declared, self.remaining) {
                // The core itself fails a body that ends short of CONTENT_LENGTH; the data
                // stream's length is only a param, checked here.
                (Some(declared), Some(remaining)) if remaining > 0 => {
                    let name = if self.input == Input::Data { "data stream" } else { "request body" };
                    let length = if self.input == Input::Data { "FCGI_DATA_LENGTH" } else { "CONTENT_LENGTH" };
                    return Err(RequestBodyIncomplete::new_err(format!(
                        "the {name} ended after {} of its {declared} bytes ({length})",
                        declared - remaining
                    )));
                }
                _ => self.eof = true,
            },
        }
        Ok(())
    }

    /// Up to `limit` bytes of the body, ending after the first newline when `line`.
    fn take<'py>(&mut self, py: Python<'py>, limit: usize, line: bool) -> PyResult<Bound<'py, PyBytes>> {
        let mut out = Assembly::Empty;
        while out.len() < limit {
            if self.pending.is_empty() {
                if self.eof {
                    break;
                }
                self.fill(py)?;
                continue;
            }
            let window = (limit - out.len()).min(self.pending.len());
            let newline = if line { self.pending[..window].iter().position(|b| *b == b'\n') } else { None };
            let n = newline.map_or(window, |i| i + 1);
            out = out.push(py, self.pending.split_to(n))?;
            if newline.is_some() {
                break;
            }
        }
        Ok(out.finish(py))
    }
}

/// A `bytes` object put together from chunks of the body with one copy of each: one chunk is
/// copied when it is finished; from the second on, the object exists and each chunk is appended
/// to it in place (`PyBytes_Concat` on a `bytes` only we hold resizes it, and a large block is
/// grown by remapping its pages, not by copying them).
enum Assembly<'py> {
    Empty,
    One(Bytes),
    Many(Bound<'py, PyBytes>),
}

impl<'py> Assembly<'py> {
    fn len(&self) -> usize {
        match self {
            Self::Empty => 0,
            Self::One(chunk) => chunk.len(),
            Self::Many(bytes) => bytes.as_bytes().len(),
        }
    }

    fn push(self, py: Python<'py>, chunk: Bytes) -> PyResult<Self> {
        Ok(match self {
            Self::Empty => Self::One(chunk),
            Self::One(first) => Self::Many(append(PyBytes::new(py, &first), &chunk)?),
            Self::Many(bytes) => Self::Many(append(bytes, &chunk)?),
        })
    }

    fn finish(self, py: Python<'py>) -> Bound<'py, PyBytes> {
        match self {
            Self::Empty => PyBytes::new(py, b""),
            Self::One(chunk) => PyBytes::new(py, &chunk),
            Self::Many(bytes) => bytes,
        }
    }
}

/// `PyBUF_READ` of `memoryobject.h` (pyo3's ffi exports it for Python 3.11 and later only).
const PYBUF_READ: c_int = 0x100;

/// `bytes + data`, in place when `bytes` has no other reference.
fn append<'py>(bytes: Bound<'py, PyBytes>, data: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let py = bytes.py();
    let len = ffi::Py_ssize_t::try_from(data.len()).map_err(|_| pyo3::exceptions::PyOverflowError::new_err("chunk"))?;
    // SAFETY: the memoryview is read-only, is ours alone and is dropped below, before `data`
    // can go away; PyBytes_Concat copies from it and releases its buffer before returning.
    let view = unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::PyMemoryView_FromMemory(data.as_ptr() as *mut c_char, len, PYBUF_READ))?
    };
    let mut ptr = bytes.into_ptr();
    // SAFETY: `ptr` is an owned reference to a `bytes`, which PyBytes_Concat consumes, leaving in
    // its place an owned reference to the result, or NULL with an exception set.
    let joined = unsafe {
        ffi::PyBytes_Concat(&mut ptr, view.as_ptr());
        Bound::from_owned_ptr_or_err(py, ptr)?
    };
    drop(view);
    // SAFETY: PyBytes_Concat returns a `bytes`.
    Ok(unsafe { joined.cast_into_unchecked() })
}

fn limit(size: Option<isize>) -> usize {
    match size {
        Some(n) if n >= 0 => n as usize,
        _ => usize::MAX,
    }
}

#[pymethods]
impl InputStream {
    /// Reads up to `size` bytes (all that is left when `size` is negative or omitted), copied
    /// once from the connection into the `bytes` returned. Raises `RequestBodyIncomplete` when
    /// the body ends before CONTENT_LENGTH.
    #[pyo3(signature = (size=-1))]
    fn read<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        self.take(py, limit(size), false)
    }

    /// Reads one line, at most `size` bytes of it. A line costs its length once in memory (on a
    /// body without newlines, the whole body: pass `size` to bound it).
    #[pyo3(signature = (size=-1))]
    fn readline<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        self.take(py, limit(size), true)
    }

    /// Reads lines until about `hint` bytes (all lines without a hint); each costs its length.
    #[pyo3(signature = (hint=-1))]
    fn readlines<'py>(&mut self, py: Python<'py>, hint: Option<isize>) -> PyResult<Bound<'py, PyList>> {
        let hint = limit(hint);
        let lines = PyList::empty(py);
        let mut total = 0;
        loop {
            let line = self.take(py, usize::MAX, true)?;
            if line.as_bytes().is_empty() {
                return Ok(lines);
            }
            total += line.as_bytes().len();
            lines.append(line)?;
            if total >= hint {
                return Ok(lines);
            }
        }
    }

    /// Iterates the body's lines, as `readline()` reads them (a line costs its length once).
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.take(py, usize::MAX, true)?;
        Ok((!line.as_bytes().is_empty()).then_some(line))
    }
}

/// `wsgi.errors`: text for the web server's error log, sent as FCGI_STDERR.
#[pyclass(module = "fcgi_wsgi", frozen)]
pub struct ErrorStream {
    live: Arc<LiveRequest>,
}

impl ErrorStream {
    pub fn new(live: Arc<LiveRequest>) -> Self {
        Self { live }
    }
}

#[pymethods]
impl ErrorStream {
    /// Writes `text` (UTF-8 encoded).
    fn write(&self, py: Python<'_>, text: String) -> PyResult<usize> {
        let live = &self.live;
        let data = text.as_bytes();
        // Without waiting under the GIL: a busy request or connection means the detached way.
        if live.try_with(|request| request.try_buffer_stderr(data)).map_err(to_py)? != Some(true) {
            py.detach(|| live.with(|request| request.write_stderr(data))).map_err(to_py)?;
        }
        Ok(text.chars().count())
    }

    /// Writes each string of `lines`.
    fn writelines(&self, py: Python<'_>, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            let line = line?;
            self.write(py, line.extract::<String>()?)?;
        }
        Ok(())
    }

    /// Sends what was written so far.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let live = &self.live;
        py.detach(|| live.with(|request| request.flush())).map_err(to_py)
    }
}
