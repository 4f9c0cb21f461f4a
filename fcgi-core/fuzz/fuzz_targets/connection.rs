#![no_main]
use bytes::BytesMut;
use fcgi_core::protocol::{Connection, ConnectionConfig, Event, Record, Roles};
use libfuzzer_sys::fuzz_target;

// The first byte is the config: bit 0 multiplexes (3 requests, else 1), bits 1-3 refuse the
// responder, authorizer, filter role, bit 4 ends requests at the end of STDIN, not of PARAMS.
fuzz_target!(|data: &[u8]| {
    let Some((&knobs, stream)) = data.split_first() else { return };
    let roles = Roles { responder: knobs & 2 == 0, authorizer: knobs & 4 == 0, filter: knobs & 8 == 0 };
    let max_requests_per_conn = if knobs & 1 == 0 { 1 } else { 3 };
    let mut conn = Connection::new(ConnectionConfig { roles, max_requests_per_conn, ..ConnectionConfig::default() });
    let (mut input, mut replies) = (BytesMut::from(stream), BytesMut::new());
    while let Ok(Some(event)) = conn.poll_event(&mut input) {
        let id = match event {
            Event::Params { id, .. } if knobs & 16 == 0 => id,
            Event::StdinEnd { id } if knobs & 16 != 0 => id,
            Event::ParamsRefused { id, .. } | Event::Abort { id } => id,
            _ => continue,
        };
        conn.end_request(id, 0);
        replies.extend_from_slice(&conn.take_output());
    }
    // What the connection owes the web server is always whole, padded records.
    replies.extend_from_slice(&conn.take_output());
    while let Some(record) = Record::decode(&mut replies).expect("replies are version 1") {
        assert_eq!(record.header.body_len() % 8, 0);
    }
    assert!(replies.is_empty());
});
