//! `Server::acceptor`: the program's own threads take the requests and serve them where they
//! are (what the C API is built on), here inside the test process.

mod common;

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{temp_dir, Client, Response};
use fcgi_core::{Accepted, Bind, Server, ServerConfig};

fn server(path: &Path) -> Server {
    Server::new(ServerConfig {
        bind: Some(Bind::Unix { path: path.to_path_buf(), mode: None }),
        workers: Some(2),
        handle_signals: false,
        ..ServerConfig::default()
    })
}

/// Sends one request on a new connection from another thread; its response when joined.
fn send(path: &Path, uri: &'static str, body: &'static [u8]) -> std::thread::JoinHandle<Response> {
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let mut client = Client::over(Box::new(UnixStream::connect(path).unwrap()));
        client.request_response(1, "POST", uri, body)
    })
}

#[test]
fn requests_are_taken_served_and_finished_by_the_callers() {
    let path = temp_dir().join("acceptor.sock");
    let server = server(&path);
    let stop = server.stop_handle();
    let acceptor = server.acceptor().unwrap();

    let client = send(&path, "/form?x=1", b"the body");
    let mut request = acceptor.accept().expect("a request");
    assert_eq!(request.param("REQUEST_URI"), Some(&b"/form?x=1"[..]));
    let mut body = Vec::new();
    request.stdin().read_to_end(&mut body).unwrap();
    assert_eq!(body, b"the body");
    request.write_stdout(b"Status: 201 Created\r\n\r\ngot it").unwrap();
    request.set_app_status(7);
    request.finish(Ok(()));
    let response = client.join().unwrap();
    assert_eq!((response.status(), response.body()), (201, &b"got it"[..]));
    assert_eq!(response.end.unwrap().app_status, 7);

    // A failure before any output: the client gets a 500 page, the app status is 1.
    let client = send(&path, "/fails", b"");
    acceptor.accept().expect("a request").finish(Err(io::Error::other("the database is down")));
    let response = client.join().unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(response.end.unwrap().app_status, 1);

    // A request dropped unfinished ends all the same, with what was written.
    let client = send(&path, "/dropped", b"");
    let mut request = acceptor.accept().expect("a request");
    request.write_stdout(b"Status: 200 OK\r\n\r\npartial").unwrap();
    drop(request);
    assert_eq!(client.join().unwrap().body(), b"partial");

    stop.stop();
    assert!(acceptor.accept().is_none(), "stopped: no more requests");
    drop(acceptor);
    assert!(!path.exists(), "the socket file is removed");
}

#[test]
fn a_request_moves_to_another_thread() {
    let path = temp_dir().join("moves.sock");
    let server = server(&path);
    let stop = server.stop_handle();
    let acceptor = server.acceptor().unwrap();
    let client = send(&path, "/moved", b"abc");
    let request = acceptor.accept().expect("a request");
    let served = std::thread::spawn(move || {
        let mut request = request;
        let mut body = String::new();
        request.stdin().read_to_string(&mut body).unwrap();
        request.write_stdout(format!("Content-Type: text/plain\r\n\r\n{body} on another thread").as_bytes()).unwrap();
        request.finish(Ok(()));
    });
    served.join().unwrap();
    assert_eq!(client.join().unwrap().body(), b"abc on another thread");
    stop.stop();
    assert!(acceptor.accept().is_none());
}

extern "C" fn on_usr2(_signal: libc::c_int) {}

/// Makes SIGUSR2 run a handler of the program's (no SA_RESTART), as libfcgi programs install.
fn handle_sigusr2() {
    // SAFETY: sigaction(2) with a zeroed struct (empty mask, no flags) and a handler that does
    // nothing.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_usr2 as *const () as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR2, &action, std::ptr::null_mut()), 0);
    }
}

