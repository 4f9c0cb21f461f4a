//! The test and benchmark app: the same binary serves FastCGI (fd 0, or `--bind ADDR`) and CGI.
//!
//! Routes (the first path segment of PATH_INFO, else of REQUEST_URI, that names one):
//! `/hello`, `/env`, `/echo` (`?prefix=N`: N bytes of `p` written before the body is read), `/big?n=BYTES`, `/status/NNN`, `/cookies`, `/stderr?msg=TEXT`,
//! `/stats`, `/slow?ms=N`, `/pid`, `/fail?after=N` (N bytes, then the handler fails); anything
//! else is 404.
//!
//! ```text
//! echo [--bind ADDR] [--cgi] [--SETTING VALUE]...   (every row of docs/SETTINGS.md, e.g.
//!      --workers 4 --read-timeout 1.5 --access-logfile -)
//! ```

use std::io::{self, Read};
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use fcgi_core::settings::{self, Value};
use fcgi_core::{Bind, Request, Served, Server, ServerConfig, Stats};

const ROUTES: [&str; 11] =
    ["hello", "env", "echo", "big", "status", "cookies", "stderr", "stats", "slow", "pid", "fail"];

fn main() -> ExitCode {
    let config = match parse_args(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("echo: {message}\nusage: echo [--bind ADDR] [--workers N] [--max-requests N] [--cgi]");
            return ExitCode::from(2);
        }
    };
    let server = Server::new(config);
    let stats = server.stats();
    let handler = move |request: &mut Request<'_>| handle(request, &stats);
    match server.serve(&handler) {
        Ok(Served::FastCgi) => ExitCode::SUCCESS,
        Ok(Served::Cgi { app_status }) => ExitCode::from(u8::try_from(app_status).unwrap_or(1)),
        Err(e) => {
            eprintln!("echo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--bind ADDR`, `--cgi`, and `--SETTING VALUE` for each row of the settings table.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<ServerConfig, String> {
    let mut config = ServerConfig::default();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--bind" => config.bind = Some(Bind::parse(&value("--bind")?).map_err(|e| e.to_string())?),
            "--cgi" => config.force_cgi = true,
            flag => {
                let name = flag.strip_prefix("--").unwrap_or_default().replace('-', "_");
                let setting = settings::setting(&name).ok_or(format!("unknown argument {flag:?}"))?;
                let text = value(flag)?;
                let parsed = Value::parse(setting.kind, &text).ok_or(format!("bad {flag} {text:?}"))?;
                config.set(&name, parsed).map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(config)
}

/// The route named in the path, and what follows it (`/status/404` → `("status", "404")`).
fn route(request: &Request<'_>) -> (String, String) {
    let path_info = request.param("PATH_INFO").filter(|p| !p.is_empty());
    let path = match path_info {
        Some(path) => path.to_vec(),
        None => {
            let uri = request.param("REQUEST_URI").unwrap_or(b"/");
            uri.split(|b| *b == b'?').next().unwrap_or(b"/").to_vec()
        }
    };
    let path = String::from_utf8_lossy(&path).into_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for (i, segment) in segments.iter().enumerate() {
        if ROUTES.contains(segment) {
            return (segment.to_string(), segments[i + 1..].join("/"));
        }
    }
    (String::new(), String::new())
}

fn query_value(request: &Request<'_>, name: &str) -> Option<String> {
    let query = String::from_utf8_lossy(request.param("QUERY_STRING")?).into_owned();
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.to_owned())
    })
}

