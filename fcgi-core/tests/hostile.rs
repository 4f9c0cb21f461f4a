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
fn stdin_before_begin_closes_the_connection() {
    let mut app = App::start(&[]);
    let mut client = app.connect();
    let mut out = BytesMut::new();
    encode_record(RecordType::Stdin, 1, b"data", &mut out);
    client.send(&out);
    assert!(client.is_closed_by_app());
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
    let mut app = App::start(&["--read-timeout", "0.3"]);
    let mut client = app.connect();
    client.begin(1, Role::Responder, false);
    client.send(&[1, 4, 0, 1, 0, 100, 0, 0, 5]); // a PARAMS record cut short
    assert!(client.is_closed_by_app(), "the stalled connection is closed");
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
    let mut app = App::start(&["--max-connections", "2", "--workers", "2"]);
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
