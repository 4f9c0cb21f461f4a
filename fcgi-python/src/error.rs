//! From the core's I/O errors to Python exceptions, in one place.

use std::io;

use fcgi_core::ErrorKind;
use pyo3::create_exception;
use pyo3::exceptions::PyOSError;
use pyo3::PyErr;

create_exception!(
    fcgi_wsgi,
    ClientDisconnected,
    PyOSError,
    "The web server went away, or aborted the request, while the app was reading or writing."
);

create_exception!(
    fcgi_wsgi,
    RequestTooLarge,
    PyOSError,
    "The request body is larger than max_body_bytes; the client gets a 413."
);

create_exception!(
    fcgi_wsgi,
    RequestBodyIncomplete,
    PyOSError,
    "The request body ended before CONTENT_LENGTH; the client gets a 400 if the app does not catch it."
);

create_exception!(
    fcgi_wsgi,
    RequestTimeout,
    pyo3::exceptions::PyBaseException,
    "The request ran past the server's timeout: raised in the thread serving it, so that the \
     view unwinds (finally blocks run) and the client gets a 504. A BaseException, as \
     KeyboardInterrupt is, so that a broad `except Exception` does not swallow it."
);

/// The Python exception for a core I/O error.
pub fn to_py(e: io::Error) -> PyErr {
    match ErrorKind::of(&e) {
        ErrorKind::Aborted | ErrorKind::Disconnected => ClientDisconnected::new_err(e.to_string()),
        ErrorKind::BodyTooLarge => RequestTooLarge::new_err(e.to_string()),
        ErrorKind::BodyTruncated => RequestBodyIncomplete::new_err(e.to_string()),
        ErrorKind::RequestTimedOut => RequestTimeout::new_err(e.to_string()),
        ErrorKind::TimedOut | ErrorKind::Protocol | ErrorKind::Io => PyOSError::new_err(e.to_string()),
    }
}

/// The page of an app that failed before its response began: a 400 for a body that ended
/// early (`incomplete`, the error's message: the web server's fault, or its client's), else a
/// 500 with `report_body`, what the error report gave (the traceback only under `debug`).
pub fn failure_page(incomplete: Option<String>, report_body: Vec<u8>) -> Vec<u8> {
    let (status, body) = match incomplete {
        Some(message) => ("400 Bad Request", format!("Bad Request: {message}\n").into_bytes()),
        None => ("500 Internal Server Error", report_body),
    };
    let mut page = format!(
        "Status: {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    page.extend_from_slice(&body);
    page
}
