//! The pre-fork supervisor (here, the test process) reaps its worker processes only: a child
//! the program started itself (a Python app's `subprocess.run`, say) keeps its exit status for
//! the program's own waitpid. Alone in its test binary: no other test's children to confuse.

use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use fcgi_core::{Bind, Request, Server, ServerConfig};

/// Whether `pid` has exited and waits to be reaped (state Z in /proc/PID/stat).
fn is_zombie(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'))
}

#[test]
fn the_supervisor_leaves_the_programs_own_children_alone() {
    let mut own = Command::new("sh").args(["-c", "exit 7"]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !is_zombie(own.id()) {
        assert!(Instant::now() < deadline, "sh did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
    let dir = std::env::temp_dir().join(format!("fcgi-reap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("reap.sock");
    let server = Server::new(ServerConfig {
        bind: Some(Bind::Unix { path: path.clone(), mode: None }),
        workers: Some(1),
        processes: 2,
        handle_signals: false,
        ..ServerConfig::default()
    });
    let stop = server.stop_handle();
    let handler = |request: &mut Request<'_>| request.write_stdout(b"Status: 204 No Content\r\n\r\n");
    std::thread::scope(|scope| {
        let serving = scope.spawn(|| server.serve(&handler));
        while UnixStream::connect(&path).is_err() {
            assert!(Instant::now() < deadline, "the server did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
        // The supervisor looks for exited children every 100 ms.
        std::thread::sleep(Duration::from_millis(500));
        stop.stop();
        // It returns once it has reaped both of its workers.
        serving.join().unwrap().expect("served");
    });
    let status = own.wait().expect("the program's own child is still there to wait for");
    assert_eq!(status.code(), Some(7));
    let _ = std::fs::remove_dir_all(dir);
}
