//! The access log: one line per request, however it ended (answered, failed, refused, cut
//! short, abandoned), in gunicorn's format atoms. Lines go to a file (`access_logfile`; `-` is
//! stderr) through a buffer that is written when it fills, within a second, and when the
//! server stops, so a busy server makes no syscall per line; and to the `log` facade under
//! [`ACCESS_TARGET`] when the face's logger asks for them (Python's `fcgi_wsgi.access`).

use std::fmt::{self, Write as _};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::clock;
use super::logging::ACCESS_TARGET;
use super::signals;
use super::thread_id;
use crate::protocol::{Params, ResponseHead};

/// gunicorn's default line (Apache's combined format).
pub const DEFAULT_FORMAT: &str = r#"%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s""#;

/// Buffered lines are written once they pass this many bytes.
const BUFFER_BYTES: usize = 64 << 10;

/// Buffered lines are written at the latest this long after they were logged.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// One piece of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Atom {
    Text(String),
    /// `h`: the client's address (REMOTE_ADDR).
    RemoteAddr,
    /// `l`: always `-`.
    Ident,
    /// `u`: REMOTE_USER.
    User,
    /// `t`: `[04/Dec/2026:18:56:08 +0000]`, when the line is written.
    Time,
    /// `r`: `GET /path?query HTTP/1.1`.
    RequestLine,
    /// `m`
    Method,
    /// `U`: the path without the query.
    Path,
    /// `q`
    Query,
    /// `H`
    Protocol,
    /// `s`
    Status,
    /// `B`: response body bytes.
    BodyBytes,
    /// `b`: response body bytes, `-` for none.
    BodyBytesClf,
    /// `f`
    Referer,
    /// `a`
    UserAgent,
    /// `T`: whole seconds.
    Seconds,
    /// `M`: milliseconds.
    Millis,
    /// `D`: microseconds.
    Micros,
    /// `L`: seconds with six decimals.
    DecimalSeconds,
    /// `p`: `<pid>`.
    Pid,
    /// `{name}i`: a request header (the `HTTP_NAME` param).
    RequestHeader(String),
    /// `{name}o`: a response header.
    ResponseHeader(String),
    /// `{name}e`: a param (CGI variable).
    Param(String),
    /// `R` (ours): the FastCGI request id.
    RequestId,
    /// `C` (ours): the connection's number in this process.
    Connection,
    /// `W` (ours): the serving thread's id.
    Worker,
    /// `I` (ours): request body bytes read.
    BytesIn,
}

/// A parsed `access_logformat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessFormat(Vec<Atom>);

impl Default for AccessFormat {
    fn default() -> Self {
        Self::parse(DEFAULT_FORMAT).expect("the default format parses")
    }
}

impl AccessFormat {
    /// Parses gunicorn's `%(atom)s` format; `%%` is a `%`.
    pub fn parse(format: &str) -> Result<Self, String> {
        let mut atoms = Vec::new();
        let mut text = String::new();
        let mut rest = format;
        while let Some(at) = rest.find('%') {
            text.push_str(&rest[..at]);
            rest = &rest[at + 1..];
            if let Some(after) = rest.strip_prefix('%') {
                text.push('%');
                rest = after;
                continue;
            }
            let Some((name, after)) = rest.strip_prefix('(').and_then(|r| r.split_once(")s")) else {
                return Err(format!(
                    "a % that is not %% or %(atom)s at {:?}",
                    &format[format.len() - rest.len() - 1..]
                ));
            };
            if !text.is_empty() {
                atoms.push(Atom::Text(std::mem::take(&mut text)));
            }
            atoms.push(atom(name).ok_or_else(|| format!("no atom %({name})s"))?);
            rest = after;
        }
        text.push_str(rest);
        if !text.is_empty() {
            atoms.push(Atom::Text(text));
        }
        Ok(Self(atoms))
    }

    /// Whether a line needs the response's headers (so the head must be kept).
    pub fn wants_response_headers(&self) -> bool {
        self.0.iter().any(|atom| matches!(atom, Atom::ResponseHeader(_)))
    }
}

fn atom(name: &str) -> Option<Atom> {
    if let Some(inner) = name.strip_prefix('{') {
        let (key, suffix) = inner.split_once('}')?;
        return match suffix {
            "i" => Some(Atom::RequestHeader(format!("HTTP_{}", key.to_ascii_uppercase().replace('-', "_")))),
            "o" => Some(Atom::ResponseHeader(key.to_owned())),
            "e" => Some(Atom::Param(key.to_owned())),
            _ => None,
        };
    }
    Some(match name {
        "h" => Atom::RemoteAddr,
        "l" => Atom::Ident,
        "u" => Atom::User,
        "t" => Atom::Time,
        "r" => Atom::RequestLine,
        "m" => Atom::Method,
        "U" => Atom::Path,
        "q" => Atom::Query,
        "H" => Atom::Protocol,
        "s" => Atom::Status,
        "B" => Atom::BodyBytes,
        "b" => Atom::BodyBytesClf,
        "f" => Atom::Referer,
        "a" => Atom::UserAgent,
        "T" => Atom::Seconds,
        "M" => Atom::Millis,
        "D" => Atom::Micros,
        "L" => Atom::DecimalSeconds,
        "p" => Atom::Pid,
        "R" => Atom::RequestId,
        "C" => Atom::Connection,
        "W" => Atom::Worker,
        "I" => Atom::BytesIn,
        _ => return None,
    })
}

