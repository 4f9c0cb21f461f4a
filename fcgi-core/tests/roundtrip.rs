//! Property tests of the sans-IO protocol layer: whatever is encoded decodes back the same,
//! however the bytes are chunked on the way, and the connection state machine takes any bytes
//! without panicking.

use std::io::{self, IoSlice};

use bytes::BytesMut;
use fcgi_core::protocol::header::{RecordType, HEADER_LEN, MAX_CONTENT_LEN};
use fcgi_core::protocol::params::encode_pair;
use fcgi_core::protocol::record::{encode_record, encode_stream, encode_stream_end};
use fcgi_core::protocol::response::COALESCE_MAX;
use fcgi_core::protocol::{
    BeginRequest, Connection, ConnectionConfig, EndRequest, Event, Params, ParamsDecoder, ParamsError, ParamsLimits,
    ProtocolStatus, Record, ResponseEncoder, Role, Roles,
};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// Case counts are sized so the whole file runs in seconds in a debug build. No regression file
/// is written next to this source; a failure prints its minimal input.
fn config(cases: u32) -> Config {
    Config { cases, failure_persistence: None, ..Config::default() }
}

/// `len` bytes from `seed`: a 1021-byte random block (a prime, so it never lines up with record
/// or padding boundaries) repeated, so large buffers cost a few memcpys and not a draw per byte.
fn filled(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let block: Vec<u8> = (0..1021)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect();
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let take = (len - out.len()).min(block.len());
        out.extend_from_slice(&block[..take]);
    }
    out
}

fn payload(max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    (0..=max_len, any::<u64>()).prop_map(|(len, seed)| filled(len, seed))
}

/// Chunk sizes, used in turn: small ones split headers and lengths, large ones whole records.
fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![1..=9usize, 1..=300usize, 1..=100_000usize], 1..6)
}

fn chunked<'a>(mut rest: &'a [u8], sizes: &'a [usize]) -> impl Iterator<Item = &'a [u8]> + 'a {
    sizes.iter().cycle().map_while(move |size| {
        if rest.is_empty() {
            return None;
        }
        let (chunk, tail) = rest.split_at((*size).min(rest.len()));
        rest = tail;
        Some(chunk)
    })
}

/// Feeds `wire` to a buffer chunk by chunk, taking records off it as they complete.
fn decode_chunked(wire: &[u8], sizes: &[usize]) -> Vec<Record> {
    let mut buf = BytesMut::new();
    let mut records = Vec::new();
    for chunk in chunked(wire, sizes) {
        buf.extend_from_slice(chunk);
        while let Some(record) = Record::decode(&mut buf).expect("version 1 records") {
            records.push(record);
        }
        assert!(Record::bytes_wanted(&buf) > 0, "a whole record was left in the buffer");
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    records
}

/// A record as a sender may put it on the wire.
#[derive(Debug, Clone)]
enum Sent {
    /// A stream of any length, split by `encode_stream`.
    Stream { type_byte: u8, id: u16, data: Vec<u8> },
    /// One record with a header built by hand: any padding length and reserved byte.
    Raw { type_byte: u8, id: u16, content: Vec<u8>, padding: u8, reserved: u8 },
}

fn sent() -> impl Strategy<Value = Sent> {
    prop_oneof![
        (any::<u8>(), any::<u16>(), payload(70_000)).prop_map(|(type_byte, id, data)| Sent::Stream {
            type_byte,
            id,
            data
        }),
        (any::<u8>(), any::<u16>(), payload(MAX_CONTENT_LEN), any::<u8>(), any::<u8>()).prop_map(
            |(type_byte, id, content, padding, reserved)| Sent::Raw { type_byte, id, content, padding, reserved }
        ),
    ]
}

fn encode_sent(sent: &Sent, wire: &mut BytesMut) {
    match sent {
        Sent::Stream { type_byte, id, data } => encode_stream(RecordType::from_byte(*type_byte), *id, data, wire),
        Sent::Raw { type_byte, id, content, padding, reserved } => {
            let [id_hi, id_lo] = id.to_be_bytes();
            let [len_hi, len_lo] = u16::try_from(content.len()).unwrap().to_be_bytes();
            wire.extend_from_slice(&[1, *type_byte, id_hi, id_lo, len_hi, len_lo, *padding, *reserved]);
            wire.extend_from_slice(content);
            wire.extend_from_slice(&vec![0xa5; usize::from(*padding)]);
        }
    }
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn records_decode_back_whatever_the_chunking(
        sents in prop::collection::vec(sent(), 1..5),
        sizes in chunk_sizes(),
    ) {
        let mut wire = BytesMut::new();
        for s in &sents {
            encode_sent(s, &mut wire);
        }
        let mut records = decode_chunked(&wire, &sizes).into_iter();
        for s in &sents {
            match s {
                Sent::Stream { type_byte, id, data } => {
                    // Non-empty records until the data is whole; an empty stream sends none.
                    let mut got = Vec::new();
                    while got.len() < data.len() {
                        let record = records.next().expect("a record of the stream");
                        prop_assert_eq!(record.header.record_type.to_byte(), *type_byte);
                        prop_assert_eq!(record.header.request_id, *id);
                        prop_assert!(!record.content.is_empty() && record.content.len() <= MAX_CONTENT_LEN);
                        prop_assert_eq!((HEADER_LEN + record.header.body_len()) % 8, 0, "padded to 8");
                        prop_assert!(record.header.padding_len < 8);
                        got.extend_from_slice(&record.content);
                    }
                    prop_assert!(got == *data, "stream content differs");
                }
                Sent::Raw { type_byte, id, content, padding, .. } => {
                    let record = records.next().expect("the raw record");
                    prop_assert_eq!(record.header.record_type.to_byte(), *type_byte);
                    prop_assert_eq!(record.header.request_id, *id);
                    prop_assert_eq!(record.header.padding_len, *padding);
                    prop_assert!(record.content == content[..], "record content differs");
                }
            }
        }
        prop_assert!(records.next().is_none(), "more records than were sent");
    }
}

/// Names and values up to 299 bytes: over half take the 4-byte length form.
fn pairs() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    let bytes = || prop::collection::vec(any::<u8>(), 0..300);
    prop::collection::vec((bytes(), bytes()), 0..16)
}