#[test]
fn a_signal_interrupts_accept_interruptible_and_not_accept() {
    handle_sigusr2();
    let path = temp_dir().join("intr.sock");
    let server = server(&path);
    let stop = server.stop_handle();
    let acceptor = server.acceptor().unwrap();
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel();
        let acceptor = &acceptor;
        let waiting = scope.spawn(move || {
            // SAFETY: pthread_self takes nothing and cannot fail.
            tx.send(unsafe { libc::pthread_self() }).unwrap();
            acceptor.accept_interruptible()
        });
        let thread = rx.recv().unwrap();
        // A signal that lands before the thread waits interrupts nothing (as with libfcgi's
        // FCGI_FAIL_ACCEPT_ON_INTR): signal until the wait ends, so a loaded machine cannot
        // make the test wait for ever.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !waiting.is_finished() {
            assert!(Instant::now() < deadline, "accept_interruptible was not interrupted");
            // SAFETY: the thread is alive: it has not finished, and is joined below.
            unsafe { libc::pthread_kill(thread, libc::SIGUSR2) };
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(matches!(waiting.join().unwrap(), Accepted::Interrupted));

        // accept() waits on through a signal.
        let (tx, rx) = std::sync::mpsc::channel();
        let waiting = scope.spawn(move || {
            // SAFETY: pthread_self takes nothing and cannot fail.
            tx.send(unsafe { libc::pthread_self() }).unwrap();
            acceptor.accept().map(|mut request| {
                request.write_stdout(b"Status: 200 OK\r\n\r\nafter the signal").unwrap();
                request.finish(Ok(()));
            })
        });
        let thread = rx.recv().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        // SAFETY: the thread is alive until a request comes, which is sent after the signal.
        unsafe { libc::pthread_kill(thread, libc::SIGUSR2) };
        std::thread::sleep(std::time::Duration::from_millis(100));
        let client = send(&path, "/", b"");
        assert!(waiting.join().unwrap().is_some());
        assert_eq!(client.join().unwrap().body(), b"after the signal");
    });
    stop.stop();
    assert!(matches!(acceptor.accept_interruptible(), Accepted::Stopped));
}

#[test]
fn close_answers_what_nobody_accepted_with_503_and_waits_for_what_is_held() {
    let path = temp_dir().join("close.sock");
    let server = server(&path);
    let acceptor = server.acceptor().unwrap();
    let held_client = send(&path, "/held", b"");
    let held = acceptor.accept().expect("a request");
    // A request the kernel queued, that no thread accepts.
    let queued = send(&path, "/queued", b"");
    std::thread::sleep(std::time::Duration::from_millis(100));

    let soon = Instant::now() + Duration::from_millis(300);
    assert!(!acceptor.close(soon), "a request is still held");
    let refused = queued.join().unwrap();
    assert_eq!(refused.status(), 503, "{}", refused.head());
    assert_eq!(refused.end.unwrap().app_status, 1);
    assert!(acceptor.accept().is_none(), "closed");

    let finishing = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        let mut held = held;
        held.write_stdout(b"Status: 200 OK\r\n\r\nheld to the end").unwrap();
        held.finish(Ok(()));
    });
    assert!(acceptor.close(Instant::now() + Duration::from_secs(10)), "the held request ended");
    finishing.join().unwrap();
    assert_eq!(held_client.join().unwrap().body(), b"held to the end");
    assert_eq!(server.stats().in_flight(), 0);
}

#[test]
fn a_listening_socket_the_program_owns_stays_its_own() {
    let path = temp_dir().join("own.sock");
    let own = UnixListener::bind(&path).unwrap();
    let server = Server::new(ServerConfig {
        bind: Some(Bind::Fd(own.as_raw_fd())),
        handle_signals: false,
        ..ServerConfig::default()
    });
    let acceptor = server.acceptor().unwrap();
    let client = send(&path, "/fd", b"");
    let mut request = acceptor.accept().expect("a request");
    request.write_stdout(b"Status: 200 OK\r\n\r\nover the program's socket").unwrap();
    request.finish(Ok(()));
    assert_eq!(client.join().unwrap().body(), b"over the program's socket");
    assert!(acceptor.close(Instant::now() + Duration::from_secs(10)));
    drop(acceptor);
    assert!(path.exists(), "the socket file is the program's");
    // The program's descriptor still listens: a second server serves it.
    let again = Server::new(ServerConfig {
        bind: Some(Bind::Fd(own.as_raw_fd())),
        handle_signals: false,
        ..ServerConfig::default()
    });
    let acceptor = again.acceptor().unwrap();
    let client = send(&path, "/again", b"");
    acceptor.accept().expect("a request").finish(Ok(()));
    assert!(client.join().unwrap().end.is_some());
}