/// What one ended request leaves for its line.
pub(crate) struct AccessRecord<'a> {
    /// The request's params (`None` when they were refused).
    pub params: Option<&'a Params>,
    pub head: Option<&'a ResponseHead>,
    /// The status, when no head says it (a page the server wrote itself, a request whose
    /// client left before any answer: 499, as nginx logs it).
    pub status: Option<u16>,
    pub started: Instant,
    /// STDOUT bytes, head included.
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub request_id: u16,
    pub connection: u64,
}

impl AccessRecord<'_> {
    fn param(&self, name: &str) -> Option<&[u8]> {
        self.params?.get(name.as_bytes()).filter(|v| !v.is_empty())
    }

    fn status(&self) -> Option<u16> {
        self.head.and_then(ResponseHead::status).or(self.status)
    }

    fn body_bytes(&self) -> u64 {
        let head = self.head.and_then(ResponseHead::head_len).unwrap_or(0) as u64;
        self.bytes_out.saturating_sub(head)
    }

    /// The path and query as the client asked: REQUEST_URI, else SCRIPT_NAME + PATH_INFO and
    /// the query.
    fn push_uri(&self, out: &mut String, with_query: bool) {
        if let Some(uri) = self.param("REQUEST_URI") {
            let uri = if with_query { uri } else { uri.split(|&b| b == b'?').next().unwrap_or_default() };
            push_escaped(out, uri);
            return;
        }
        push_escaped(out, self.param("SCRIPT_NAME").unwrap_or_default());
        push_escaped(out, self.param("PATH_INFO").unwrap_or_default());
        if let (true, Some(query)) = (with_query, self.param("QUERY_STRING")) {
            out.push('?');
            push_escaped(out, query);
        }
    }

    /// Appends the line for this record in `format`, newline included.
    fn write_line(&self, format: &AccessFormat, out: &mut String) {
        let elapsed = self.started.elapsed();
        for atom in &format.0 {
            match atom {
                Atom::Text(text) => out.push_str(text),
                Atom::RemoteAddr => self.push_param(out, "REMOTE_ADDR"),
                Atom::Ident => out.push('-'),
                Atom::User => self.push_param(out, "REMOTE_USER"),
                Atom::Time => {
                    out.push('[');
                    clock::push_clf_time(out);
                    out.push(']');
                }
                Atom::RequestLine => {
                    self.push_param(out, "REQUEST_METHOD");
                    out.push(' ');
                    self.push_uri(out, true);
                    out.push(' ');
                    self.push_param(out, "SERVER_PROTOCOL");
                }
                Atom::Method => self.push_param(out, "REQUEST_METHOD"),
                Atom::Path => self.push_uri(out, false),
                Atom::Query => push_escaped(out, self.param("QUERY_STRING").unwrap_or_default()),
                Atom::Protocol => self.push_param(out, "SERVER_PROTOCOL"),
                Atom::Status => push_or_dash(out, self.status()),
                Atom::BodyBytes => push(out, self.body_bytes()),
                Atom::BodyBytesClf => push_or_dash(out, Some(self.body_bytes()).filter(|&n| n > 0)),
                Atom::Referer => self.push_param(out, "HTTP_REFERER"),
                Atom::UserAgent => self.push_param(out, "HTTP_USER_AGENT"),
                Atom::Seconds => push(out, elapsed.as_secs()),
                Atom::Millis => push(out, elapsed.as_millis()),
                Atom::Micros => push(out, elapsed.as_micros()),
                Atom::DecimalSeconds => push(out, format_args!("{:.6}", elapsed.as_secs_f64())),
                Atom::Pid => push(out, format_args!("<{}>", std::process::id())),
                Atom::RequestHeader(name) | Atom::Param(name) => self.push_param(out, name),
                Atom::ResponseHeader(name) => match self.head.and_then(|head| head.header(name)) {
                    Some(value) => push_escaped(out, value),
                    None => out.push('-'),
                },
                Atom::RequestId => push(out, self.request_id),
                Atom::Connection => push(out, self.connection),
                Atom::Worker => push(out, thread_id::current().1),
                Atom::BytesIn => push(out, self.bytes_in),
            }
        }
        out.push('\n');
    }

    fn push_param(&self, out: &mut String, name: &str) {
        match self.param(name) {
            Some(value) => push_escaped(out, value),
            None => out.push('-'),
        }
    }
}

