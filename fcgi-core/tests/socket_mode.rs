//! `Bind::Unix { mode }`: the socket file has the requested mode, and at no moment a wider one
//! (a chmod after bind(2) left it for a moment with 0777 less the umask). Alone in its test
//! binary, since it sets the process's umask.

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use fcgi_core::runtime::{Bind, Listener};

fn mode_of(path: &std::path::Path) -> Option<u32> {
    std::fs::symlink_metadata(path).ok().map(|meta| meta.permissions().mode() & 0o7777)
}

#[test]
fn a_unix_socket_is_never_wider_than_its_mode() {
    let dir = std::env::temp_dir().join(format!("fcgi-mode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mode.sock");
    // SAFETY: umask(2) only sets the file-creation mask; no other test runs in this binary.
    let own = unsafe { libc::umask(0) };

    // With umask 0, a socket bound before its chmod is born 0777: a watcher looks for that.
    let widest = AtomicU32::new(0);
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                if let Some(mode) = mode_of(&path) {
                    widest.fetch_or(mode & !0o600, Ordering::Relaxed);
                }
            }
        });
        for _ in 0..500 {
            let listener = Listener::bind(&Bind::Unix { path: path.clone(), mode: Some(0o600) }).unwrap();
            assert_eq!(mode_of(&path), Some(0o600));
            drop(listener);
            std::fs::remove_file(&path).unwrap();
            if widest.load(Ordering::Relaxed) != 0 {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        done.store(true, Ordering::Relaxed);
    });
    assert_eq!(widest.load(Ordering::Relaxed), 0, "bits beyond 0600 were seen on the socket file");

    // A mode wider than the umask allows is given all the same (the chmod adds the bits).
    // SAFETY: as above.
    unsafe { libc::umask(0o077) };
    let listener = Listener::bind(&Bind::Unix { path: path.clone(), mode: Some(0o666) }).unwrap();
    assert_eq!(mode_of(&path), Some(0o666));
    drop(listener);
    // The process's umask is back as it was.
    // SAFETY: as above.
    assert_eq!(unsafe { libc::umask(own) }, 0o077);
    let _ = std::fs::remove_dir_all(dir);
}
