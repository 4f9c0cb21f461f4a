//! A stop that reaches a worker process between its fork and its own signal handlers is not
//! lost: the supervisor passes SIGTERM on to each worker once, and a worker that forgot it would
//! serve on, holding the supervisor's stop for ever. Alone in its test binary: it takes the
//! process's signals.

use std::io;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use fcgi_core::runtime::signals;
use fcgi_core::{Bind, Handler, Lifecycle, Request, Server, ServerConfig};

struct Nothing;

impl Handler for Nothing {
    fn handle(&self, _request: &mut Request<'_>) -> io::Result<()> {
        Ok(())
    }
}

/// Forks as the default does, but each worker lingers a moment before it goes on (a Python
/// face's `os.fork()` runs the interpreter's after-fork work there), and the first fork asks
/// the supervisor to stop meanwhile: its SIGTERM reaches the workers inside that moment.
struct SlowFork {
    children: Mutex<Vec<i32>>,
}

impl Lifecycle for SlowFork {
    fn fork(&self) -> io::Result<i32> {
        // SAFETY: the supervisor forks before it starts threads of its own; the child only
        // sleeps, then goes on to serve (or exit), as a worker does.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => {
                std::thread::sleep(Duration::from_millis(300));
                Ok(0)
            }
            pid => {
                let mut children = self.children.lock().unwrap();
                if children.is_empty() {
                    std::thread::spawn(|| {
                        std::thread::sleep(Duration::from_millis(100));
                        signals::request_stop();
                    });
                }
                children.push(pid);
                Ok(pid)
            }
        }
    }
}

#[test]
fn a_stop_during_a_workers_start_ends_it() {
    let dir = std::env::temp_dir().join(format!("fcgi-stop-at-fork-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("app.sock");
    let server = Server::new(ServerConfig {
        bind: Some(Bind::Unix { path: path.clone(), mode: None }),
        workers: Some(1),
        processes: Some(2),
        ..ServerConfig::default()
    });
    let lifecycle = SlowFork { children: Mutex::new(Vec::new()) };
    let (done, served) = mpsc::channel();
    std::thread::scope(|scope| {
        scope.spawn(|| done.send(server.serve_with(&Nothing, &lifecycle).map(drop)).unwrap());
        let outcome = served.recv_timeout(Duration::from_secs(10));
        let stuck = outcome.is_err();
        if stuck {
            // Unstick the supervisor before failing, or the test would hang.
            for pid in lifecycle.children.lock().unwrap().iter() {
                // SAFETY: kill(2) on a child of this process not yet reaped (the supervisor is stuck).
                unsafe { libc::kill(*pid, libc::SIGKILL) };
            }
        }
        let outcome = outcome.or_else(|_| served.recv()).unwrap();
        assert!(!stuck, "the supervisor waited 10 s for workers that had forgotten its stop");
        assert!(outcome.is_ok(), "{outcome:?}");
        let children = lifecycle.children.lock().unwrap().len();
        assert_eq!(children, 2);
    });
    assert!(!path.exists(), "the socket file is removed at the end");
    let _ = std::fs::remove_dir_all(dir);
}