fn push(out: &mut String, value: impl fmt::Display) {
    let _ = write!(out, "{value}");
}

fn push_or_dash(out: &mut String, value: Option<impl fmt::Display>) {
    match value {
        Some(value) => push(out, value),
        None => out.push('-'),
    }
}

/// Appends `bytes`, with control characters, quotes, backslashes and bytes that are not
/// UTF-8 as `\xHH`: a client must not be able to forge a line or a field.
pub(crate) fn push_escaped(out: &mut String, bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '"' || c == '\\' {
                let mut buf = [0; 4];
                for byte in c.encode_utf8(&mut buf).bytes() {
                    push(out, format_args!("\\x{byte:02x}"));
                }
            } else {
                out.push(c);
            }
        }
        for byte in chunk.invalid() {
            push(out, format_args!("\\x{byte:02x}"));
        }
    }
}

/// Where lines go.
pub(crate) struct AccessLog {
    format: AccessFormat,
    /// The file (or stderr) and the lines not yet written to it.
    file: Option<Mutex<Buffered>>,
}

struct Buffered {
    out: Sink,
    lines: Vec<u8>,
}

/// Where the lines are written.
enum Sink {
    Stderr,
    /// A file, and the path it was opened by: when the path names another file (logrotate
    /// moved this one away), the log is reopened there.
    File {
        file: File,
        path: PathBuf,
    },
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Stderr => io::stderr().write(buf),
            Self::File { file, .. } => file.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Stderr => io::stderr().flush(),
            Self::File { file, .. } => file.flush(),
        }
    }
}

impl Sink {
    /// Reopens the file if its path now names another file or none (it was rotated), as
    /// Python's WatchedFileHandler does: no signal needed, whatever rotates it.
    fn follow_rotation(&mut self) {
        let Self::File { file, path } = self else { return };
        let same = match (std::fs::metadata(&*path), file.metadata()) {
            (Ok(now), Ok(open)) => (now.dev(), now.ino()) == (open.dev(), open.ino()),
            _ => false,
        };
        if !same {
            match open_append(path) {
                Ok(reopened) => *file = reopened,
                Err(e) => log::error!("reopening the rotated access log: {e}"),
            }
        }
    }
}

impl Buffered {
    fn write_out(&mut self) {
        if !self.lines.is_empty() {
            // Whole lines in one write: O_APPEND keeps the lines of several processes apart.
            if let Err(e) = self.out.write_all(&self.lines).and_then(|()| self.out.flush()) {
                log::error!("writing the access log: {e}");
            }
            self.lines.clear();
        }
    }
}

impl AccessLog {
    /// The access log `logfile` and the log facade ask for, or `None` if nobody wants lines.
    pub(crate) fn open(logfile: Option<&Path>, format: &AccessFormat) -> io::Result<Option<Arc<Self>>> {
        let to_facade = log::log_enabled!(target: ACCESS_TARGET, log::Level::Info);
        let out = match logfile {
            None => None,
            Some(path) if path == Path::new("-") => Some(Sink::Stderr),
            Some(path) => Some(Sink::File { file: open_append(path)?, path: path.to_owned() }),
        };
        if out.is_none() && !to_facade {
            return Ok(None);
        }
        let file = out.map(|out| Mutex::new(Buffered { out, lines: Vec::with_capacity(BUFFER_BYTES) }));
        let log = Arc::new(Self { format: format.clone(), file });
        if log.file.is_some() {
            spawn_flusher(Arc::downgrade(&log))?;
        }
        Ok(Some(log))
    }

    /// Whether lines need the response's headers.
    pub(crate) fn wants_response_headers(&self) -> bool {
        self.format.wants_response_headers()
    }

    /// Logs the line of `record`.
    pub(crate) fn log(&self, record: &AccessRecord<'_>) {
        thread_local! {
            static LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        LINE.with(|line| {
            let mut line = line.borrow_mut();
            line.clear();
            record.write_line(&self.format, &mut line);
            if let Some(file) = &self.file {
                let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
                file.lines.extend_from_slice(line.as_bytes());
                if file.lines.len() >= BUFFER_BYTES {
                    file.write_out();
                }
            }
            if log::log_enabled!(target: ACCESS_TARGET, log::Level::Info) {
                log::info!(target: ACCESS_TARGET, "{}", line.trim_end());
            }
        });
    }

    /// Writes the buffered lines now.
    pub(crate) fn flush(&self) {
        if let Some(file) = &self.file {
            file.lock().unwrap_or_else(|p| p.into_inner()).write_out();
        }
    }

    /// Writes the buffered lines, to a new file if the log was rotated since the last time.
    fn flush_following_rotation(&self) {
        if let Some(file) = &self.file {
            let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
            file.write_out();
            file.out.follow_rotation();
        }
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.flush();
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("opening the access log {}: {e}", path.display())))
}

