//! `StopHandle::stop` writes only into its server's wake-up socket: after serving ended (even
//! after the server itself is gone), a descriptor number the server used may belong to some
//! other file by now, and a stop must not write a byte into it. Alone in its test binary, so no
//! other test takes the numbers meanwhile.

mod common;

use std::io::{ErrorKind, Read};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{serve_then_stop, temp_dir};
use fcgi_core::{Bind, Server, ServerConfig, StopHandle};

/// Serves on a Unix socket (with `processes` processes) until stopped by a handle, then drops
/// the server and returns the handle.
fn served_and_stopped(processes: usize) -> StopHandle {
    let path = temp_dir().join("stop.sock");
    let server = Server::new(ServerConfig {
        bind: Some(Bind::Unix { path: path.clone(), mode: None }),
        workers: Some(1),
        processes: Some(processes),
        handle_signals: false,
        ..ServerConfig::default()
    });
    // 200 ms: time for a supervisor to start its workers.
    serve_then_stop(&server, &path, Duration::from_millis(200));
    server.stop_handle()
}

#[test]
fn a_stop_after_serving_writes_into_no_file_that_took_a_closed_number() {
    for processes in [1, 2] {
        let stop = served_and_stopped(processes);
        // Files opened now take the lowest free numbers: those the server closed, if it did.
        let others: Vec<(UnixStream, UnixStream)> = (0..16).map(|_| UnixStream::pair().unwrap()).collect();
        stop.stop();
        for (a, b) in &others {
            for mut end in [a, b] {
                end.set_nonblocking(true).unwrap();
                match end.read(&mut [0; 8]) {
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    other => panic!("processes {processes}: a stop wrote into an unrelated socket: {other:?}"),
                }
            }
        }
    }
}
