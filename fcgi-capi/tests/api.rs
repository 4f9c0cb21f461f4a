//! The C API driven from Rust, in process: NULL and bad arguments, the accept/finish hand-off,
//! several accepting threads, close with requests still held or queued, error codes.

use std::ffi::{c_char, c_void, CStr, CString};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use fcgi_capi::fcgi_result::*;
use fcgi_capi::*;
use fcgi_core::protocol::header::RecordType;
use fcgi_core::protocol::params::encode_pair;
use fcgi_core::protocol::record::{encode_record, encode_stream, encode_stream_end};
use fcgi_core::protocol::{BeginRequest, EndRequest, Record, Role};

/// A server handle that may cross threads (the C API allows accept from any thread).
#[derive(Clone, Copy)]
struct ServerPtr(*mut fcgi_server);
// SAFETY: fcgi_server_accept, _stats, _shutdown and _exit_code are documented safe from any
// thread; close is called once every other thread is done.
unsafe impl Send for ServerPtr {}
// SAFETY: as above.
unsafe impl Sync for ServerPtr {}

/// A request handle moving to the thread that finishes it.
struct RequestPtr(*mut fcgi_request);
// SAFETY: a request may move between threads; one thread at a time uses it.
unsafe impl Send for RequestPtr {}

fn temp_socket(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "fcgi-capi-api-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Opens a server on a fresh Unix socket, without signal handlers (tests share the process).
fn open(workers: usize, extra: impl FnOnce(*mut fcgi_options)) -> (ServerPtr, PathBuf) {
    let path = temp_socket("api.sock");
    let bind = CString::new(format!("unix:{}", path.display())).unwrap();
    let mut options = null_mut();
    let mut server = null_mut();
    // SAFETY: every pointer is valid; the options are freed once, after open copied them.
    unsafe {
        assert_eq!(fcgi_options_new(&mut options), FCGI_OK);
        assert_eq!(fcgi_options_set_bind(options, bind.as_ptr()), FCGI_OK);
        assert_eq!(fcgi_options_set_workers(options, workers), FCGI_OK);
        assert_eq!(fcgi_options_set_handle_signals(options, false), FCGI_OK);
        extra(options);
        assert_eq!(fcgi_server_open(options, &mut server), FCGI_OK);
        fcgi_options_free(options);
    }
    (ServerPtr(server), path)
}

fn accept(server: ServerPtr) -> Result<*mut fcgi_request, fcgi_result> {
    let mut request = null_mut();
    // SAFETY: a live server and a valid out-pointer.
    match unsafe { fcgi_server_accept(server.0, &mut request) } {
        FCGI_OK => Ok(request),
        other => {
            assert!(request.is_null());
            Err(other)
        }
    }
}

fn close(server: ServerPtr) {
    // SAFETY: the server is live and no other thread uses it any more.
    unsafe { fcgi_server_close(server.0) };
}

fn write(request: *mut fcgi_request, data: &[u8]) -> fcgi_result {
    // SAFETY: a live request and a valid buffer.
    unsafe { fcgi_request_write(request, data.as_ptr().cast(), data.len()) }
}

fn finish(request: *mut fcgi_request) {
    // SAFETY: a live request, finished once.
    assert_eq!(unsafe { fcgi_request_finish(request) }, FCGI_OK);
}

/// A minimal raw FastCGI client.
struct Client {
    stream: UnixStream,
    buf: BytesMut,
}

impl Client {
    fn connect(path: &Path) -> Self {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match UnixStream::connect(path) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                    return Self { stream, buf: BytesMut::new() };
                }
                Err(e) => assert!(Instant::now() < deadline, "the server does not listen: {e}"),
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn begin_and_params(&mut self, id: u16, pairs: &[(&[u8], &[u8])]) {
        let mut out = BytesMut::new();
        encode_record(
            RecordType::BeginRequest,
            id,
            &BeginRequest { role: Role::Responder, keep_conn: false }.encode(),
            &mut out,
        );
        let mut body = BytesMut::new();
        for (name, value) in pairs {
            encode_pair(name, value, &mut body);
        }
        encode_record(RecordType::Params, id, &body, &mut out);
        encode_stream_end(RecordType::Params, id, &mut out);
        self.stream.write_all(&out).unwrap();
    }

    fn stdin(&mut self, id: u16, data: &[u8], end: bool) {
        let mut out = BytesMut::new();
        encode_stream(RecordType::Stdin, id, data, &mut out);
        if end {
            encode_stream_end(RecordType::Stdin, id, &mut out);
        }
        self.stream.write_all(&out).unwrap();
    }

    fn get(&mut self, uri: &str) {
        self.begin_and_params(1, &[(b"REQUEST_URI", uri.as_bytes())]);
        self.stdin(1, b"", true);
    }

    /// Request `id`'s stdout and END_REQUEST, or `None` for the latter when the connection
    /// closed first (a response cut short).
    fn response_or_close(&mut self, id: u16) -> (Vec<u8>, Option<EndRequest>) {
        let mut stdout = Vec::new();
        loop {
            // A response cut short ends with a header no web server accepts (version 0).
            let Ok(record) = Record::decode(&mut self.buf) else { return (stdout, None) };
            if let Some(record) = record {
                assert_eq!(record.header.request_id, id);
                match record.header.record_type {
                    RecordType::Stdout => stdout.extend_from_slice(&record.content),
                    RecordType::EndRequest => return (stdout, Some(EndRequest::parse(&record.content).unwrap())),
                    other => panic!("unexpected {other:?}"),
                }
                continue;
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return (stdout, None),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// (stdout, stderr, END_REQUEST) of request `id`.
    fn response(&mut self, id: u16) -> (Vec<u8>, Vec<u8>, EndRequest) {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        loop {
            if let Some(record) = Record::decode(&mut self.buf).expect("valid records") {
                assert_eq!(record.header.request_id, id);
                match record.header.record_type {
                    RecordType::Stdout => stdout.extend_from_slice(&record.content),
                    RecordType::Stderr => stderr.extend_from_slice(&record.content),
                    RecordType::EndRequest => return (stdout, stderr, EndRequest::parse(&record.content).unwrap()),
                    other => panic!("unexpected {other:?}"),
                }
                continue;
            }
            let mut chunk = [0u8; 65536];
            let n = self.stream.read(&mut chunk).expect("the response comes");
            assert!(n > 0, "closed before END_REQUEST");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn text(ptr: *const c_char) -> String {
    // SAFETY: the library returns static NUL-terminated strings.
    unsafe { CStr::from_ptr(ptr) }.to_str().unwrap().to_owned()
}

#[test]
fn version_and_result_texts() {
    assert_eq!(text(fcgi_version()), env!("CARGO_PKG_VERSION"));
    assert_eq!(text(fcgi_result_str(ResultCode(FCGI_OK as i32))), "ok");
    assert!(text(fcgi_result_str(ResultCode(FCGI_ERR_STOPPED as i32))).contains("stopping"));
    assert!(text(fcgi_result_str(ResultCode(FCGI_ERR_CLOSED as i32))).contains("closed"));
    assert_eq!(text(fcgi_result_str(ResultCode(-1))), "unknown result code");
}

#[test]
fn null_pointers_are_error_codes_not_crashes() {
    let mut out_usize = 0usize;
    let mut out_ptr: *const c_char = null();
    let mut out_u64 = 0u64;
    // SAFETY: every non-NULL pointer is valid; the point is that NULL ones are refused.
    unsafe {
        assert_eq!(fcgi_options_new(null_mut()), FCGI_ERR_NULL);
        fcgi_options_free(null_mut());
        assert_eq!(fcgi_options_set_workers(null_mut(), 1), FCGI_ERR_NULL);
        assert_eq!(fcgi_options_set_bind(null_mut(), c"unix:/x".as_ptr()), FCGI_ERR_NULL);
        assert_eq!(fcgi_server_open(null(), null_mut()), FCGI_ERR_NULL);
        assert_eq!(fcgi_server_accept(null(), null_mut()), FCGI_ERR_NULL);
        assert_eq!(fcgi_server_shutdown(null()), FCGI_ERR_NULL);
        assert_eq!(fcgi_server_stats(null(), &mut out_u64, &mut out_u64), FCGI_ERR_NULL);
        fcgi_server_close(null_mut());
        assert_eq!(fcgi_request_param(null(), c"A".as_ptr(), &mut out_ptr, &mut out_usize), FCGI_ERR_NULL);
        assert_eq!(fcgi_request_param_count(null(), &mut out_usize), FCGI_ERR_NULL);
        assert_eq!(fcgi_request_read(null_mut(), null_mut(), 0, &mut out_usize), FCGI_ERR_NULL);
        assert_eq!(fcgi_request_write(null_mut(), null(), 0), FCGI_ERR_NULL);
        assert_eq!(fcgi_request_flush(null_mut()), FCGI_ERR_NULL);
        assert_eq!(fcgi_request_set_status(null_mut(), 1), FCGI_ERR_NULL);
        assert_eq!(fcgi_request_finish(null_mut()), FCGI_ERR_NULL);
        let mut options = null_mut();
        assert_eq!(fcgi_options_new(&mut options), FCGI_OK);
        assert_eq!(fcgi_options_set_bind(options, null()), FCGI_ERR_NULL);
        fcgi_options_free(options);
    }
}

#[test]
fn options_check_their_arguments() {
    let mut options = null_mut();
    // SAFETY: a live options handle, freed once.
    unsafe {
        assert_eq!(fcgi_options_new(&mut options), FCGI_OK);
        assert_eq!(fcgi_options_set_bind(options, c"nonsense".as_ptr()), FCGI_ERR_INVALID_ARG);
        assert_eq!(fcgi_options_set_bind(options, c"127.0.0.1:9000".as_ptr()), FCGI_OK);
        assert_eq!(fcgi_options_set_bind(options, c"".as_ptr()), FCGI_OK);
        assert_eq!(fcgi_options_set_max_conns(options, 0), FCGI_ERR_INVALID_ARG);
        assert_eq!(fcgi_options_set_max_conns(options, 10), FCGI_OK);
        assert_eq!(fcgi_options_set_params_limits(options, 0, 1, 1), FCGI_ERR_INVALID_ARG);
        assert_eq!(fcgi_options_set_params_limits(options, 4096, 1024, 16), FCGI_OK);
        assert_eq!(fcgi_options_set_roles(options, false, false, false), FCGI_ERR_INVALID_ARG);
        assert_eq!(fcgi_options_set_roles(options, true, false, true), FCGI_OK);
        assert_eq!(fcgi_options_set_multiplex(options, 0), FCGI_ERR_INVALID_ARG);
        assert_eq!(fcgi_options_set_multiplex(options, 4), FCGI_OK);
        assert_eq!(fcgi_options_set_read_timeout(options, 0), FCGI_OK);
        assert_eq!(fcgi_options_set_write_timeout(options, 500), FCGI_OK);
        assert_eq!(fcgi_options_set_idle_timeout(options, 1500), FCGI_OK);
        assert_eq!(fcgi_options_set_max_body_bytes(options, 1 << 20), FCGI_OK);
        assert_eq!(fcgi_options_set_max_requests(options, 0), FCGI_OK);
        assert_eq!(fcgi_options_set_force_cgi(options, false), FCGI_OK);
        assert_eq!(fcgi_options_set_user(options, c"no-such-user-fcgi".as_ptr(), null()), FCGI_ERR_INVALID_ARG);
        assert_eq!(fcgi_options_set_user(options, c"0".as_ptr(), c"no-such-group-fcgi".as_ptr()), FCGI_ERR_INVALID_ARG);
        assert_eq!(fcgi_options_set_user(options, null(), null()), FCGI_OK);
        assert_eq!(fcgi_options_set_socket_mode(options, 0), FCGI_ERR_INVALID_ARG);
        assert_eq!(fcgi_options_set_socket_mode(options, 0o10000), FCGI_ERR_INVALID_ARG);
        assert_eq!(fcgi_options_set_socket_owner(options, c":".as_ptr()), FCGI_ERR_INVALID_ARG);
        assert_eq!(fcgi_options_set_backlog(options, 0), FCGI_ERR_INVALID_ARG);
        assert_eq!(fcgi_options_set_pid_file(options, null()), FCGI_OK);
        fcgi_options_free(options);
    }
}

#[test]
fn the_socket_settings_and_the_pid_file_apply_from_open_to_close() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let pid_file = temp_socket("api.pid");
    let pid_path = CString::new(pid_file.to_str().unwrap()).unwrap();
    // Our own ids, which chown(2) accepts without root.
    let ours = std::fs::metadata(pid_file.parent().unwrap()).unwrap();
    let owner = CString::new(format!("{}:{}", ours.uid(), ours.gid())).unwrap();
    let (server, path) = open(1, |options| {
        // SAFETY: a live options handle and NUL-terminated strings.
        unsafe {
            assert_eq!(fcgi_options_set_socket_mode(options, 0o640), FCGI_OK);
            assert_eq!(fcgi_options_set_socket_owner(options, owner.as_ptr()), FCGI_OK);
            assert_eq!(fcgi_options_set_backlog(options, 33), FCGI_OK);
            assert_eq!(fcgi_options_set_pid_file(options, pid_path.as_ptr()), FCGI_OK);
        }
    });
    let mode = std::fs::symlink_metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640);
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), format!("{}\n", std::process::id()));
    close(server);
    assert!(!pid_file.exists(), "fcgi_server_close removes the pid file");
}

#[test]
fn one_request_through_accept_and_finish() {
    let (server, path) = open(2, |_| {});
    let client = std::thread::spawn(move || {
        let mut client = Client::connect(&path);
        client.begin_and_params(1, &[(b"REQUEST_URI", b"/x?y"), (b"WITH_NUL", b"a\0b"), (b"EMPTY", b"")]);
        client.stdin(1, b"request body", true);
        client.response(1)
    });
    let request = accept(server).unwrap();
    // SAFETY: a live request and valid out-pointers throughout.
    unsafe {
        let mut role = fcgi_role::FCGI_ROLE_FILTER;
        assert_eq!(fcgi_request_role(request, &mut role), FCGI_OK);
        assert_eq!(role, fcgi_role::FCGI_ROLE_RESPONDER);

        let (mut value, mut len) = (null(), 0usize);
        assert_eq!(fcgi_request_param(request, c"REQUEST_URI".as_ptr(), &mut value, &mut len), FCGI_OK);
        assert_eq!(std::slice::from_raw_parts(value.cast::<u8>(), len), b"/x?y");
        assert_eq!(fcgi_request_param(request, c"MISSING".as_ptr(), &mut value, &mut len), FCGI_ERR_NOT_FOUND);
        assert!(value.is_null() && len == 0);

        let mut string = null();
        assert_eq!(fcgi_request_param_str(request, c"REQUEST_URI".as_ptr(), &mut string), FCGI_OK);
        assert_eq!(CStr::from_ptr(string).to_bytes(), b"/x?y");
        let mut again = null();
        assert_eq!(fcgi_request_param_str(request, c"REQUEST_URI".as_ptr(), &mut again), FCGI_OK);
        assert_eq!(string, again, "one copy per name");
        assert_eq!(fcgi_request_param_str(request, c"WITH_NUL".as_ptr(), &mut string), FCGI_ERR_NOT_A_STRING);
        assert_eq!(fcgi_request_param_str(request, c"EMPTY".as_ptr(), &mut string), FCGI_OK);
        assert_eq!(CStr::from_ptr(string).to_bytes(), b"");

        let mut count = 0;
        assert_eq!(fcgi_request_param_count(request, &mut count), FCGI_OK);
        assert_eq!(count, 3);
        let (mut name, mut name_len, mut value_len) = (null(), 0, 0);
        assert_eq!(fcgi_request_param_at(request, 1, &mut name, &mut name_len, &mut value, &mut value_len), FCGI_OK);
        assert_eq!(std::slice::from_raw_parts(name.cast::<u8>(), name_len), b"WITH_NUL");
        assert_eq!(std::slice::from_raw_parts(value.cast::<u8>(), value_len), b"a\0b");
        assert_eq!(
            fcgi_request_param_at(request, 3, &mut name, &mut name_len, &mut value, &mut value_len),
            FCGI_ERR_NOT_FOUND
        );

        let mut body = Vec::new();
        let mut buf = [0u8; 5];
        loop {
            let mut n = 0;
            assert_eq!(fcgi_request_read(request, buf.as_mut_ptr().cast::<c_void>(), buf.len(), &mut n), FCGI_OK);
            if n == 0 {
                break;
            }
            body.extend_from_slice(&buf[..n]);
        }
        assert_eq!(body, b"request body");
        let mut n = 1;
        assert_eq!(fcgi_request_read_data(request, buf.as_mut_ptr().cast(), buf.len(), &mut n), FCGI_OK);
        assert_eq!(n, 0, "a responder has no data stream");

        let mut aborted = true;
        assert_eq!(fcgi_request_is_aborted(request, &mut aborted), FCGI_OK);
        assert!(!aborted);
        assert_eq!(write(request, b"Status: 201 Created\r\n\r\ncreated"), FCGI_OK);
        assert_eq!(fcgi_request_write_stderr(request, b"a log line\n".as_ptr().cast(), 11), FCGI_OK);
        assert_eq!(fcgi_request_flush(request), FCGI_OK);
        assert_eq!(fcgi_request_set_status(request, 7), FCGI_OK);
    }
    finish(request);
    let (stdout, stderr, end) = client.join().unwrap();
    assert_eq!(stdout, b"Status: 201 Created\r\n\r\ncreated");
    assert_eq!(stderr, b"a log line\n");
    assert_eq!(end.app_status, 7);

    // The request is counted once its worker has ended it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut connections, mut requests) = (0, 0);
    while requests < 1 && Instant::now() < deadline {
        // SAFETY: a live server and valid out-pointers.
        assert_eq!(unsafe { fcgi_server_stats(server.0, &mut connections, &mut requests) }, FCGI_OK);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!((connections, requests), (1, 1));

    // SAFETY: a live server.
    assert_eq!(unsafe { fcgi_server_shutdown(server.0) }, FCGI_OK);
    assert_eq!(accept(server), Err(FCGI_ERR_STOPPED));
    assert_eq!(accept(server), Err(FCGI_ERR_STOPPED), "and again");
    let mut code = -1;
    // SAFETY: a live server and a valid out-pointer.
    assert_eq!(unsafe { fcgi_server_exit_code(server.0, &mut code) }, FCGI_OK);
    assert_eq!(code, 0);
    close(server);
}

#[test]
fn several_threads_hold_requests_at_once() {
    const N: usize = 4;
    let (server, path) = open(N, |_| {});
    let held = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let clients: Vec<_> = (0..N)
            .map(|i| {
                let path = path.clone();
                scope.spawn(move || {
                    let mut client = Client::connect(&path);
                    client.get(&format!("/{i}"));
                    client.response(1).0
                })
            })
            .collect();
        let acceptors: Vec<_> = (0..N)
            .map(|_| {
                let held = &held;
                scope.spawn(move || {
                    let request = accept(server).unwrap();
                    held.fetch_add(1, Ordering::SeqCst);
                    // Hold the request until every thread holds one: the server lends N at once.
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while held.load(Ordering::SeqCst) < N && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    let all = held.load(Ordering::SeqCst) == N;
                    let (mut uri, mut len) = (null(), 0);
                    // SAFETY: a live request and valid out-pointers.
                    unsafe { fcgi_request_param(request, c"REQUEST_URI".as_ptr(), &mut uri, &mut len) };
                    // SAFETY: the value is valid until the request is finished.
                    let uri = unsafe { std::slice::from_raw_parts(uri.cast::<u8>(), len) }.to_vec();
                    write(request, b"\r\n");
                    write(request, &uri);
                    finish(request);
                    all
                })
            })
            .collect();
        for acceptor in acceptors {
            assert!(acceptor.join().unwrap(), "{N} requests were held at once");
        }
        let mut bodies: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
        bodies.sort();
        assert_eq!(bodies, (0..N).map(|i| format!("\r\n/{i}").into_bytes()).collect::<Vec<_>>());
    });
    // SAFETY: a live server.
    unsafe { fcgi_server_shutdown(server.0) };
    assert_eq!(accept(server), Err(FCGI_ERR_STOPPED));
    close(server);
}

/// Sets how long close waits for held requests (30 s for C programs).
fn close_deadline(server: ServerPtr, deadline: Duration) {
    // SAFETY: a live server that no other thread uses during the call.
    unsafe { (*server.0).set_close_deadline(deadline) };
}

/// Every call on `request` but finish returns FCGI_ERR_CLOSED, and touches nothing.
fn assert_tombstone(request: *mut fcgi_request) {
    let mut buf = [0u8; 8];
    let (mut n, mut count, mut len, mut name_len) = (1usize, 1usize, 1usize, 1usize);
    let (mut value, mut name) = (null(), null());
    let mut role = fcgi_role::FCGI_ROLE_FILTER;
    let mut aborted = false;
    // SAFETY: a live (tombstoned) request and valid buffers and out-pointers.
    unsafe {
        assert_eq!(fcgi_request_read(request, buf.as_mut_ptr().cast(), buf.len(), &mut n), FCGI_ERR_CLOSED);
        assert_eq!(n, 0);
        assert_eq!(fcgi_request_read_data(request, buf.as_mut_ptr().cast(), buf.len(), &mut n), FCGI_ERR_CLOSED);
        assert_eq!(write(request, b"more"), FCGI_ERR_CLOSED);
        assert_eq!(fcgi_request_write_stderr(request, b"log".as_ptr().cast(), 3), FCGI_ERR_CLOSED);
        assert_eq!(fcgi_request_flush(request), FCGI_ERR_CLOSED);
        assert_eq!(fcgi_request_set_status(request, 3), FCGI_ERR_CLOSED);
        assert_eq!(fcgi_request_is_aborted(request, &mut aborted), FCGI_ERR_CLOSED);
        assert_eq!(fcgi_request_role(request, &mut role), FCGI_ERR_CLOSED);
        assert_eq!(fcgi_request_param(request, c"REQUEST_URI".as_ptr(), &mut value, &mut len), FCGI_ERR_CLOSED);
        assert!(value.is_null() && len == 0);
        assert_eq!(fcgi_request_param_str(request, c"REQUEST_URI".as_ptr(), &mut value), FCGI_ERR_CLOSED);
        assert_eq!(fcgi_request_param_count(request, &mut count), FCGI_ERR_CLOSED);
        assert_eq!(count, 0);
        assert_eq!(fcgi_request_param_at(request, 0, &mut name, &mut name_len, &mut value, &mut len), FCGI_ERR_CLOSED);
        assert!(name.is_null() && value.is_null());
    }
}

#[test]
fn close_waits_for_a_request_finished_on_another_thread() {
    let (server, path) = open(2, |_| {});
    let client = std::thread::spawn(move || {
        let mut client = Client::connect(&path);
        client.get("/later");
        client.response(1)
    });
    let request = RequestPtr(accept(server).unwrap());
    let worker = std::thread::spawn(move || {
        let request = request;
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(write(request.0, b"\r\nafter close began"), FCGI_OK);
        finish(request.0);
    });
    let start = Instant::now();
    close(server);
    assert!(start.elapsed() >= Duration::from_millis(250), "close returned before the request was finished");
    worker.join().unwrap();
    let (stdout, _, end) = client.join().unwrap();
    assert_eq!(stdout, b"\r\nafter close began");
    assert_eq!(end.app_status, 0);
}

#[test]
fn close_ends_requests_held_past_its_deadline_and_refuses_queued_ones() {
    let (server, path) = open(2, |_| {});
    close_deadline(server, Duration::from_millis(200));
    let (sent, was_sent) = std::sync::mpsc::channel();
    let connect_and_get = |path: PathBuf| {
        let sent = sent.clone();
        std::thread::spawn(move || {
            let mut client = Client::connect(&path);
            client.get("/held");
            sent.send(()).unwrap();
            client.response_or_close(1)
        })
    };
    let first = connect_and_get(path.clone());
    let request = accept(server).unwrap();
    assert_eq!(write(request, b"Status: 200 OK\r\n\r\npartial"), FCGI_OK);
    let (mut uri, mut uri_len, mut uri_str) = (null(), 0, null());
    // SAFETY: a live request and valid out-pointers.
    unsafe {
        assert_eq!(fcgi_request_param(request, c"REQUEST_URI".as_ptr(), &mut uri, &mut uri_len), FCGI_OK);
        assert_eq!(fcgi_request_param_str(request, c"REQUEST_URI".as_ptr(), &mut uri_str), FCGI_OK);
    }
    let second = connect_and_get(path);
    was_sent.recv().unwrap();
    was_sent.recv().unwrap();
    // Let the other worker read and queue the second request (a fresh connection the core has
    // not read yet when it stops is closed unanswered, which is not what this test is about).
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    close(server);
    assert!(start.elapsed() >= Duration::from_millis(150), "close waited for the held request");
    let (stdout, end) = first.join().unwrap();
    assert_eq!(stdout, b"Status: 200 OK\r\n\r\npartial", "the held request was ended by close");
    assert!(end.is_none(), "cut short: the connection closes without END_REQUEST");
    let (stdout, end) = second.join().unwrap();
    assert!(stdout.starts_with(b"Status: 503 "), "{}", String::from_utf8_lossy(&stdout));
    assert_eq!(end.expect("a whole 503").app_status, 1);

    // The handle outlives the server: a tombstone, on this thread or another, until finish.
    assert_tombstone(request);
    let request = RequestPtr(request);
    let request = std::thread::spawn(move || {
        let request = request;
        assert_tombstone(request.0);
        request
    })
    .join()
    .unwrap();
    // SAFETY: pointers the request gave out stay valid until it is finished.
    unsafe {
        assert_eq!(std::slice::from_raw_parts(uri.cast::<u8>(), uri_len), b"/held");
        assert_eq!(CStr::from_ptr(uri_str).to_bytes(), b"/held");
    }
    // SAFETY: the live tombstone, finished once: freed, with the code saying close ended it.
    assert_eq!(unsafe { fcgi_request_finish(request.0) }, FCGI_ERR_CLOSED);
}

#[test]
fn a_request_in_a_call_when_close_gives_up_is_ended_by_that_call() {
    let (server, path) = open(1, |_| {});
    close_deadline(server, Duration::from_millis(200));
    let (closed, was_closed) = std::sync::mpsc::channel();
    let client = std::thread::spawn(move || {
        let mut client = Client::connect(&path);
        client.begin_and_params(1, &[(b"REQUEST_URI", b"/upload")]);
        client.stdin(1, b"first", false);
        // The rest of the body comes only once close has given up on the request.
        was_closed.recv().unwrap();
        client.stdin(1, b" and last", true);
        client.response(1)
    });
    let request = RequestPtr(accept(server).unwrap());
    let (reading, has_read) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let request = request;
        let mut buf = [0u8; 64];
        let mut body = Vec::new();
        // Reads until close has ended the request under the read in progress.
        let code = loop {
            let mut n = 0;
            // SAFETY: a live request and a valid buffer.
            let code = unsafe { fcgi_request_read(request.0, buf.as_mut_ptr().cast(), buf.len(), &mut n) };
            if code != FCGI_OK || n == 0 {
                break code;
            }
            body.extend_from_slice(&buf[..n]);
            let _ = reading.send(());
        };
        assert_eq!(code, FCGI_ERR_CLOSED, "got {:?}", String::from_utf8_lossy(&body));
        // The read under way when close gave up still returned its bytes; the next was refused.
        assert_eq!(body, b"first and last");
        assert_tombstone(request.0);
        // SAFETY: the live tombstone, finished once.
        assert_eq!(unsafe { fcgi_request_finish(request.0) }, FCGI_ERR_CLOSED);
    });
    // Let the worker read "first" and block for the rest.
    has_read.recv_timeout(Duration::from_secs(10)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    close(server);
    closed.send(()).unwrap();
    worker.join().unwrap();
    let (stdout, _, end) = client.join().unwrap();
    assert!(stdout.starts_with(b"Status: 500 "), "{}", String::from_utf8_lossy(&stdout));
    assert_eq!(end.app_status, 1);
}

#[test]
fn an_aborted_request_reads_and_writes_aborted() {
    let (server, path) = open(1, |_| {});
    let client = std::thread::spawn(move || {
        let mut client = Client::connect(&path);
        client.begin_and_params(1, &[(b"REQUEST_URI", b"/upload"), (b"CONTENT_LENGTH", b"100000")]);
        client.stdin(1, &[7; 1000], false);
        let mut out = BytesMut::new();
        encode_record(RecordType::AbortRequest, 1, b"", &mut out);
        client.stream.write_all(&out).unwrap();
        client.response(1)
    });
    let request = accept(server).unwrap();
    let mut buf = vec![0u8; 4096];
    let mut total = 0;
    let code = loop {
        let mut n = 0;
        // SAFETY: a live request and a valid buffer.
        let code = unsafe { fcgi_request_read(request, buf.as_mut_ptr().cast(), buf.len(), &mut n) };
        if code != FCGI_OK {
            break code;
        }
        assert!(n > 0, "the body never ends normally");
        total += n;
    };
    assert_eq!(code, FCGI_ERR_ABORTED);
    assert_eq!(total, 1000);
    let mut aborted = false;
    // SAFETY: a live request and a valid out-pointer.
    assert_eq!(unsafe { fcgi_request_is_aborted(request, &mut aborted) }, FCGI_OK);
    assert!(aborted);
    assert_eq!(write(request, b"too late"), FCGI_ERR_ABORTED);
    finish(request);
    let (stdout, _, _) = client.join().unwrap();
    assert!(stdout.is_empty());
    close(server);
}

#[test]
fn a_bind_failure_makes_accept_fail() {
    let mut options = null_mut();
    let mut server = null_mut();
    // SAFETY: valid pointers; each handle released once.
    unsafe {
        assert_eq!(fcgi_options_new(&mut options), FCGI_OK);
        let bind = c"unix:/nonexistent-fcgi-capi-dir/app.sock";
        assert_eq!(fcgi_options_set_bind(options, bind.as_ptr()), FCGI_OK);
        assert_eq!(fcgi_options_set_handle_signals(options, false), FCGI_OK);
        assert_eq!(fcgi_server_open(options, &mut server), FCGI_OK);
        fcgi_options_free(options);
    }
    let server = ServerPtr(server);
    assert_eq!(accept(server), Err(FCGI_ERR_IO));
    let mut code = 0;
    // SAFETY: a live server and a valid out-pointer.
    assert_eq!(unsafe { fcgi_server_exit_code(server.0, &mut code) }, FCGI_OK);
    assert_eq!(code, 1);
    close(server);
}

#[test]
fn a_request_finished_on_another_thread() {
    let (server, path) = open(1, |_| {});
    let client = std::thread::spawn(move || {
        let mut client = Client::connect(&path);
        client.get("/moved");
        client.response(1).0
    });
    let request = RequestPtr(accept(server).unwrap());
    std::thread::spawn(move || {
        let request = request;
        write(request.0, b"\r\nfrom another thread");
        finish(request.0);
    })
    .join()
    .unwrap();
    assert_eq!(client.join().unwrap(), b"\r\nfrom another thread");
    close(server);
}
