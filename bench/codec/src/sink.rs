//! The Rust core serving `/sink` for the 1 GiB upload: reads the body in 64 KiB chunks and
//! answers the byte count, so the process's memory shows what the library holds, not the body.
//! Every other path answers the 13-byte hello.
//!
//! ```text
//! sink --bind ADDR [--workers N]
//! ```

use std::io::{self, Read};
use std::process::ExitCode;

use fcgi_core::{Bind, Request, Server, ServerConfig};

fn main() -> ExitCode {
    let mut config = ServerConfig::default();
    let mut args = std::env::args().skip(1);
    while let (Some(flag), Some(value)) = (args.next(), args.next()) {
        match flag.as_str() {
            "--bind" => config.bind = Bind::parse(&value).ok(),
            "--workers" => config.workers = value.parse().ok(),
            _ => {
                eprintln!("usage: sink --bind ADDR [--workers N]");
                return ExitCode::from(2);
            }
        }
    }
    match Server::new(config).serve(&handle) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sink: {e}");
            ExitCode::FAILURE
        }
    }
}

fn handle(request: &mut Request<'_>) -> io::Result<()> {
    let path = request.param("PATH_INFO").or(request.param("REQUEST_URI")).unwrap_or(b"/");
    let body = if path.split(|b| *b == b'/').any(|segment| segment == b"sink") {
        let mut chunk = vec![0u8; 64 << 10];
        let mut seen = 0u64;
        loop {
            let n = request.stdin().read(&mut chunk)?;
            if n == 0 {
                break;
            }
            seen += n as u64;
        }
        format!("{seen}\n").into_bytes()
    } else {
        b"Hello, world!".to_vec()
    };
    let head = format!("Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n", body.len());
    request.write_stdout(head.as_bytes())?;
    request.write_stdout(&body)
}