fn encode_pairs(pairs: &[(Vec<u8>, Vec<u8>)]) -> (BytesMut, Vec<usize>) {
    let mut wire = BytesMut::new();
    let mut boundaries = vec![0];
    for (name, value) in pairs {
        encode_pair(name, value, &mut wire);
        boundaries.push(wire.len());
    }
    (wire, boundaries)
}

fn as_slices(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<(&[u8], &[u8])> {
    pairs.iter().map(|(n, v)| (&n[..], &v[..])).collect()
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn pairs_decode_back_whatever_the_chunking(pairs in pairs(), sizes in chunk_sizes()) {
        let (wire, _) = encode_pairs(&pairs);
        let length_bytes = |len: usize| if len < 128 { 1 } else { 4 };
        let expected_len: usize =
            pairs.iter().map(|(n, v)| length_bytes(n.len()) + length_bytes(v.len()) + n.len() + v.len()).sum();
        prop_assert_eq!(wire.len(), expected_len);

        let mut decoder = ParamsDecoder::new(ParamsLimits::default());
        for chunk in chunked(&wire, &sizes) {
            decoder.feed(chunk);
        }
        let params = decoder.finish().unwrap();
        prop_assert_eq!(params.iter().collect::<Vec<_>>(), as_slices(&pairs));
        prop_assert_eq!(&Params::decode(&wire, ParamsLimits::default()).unwrap(), &params);
        prop_assert_eq!(&Params::from_pairs(as_slices(&pairs)), &params);
    }

    #[test]
    fn a_stream_cut_inside_a_pair_is_truncated(pairs in pairs(), cut in any::<prop::sample::Index>()) {
        let (wire, boundaries) = encode_pairs(&pairs);
        let cut = cut.index(wire.len() + 1);
        let decoded = Params::decode(&wire[..cut], ParamsLimits::default());
        match boundaries.iter().position(|b| *b == cut) {
            Some(whole) => {
                let params = decoded.unwrap();
                prop_assert_eq!(params.iter().collect::<Vec<_>>(), as_slices(&pairs[..whole]));
            }
            None => prop_assert_eq!(decoded.unwrap_err(), ParamsError::Truncated),
        }
    }
}

/// One record a web server might send, right or wrong: types around the defined range, ids 0-3
/// (0 is management), bodies that are sometimes well-formed, now and then a bad version.
fn server_record() -> impl Strategy<Value = Vec<u8>> {
    let content = prop_oneof![
        Just(Vec::new()),
        (0u16..5, any::<bool>())
            .prop_map(|(role, keep_conn)| { BeginRequest { role: Role::from_u16(role), keep_conn }.encode().to_vec() }),
        pairs().prop_map(|pairs| encode_pairs(&pairs).0.to_vec()),
        prop::collection::vec(any::<u8>(), 0..40),
        Just(vec![0xff, 0xff, 0xff, 0xff, 0x01]),
    ];
    let type_byte = prop_oneof![4 => prop::sample::select(vec![1u8, 2, 4, 5, 8, 9]), 1 => 0u8..14];
    (prop::sample::select(vec![1u8, 1, 1, 1, 1, 1, 1, 2]), type_byte, 0u16..4, content, 0u8..10).prop_map(
        |(version, type_byte, id, content, padding)| {
            let [len_hi, len_lo] = (content.len() as u16).to_be_bytes();
            let mut record = vec![version, type_byte, 0, id as u8, len_hi, len_lo, padding, 0];
            record.extend_from_slice(&content);
            record.resize(record.len() + usize::from(padding), 0);
            record
        },
    )
}

/// A whole request as a web server sends it, params split across records at `cut`, for ids
/// 1-3 so that requests overlap and repeat; sometimes aborted.
fn server_request() -> impl Strategy<Value = Vec<u8>> {
    (1u16..4, 1u16..4, any::<bool>(), pairs(), any::<prop::sample::Index>(), payload(100), payload(100), any::<bool>())
        .prop_map(|(id, role, keep_conn, pairs, cut, stdin, data, abort)| {
            let mut out = BytesMut::new();
            let begin = BeginRequest { role: Role::from_u16(role), keep_conn }.encode();
            encode_record(RecordType::BeginRequest, id, &begin, &mut out);
            let params = encode_pairs(&pairs).0;
            let (first, second) = params.split_at(cut.index(params.len() + 1));
            encode_stream(RecordType::Params, id, first, &mut out);
            encode_stream(RecordType::Params, id, second, &mut out);
            encode_stream_end(RecordType::Params, id, &mut out);
            if abort {
                encode_stream_end(RecordType::AbortRequest, id, &mut out);
            }
            for (kind, body) in [(RecordType::Stdin, &stdin), (RecordType::Data, &data)] {
                encode_stream(kind, id, body, &mut out);
                encode_stream_end(kind, id, &mut out);
            }
            out.to_vec()
        })
}

fn limits() -> impl Strategy<Value = ParamsLimits> {
    prop_oneof![
        Just(ParamsLimits::default()),
        (0usize..600, 0usize..300, 0usize..6).prop_map(|(max_total_bytes, max_pair_len, max_pairs)| ParamsLimits {
            max_total_bytes,
            max_pair_len,
            max_pairs
        }),
    ]
}

fn connection_config() -> impl Strategy<Value = ConnectionConfig> {
    (any::<bool>(), any::<[bool; 3]>(), limits()).prop_map(|(mpx, [responder, authorizer, filter], params_limits)| {
        ConnectionConfig {
            params_limits,
            roles: Roles { responder, authorizer, filter },
            max_requests_per_conn: if mpx { 3 } else { 1 },
            ..ConnectionConfig::default()
        }
    })
}

/// When the application ends a request, besides on refused params and abort.
#[derive(Debug, Clone, Copy)]
enum EndAt {
    Params,
    StdinEnd,
    DataEnd,
}

fn end_at() -> impl Strategy<Value = EndAt> {
    prop_oneof![Just(EndAt::Params), Just(EndAt::StdinEnd), Just(EndAt::DataEnd)]
}

/// Runs `wire` through a connection in chunks, ending requests at `end_at`, and checks that
/// what it owes the web server is whole records.
fn run_connection(config: ConnectionConfig, end_at: EndAt, wire: &[u8], sizes: &[usize]) {
    let mut conn = Connection::new(config);
    let mut input = BytesMut::new();
    let mut replies = BytesMut::new();
    'chunks: for chunk in chunked(wire, sizes) {
        input.extend_from_slice(chunk);
        loop {
            let id = match conn.poll_event(&mut input) {
                Ok(Some(Event::ParamsRefused { id, .. } | Event::Abort { id })) => id,
                Ok(Some(Event::Params { id, .. })) if matches!(end_at, EndAt::Params) => id,
                Ok(Some(Event::StdinEnd { id })) if matches!(end_at, EndAt::StdinEnd) => id,
                Ok(Some(Event::DataEnd { id })) if matches!(end_at, EndAt::DataEnd) => id,
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(_) => break 'chunks,
            };
            assert!(conn.is_active(id));
            conn.end_request(id, 0);
            replies.extend_from_slice(&conn.take_output());
            assert!(!conn.is_active(id));
            assert!(conn.active_requests() < usize::from(config.max_requests_per_conn));
        }
    }
    replies.extend_from_slice(&conn.take_output());
    while let Some(record) = Record::decode(&mut replies).expect("replies are version 1") {
        assert_eq!(record.header.body_len() % 8, 0);
        if record.header.record_type == RecordType::EndRequest {
            EndRequest::parse(&record.content).expect("an 8-byte END_REQUEST body");
        }
    }
    assert!(replies.is_empty(), "a reply was cut short");
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn connection_takes_arbitrary_bytes(
        config in connection_config(),
        end_at in end_at(),
        wire in prop::collection::vec(any::<u8>(), 0..600),
        sizes in chunk_sizes(),
    ) {
        run_connection(config, end_at, &wire, &sizes);
    }

    #[test]
    fn connection_takes_arbitrary_records(
        config in connection_config(),
        end_at in end_at(),
        records in prop::collection::vec(prop_oneof![3 => server_record(), 1 => server_request()], 0..24),
        sizes in chunk_sizes(),
    ) {
        run_connection(config, end_at, &records.concat(), &sizes);
    }
}

