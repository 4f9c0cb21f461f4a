//! `wsgi.input` and `wsgi.errors`.

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use fcgi_core::Input;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::error::to_py;
use crate::live_request::LiveRequest;

/// `wsgi.input`: the request body, streamed from the connection as the app reads it, ending at
/// CONTENT_LENGTH (or at the end of the body when the web server sends none).
#[pyclass(module = "fcgi_wsgi")]
pub struct InputStream {
    live: Arc<LiveRequest>,
    buffer: BytesMut,
    /// Body bytes not yet taken from the connection; `None` without CONTENT_LENGTH.
    remaining: Option<u64>,
    eof: bool,
}

impl InputStream {
    pub fn new(live: Arc<LiveRequest>, content_length: Option<u64>) -> Self {
        Self { live, buffer: BytesMut::new(), remaining: content_length, eof: content_length == Some(0) }
    }

    /// Takes the next chunk off the connection into the buffer (without the GIL).
    fn fill(&mut self, py: Python<'_>) -> PyResult<()> {
        let live = &self.live;
        let chunk = py.detach(|| live.with(|request| request.read_chunk(Input::Stdin))).map_err(to_py)?;
        match chunk {
            Some(mut chunk) => {
                if let Some(remaining) = self.remaining.as_mut() {
                    // Never hand out bytes past CONTENT_LENGTH.
                    chunk.truncate(usize::try_from(*remaining).unwrap_or(usize::MAX));
                    *remaining -= chunk.len() as u64;
                    self.eof = *remaining == 0;
                }
                self.buffer.extend_from_slice(&chunk);
            }
            None => self.eof = true,
        }
        Ok(())
    }

    fn take<'py>(&mut self, py: Python<'py>, n: usize) -> Bound<'py, PyBytes> {
        let n = n.min(self.buffer.len());
        let bytes = PyBytes::new(py, &self.buffer[..n]);
        self.buffer.advance(n);
        bytes
    }

    fn read_line<'py>(&mut self, py: Python<'py>, limit: usize) -> PyResult<Bound<'py, PyBytes>> {
        let mut searched = 0;
        loop {
            if let Some(i) = self.buffer[searched..].iter().position(|b| *b == b'\n') {
                return Ok(self.take(py, (searched + i + 1).min(limit)));
            }
            searched = self.buffer.len();
            if self.eof || self.buffer.len() >= limit {
                return Ok(self.take(py, limit));
            }
            self.fill(py)?;
        }
    }
}

fn limit(size: Option<isize>) -> usize {
    match size {
        Some(n) if n >= 0 => n as usize,
        _ => usize::MAX,
    }
}

#[pymethods]
impl InputStream {
    /// Reads up to `size` bytes (all that is left when `size` is negative or omitted).
    #[pyo3(signature = (size=-1))]
    fn read<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let want = limit(size);
        while self.buffer.len() < want && !self.eof {
            self.fill(py)?;
        }
        Ok(self.take(py, want))
    }

    /// Reads one line, at most `size` bytes of it.
    #[pyo3(signature = (size=-1))]
    fn readline<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        self.read_line(py, limit(size))
    }

    /// Reads lines until about `hint` bytes (all lines without a hint).
    #[pyo3(signature = (hint=-1))]
    fn readlines<'py>(&mut self, py: Python<'py>, hint: Option<isize>) -> PyResult<Bound<'py, PyList>> {
        let hint = limit(hint);
        let lines = PyList::empty(py);
        let mut total = 0;
        loop {
            let line = self.read_line(py, usize::MAX)?;
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

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.read_line(py, usize::MAX)?;
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
