//! Trust under broken and hostile web servers: no body byte lost, no worker held by a stalled
//! peer, every buffer bounded, every wait with a deadline. Like `hostile.rs`, these run against
//! the Rust echo and, through `FCGI_TEST_APP`, the Python, C and libfcgi-compat faces.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::{random_bytes, request_bytes, Address, App};
use fcgi_core::protocol::header::RecordType;
use fcgi_core::protocol::record::{encode_record, encode_stream, encode_stream_end, CUT_SHORT};
use fcgi_core::protocol::{BeginRequest, ProtocolStatus, Record, Role};

fn unix_path(app: &App) -> std::path::PathBuf {
    match &app.address {
        Address::Unix(path) => path.clone(),
        Address::Tcp(_) => unreachable!("the suites run on Unix sockets"),
    }
}

#[test]
fn a_handler_that_writes_before_it_reads_gets_every_body_byte() {
    // Writing 70,000 bytes first makes the runtime look for an ABORT_REQUEST and read ahead;
    // past 1 MiB it used to drop the record that crossed the line (4,128,776 of 4,194,304).
    let mut app = App::start(&[]);
    for (prefix, size) in [(70_000usize, 4 << 20), (16 << 10, 3 << 20), (200_000, 1 << 20)] {
        let body = random_bytes(size, prefix as u64);
        let mut client = app.connect();
        let uri = format!("/echo?prefix={prefix}");
        let bytes = request_bytes(1, &uri, &[("SCRIPT_NAME", b"/echo")], &body, false);
        // The body goes out from another thread while the app answers.
        let mut writer = client.writer();
        let sender = std::thread::spawn(move || writer.write_all(&bytes).is_ok());
        let response = client.response(1);
        assert!(sender.join().unwrap());
        let out = response.body();
        assert_eq!(out.len(), prefix + size, "prefix {prefix}, body {size}: bytes lost\n{}", app.stderr());
        assert!(out[..prefix].iter().all(|b| *b == b'p'));
        assert!(out[prefix..] == body[..], "the body came back changed");
        assert_eq!(response.end.unwrap().app_status, 0);
    }
    app.assert_serves();
}

#[test]
fn a_management_flood_during_a_request_stays_bounded() {
    // Unknown-type management records, 8 bytes each, in 64 KiB bursts, while a request runs and
    // the handler keeps looking for an ABORT: the replies used to pile up (1.55 GB in 10 s).
    let mut app = App::start(&[]);
    let baseline = app.settled_usage();
    let mut client = app.connect();
    let mut reader = client.writer();
    let counter = std::thread::spawn(move || {
        let mut total = 0usize;
        let mut chunk = vec![0u8; 1 << 16];
        reader.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        while let Ok(n) = reader.read(&mut chunk) {
            if n == 0 {
                break;
            }
            total += n;
        }
        total
    });
    let mut writer = client.writer();
    let mut head = BytesMut::new();
    encode_record(
        RecordType::BeginRequest,
        1,
        &BeginRequest { role: Role::Responder, keep_conn: false }.encode(),
        &mut head,
    );
    writer.write_all(&head).unwrap();
    client.params(1, &[("REQUEST_URI", b"/slow?ms=2500"), ("QUERY_STRING", b"ms=2500")], 65535);
    let mut burst = BytesMut::new();
    while burst.len() < 64 << 10 {
        encode_record(RecordType::Unknown(42), 0, b"", &mut burst);
    }
    let start = Instant::now();
    let mut peak = baseline;
    let mut sent = 0usize;
    while start.elapsed() < Duration::from_secs(2) {
        if writer.write_all(&burst).is_err() {
            break;
        }
        sent += burst.len();
        if sent % (4 << 20) < burst.len() {
            let now = app.usage();
            peak.rss_kib = peak.rss_kib.max(now.rss_kib);
        }
    }
    let mut end = BytesMut::new();
    encode_stream_end(RecordType::Stdin, 1, &mut end);
    let _ = writer.write_all(&end);
    let _ = writer.shutdown(std::net::Shutdown::Write);
    let received = counter.join().unwrap();
    eprintln!(
        "flood: sent {} MiB of management records, got {} MiB of replies; RSS {} KiB before, peak {} KiB",
        sent >> 20,
        received >> 20,
        baseline.rss_kib,
        peak.rss_kib
    );
    assert!(peak.rss_kib < baseline.rss_kib + 16 * 1024, "the app grew during the flood: {peak:?} vs {baseline:?}");
    app.assert_not_grown(baseline, Duration::from_secs(5));
}