fn handle(request: &mut Request<'_>, stats: &Arc<Stats>) -> io::Result<()> {
    let (name, rest) = route(request);
    match name.as_str() {
        "hello" => respond(request, "200 OK", "text/plain", b"Hello, world!"),
        "env" => {
            let mut body = Vec::new();
            for (name, value) in request.params().iter() {
                body.extend_from_slice(name);
                body.push(b'=');
                body.extend_from_slice(value);
                body.push(b'\n');
            }
            respond(request, "200 OK", "text/plain", &body)
        }
        "echo" => {
            // `?prefix=N`: N bytes of `p` go out before the body is read (a handler that answers
            // while the body is still arriving), then the body, without Content-Length.
            if let Some(n) = query_value(request, "prefix").and_then(|n| n.parse::<usize>().ok()) {
                request.write_stdout(b"Status: 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")?;
                request.write_stdout(&vec![b'p'; n])?;
                let mut body = Vec::new();
                request.stdin().read_to_end(&mut body)?;
                return request.write_stdout(&body);
            }
            // Read the whole body before answering: nginx sends all of it before it reads.
            let mut body = Vec::new();
            request.stdin().read_to_end(&mut body)?;
            respond(request, "200 OK", "application/octet-stream", &body)
        }
        "big" => {
            let n: u64 = query_value(request, "n").and_then(|n| n.parse().ok()).unwrap_or(0);
            let head = format!("Status: 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {n}\r\n\r\n");
            request.write_stdout(head.as_bytes())?;
            let block = pattern_block();
            let mut sent = 0u64;
            while sent < n {
                // Each block starts at a multiple of 251, so it continues the pattern.
                let len = (n - sent).min(block.len() as u64) as usize;
                request.write_stdout(&block[..len])?;
                sent += len as u64;
            }
            Ok(())
        }
        "status" => {
            let code: u16 = rest.parse().unwrap_or(500);
            let status = format!("{code} Status {code}");
            respond(request, &status, "text/plain", format!("status {code}\n").as_bytes())
        }
        "cookies" => request.write_stdout(
            b"Status: 200 OK\r\nContent-Type: text/plain\r\nSet-Cookie: a=1; Path=/\r\nSet-Cookie: b=2; Path=/\r\n\r\ncookies\n",
        ),
        "stderr" => {
            let message = query_value(request, "msg").unwrap_or_default();
            request.write_stderr(format!("echo-stderr: {message}\n").as_bytes())?;
            respond(request, "200 OK", "text/plain", b"ok\n")
        }
        "stats" => {
            let body = format!("connections={} requests={}\n", stats.connections(), stats.requests());
            respond(request, "200 OK", "text/plain", body.as_bytes())
        }
        "slow" => {
            let ms: u64 = query_value(request, "ms").and_then(|n| n.parse().ok()).unwrap_or(100);
            // Sleep in steps, giving up as soon as the web server aborts the request.
            let start = std::time::Instant::now();
            while start.elapsed() < Duration::from_millis(ms) {
                if request.is_aborted() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(ms.min(10)));
            }
            respond(request, "200 OK", "text/plain", format!("slept {ms}\n").as_bytes())
        }
        "fail" => {
            // `?after=N`: N bytes of `f` go out, then the handler fails (a response cut short).
            let after: usize = query_value(request, "after").and_then(|n| n.parse().ok()).unwrap_or(0);
            request.write_stdout(b"Status: 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")?;
            request.write_stdout(&vec![b'f'; after])?;
            request.flush()?;
            Err(io::Error::other("the handler failed on purpose after its response began"))
        }
        "pid" => respond(request, "200 OK", "text/plain", format!("{}\n", std::process::id()).as_bytes()),
        _ => respond(request, "404 Not Found", "text/plain", b"not found\n"),
    }
}

/// 251 × 1044 bytes (about 256 KiB) of the `/big` pattern: byte i is i % 251.
fn pattern_block() -> &'static [u8] {
    static BLOCK: OnceLock<Vec<u8>> = OnceLock::new();
    BLOCK.get_or_init(|| (0..251 * 1044).map(|i| (i % 251) as u8).collect())
}

fn respond(request: &mut Request<'_>, status: &str, content_type: &str, body: &[u8]) -> io::Result<()> {
    let head = format!("Status: {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n", body.len());
    request.write_stdout(head.as_bytes())?;
    request.write_stdout(body)
}
