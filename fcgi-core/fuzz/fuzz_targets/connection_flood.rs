#![no_main]
//! The sans-IO `Connection` driven the way the runtime drives it, by a script of hostile moves:
//! chunks of any size, stalls (polls with nothing new), bursts of management records
//! (UNKNOWN_TYPE, GET_VALUES), interleaved request ids, records for ids never begun, ABORTs.
//!
//! Input: byte 0 is the config (bits 0-1: at most 1, 2, 3 or 8 requests at once; bit 2: an
//! overloaded connection; bit 3: tight PARAMS limits; bit 4: refuse the filter role), then
//! moves, each an opcode byte and its arguments (see `Script::parse`).
//!
//! Invariants checked:
//! - no panic, and every reply is a whole, padded record of a type the application sends;
//! - the replies owed never exceed twice the bytes the connection has consumed, in any one
//!   poll and in all (an UNKNOWN_TYPE reply is 16 bytes for an 8-byte record, the most any
//!   record costs; GET_VALUES_RESULT for the largest values is at most 1.75× its query);
//! - `active_requests()` never exceeds the multiplex limit (0 when overloaded);
//! - events name only requests the driver saw begin, and a Begin only an inactive id;
//! - a poll with nothing new yields nothing and owes nothing new (a stall changes nothing);
//! - the events, the error and the replies do not depend on how the bytes were chunked;
//! - records for ids never begun (FastCGI 1.0, section 3.3) change nothing: without them the
//!   same events, error and replies come (checked when the script has no raw bytes, which
//!   could begin those ids).
use bytes::{BufMut, BytesMut};
use fcgi_core::protocol::header::RecordType;
use fcgi_core::protocol::management::Capabilities;
use fcgi_core::protocol::params::encode_pair;
use fcgi_core::protocol::record::Record;
use fcgi_core::protocol::{Connection, ConnectionConfig, Event, ParamsLimits, ProtocolError, Roles};
use libfuzzer_sys::fuzz_target;

/// Request ids the script begins: 1..=8. Stray records use ids from 0x100 up, never begun.
const IDS: u16 = 8;

/// Bytes of the wire, with the cut points of its chunks.
#[derive(Default, Clone)]
struct Wire {
    bytes: Vec<u8>,
    /// `(end offset, stall after it)`: the bytes up to each offset arrive as one chunk.
    chunks: Vec<(usize, bool)>,
}

struct Script {
    config: ConnectionConfig,
    overloaded: bool,
    /// The moves with the stray records (ids never begun) and without them.
    with_strays: Wire,
    without_strays: Wire,
    raw: bool,
}

fn record(kind: u8, id: u16, content: &[u8], padding: u8, wire: &mut Vec<u8>) {
    let len = content.len().min(0xffff);
    wire.extend_from_slice(&[1, kind, (id >> 8) as u8, id as u8, (len >> 8) as u8, len as u8, padding, 0]);
    wire.extend_from_slice(&content[..len]);
    wire.extend(std::iter::repeat(0).take(usize::from(padding)));
}