/// Opens a connection that sends BEGIN_REQUEST and part of a PARAMS record, then goes silent.
fn stalled_head(app: &App) -> UnixStream {
    let mut stream = UnixStream::connect(unix_path(app)).unwrap();
    let mut out = BytesMut::new();
    encode_record(
        RecordType::BeginRequest,
        1,
        &BeginRequest { role: Role::Responder, keep_conn: false }.encode(),
        &mut out,
    );
    // A PARAMS header that promises 100 bytes, and 10 of them.
    out.extend_from_slice(&[1, RecordType::Params.to_byte(), 0, 1, 0, 100, 4, 0]);
    out.extend_from_slice(&[11, 3, b'R', b'E', b'Q', b'U', b'E', b'S', b'T', b'_', b'U']);
    stream.write_all(&out[..out.len() - 1]).unwrap();
    stream
}

#[test]
fn fifty_stalled_request_heads_hold_no_worker() {
    for workers in ["1", "2"] {
        let mut app = App::start(&["--workers", workers]);
        let stalled: Vec<UnixStream> = (0..50).map(|_| stalled_head(&app)).collect();
        std::thread::sleep(Duration::from_millis(200));
        let start = Instant::now();
        app.assert_serves();
        let waited = start.elapsed();
        eprintln!("{workers} worker(s), 50 stalled heads: the next request answered in {waited:?}");
        // The read timeout is 60 s: a worker held by a stalled head would be far past this.
        assert!(waited < Duration::from_secs(5), "a fresh request waited {waited:?} behind stalled heads");
        drop(stalled);
    }
}

