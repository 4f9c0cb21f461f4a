//! Every FastCGI 1.0 case, over a real Unix socket, against the app under test.

mod common;

use std::io::Write;

use bytes::BytesMut;
use common::{random_bytes, App};
use fcgi_core::protocol::header::{RecordType, MAX_CONTENT_LEN};
use fcgi_core::protocol::params::encode_pair;
use fcgi_core::protocol::record::encode_record;
use fcgi_core::protocol::{Params, ParamsLimits, ProtocolStatus, Role};

#[test]
fn get_values_reports_the_true_values() {
    let app = App::start(&["--workers", "3"]);
    let mut client = app.connect();
    let mut query = BytesMut::new();
    for name in ["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS", "UNKNOWN_VARIABLE"] {
        encode_pair(name.as_bytes(), b"", &mut query);
    }
    let mut out = BytesMut::new();
    encode_record(RecordType::GetValues, 0, &query, &mut out);
    client.send(&out);
    let record = client.record().unwrap();
    assert_eq!(record.header.record_type, RecordType::GetValuesResult);
    assert_eq!(record.header.request_id, 0);
    let values = Params::decode(&record.content, ParamsLimits::default()).unwrap();
    assert_eq!(values.len(), 3, "only known names are answered");
    assert_eq!(values.get(b"FCGI_MAX_CONNS"), Some(&b"1024"[..]));
    assert_eq!(values.get(b"FCGI_MAX_REQS"), Some(&b"3"[..]));
    assert_eq!(values.get(b"FCGI_MPXS_CONNS"), Some(&b"0"[..]));
    // The connection still serves a request afterwards.
    assert_eq!(client.get(1, "/hello", false).body(), b"Hello, world!");
}

#[test]
fn get_values_with_multiplexing() {
    let app = App::start(&["--workers", "2", "--multiplex", "4"]);
    let mut client = app.connect();
    let mut query = BytesMut::new();
    encode_pair(b"FCGI_MPXS_CONNS", b"", &mut query);
    encode_pair(b"FCGI_MAX_REQS", b"", &mut query);
    let mut out = BytesMut::new();
    encode_record(RecordType::GetValues, 0, &query, &mut out);
    client.send(&out);
    let values = Params::decode(&client.record().unwrap().content, ParamsLimits::default()).unwrap();
    assert_eq!(values.get(b"FCGI_MPXS_CONNS"), Some(&b"1"[..]));
    // Per connection, as HAProxy reads it: more would be refused OVERLOADED.
    assert_eq!(values.get(b"FCGI_MAX_REQS"), Some(&b"4"[..]));
}

