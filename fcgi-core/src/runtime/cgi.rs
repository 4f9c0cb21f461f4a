//! CGI mode (RFC 3875): the process environment and CONTENT_LENGTH bytes of stdin make one
//! request; the handler's CGI-style response goes to stdout; then the server returns.

use std::io::{self, BufWriter, Read, Stdin, Stdout, Write};
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::request::{run_handler, Exchange, Handler, Input, Origin, Output, Request, ServerInfo, Transport};
use crate::protocol::{Params, Role};

const READ_CHUNK: usize = 64 << 10;

/// The one request this CGI process was started for, and where its app status will be once it
/// has ended (`None` before). `None` instead of a request if it was refused (a body over
/// `max_body_bytes`): it has been answered already.
pub(crate) fn request(max_body_bytes: Option<u64>) -> (Option<Request<'static>>, Arc<Mutex<Option<u32>>>) {
    let vars: Vec<_> = std::env::vars_os().collect();
    let params = Params::from_pairs(vars.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())));
    let remaining = params
        .get(b"CONTENT_LENGTH")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let app_status = Arc::new(Mutex::new(None));
    let exchange = CgiExchange {
        stdin: io::stdin(),
        remaining,
        stdout: BufWriter::with_capacity(READ_CHUNK, io::stdout()),
        app_status: app_status.clone(),
    };
    let info = ServerInfo { transport: Transport::Cgi, workers: 1, pool_worker: false, max_body_bytes };
    let mut request = Request::new(info, Role::Responder, params, Box::new(exchange), Origin::default());
    if request.refuse_too_large() {
        return (None, app_status);
    }
    (Some(request), app_status)
}

/// Serves the one request this CGI process was started for; returns its app status.
pub(crate) fn serve_once(handler: &dyn Handler, max_body_bytes: Option<u64>) -> io::Result<u32> {
    let (request, app_status) = request(max_body_bytes);
    if let Some(request) = request {
        run_handler(handler, request);
    }
    let status = app_status.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).unwrap_or(1);
    Ok(status)
}

struct CgiExchange {
    stdin: Stdin,
    /// Body bytes not yet read: stdin past CONTENT_LENGTH is never touched.
    remaining: u64,
    stdout: BufWriter<Stdout>,
    /// Set at the end.
    app_status: Arc<Mutex<Option<u32>>>,
}

impl Exchange for CgiExchange {
    fn read(&mut self, input: Input) -> io::Result<Option<Bytes>> {
        if input == Input::Data || self.remaining == 0 {
            return Ok(None);
        }
        let mut chunk = vec![0; READ_CHUNK.min(self.remaining as usize)];
        let n = loop {
            match self.stdin.read(&mut chunk) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "stdin ended before CONTENT_LENGTH bytes"));
        }
        chunk.truncate(n);
        self.remaining -= n as u64;
        Ok(Some(chunk.into()))
    }

    fn write(&mut self, output: Output, data: &[u8]) -> io::Result<()> {
        match output {
            Output::Stdout => self.stdout.write_all(data),
            Output::Stderr => io::stderr().write_all(data),
        }
    }

    fn try_buffer(&mut self, output: Output, data: &[u8]) -> io::Result<bool> {
        let room = self.stdout.capacity() - self.stdout.buffer().len();
        if output == Output::Stderr || data.len() > room {
            return Ok(false);
        }
        self.stdout.write_all(data)?;
        Ok(true)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stdout.flush()
    }

    fn is_aborted(&mut self) -> bool {
        false
    }

    fn end(&mut self, app_status: u32, _stderr_used: bool) -> bool {
        let flushed = self.stdout.flush();
        if let Err(e) = &flushed {
            log::error!("writing the CGI response: {e}");
        }
        let app_status = if flushed.is_ok() { app_status } else { app_status.max(1) };
        *self.app_status.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(app_status);
        flushed.is_ok()
    }
}