/// Writes `log`'s buffered lines every [`FLUSH_EVERY`] for as long as it lives.
fn spawn_flusher(log: Weak<AccessLog>) -> io::Result<()> {
    std::thread::Builder::new().name("fcgi-access-log".into()).spawn(move || {
        signals::block_on_this_thread();
        loop {
            std::thread::sleep(FLUSH_EVERY);
            match log.upgrade() {
                Some(log) => log.flush_following_rotation(),
                None => return,
            }
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(format: &str, params: &[(&str, &str)], head: &[u8], bytes_in: u64) -> String {
        let params = Params::from_pairs(params.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())));
        let mut response = ResponseHead::new(true);
        response.feed(head);
        let record = AccessRecord {
            params: Some(&params),
            head: Some(&response),
            status: None,
            started: Instant::now(),
            bytes_out: head.len() as u64,
            bytes_in,
            request_id: 3,
            connection: 9,
        };
        let mut out = String::new();
        record.write_line(&AccessFormat::parse(format).unwrap(), &mut out);
        out
    }

    #[test]
    fn the_default_format_is_the_combined_log_format() {
        let params = [
            ("REMOTE_ADDR", "10.0.0.1"),
            ("REQUEST_METHOD", "GET"),
            ("REQUEST_URI", "/a?b=1"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("HTTP_USER_AGENT", "curl/8"),
        ];
        let line = line(DEFAULT_FORMAT, &params, b"Status: 404 Not Found\r\n\r\nnot here", 0);
        let (start, rest) = line.split_once(" [").unwrap();
        assert_eq!(start, "10.0.0.1 - -");
        assert_eq!(rest.split_once("] ").unwrap().1, "\"GET /a?b=1 HTTP/1.1\" 404 8 \"-\" \"curl/8\"\n");
    }

    #[test]
    fn every_atom_has_its_value() {
        let params = [
            ("SCRIPT_NAME", "/app"),
            ("PATH_INFO", "/x"),
            ("QUERY_STRING", "q=1"),
            ("REQUEST_METHOD", "POST"),
            ("HTTP_X_TRACE", "t1"),
            ("SERVER_NAME", "example"),
        ];
        let format = "%(m)s %(U)s %(q)s %({x-trace}i)s %({Content-Type}o)s %({SERVER_NAME}e)s %(R)s %(C)s %(I)s %(B)s %(b)s 100%%";
        let line = line(format, &params, b"Content-Type: text/plain\r\n\r\n", 12);
        assert_eq!(line, "POST /app/x q=1 t1 text/plain example 3 9 12 0 - 100%\n");
    }

    #[test]
    fn a_client_cannot_forge_fields_or_lines() {
        let line = line("%(a)s", &[("HTTP_USER_AGENT", "x\" 200\nforged\\\u{7f}")], b"\r\n", 0);
        assert_eq!(line, "x\\x22 200\\x0aforged\\x5c\\x7f\n");
    }

    #[test]
    fn bad_formats_say_where() {
        assert!(AccessFormat::parse("%(nope)s").unwrap_err().contains("no atom %(nope)s"));
        assert!(AccessFormat::parse("50% off").unwrap_err().contains("% off"));
        assert!(AccessFormat::parse("%(h)").is_err());
        assert!(!AccessFormat::default().wants_response_headers());
    }

    #[test]
    fn a_rotated_log_is_reopened_at_its_path_at_the_next_flush() {
        let dir = std::env::temp_dir().join(format!("fcgi-access-rotation-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (path, rotated) = (dir.join("access.log"), dir.join("access.log.1"));
        let format = AccessFormat::parse("%(U)s").unwrap();
        let log = AccessLog::open(Some(&path), &format).unwrap().unwrap();
        let log_uri = |uri: &str| {
            let params = Params::from_pairs([(&b"REQUEST_URI"[..], uri.as_bytes())]);
            log.log(&AccessRecord {
                params: Some(&params),
                head: None,
                status: Some(200),
                started: Instant::now(),
                bytes_out: 0,
                bytes_in: 0,
                request_id: 1,
                connection: 1,
            });
        };
        log_uri("/before");
        log.flush_following_rotation();
        std::fs::rename(&path, &rotated).unwrap();
        log_uri("/during");
        log.flush_following_rotation();
        log_uri("/after");
        log.flush();
        assert_eq!(std::fs::read_to_string(&rotated).unwrap(), "/before\n/during\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "/after\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