#[derive(Debug, Clone)]
struct ResponseWrite {
    stderr: bool,
    data: Vec<u8>,
}

fn response_write() -> impl Strategy<Value = ResponseWrite> {
    let data = prop_oneof![payload(64), payload(COALESCE_MAX + 64), payload(200_000)];
    (any::<bool>(), data).prop_map(|(stderr, data)| ResponseWrite { stderr, data })
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn responses_decode_back_to_what_was_written(
        id in 1..=u16::MAX,
        app_status in any::<u32>(),
        writes in prop::collection::vec(response_write(), 0..8),
    ) {
        let mut wire = Vec::new();
        let mut send = |slices: &[IoSlice<'_>]| -> io::Result<()> {
            for slice in slices {
                wire.extend_from_slice(slice);
            }
            Ok(())
        };
        let mut encoder = ResponseEncoder::new();
        for write in &writes {
            let kind = if write.stderr { RecordType::Stderr } else { RecordType::Stdout };
            encoder.write(kind, id, &write.data, &mut send).unwrap();
        }
        encoder.end_stream(RecordType::Stdout, id);
        encoder.end_stream(RecordType::Stderr, id);
        encoder.end_request(id, app_status, ProtocolStatus::RequestComplete);
        encoder.flush(&mut send).unwrap();
        prop_assert!(encoder.is_empty());

        let mut records = decode_chunked(&wire, &[wire.len().max(1)]);
        let end = records.pop().expect("END_REQUEST");
        prop_assert_eq!(end.header.record_type, RecordType::EndRequest);
        let expected_end = EndRequest { app_status, protocol_status: ProtocolStatus::RequestComplete };
        prop_assert_eq!(EndRequest::parse(&end.content).unwrap(), expected_end);
        let (mut stdout, mut stderr, mut ended) = (Vec::new(), Vec::new(), Vec::new());
        for record in &records {
            prop_assert_eq!(record.header.request_id, id);
            prop_assert!(record.content.len() <= MAX_CONTENT_LEN);
            prop_assert_eq!((record.content.len() + usize::from(record.header.padding_len)) % 8, 0);
            prop_assert!(record.header.padding_len < 8);
            let kind = record.header.record_type;
            prop_assert!(!ended.contains(&kind), "{:?} after its stream ended", kind);
            match kind {
                _ if record.content.is_empty() => ended.push(kind),
                RecordType::Stdout => stdout.extend_from_slice(&record.content),
                RecordType::Stderr => stderr.extend_from_slice(&record.content),
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
        prop_assert_eq!(ended, vec![RecordType::Stdout, RecordType::Stderr]);
        let written = |on_stderr: bool| -> Vec<u8> {
            writes.iter().filter(|w| w.stderr == on_stderr).flat_map(|w| w.data.iter().copied()).collect()
        };
        prop_assert!(stdout == written(false), "STDOUT differs");
        prop_assert!(stderr == written(true), "STDERR differs");
    }
}