#[test]
fn unknown_management_type_gets_unknown_type() {
    let app = App::start(&[]);
    let mut client = app.connect();
    let mut out = BytesMut::new();
    encode_record(RecordType::Unknown(200), 0, b"whatever", &mut out);
    client.send(&out);
    let record = client.record().unwrap();
    assert_eq!(record.header.record_type, RecordType::UnknownType);
    assert_eq!(&record.content[..], &[200, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(client.get(1, "/hello", false).body(), b"Hello, world!");
}

#[test]
fn unknown_role_gets_end_request_unknown_role() {
    let app = App::start(&[]);
    let mut client = app.connect();
    client.begin(1, Role::Unknown(99), false);
    let response = client.response(1);
    assert_eq!(response.end.unwrap().protocol_status, ProtocolStatus::UnknownRole);
    assert!(response.stdout.is_empty());
    // Not a connection error: the same connection serves the next request.
    assert_eq!(client.get(1, "/hello", false).body(), b"Hello, world!");
}

#[test]
fn padding_is_skipped_on_read_and_written_on_every_record() {
    let app = App::start(&[]);
    let mut client = app.connect();
    // Every record we send carries 255 bytes of junk padding.
    let mut pairs = BytesMut::new();
    encode_pair(b"REQUEST_URI", b"/echo", &mut pairs);
    encode_pair(b"CONTENT_LENGTH", b"5", &mut pairs);
    let mut wire = Vec::new();
    for (kind, content) in
        [(1u8, &[0u8, 1, 0, 0, 0, 0, 0, 0][..]), (4, &pairs[..]), (4, &[][..]), (5, &b"hello"[..]), (5, &[][..])]
    {
        wire.extend_from_slice(&[1, kind, 0, 1, 0, content.len() as u8, 255, 0]);
        wire.extend_from_slice(content);
        wire.extend_from_slice(&[0xaa; 255]);
    }
    client.send(&wire);
    // `record()` asserts that each received record is padded to a multiple of 8.
    let response = client.response(1);
    assert_eq!(response.body(), b"hello");
    assert!(response.headers.iter().all(|h| (h.content_len as usize + h.padding_len as usize) % 8 == 0));
}

#[test]
fn pairs_straddle_records_and_long_values_use_four_byte_lengths() {
    let app = App::start(&[]);
    let mut client = app.connect();
    let long_value = vec![b'x'; 70_000];
    client.begin(1, Role::Responder, false);
    client.params(1, &[("REQUEST_URI", b"/env"), ("LONG_VALUE", &long_value), ("AFTER", b"yes")], 7);
    client.stdin(1, b"");
    let response = client.response(1);
    let body = response.body();
    let mut expected = b"LONG_VALUE=".to_vec();
    expected.extend_from_slice(&long_value);
    expected.push(b'\n');
    assert!(body.windows(expected.len()).any(|w| w == expected), "LONG_VALUE missing or damaged");
    assert!(body.windows(11).any(|w| w == b"\nAFTER=yes\n"), "the pair after the long one is intact");
}

#[test]
fn one_mib_of_stdin_in_full_records_is_echoed() {
    let app = App::start(&[]);
    let mut client = app.connect();
    let body = random_bytes(1 << 20, 7);
    client.begin(1, Role::Responder, false);
    let length = body.len().to_string();
    client.params(1, &[("REQUEST_URI", b"/echo"), ("CONTENT_LENGTH", length.as_bytes())], 65535);
    let mut out = BytesMut::new();
    for chunk in body.chunks(MAX_CONTENT_LEN) {
        encode_record(RecordType::Stdin, 1, chunk, &mut out);
    }
    encode_record(RecordType::Stdin, 1, b"", &mut out);
    client.send(&out);
    let response = client.response(1);
    assert!(response.body() == body, "echo differs: {} bytes back", response.body().len());
}

#[test]
fn one_hundred_requests_on_one_kept_connection() {
    let app = App::start(&[]);
    let mut client = app.connect();
    let before = client.get(1, "/stats", true).body().to_vec();
    for i in 0..100 {
        let body = random_bytes(i * 37, i as u64);
        client.request(1, "POST", "/echo", &body, true);
        let response = client.response(1);
        assert_eq!(response.end.unwrap().protocol_status, ProtocolStatus::RequestComplete);
        assert!(response.body() == body, "request {i}");
    }
    let after = client.get(1, "/stats", true).body().to_vec();
    let connections = |stats: &[u8]| String::from_utf8_lossy(stats).split(' ').next().unwrap().to_owned();
    assert_eq!(connections(&before), connections(&after), "no new connection was accepted");
    assert!(String::from_utf8_lossy(&after).contains(" requests=101"), "{}", String::from_utf8_lossy(&after));
}

#[test]
fn without_multiplexing_a_second_request_gets_cant_mpx_conn() {
    let app = App::start(&[]);
    let mut client = app.connect();
    client.begin(1, Role::Responder, false);
    client.begin(2, Role::Responder, false);
    let refused = client.record().unwrap();
    assert_eq!(refused.header.request_id, 2);
    assert_eq!(refused.header.record_type, RecordType::EndRequest);
    let end = fcgi_core::protocol::EndRequest::parse(&refused.content).unwrap();
    assert_eq!(end.protocol_status, ProtocolStatus::CantMpxConn);
    client.params(1, &[("REQUEST_URI", b"/hello")], 65535);
    client.stdin(1, b"");
    assert_eq!(client.response(1).body(), b"Hello, world!");
}

#[test]
fn two_interleaved_multiplexed_requests() {
    let app = App::start(&["--multiplex", "4"]);
    let mut client = app.connect();
    let body_a = random_bytes(300_000, 1);
    let body_b = random_bytes(200_000, 2);
    client.begin(1, Role::Responder, true);
    client.begin(2, Role::Responder, true);
    let len_a = body_a.len().to_string();
    let len_b = body_b.len().to_string();
    client.params(2, &[("REQUEST_URI", b"/echo"), ("CONTENT_LENGTH", len_b.as_bytes())], 5);
    client.params(1, &[("REQUEST_URI", b"/echo"), ("CONTENT_LENGTH", len_a.as_bytes())], 3);
    let mut out = BytesMut::new();
    let (mut a, mut b) = (body_a.chunks(10_000), body_b.chunks(10_000));
    loop {
        let (x, y) = (a.next(), b.next());
        if x.is_none() && y.is_none() {
            break;
        }
        if let Some(x) = x {
            encode_record(RecordType::Stdin, 1, x, &mut out);
        }
        if let Some(y) = y {
            encode_record(RecordType::Stdin, 2, y, &mut out);
        }
    }
    encode_record(RecordType::Stdin, 2, b"", &mut out);
    encode_record(RecordType::Stdin, 1, b"", &mut out);
    client.send(&out);
    let mut stdout = [Vec::new(), Vec::new()];
    let mut ended = 0;
    while ended < 2 {
        let record = client.record().expect("both requests end");
        let index = usize::from(record.header.request_id) - 1;
        match record.header.record_type {
            RecordType::Stdout => stdout[index].extend_from_slice(&record.content),
            RecordType::EndRequest => ended += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    for (out, body) in stdout.iter().zip([&body_a, &body_b]) {
        let start = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert!(out[start..] == body[..], "multiplexed echo differs");
    }
    // The kept connection goes on serving.
    assert_eq!(client.get(3, "/hello", true).body(), b"Hello, world!");
}

#[test]
fn multiplexing_beyond_the_limit_is_overloaded() {
    let app = App::start(&["--multiplex", "2"]);
    let mut client = app.connect();
    for id in 1..=3 {
        client.begin(id, Role::Responder, true);
    }
    let refused = client.record().unwrap();
    assert_eq!(refused.header.request_id, 3);
    let end = fcgi_core::protocol::EndRequest::parse(&refused.content).unwrap();
    assert_eq!(end.protocol_status, ProtocolStatus::Overloaded);
}

#[test]
fn abort_mid_stdin_ends_the_request_and_keeps_the_connection() {
    let app = App::start(&[]);
    let mut client = app.connect();
    client.begin(1, Role::Responder, true);
    client.params(1, &[("REQUEST_URI", b"/echo"), ("CONTENT_LENGTH", b"1000000")], 65535);
    let mut out = BytesMut::new();
    encode_record(RecordType::Stdin, 1, &[1; 5000], &mut out);
    encode_record(RecordType::AbortRequest, 1, b"", &mut out);
    client.send(&out);
    let response = client.response(1);
    assert_eq!(response.end.unwrap().protocol_status, ProtocolStatus::RequestComplete);
    assert!(response.body().is_empty(), "an aborted request sends no response body");
    assert_eq!(client.get(1, "/hello", false).body(), b"Hello, world!");
}

#[test]
fn a_five_megabyte_response_comes_in_records_of_at_most_65535() {
    let app = App::start(&[]);
    let mut client = app.connect();
    let response = client.get(1, "/big?n=5000000", false);
    let expected: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    assert!(response.body() == expected, "{} bytes", response.body().len());
    assert!(response.headers.iter().all(|h| h.content_len as usize <= MAX_CONTENT_LEN));
    assert!(response.headers.len() >= 5_000_000 / MAX_CONTENT_LEN);
    assert!(client.is_closed_by_app(), "without KEEP_CONN the app closes");
}

#[test]
fn status_cookies_and_stderr() {
    let app = App::start(&[]);
    let response = app.connect().get(1, "/status/404", false);
    assert_eq!(response.status(), 404);
    let response = app.connect().get(1, "/cookies", false);
    // Header names are case-insensitive: an ASGI app gives them in lower case.
    assert_eq!(response.head().to_ascii_lowercase().matches("set-cookie: ").count(), 2);
    let response = app.connect().get(1, "/stderr?msg=spec-test", false);
    assert_eq!(response.stderr, b"echo-stderr: spec-test\n");
    assert!(response.headers.iter().any(|h| h.record_type == RecordType::Stderr && h.content_len == 0));
}

#[test]
fn sigterm_lets_the_request_in_flight_finish() {
    let mut app = App::start(&["--workers", "2"]);
    let mut client = app.connect();
    client.request(1, "GET", "/slow?ms=500", b"", false);
    std::thread::sleep(std::time::Duration::from_millis(150));
    let terminated = std::thread::spawn(move || {
        let status = app.terminate();
        (status, app)
    });
    let response = client.response(1);
    assert_eq!(response.body(), b"slept 500\n");
    let (status, app) = terminated.join().unwrap();
    assert!(status.success(), "exit status {status:?}: {}", app.stderr());
}

#[test]
fn an_unread_body_does_not_disturb_the_next_request_on_a_kept_connection() {
    let app = App::start(&[]);
    let mut client = app.connect();
    for _ in 0..3 {
        client.request(1, "POST", "/hello", &random_bytes(1 << 20, 5), true);
        assert_eq!(client.response(1).body(), b"Hello, world!");
    }
}

#[test]
fn abort_reaches_a_handler_that_is_not_reading() {
    if std::env::var_os("FCGI_TEST_APP").is_some() {
        // Only the echo example polls the abort flag while it works (a WSGI app cannot).
        return;
    }
    let app = App::start(&[]);
    let mut client = app.connect();
    client.request(1, "GET", "/slow?ms=30000", b"", false);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let mut out = BytesMut::new();
    encode_record(RecordType::AbortRequest, 1, b"", &mut out);
    client.send(&out);
    let response = client.response(1);
    assert!(response.stdout.is_empty(), "an aborted handler answers nothing");
    assert_eq!(response.end.unwrap().protocol_status, ProtocolStatus::RequestComplete);
}

#[test]
fn a_body_still_on_its_way_after_the_response_is_taken_not_refused() {
    // A handler may answer before its body has arrived; the web server is still writing it and
    // must not see its writes fail (nginx would turn that into a 502).
    let app = App::start(&[]);
    for _ in 0..50 {
        let mut client = app.connect();
        client.begin(1, Role::Responder, false);
        client.params(1, &[("REQUEST_URI", b"/hello"), ("CONTENT_LENGTH", b"200000")], 65535);
        assert_eq!(client.response(1).body(), b"Hello, world!");
        let mut out = BytesMut::new();
        fcgi_core::protocol::record::encode_stream(RecordType::Stdin, 1, &random_bytes(200_000, 9), &mut out);
        encode_record(RecordType::Stdin, 1, b"", &mut out);
        client.stream.write_all(&out).expect("the rest of the body is taken");
        assert!(client.is_closed_by_app());
    }
}
