//! The pre-fork supervisor (here, the test process) reaps its worker processes only: a child
//! the program started itself (a Python app's `subprocess.run`, say) keeps its exit status for
//! the program's own waitpid. Alone in its test binary: no other test's children to confuse.

use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::serve_then_stop;
use fcgi_core::{Bind, Server, ServerConfig};

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
        processes: Some(2),
        handle_signals: false,
        ..ServerConfig::default()
    });
    // 500 ms: the supervisor looks for exited children every 100 ms. `serve` returns once it
    // has reaped both of its workers.
    serve_then_stop(&server, &path, Duration::from_millis(500));
    let status = own.wait().expect("the program's own child is still there to wait for");
    assert_eq!(status.code(), Some(7));
    let _ = std::fs::remove_dir_all(dir);
}
