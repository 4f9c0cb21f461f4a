//! A handler that takes requests whole (`Handler::takes_requests`, what the ASGI face's event
//! loop is built on): one thread takes them, the handler ends them from its own threads, more run
//! at once than threads take them, `workers` is left to the handler to bound, and serving ends
//! only once every request taken has ended; and such a handler can tell when ending a request
//! would not wait (`Request::can_finish_now`).

mod common;

use std::collections::HashSet;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use common::{request_bytes, temp_dir, Client, Response};
use fcgi_core::{Bind, Handler, Request, Server, ServerConfig, StopHandle};

/// Takes each request and hands it to a channel; at most `most` in hand at once.
struct Taker {
    requests: Mutex<Sender<Request<'static>>>,
    in_hand: Arc<(Mutex<usize>, Condvar)>,
    most: usize,
    /// The threads `take` was called on.
    takers: Arc<Mutex<HashSet<ThreadId>>>,
}

impl Handler for Taker {
    fn handle(&self, _request: &mut Request<'_>) -> io::Result<()> {
        unreachable!("a FastCGI server hands requests to take()")
    }

    fn takes_requests(&self) -> bool {
        true
    }

    fn take(&self, request: Request<'static>) {
        self.takers.lock().unwrap().insert(std::thread::current().id());
        let (count, room) = &*self.in_hand;
        *count.lock().unwrap() += 1;
        self.requests.lock().unwrap().send(request).unwrap();
        let mut count = count.lock().unwrap();
        while *count >= self.most {
            count = room.wait(count).unwrap();
        }
    }
}

/// Answers the requests taken once `batch` of them are in hand (only a server that takes requests
/// while others run lets that happen), or once the first in hand has waited `hold`.
fn answer_in_batches(
    requests: Receiver<Request<'static>>,
    in_hand: Arc<(Mutex<usize>, Condvar)>,
    batch: usize,
    hold: Duration,
) {
    let mut held = Vec::new();
    let mut since = Instant::now();
    loop {
        match requests.recv_timeout(Duration::from_millis(10)) {
            Ok(request) => {
                if held.is_empty() {
                    since = Instant::now();
                }
                held.push(request);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if held.len() < batch && (held.is_empty() || since.elapsed() < hold) {
            continue;
        }
        for mut request in held.drain(..) {
            let uri = String::from_utf8_lossy(request.param("REQUEST_URI").unwrap_or_default()).into_owned();
            request.write_stdout(format!("Status: 200 OK\r\n\r\n{uri}").as_bytes()).unwrap();
            request.finish(Ok(()));
            let (count, room) = &*in_hand;
            *count.lock().unwrap() -= 1;
            room.notify_all();
        }
    }
}

fn get(path: &Path, uri: String) -> JoinHandle<Response> {
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let mut client = Client::over(Box::new(UnixStream::connect(path).unwrap()));
        client.get(1, &uri, false)
    })
}

type Takers = Arc<Mutex<HashSet<ThreadId>>>;

/// Serves on `path` with a [`Taker`] from another thread; its stop handle, the thread (which
/// ends when serving does), and the threads that took requests.
fn serve(path: &Path, workers: usize, batch: usize, hold: Duration) -> (StopHandle, JoinHandle<()>, Takers) {
    let (sender, requests) = channel();
    let in_hand = Arc::new((Mutex::new(0), Condvar::new()));
    let takers = Takers::default();
    let taker = Taker { requests: Mutex::new(sender), in_hand: in_hand.clone(), most: workers, takers: takers.clone() };
    std::thread::spawn(move || answer_in_batches(requests, in_hand, batch, hold));
    let (stop, serving) = serve_with(path, workers, taker);
    (stop, serving, takers)
}

/// Serves on `path` with `handler` from another thread; its stop handle and the thread.
fn serve_with(path: &Path, workers: usize, handler: impl Handler + 'static) -> (StopHandle, JoinHandle<()>) {
    let (handles, handle) = channel();
    let (path, path_copy) = (path.to_path_buf(), path.to_path_buf());
    let serving = std::thread::spawn(move || {
        let server = Server::new(ServerConfig {
            bind: Some(Bind::Unix { path: path.clone(), mode: None }),
            workers: Some(workers),
            processes: Some(1),
            handle_signals: false,
            ..ServerConfig::default()
        });
        handles.send(server.stop_handle()).unwrap();
        server.serve(&handler).unwrap();
    });
    let stop = handle.recv().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(&path_copy).is_err() {
        assert!(Instant::now() < deadline, "the server did not listen");
        std::thread::sleep(Duration::from_millis(10));
    }
    (stop, serving)
}

