//! Hostile input: after each case the app must still serve a fresh connection correctly.

mod common;

use std::io::Write;

use bytes::BytesMut;
use common::{random_bytes, App};
use fcgi_core::protocol::header::RecordType;
use fcgi_core::protocol::record::encode_record;
use fcgi_core::protocol::{ProtocolStatus, Role};

#[test]
fn truncated_header_then_close() {
    let mut app = App::start(&[]);
    let mut client = app.connect();
    client.send(&[1, 1, 0]);
    drop(client);
    app.assert_serves();
}

#[test]
fn version_two_closes_the_connection() {
    let mut app = App::start(&[]);
    let mut client = app.connect();
    client.send(&[2, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert!(client.is_closed_by_app());
    assert!(client.record().is_none(), "nothing is sent back");
    app.assert_serves();
    assert!(app.stderr().contains("unsupported FastCGI version 2"), "the violation is logged: {}", app.stderr());
}

#[test]
fn a_two_gib_pair_length_is_refused_with_431() {
    let mut app = App::start(&[]);
    let mut client = app.connect();
    client.begin(1, Role::Responder, false);
    let mut out = BytesMut::new();
    encode_record(RecordType::Params, 1, &[0xff, 0xff, 0xff, 0xff, 0x01, b'a', b'b'], &mut out);
    encode_record(RecordType::Params, 1, b"", &mut out);
    encode_record(RecordType::Stdin, 1, b"", &mut out);
    client.send(&out);
    let response = client.response(1);
    assert_eq!(response.status(), 431);
    assert_eq!(response.end.unwrap().protocol_status, ProtocolStatus::RequestComplete);
    app.assert_serves();
}

#[test]
fn pair_lengths_past_the_stream_end_are_refused_with_400() {
    let mut app = App::start(&[]);
    let mut client = app.connect();
    client.begin(1, Role::Responder, false);
    let mut out = BytesMut::new();
    // Name of 100 bytes and value of 100 bytes claimed; 10 bytes follow.
    encode_record(RecordType::Params, 1, &[100, 100, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], &mut out);
    encode_record(RecordType::Params, 1, b"", &mut out);
    client.send(&out);
    assert_eq!(client.response(1).status(), 400);
    app.assert_serves();
}

#[test]
fn a_content_length_past_the_record_end_is_waited_for_then_dropped() {
    let mut app = App::start(&[]);
    let mut client = app.connect();
    // The header claims 1000 bytes of content; only 20 come before the close.
    client.send(&[1, 5, 0, 1, 0x03, 0xe8, 0, 0]);
    client.send(&[0; 20]);
    drop(client);
    app.assert_serves();
}

#[test]
fn ten_thousand_one_byte_params_records() {
    let mut app = App::start(&[]);
    let mut client = app.connect();
    let value = vec![b'v'; 9_950];
    client.begin(1, Role::Responder, false);
    client.params(1, &[("REQUEST_URI", b"/env"), ("BIG", &value)], 1);
    client.stdin(1, b"");
    let response = client.response(1);
    assert_eq!(response.status(), 200);
    let line = [&b"\nBIG="[..], &value, b"\n"].concat();
    assert!(response.body().windows(line.len()).any(|w| w == line), "BIG missing or damaged");
    app.assert_serves();
}

#[test]
fn records_for_ids_never_begun_are_ignored() {
    // FastCGI 1.0 section 3.3: records for an inactive id are ignored; the active request on the
    // same connection is served as if they were not there.
    let mut app = App::start(&[]);
    let mut client = app.connect();
    let body = random_bytes(100_000, 8);
    let mut stray = BytesMut::new();
    encode_record(RecordType::Stdin, 5, b"data", &mut stray);
    encode_record(RecordType::Params, 6, b"\x01\x01ab", &mut stray);
    client.send(&stray);
    client.begin(1, Role::Responder, false);
    client.send(&stray);
    client.params(1, &[("REQUEST_URI", b"/echo"), ("CONTENT_LENGTH", body.len().to_string().as_bytes())], 65535);
    client.send(&stray);
    client.stdin(1, &body);
    let response = client.response(1);
    assert_eq!(response.status(), 200);
    assert_eq!(response.body(), &body[..]);
    app.assert_serves();
}

#[test]
fn duplicate_begin_closes_the_connection() {
    let mut app = App::start(&[]);
    let mut client = app.connect();
    client.begin(1, Role::Responder, true);
    client.begin(1, Role::Responder, true);
    assert!(client.is_closed_by_app());
    app.assert_serves();
}

#[test]
fn random_bytes_never_crash_the_app() {
    let mut app = App::start(&[]);
    for seed in 1..=20 {
        let mut client = app.connect();
        let mut noise = random_bytes(4096, seed);
        if seed % 2 == 0 {
            noise[0] = 1; // a valid version byte gets the bytes further into the parser
        }
        let _ = client.stream.write_all(&noise);
        let _ = client.stream.shutdown(std::net::Shutdown::Write);
        assert!(client.is_closed_by_app());
    }
    app.assert_serves();
}

#[test]
fn a_request_dripped_one_byte_at_a_time() {
    let mut app = App::start(&[]);
    let mut wire_client = app.connect();
    // Build the request bytes with a recording client, then drip them.
    let mut wire = BytesMut::new();
    encode_record(RecordType::BeginRequest, 1, &[0, 1, 0, 0, 0, 0, 0, 0], &mut wire);
    let mut pairs = BytesMut::new();
    fcgi_core::protocol::params::encode_pair(b"REQUEST_URI", b"/echo", &mut pairs);
    fcgi_core::protocol::params::encode_pair(b"CONTENT_LENGTH", b"11", &mut pairs);
    encode_record(RecordType::Params, 1, &pairs, &mut wire);
    encode_record(RecordType::Params, 1, b"", &mut wire);
    encode_record(RecordType::Stdin, 1, b"drip drip!!", &mut wire);
    encode_record(RecordType::Stdin, 1, b"", &mut wire);
    for byte in wire.iter() {
        wire_client.send(&[*byte]);
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    assert_eq!(wire_client.response(1).body(), b"drip drip!!");
    app.assert_serves();
}

#[test]
fn a_vanished_web_server_mid_response_is_survived() {
    let mut app = App::start(&[]);
    for _ in 0..5 {
        let mut client = app.connect();
        client.request(1, "GET", "/big?n=50000000", b"", false);
        let _ = client.record();
        drop(client);
    }
    app.assert_serves();
}

#[test]
fn a_body_over_max_body_bytes_gets_413() {
    let mut app = App::start(&["--max-body-bytes", "1000"]);
    let at_limit = random_bytes(1000, 3);
    let response = app.connect().request_response(1, "POST", "/echo", &at_limit);
    assert!(response.status() == 200 && response.body() == at_limit, "a body at the limit is served");
    let response = app.connect().request_response(1, "POST", "/echo", &random_bytes(1001, 3));
    assert_eq!(response.status(), 413, "a declared length over the limit");
    // A body that lies about its length is stopped as it passes the limit.
    let mut client = app.connect();
    client.begin(1, Role::Responder, false);
    client.params(1, &[("REQUEST_URI", b"/echo")], 65535);
    client.stdin(1, &random_bytes(5000, 4));
    assert_eq!(client.response(1).status(), 413);
    app.assert_serves();
}

#[test]
fn a_web_server_that_stalls_mid_request_is_timed_out() {
    // Mid-head the head timeout applies (the connection waits in the poller meanwhile);
    // mid-body the read timeout, on the worker that serves it.
    let mut app = App::start(&["--read-timeout", "0.3", "--head-timeout", "0.3"]);
    let mut client = app.connect();
    client.begin(1, Role::Responder, false);
    client.send(&[1, 4, 0, 1, 0, 100, 0, 0, 5]); // a PARAMS record cut short
    assert!(client.is_closed_by_app(), "the connection stalled mid-head is closed");
    let mut client = app.connect();
    client.begin(1, Role::Responder, false);
    client.params(1, &[("REQUEST_URI", b"/echo"), ("CONTENT_LENGTH", b"1000")], 65535);
    client.send(&[1, 5, 0, 1, 1, 0, 0, 0, 5]); // a STDIN record cut short
                                               // The handler's read fails; the request ends (a 500 page where the app did not catch it).
    let response = client.response(1);
    assert!(response.status() == 500 || response.stdout.is_empty(), "{}", response.head());
    app.assert_serves();
}

#[test]
fn idle_kept_connections_are_closed_after_the_idle_timeout() {
    let mut app = App::start(&["--idle-timeout", "0.3"]);
    let mut kept = app.connect();
    assert_eq!(kept.get(1, "/hello", true).body(), b"Hello, world!");
    let mut silent = app.connect();
    assert!(kept.is_closed_by_app(), "an idle kept connection is closed");
    assert!(silent.is_closed_by_app(), "a connection that never spoke is closed");
    app.assert_serves();
}

#[test]
fn connections_over_the_limit_get_overloaded() {
    // One process: the limit is each process's, and the Python face's default is one per core
    // (which of them accepts a connection depends on the moment).
    let mut app = App::start_lone(&["--max-connections", "2", "--workers", "2"]);
    // Wait until the readiness probe's connection is gone, then hold the two allowed ones.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut held: Vec<_> = (0..2).map(|_| app.connect()).collect();
    for client in &mut held {
        assert_eq!(client.get(1, "/hello", true).body(), b"Hello, world!");
    }
    let mut over = app.connect();
    over.request(1, "GET", "/hello", b"", false);
    let response = over.response(1);
    assert_eq!(response.end.unwrap().protocol_status, ProtocolStatus::Overloaded);
    assert!(response.stdout.is_empty());
    assert!(app.stderr().contains("refusing with OVERLOADED"), "{}", app.stderr());
    drop(held);
    std::thread::sleep(std::time::Duration::from_millis(200));
    app.assert_serves();
}

// Reliability: each case below runs once to warm the app up, then for real, and ends with a
// good request and a check that the app did not grow (VmRSS within 8 MiB, open descriptors
// within a few, read from /proc).

use std::time::{Duration, Instant};

use common::{app_is_python, raise_fd_limit, request_bytes, Client, Response, Rng};

/// How long the app may take to close what a case left behind.
const SETTLE: Duration = Duration::from_secs(5);

#[test]
fn a_thousand_connections_dropped_at_random_points_of_a_request() {
    let mut app = App::start(&[]);
    let body = random_bytes(3000, 11);
    let pairs: [(&str, &[u8]); 2] = [("SERVER_PROTOCOL", b"HTTP/1.1"), ("HTTP_HOST", b"localhost")];
    let wires = [request_bytes(1, "/echo", &pairs, &body, false), request_bytes(1, "/echo", &pairs, &body, true)];
    let mut rng = Rng::new(0x5eed);
    let mut drop_at_random = |app: &App, count: usize| {
        for i in 0..count {
            let wire = &wires[i % 2];
            let cut = rng.below(wire.len());
            let mut client = app.connect();
            client.send(&wire[..cut]);
            drop(client);
        }
    };
    drop_at_random(&app, 100);
    let baseline = app.settled_usage();
    drop_at_random(&app, 1000);
    app.assert_not_grown(baseline, SETTLE);
    // The whole request still goes through on a fresh connection.
    let mut client = app.connect();
    client.send(&wires[0]);
    assert_eq!(client.response(1).body(), body);
}

/// The size of the /big response aborted mid-way.
const ABORTED_BIG: usize = 100_000_000;

/// The points of a request at which the web server aborts it.
#[derive(Debug, Clone, Copy)]
enum Stage {
    AfterBegin,
    MidParams,
    AfterParams,
    MidStdin,
    AfterStdin,
    MidResponse,
}

const STAGES: [Stage; 6] =
    [Stage::AfterBegin, Stage::MidParams, Stage::AfterParams, Stage::MidStdin, Stage::AfterStdin, Stage::MidResponse];

/// Aborts request 1 of a kept connection at `stage`: the app ends it (END_REQUEST) in good
/// time, and the connection serves the next request. After STDIN the handler is in /slow,
/// which the Rust and C echo leave at once and the Python one (a WSGI app cannot poll) when its
/// second is up; mid-response it is in /big, which every app finishes (see the ignored test).
fn abort_at(app: &App, stage: Stage) -> Response {
    // /echo waits for its 100,000-byte body; /slow works a second; /big writes 100 MB.
    let (uri, length) = match stage {
        Stage::AfterStdin => ("/slow?ms=1000".to_owned(), "0"),
        Stage::MidResponse => (format!("/big?n={ABORTED_BIG}"), "0"),
        _ => ("/echo".to_owned(), "100000"),
    };
    let query = uri.split_once('?').map_or("", |(_, query)| query);
    let mut block = BytesMut::new();
    for (name, value) in [("REQUEST_URI", uri.as_str()), ("QUERY_STRING", query), ("CONTENT_LENGTH", length)] {
        fcgi_core::protocol::params::encode_pair(name.as_bytes(), value.as_bytes(), &mut block);
    }
    let mut out = BytesMut::new();
    if !matches!(stage, Stage::AfterBegin) {
        encode_record(RecordType::Params, 1, &block, &mut out);
    }
    if !matches!(stage, Stage::AfterBegin | Stage::MidParams) {
        encode_record(RecordType::Params, 1, b"", &mut out);
    }
    match stage {
        Stage::MidStdin => encode_record(RecordType::Stdin, 1, &[7; 5000], &mut out),
        Stage::AfterStdin | Stage::MidResponse => encode_record(RecordType::Stdin, 1, b"", &mut out),
        _ => {}
    }
    let mut client = app.connect();
    client.begin(1, Role::Responder, true);
    client.send(&out);
    match stage {
        Stage::AfterStdin => std::thread::sleep(Duration::from_millis(100)),
        Stage::MidResponse => {
            let first = client.record().expect("the response starts");
            assert_eq!(first.header.record_type, RecordType::Stdout);
        }
        _ => {}
    }
    let start = Instant::now();
    client.abort(1);
    let response = client.response(1);
    let elapsed = start.elapsed();
    let end = response.end.expect("END_REQUEST");
    assert_eq!(end.protocol_status, ProtocolStatus::RequestComplete, "{stage:?}");
    assert!(elapsed < Duration::from_secs(5), "{stage:?}: END_REQUEST came {elapsed:?} after the abort");
    assert_eq!(client.get(2, "/hello", false).body(), b"Hello, world!", "{stage:?}: the kept connection serves on");
    response
}

#[test]
fn abort_request_at_every_stage() {
    let mut app = App::start(&[]);
    for stage in STAGES {
        abort_at(&app, stage);
    }
    let baseline = app.settled_usage();
    for _ in 0..3 {
        for stage in STAGES {
            abort_at(&app, stage);
        }
    }
    app.assert_not_grown(baseline, SETTLE);
}

/// The web server aborts a 100 MB response after its first record: the app should stop
/// sending, not push the rest down the connection before it ends the request.
#[test]
fn an_abort_during_a_large_response_stops_it() {
    let app = App::start(&[]);
    let response = abort_at(&app, Stage::MidResponse);
    let sent = response.stdout.len();
    assert!(sent < ABORTED_BIG / 2, "the app sent {sent} of {ABORTED_BIG} bytes after the abort");
}

/// Asks for /big?n=100000000 and reads nothing.
fn never_reading_peer(app: &App) -> Client {
    let mut client = app.connect();
    client.request(1, "GET", "/big?n=100000000", b"", false);
    client
}

/// A connection whose answer must come within `within`.
fn impatient(app: &App, within: Duration) -> Client {
    let client = app.connect();
    client.stream.set_read_timeout(Some(within)).unwrap();
    client
}

/// A web server that asks for 100 MB and never reads, nor closes: with a short write timeout
/// the app's only worker gives up on it and serves the next request within a few seconds.
#[test]
fn a_web_server_that_never_reads_is_timed_out() {
    let mut app = App::start(&["--workers", "1", "--write-timeout", "0.5"]);
    let _warm = never_reading_peer(&app);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(impatient(&app, Duration::from_secs(5)).get(1, "/hello", false).body(), b"Hello, world!");
    let baseline = app.settled_usage();
    let stuck: Vec<Client> = (0..3).map(|_| never_reading_peer(&app)).collect();
    let start = Instant::now();
    let response = impatient(&app, Duration::from_secs(10)).get(1, "/hello", false);
    assert_eq!(response.body(), b"Hello, world!");
    assert!(start.elapsed() < Duration::from_secs(5), "served after {:?}", start.elapsed());
    drop(stuck);
    app.assert_not_grown(baseline, SETTLE);
}

/// The same web server, which stops reading and goes away after a second: the app's only
/// worker is blocked in a write meanwhile, gets EPIPE (or a reset) when it leaves, and serves
/// the request that waited.
#[test]
fn a_web_server_that_stops_reading_then_leaves_frees_the_worker() {
    let mut app = App::start(&["--workers", "1"]);
    let once = |app: &App| {
        let stuck = never_reading_peer(app);
        std::thread::sleep(Duration::from_millis(300));
        let mut waiting = impatient(app, Duration::from_secs(10));
        waiting.request(1, "GET", "/hello", b"", false);
        std::thread::sleep(Duration::from_millis(700));
        let start = Instant::now();
        drop(stuck);
        assert_eq!(waiting.response(1).body(), b"Hello, world!");
        start.elapsed()
    };
    once(&app);
    let baseline = app.settled_usage();
    for _ in 0..3 {
        let waited = once(&app);
        assert!(waited < Duration::from_secs(3), "the waiting request was served {waited:?} after the peer left");
    }
    app.assert_not_grown(baseline, SETTLE);
}

/// EPIPE mid-body, again and again (a_vanished_web_server_mid_response_is_survived, with the
/// growth check).
#[test]
fn web_servers_vanishing_mid_body_leave_nothing_behind() {
    let mut app = App::start(&[]);
    let vanish = |app: &App, times: usize| {
        for _ in 0..times {
            let mut client = app.connect();
            client.request(1, "GET", "/big?n=50000000", b"", false);
            let first = client.record().expect("the response starts");
            assert_eq!(first.header.record_type, RecordType::Stdout);
            drop(client);
        }
    };
    vanish(&app, 5);
    let baseline = app.settled_usage();
    vanish(&app, 30);
    app.assert_not_grown(baseline, SETTLE);
}

/// A connection to the app's Unix socket that does not block when the backlog is full
/// (`None` then: try again later).
fn connect_nonblocking(app: &App) -> Option<std::os::unix::net::UnixStream> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    let common::Address::Unix(path) = &app.address else { panic!("the app listens on a Unix socket") };
    // SAFETY: a zeroed sockaddr_un is valid; the path fits (checked), socket and connect get
    // valid pointers and lengths, and the new descriptor is owned by the UnixStream or closed.
    unsafe {
        let mut addr: libc::sockaddr_un = std::mem::zeroed();
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let bytes = path.as_os_str().as_bytes();
        assert!(bytes.len() < addr.sun_path.len());
        for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
            *dst = *src as libc::c_char;
        }
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        if libc::connect(fd, (&addr as *const libc::sockaddr_un).cast(), len) == 0 {
            return Some(std::os::unix::net::UnixStream::from_raw_fd(fd));
        }
        let error = std::io::Error::last_os_error();
        libc::close(fd);
        assert_eq!(error.kind(), std::io::ErrorKind::WouldBlock, "connect: {error}");
        None
    }
}

/// Opens up to `count` connections that say nothing, within `within`; returns them.
fn idle_connections(app: &App, count: usize, within: Duration) -> Vec<std::os::unix::net::UnixStream> {
    let deadline = Instant::now() + within;
    let mut open = Vec::with_capacity(count);
    while open.len() < count && Instant::now() < deadline {
        match connect_nonblocking(app) {
            Some(stream) => open.push(stream),
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    open
}

const CONNECTION_LIMIT: usize = 1000;
/// What the app may hold beyond its connection limit: the listener, workers' spares, logs.
const LIMIT_SLACK: usize = 64;

/// `count` silent connections (fewer if this process's file limit is lower) against
/// `--max-connections 1000`; returns how many were tried and how many connected, after checking
/// that the app's descriptors stay bounded and come back once they close.
fn idle_flood(count: usize, connect_within: Duration, answer_within: Option<Duration>) -> (usize, usize) {
    let limit = raise_fd_limit(count as u64 + 1024);
    let count = count.min(limit.saturating_sub(512) as usize);
    let mut app = App::start(&["--max-connections", &CONNECTION_LIMIT.to_string()]);
    drop(idle_connections(&app, 50, Duration::from_secs(2)));
    let baseline = app.settled_usage();
    let flood = idle_connections(&app, count, connect_within);
    let opened = flood.len();
    eprintln!("{opened} of {count} idle connections opened in {connect_within:?}");
    if let Some(within) = answer_within {
        // Over the limit, a request on a new connection is refused at once, not left waiting.
        eprintln!("a request on a new connection: its answer must come within {within:?}");
        let start = Instant::now();
        let response = impatient(&app, within).get(1, "/hello", false);
        let status = response.end.expect("END_REQUEST").protocol_status;
        assert!(
            matches!(status, ProtocolStatus::Overloaded | ProtocolStatus::RequestComplete),
            "{status:?} after {:?}",
            start.elapsed()
        );
    }
    let during = app.usage();
    eprintln!("{opened} idle connections open: the app holds {during:?}");
    assert!(
        during.fds <= CONNECTION_LIMIT + LIMIT_SLACK,
        "{opened} idle connections: the app holds {} descriptors",
        during.fds
    );
    drop(flood);
    app.assert_not_grown(baseline, Duration::from_secs(10));
    (count, opened)
}

/// 1,500 silent connections (what the limit and the listen backlog hold without waiting): the
/// app holds at most about its limit in descriptors and gives them all back when they close.
#[test]
fn silent_connections_past_the_limit_are_given_back() {
    let (tried, opened) = idle_flood(1500, Duration::from_secs(10), None);
    assert_eq!(opened, tried);
}

/// 10,000 silent connections (as many as the file limit allows): they all connect in a few
/// seconds, a request on a new connection is answered at once meanwhile (OVERLOADED), and the
/// app gives every descriptor back when they close.
#[test]
fn ten_thousand_idle_connections_against_the_connection_limit() {
    let (tried, opened) = idle_flood(10_000, Duration::from_secs(10), Some(Duration::from_secs(5)));
    assert_eq!(opened, tried, "connections that went through in 10 s");
}

#[test]
fn params_with_nul_bytes_non_utf8_bytes_and_empty_names_are_served() {
    let mut app = App::start(&[]);
    let pairs: [(&[u8], &[u8]); 6] = [
        (b"NUL_VALUE", b"a\0b\0"),
        (b"NUL\0NAME", b"nul in the name"),
        (b"BYTES", &[0xff, 0xfe, 0x80, b'x', 0xc3, 0x28, 0xed, 0xa0, 0x80]),
        (&[0xc3, 0xa9, 0xff], b"a name that is not UTF-8"),
        (b"", b"an empty name"),
        (b"EMPTY_VALUE", b""),
    ];
    let mut block = BytesMut::new();
    for (name, value) in [(&b"REQUEST_URI"[..], &b"/env"[..]), (b"QUERY_STRING", b"")].iter().chain(&pairs) {
        fcgi_core::protocol::params::encode_pair(name, value, &mut block);
    }
    let once = |app: &App| {
        let mut client = app.connect();
        client.begin(1, Role::Responder, false);
        let mut out = BytesMut::new();
        encode_record(RecordType::Params, 1, &block, &mut out);
        encode_record(RecordType::Params, 1, b"", &mut out);
        encode_record(RecordType::Stdin, 1, b"", &mut out);
        client.send(&out);
        let response = client.response(1);
        assert_eq!(response.status(), 200, "{}", String::from_utf8_lossy(&response.stdout));
        // The Python face decodes each name and value as latin-1 and /env encodes them back:
        // byte-exact as well.
        let body = response.body();
        for (name, value) in pairs {
            let line = [b"\n", name, b"=", value, b"\n"].concat();
            let found = body.windows(line.len()).any(|w| w == line);
            assert!(found, "{:?} missing from /env ({}):\n{:?}", &line[1..], app_kind(), String::from_utf8_lossy(body));
        }
    };
    once(&app);
    let baseline = app.settled_usage();
    for _ in 0..50 {
        once(&app);
    }
    app.assert_not_grown(baseline, SETTLE);
}

fn app_kind() -> &'static str {
    if app_is_python() {
        "the Python face, latin-1 both ways"
    } else {
        "raw bytes"
    }
}

/// GET_VALUES is answered up to 4 KiB and 64 names; past either, the connection is closed.
#[test]
fn a_get_values_past_its_limits_closes_the_connection() {
    let mut app = App::start(&[]);
    let query = |names: usize, name_len: usize| {
        let mut body = BytesMut::new();
        for i in 0..names {
            let name = format!("{i:0name_len$}");
            fcgi_core::protocol::params::encode_pair(name.as_bytes(), b"", &mut body);
        }
        let mut out = BytesMut::new();
        encode_record(RecordType::GetValues, 0, &body, &mut out);
        out
    };
    for (names, name_len) in [(64, 10), (4, 1000)] {
        let mut client = app.connect();
        client.send(&query(names, name_len));
        let answer = client.record().expect("answered");
        assert_eq!(answer.header.record_type, RecordType::GetValuesResult, "{names} names of {name_len} bytes");
    }
    let baseline = app.settled_usage();
    for (names, name_len) in [(65, 10), (5, 1000)] {
        let mut client = app.connect();
        client.send(&query(names, name_len));
        assert!(client.is_closed_by_app(), "{names} names of {name_len} bytes");
    }
    app.assert_not_grown(baseline, SETTLE);
}