impl Script {
    fn parse(data: &[u8]) -> Option<Self> {
        let (&knobs, mut moves) = data.split_first()?;
        let max_requests_per_conn = [1, 2, 3, 8][usize::from(knobs & 3)];
        let params_limits = if knobs & 8 != 0 {
            ParamsLimits { max_total_bytes: 200, max_pair_len: 64, max_pairs: 6 }
        } else {
            ParamsLimits::default()
        };
        let config = ConnectionConfig {
            params_limits,
            roles: Roles { filter: knobs & 16 == 0, ..Roles::ALL },
            max_requests_per_conn,
            // The longest values GET_VALUES can report: the worst case for the reply bound.
            capabilities: Capabilities { max_conns: u32::MAX, max_reqs: u32::MAX, mpxs_conns: true },
        };
        let mut script = Script {
            config,
            overloaded: knobs & 4 != 0,
            with_strays: Wire::default(),
            without_strays: Wire::default(),
            raw: false,
        };
        let next = |moves: &mut &[u8]| -> u8 {
            let (&b, rest) = moves.split_first().unwrap_or((&0, &[]));
            *moves = rest;
            b
        };
        while !moves.is_empty() {
            let op = next(&mut moves);
            let (a, b) = (next(&mut moves), next(&mut moves));
            let id = u16::from(a % IDS as u8) + 1;
            let mut bytes = Vec::new();
            let mut stray = false;
            match op % 10 {
                // Raw bytes, anything at all.
                0 => {
                    let n = usize::from(a).min(moves.len());
                    bytes.extend_from_slice(&moves[..n]);
                    moves = &moves[n..];
                    script.raw = true;
                }
                // A burst of management records of one type (not GET_VALUES): up to 256 of them;
                // moves in a row make a longer flood.
                1 => {
                    let kind = if b == 9 { 42 } else { b };
                    for _ in 0..(usize::from(a % 32) + 1) * 8 {
                        record(kind, 0, &[], 0, &mut bytes);
                    }
                }
                // A burst of GET_VALUES: up to 16 queries of up to 64 names, padded or not.
                2 => {
                    let names: [&[u8]; 4] = [b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS", b"FCGI_MPXS_CONNS", b"OTHER"];
                    let mut query = BytesMut::new();
                    for i in 0..usize::from(b % 65) {
                        encode_pair(names[(i + usize::from(b)) % 4], b"", &mut query);
                    }
                    for _ in 0..=a % 16 {
                        record(
                            9,
                            0,
                            &query,
                            if b & 128 != 0 { 0 } else { (8 - query.len() % 8) as u8 % 8 },
                            &mut bytes,
                        );
                    }
                }
                // BEGIN_REQUEST: role from b (responder, authorizer, filter, unknown), keep_conn.
                3 => {
                    let role = [1u16, 2, 3, 9][usize::from(b & 3)];
                    let flags = (b >> 2) & 1;
                    let [hi, lo] = role.to_be_bytes();
                    record(1, id, &[hi, lo, flags, 0, 0, 0, 0, 0], b >> 5, &mut bytes);
                }
                // PARAMS: a whole small stream (b's bits say how many pairs, and whether it ends).
                4 => {
                    let mut pairs = BytesMut::new();
                    for i in 0..usize::from(b & 15) {
                        encode_pair(b"HTTP_X", &vec![b'v'; i * 7], &mut pairs);
                    }
                    for piece in pairs.chunks(usize::from(b >> 4) * 5 + 1) {
                        record(4, id, piece, 0, &mut bytes);
                    }
                    if b & 1 == 0 {
                        record(4, id, &[], 0, &mut bytes);
                    }
                }
                // STDIN or DATA (b bit 0), b>>1 bytes, 0 ends the stream.
                5 => record(if b & 1 == 0 { 5 } else { 8 }, id, &vec![b'x'; usize::from(b >> 1)], 0, &mut bytes),
                // ABORT_REQUEST, for an active id or not.
                6 => record(2, id, &[], 0, &mut bytes),
                // A record for an id never begun: PARAMS, STDIN, DATA or ABORT, any content.
                7 => {
                    let kind = [4u8, 5, 8, 2][usize::from(b & 3)];
                    let stray_id = 0x100 | u16::from(a) << 4 | u16::from(b >> 4);
                    record(kind, stray_id, &vec![b; usize::from(b)], a % 8, &mut bytes);
                    stray = true;
                }
                // A cut: the bytes so far arrive as one chunk (b=1: then a stall).
                8 => {
                    for wire in [&mut script.with_strays, &mut script.without_strays] {
                        let end = wire.bytes.len();
                        wire.chunks.push((end, b & 1 != 0));
                    }
                    continue;
                }
                // A cut a bytes into the next move, so records straddle chunks anywhere.
                _ => {
                    for wire in [&mut script.with_strays, &mut script.without_strays] {
                        let end = wire.bytes.len() + usize::from(a);
                        wire.chunks.push((end, b & 1 != 0));
                    }
                    continue;
                }
            }
            script.with_strays.bytes.extend_from_slice(&bytes);
            if !stray {
                script.without_strays.bytes.extend_from_slice(&bytes);
            }
        }
        Some(script)
    }
}

/// What one run saw: every event, the error that ended it, and every reply byte in order.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    events: Vec<Event>,
    error: Option<ProtocolError>,
    replies: Vec<u8>,
}