#[test]
fn more_requests_run_at_once_than_threads_take_them() {
    let path = temp_dir().join("takes.sock");
    let (stop, serving, takers) = serve(&path, 16, 8, Duration::from_secs(30));
    // Eight answered together: one thread took all eight before any was answered.
    let clients: Vec<_> = (0..8).map(|i| get(&path, format!("/r{i}"))).collect();
    for (i, client) in clients.into_iter().enumerate() {
        let response = client.join().unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.body(), format!("/r{i}").as_bytes());
    }
    assert_eq!(takers.lock().unwrap().len(), 1, "one thread takes the requests");
    stop.stop();
    serving.join().unwrap();
}

#[test]
fn serving_ends_once_the_requests_taken_have_ended() {
    let path = temp_dir().join("takes.sock");
    let hold = Duration::from_millis(1500);
    let (stop, serving, _) = serve(&path, 16, 100, hold);
    let started = Instant::now();
    let client = get(&path, "/held".into());
    std::thread::sleep(Duration::from_millis(300));
    stop.stop();
    std::thread::sleep(Duration::from_millis(500));
    assert!(!serving.is_finished(), "serving ended with a request taken and not ended");
    let response = client.join().unwrap();
    assert_eq!((response.status(), response.body()), (200, &b"/held"[..]));
    assert!(started.elapsed() >= hold);
    serving.join().unwrap();
}

/// Answers each request on the thread that takes it, noting first whether its end would not
/// wait (`Request::can_finish_now`), as an event loop asks before it ends a request itself.
struct AsksFirst(Arc<Mutex<Vec<(String, bool)>>>);

impl Handler for AsksFirst {
    fn handle(&self, _request: &mut Request<'_>) -> io::Result<()> {
        unreachable!("a FastCGI server hands requests to take()")
    }

    fn takes_requests(&self) -> bool {
        true
    }

    fn take(&self, mut request: Request<'static>) {
        let uri = String::from_utf8_lossy(request.param("REQUEST_URI").unwrap_or_default()).into_owned();
        request.write_stdout(b"Status: 200 OK\r\n\r\nanswered").unwrap();
        let now = request.can_finish_now(false);
        self.0.lock().unwrap().push((uri, now));
        request.finish(Ok(()));
    }
}

#[test]
fn an_end_would_not_wait_once_the_body_has_ended() {
    let path = temp_dir().join("takes.sock");
    let asked = Arc::new(Mutex::new(Vec::new()));
    let (stop, serving) = serve_with(&path, 4, AsksFirst(asked.clone()));
    let connect = || Client::over(Box::new(UnixStream::connect(&path).unwrap()));
    // A whole request: its small response and END_REQUEST fit in the socket, nothing to drain.
    assert_eq!(connect().get(1, "/whole", false).body(), b"answered");
    // The body's end (the last, empty STDIN record) not sent yet: the end would drain the body
    // (linger) and so wait. Ended all the same, the response arrives whole.
    let body = vec![7; 3000];
    let wire = request_bytes(1, "/body-on-its-way", &[], &body, false);
    let mut client = connect();
    client.send(&wire[..wire.len() - 8]);
    assert_eq!(client.response(1).body(), b"answered");
    // The same body, whole: the end would not wait, though nobody read the body; nor does it
    // (no linger for a body it took for still on its way): while this client keeps its
    // connection, the next request is answered well within the linger's 2 s.
    let mut client = connect();
    client.send(&request_bytes(1, "/body-whole", &[], &body, false));
    assert_eq!(client.response(1).body(), b"answered");
    let started = Instant::now();
    assert_eq!(connect().get(1, "/next", false).body(), b"answered");
    assert!(started.elapsed() < Duration::from_millis(1500), "the end lingered: {:?}", started.elapsed());
    drop(client);
    let asked = asked.lock().unwrap().clone();
    let expected = [("/whole", true), ("/body-on-its-way", false), ("/body-whole", true), ("/next", true)];
    assert_eq!(asked, expected.map(|(uri, now)| (uri.to_owned(), now)));
    stop.stop();
    serving.join().unwrap();
}