#[test]
fn a_head_trickled_one_byte_at_a_time_is_closed_at_the_head_timeout() {
    // The read timeout is per recv: one byte every 200 ms never trips it. The head timeout is
    // for the whole head.
    let mut app = App::start(&["--head-timeout", "1", "--read-timeout", "60"]);
    let mut stream = UnixStream::connect(unix_path(&app)).unwrap();
    let head = request_bytes(1, "/hello", &[("PAD", &[b'x'; 200])], b"", false);
    let start = Instant::now();
    let mut closed_after = None;
    for byte in head.iter().take(100) {
        if stream.write_all(&[*byte]).is_err() {
            closed_after = Some(start.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let closed_after = closed_after.expect("the trickling connection was never closed");
    eprintln!("a head trickled at 5 bytes/s was closed after {closed_after:?}");
    assert!(closed_after < Duration::from_secs(4), "closed after {closed_after:?}");
    assert!(app.stderr().contains("request head did not come within"), "logged: {}", app.stderr());
    app.assert_serves();
}

#[test]
fn silent_connections_give_their_slot_back_at_the_head_timeout() {
    // A connection that never sends a byte used to hold its slot for the 90 s idle timeout, so
    // that 100 of them pushed every real request into OVERLOADED.
    let app = App::start(&["--head-timeout", "1", "--max-connections", "20"]);
    let silent: Vec<UnixStream> = (0..100).map(|_| UnixStream::connect(unix_path(&app)).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(2500));
    let mut closed = 0;
    for mut stream in silent {
        stream.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let mut byte = [0u8; 1];
        if matches!(stream.read(&mut byte), Ok(0) | Err(_)) {
            closed += 1;
        }
    }
    assert_eq!(closed, 100, "every silent connection is closed by now");
    let response = app.connect().get(1, "/hello", false);
    assert_eq!(response.end.unwrap().protocol_status, ProtocolStatus::RequestComplete);
    assert_eq!(response.body(), b"Hello, world!");
}

#[test]
fn a_stop_with_a_hundred_silent_connections_ends_within_seconds() {
    let mut app = App::start(&[]);
    let _silent: Vec<UnixStream> = (0..100).map(|_| UnixStream::connect(unix_path(&app)).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    app.signal(libc::SIGTERM);
    let status = app.wait_exit(Duration::from_secs(20)).expect("the app stops");
    eprintln!("SIGTERM with 100 silent connections: stopped in {:?}", start.elapsed());
    assert!(status.success());
    assert!(start.elapsed() < Duration::from_secs(5), "the stop took {:?}", start.elapsed());
}

#[test]
fn a_multiplexed_body_behind_an_untaken_request_does_not_deadlock() {
    // One worker, two requests on one connection: the worker takes request 1 and reads its
    // body, which comes behind request 2's. The reader used to block for ever on request 2's
    // channel, which no worker would ever read.
    for second_body in [300_000usize, 3 << 20] {
        let mut app = App::start(&["--workers", "1", "--multiplex", "2"]);
        let mut client = app.connect();
        let body_1 = random_bytes(500_000, 1);
        let body_2 = random_bytes(second_body, 2);
        let mut out = BytesMut::new();
        for (id, body) in [(1u16, &body_1), (2, &body_2)] {
            let bytes = request_bytes(id, "/echo", &[], body, true);
            // Everything but the body: BEGIN and PARAMS.
            let head_len = bytes.len() - stdin_len(body.len());
            out.extend_from_slice(&bytes[..head_len]);
        }
        for (id, body) in [(2u16, &body_2), (1, &body_1)] {
            encode_stream(RecordType::Stdin, id, body, &mut out);
            encode_stream_end(RecordType::Stdin, id, &mut out);
        }
        let mut writer = client.writer();
        let sender = std::thread::spawn(move || {
            let _ = writer.write_all(&out);
        });
        let start = Instant::now();
        let mut stdout: [Vec<u8>; 2] = Default::default();
        let mut ended = [false; 2];
        while !(ended[0] && ended[1]) {
            let record = client.record().expect("the app answers both requests");
            let index = usize::from(record.header.request_id - 1);
            match record.header.record_type {
                RecordType::Stdout => stdout[index].extend_from_slice(&record.content),
                RecordType::EndRequest => ended[index] = true,
                _ => {}
            }
        }
        let _ = sender.join();
        eprintln!("multiplexed, second body {second_body}: both ended in {:?}", start.elapsed());
        let [out_1, out_2] = stdout.map(|stdout| common::Response { stdout, ..Default::default() });
        assert!(out_1.body() == &body_1[..], "request 1's echo: {} bytes", out_1.body().len());
        if out_2.status() == 200 {
            assert!(out_2.body() == &body_2[..], "request 2's echo: {} bytes", out_2.body().len());
        } else {
            assert_eq!(out_2.status(), 503, "request 2 is refused, not cut: {}", out_2.head());
        }
        assert!(start.elapsed() < Duration::from_secs(20));
        app.assert_serves();
    }
}

/// The bytes of a body of `len` as STDIN records and their end.
fn stdin_len(len: usize) -> usize {
    let mut out = BytesMut::new();
    encode_stream(RecordType::Stdin, 1, &vec![0; len], &mut out);
    encode_stream_end(RecordType::Stdin, 1, &mut out);
    out.len()
}

#[test]
fn a_body_that_ends_before_content_length_is_an_error_the_app_sees() {
    let mut app = App::start(&[]);
    let mut client = app.connect();
    client.begin(1, Role::Responder, false);
    client.params(1, &[("REQUEST_URI", b"/echo"), ("CONTENT_LENGTH", b"100")], 65535);
    client.stdin(1, &[b'x'; 40]);
    let response = client.response(1);
    assert_ne!(response.status(), 200, "a short body is not echoed as if whole: {:?}", response.head());
    assert_eq!(response.end.unwrap().app_status, 1);
    app.assert_serves();
}

#[test]
fn a_response_cut_short_by_a_failing_handler_ends_without_end_request() {
    // After the first response bytes an END_REQUEST would make the response look whole (nginx
    // ends a chunked body properly): the connection closes instead, after a header no web
    // server accepts (nginx without fastcgi_keep_conn takes a plain close for the end).
    let mut app = App::start(&[]);
    let mut client = app.connect();
    client.request(1, "GET", "/fail?after=100000", b"", true);
    let mut wire = BytesMut::new();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        match client.stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => wire.extend_from_slice(&chunk[..n]),
        }
    }
    let mut stdout = Vec::new();
    while let Ok(Some(record)) = Record::decode(&mut wire) {
        match record.header.record_type {
            RecordType::Stdout => stdout.extend_from_slice(&record.content),
            // The Python face writes the traceback to the web server's error log.
            RecordType::Stderr => {}
            other => panic!("a {other:?} record after a failure; only output then the close may come"),
        }
    }
    assert_eq!(&wire[..], &CUT_SHORT[..], "the last bytes are the cut-short header");
    let response = common::Response { stdout, ..Default::default() };
    assert_eq!(response.body().len(), 100_000, "what the handler wrote is delivered");
    assert!(app.stderr().contains("failed"), "the failure is logged: {}", app.stderr());
    app.assert_serves();
}

#[test]
fn a_request_head_refused_on_a_multiplexed_connection_gets_its_error_page() {
    let app = App::start(&["--multiplex", "2"]);
    let mut client = app.connect();
    client.begin(1, Role::Responder, true);
    let mut out = BytesMut::new();
    encode_record(RecordType::Params, 1, &[0xff, 0xff, 0xff, 0xff, 0x01, b'a', b'b'], &mut out);
    encode_record(RecordType::Params, 1, b"", &mut out);
    client.send(&out);
    let response = client.response(1);
    assert_eq!(response.status(), 431);
    assert_eq!(client.get(2, "/hello", true).body(), b"Hello, world!", "the connection goes on");
}

#[test]
fn idle_multiplexed_connections_close_at_the_idle_timeout_and_at_a_stop() {
    let app = App::start(&["--multiplex", "2", "--idle-timeout", "0.5"]);
    let mut kept = app.connect();
    assert_eq!(kept.get(1, "/hello", true).body(), b"Hello, world!");
    assert!(kept.is_closed_by_app(), "an idle multiplexed connection is closed");
    drop(kept);
    let mut app = App::start(&["--multiplex", "2"]);
    let mut idle = Vec::new();
    for _ in 0..50 {
        let mut client = app.connect();
        assert_eq!(client.get(1, "/hello", true).body(), b"Hello, world!");
        idle.push(client);
    }
    let start = Instant::now();
    app.signal(libc::SIGTERM);
    let status = app.wait_exit(Duration::from_secs(30)).expect("the app stops");
    eprintln!("SIGTERM with 50 idle multiplexed connections: stopped in {:?}", start.elapsed());
    assert!(status.success());
    assert!(start.elapsed() < Duration::from_secs(3), "the stop took {:?}", start.elapsed());
}

#[test]
fn a_stop_waits_for_a_request_in_flight_no_longer_than_the_graceful_timeout() {
    let mut app = App::start(&["--graceful-timeout", "1"]);
    let mut slow = app.connect();
    slow.request(1, "GET", "/slow?ms=30000", b"", false);
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    app.signal(libc::SIGTERM);
    app.wait_exit(Duration::from_secs(20)).expect("the app ends");
    let took = start.elapsed();
    eprintln!("SIGTERM with a 30 s request in flight, graceful timeout 1 s: ended in {took:?}");
    assert!(took >= Duration::from_millis(900), "the stop waited for the request a while: {took:?}");
    assert!(took < Duration::from_secs(5), "the stop waited {took:?}");
}

#[test]
fn a_reload_waits_for_a_request_in_flight_no_longer_than_the_graceful_timeout() {
    // One process, which waits for its request, then re-executes (a pool reloads at once).
    let mut app = App::start_lone(&["--graceful-timeout", "1"]);
    let pid = app.connect().get(1, "/pid", false).body().to_vec();
    let mut slow = app.connect();
    slow.request(1, "GET", "/slow?ms=30000", b"", false);
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    app.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(100));
    // Sent during the reload: it waits in the listener's backlog for the new program.
    let answer = app.connect().get(1, "/pid", false);
    let took = start.elapsed();
    eprintln!("SIGHUP with a 30 s request in flight, graceful timeout 1 s: next answer after {took:?}");
    assert_eq!(answer.body(), &pid[..], "the same process serves after the reload");
    assert!(took < Duration::from_secs(10), "the next request waited {took:?}");
    app.assert_serves();
}