/// Feeds `wire` chunk by chunk (or whole) the way the runtime does, checking the invariants.
fn run(script: &Script, wire: &Wire, chunked: bool) -> Outcome {
    let mut conn =
        if script.overloaded { Connection::overloaded(script.config) } else { Connection::new(script.config) };
    let limit = if script.overloaded { 0 } else { usize::from(script.config.max_requests_per_conn) };
    let mut outcome = Outcome { events: Vec::new(), error: None, replies: Vec::new() };
    let mut input = BytesMut::new();
    // The requests begun and not ended, as the driver saw them.
    let mut active = std::collections::BTreeSet::new();
    let (mut consumed, mut owed_total) = (0usize, 0usize);
    let mut cuts: Vec<(usize, bool)> = if chunked {
        wire.chunks.iter().copied().filter(|(end, _)| *end <= wire.bytes.len()).collect()
    } else {
        Vec::new()
    };
    cuts.push((wire.bytes.len(), false));
    let mut fed = 0;
    for (end, stall) in cuts {
        if end < fed {
            continue;
        }
        input.put_slice(&wire.bytes[fed..end]);
        fed = end;
        for pass in 0..if stall { 2 } else { 1 } {
            loop {
                let before = input.len();
                let polled = conn.poll_event(&mut input);
                let used = before - input.len();
                consumed += used;
                let owed = conn.pending_output();
                // Replies are bounded by what was consumed, in this poll and in all.
                assert!(owed <= 2 * used, "{owed} bytes owed for {used} consumed");
                assert!(conn.active_requests() <= limit, "{} active, limit {limit}", conn.active_requests());
                // The runtime moves the replies to its send buffer and sends them.
                owed_total += owed;
                outcome.replies.extend_from_slice(&conn.take_output());
                let event = match polled {
                    Ok(Some(event)) => event,
                    Ok(None) => break,
                    Err(error) => {
                        outcome.error = Some(error);
                        assert!(owed_total <= 2 * consumed);
                        return outcome;
                    }
                };
                assert!(pass == 0, "a stall (nothing new) yielded {event:?}");
                let (id, end) = match &event {
                    Event::Begin { id, .. } => {
                        assert!(active.insert(*id), "a second Begin for active {id}");
                        // Only raw bytes begin ids outside 1..=8 (the stray records' ids).
                        assert!(script.raw || (1..=IDS).contains(id), "{event:?} from no BEGIN of the script");
                        (*id, false)
                    }
                    Event::Params { id, .. } => (*id, id % 2 == 0),
                    Event::ParamsRefused { id, .. } | Event::Abort { id } => (*id, true),
                    Event::StdinEnd { id } => (*id, true),
                    Event::Stdin { id, .. } | Event::Data { id, .. } | Event::DataEnd { id } => (*id, false),
                };
                assert!(active.contains(&id), "{event:?} for a request never begun");
                assert!(conn.is_active(id));
                if end {
                    // The handler answers: even ids as soon as their params are in, odd ones
                    // at the end of their body; aborted and refused ones at once.
                    conn.end_request(id, 0);
                    let out = conn.take_output();
                    assert_eq!(out.len(), 16);
                    active.remove(&id);
                    assert!(!conn.is_active(id));
                    owed_total += out.len();
                    outcome.replies.extend_from_slice(&out);
                }
                outcome.events.push(event);
                assert!(owed_total <= 2 * consumed, "{owed_total} bytes of replies for {consumed} consumed");
            }
        }
    }
    outcome
}

fuzz_target!(|data: &[u8]| {
    let Some(script) = Script::parse(data) else { return };
    let chunked = run(&script, &script.with_strays, true);
    // Every reply is a whole, padded record the application may send.
    let mut replies = BytesMut::from(&chunked.replies[..]);
    while let Some(record) = Record::decode(&mut replies).expect("replies are version 1") {
        assert_eq!(record.header.body_len() % 8, 0);
        assert!(matches!(
            record.header.record_type,
            RecordType::EndRequest | RecordType::GetValuesResult | RecordType::UnknownType
        ));
    }
    assert!(replies.is_empty());
    let whole = run(&script, &script.with_strays, false);
    assert_eq!(chunked, whole, "the outcome depends on the chunking");
    if !script.raw {
        let clean = run(&script, &script.without_strays, false);
        assert_eq!(whole, clean, "records for ids never begun changed the outcome");
    }
});
