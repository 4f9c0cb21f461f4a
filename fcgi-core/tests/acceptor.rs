//! `Server::acceptor`: the program's own threads take the requests and serve them where they
//! are (what the C API is built on), here inside the test process.

mod common;

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::path::Path;

use common::{temp_dir, Client, Response};
use fcgi_core::{Bind, Server, ServerConfig};

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
